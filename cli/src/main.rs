//! `zdbctl`: read and write data, inspect nodes, and run a local cluster.
//!
//! - `data`: put, get, del, scan, cas, count, exists, clear against any cluster (`--endpoints`).
//! - `txn`: a script of gets (plain or locking), puts, dels and scans run
//!   in one transaction, parsed whole before anything is sent.
//! - `status`: what each node reports about itself and its ranges.
//! - `time`: the oracle's time (`now`) and garbage collection (`gc`).
//! - `cache`: cache mode, budgets and eviction policies for key prefixes.
//! - `encryption`: which keys each node encrypts at rest with; rotation.
//! - `cert`: the cluster CA and the node and client certificates it signs.
//! - `auth`: authentication on and off, users, roles and their permissions.
//! - `connect`: TLS and login flags (`--ca-cert`, `--user`, ...), checked
//!   and turned into the client's configuration.
//! - `local`: `local up` starts and supervises a cluster of `zdb-node`
//!   processes on 127.0.0.1, keeping its data in one folder; `local
//!   add-node` and `local remove-node` ask it, through its control socket,
//!   to start or stop one.

mod auth;
mod cache;
mod cert;
mod connect;
mod data;
mod encryption;
mod keyspan;
mod local;
mod prompt;
mod status;
mod time;
mod txn;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use zdb_client::Client;

#[derive(Parser)]
#[command(
    name = "zdbctl",
    version,
    about = "zdb command-line client and local cluster runner"
)]
struct Cli {
    /// Nodes to talk to: HOST:PORT, comma-separated.
    #[arg(long, env = "ZDB_ENDPOINTS", global = true, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Deadline for each command, retries included, in seconds.
    #[arg(long, default_value_t = 10, global = true)]
    timeout: u64,
    #[command(flatten)]
    security: connect::SecurityArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Data(data::DataCommand),
    /// Run a script of gets, puts, dels and scans in one transaction.
    #[command(after_help = txn::SCRIPT_HELP)]
    Txn(txn::TxnArgs),
    /// Show each node's view of its ranges.
    Status,
    /// Print the range table: span, epoch, leader, size and load of every range.
    Ranges,
    /// Split the range holding KEY at KEY.
    Split { key: String },
    /// One line per node: id, address, state, replicas, leaders, zone.
    Nodes,
    /// Record the zone (failure domain) NODE runs in; "" for unknown.
    Zone { node: u64, zone: String },
    /// Move every replica and leadership off NODE; it takes no new ones.
    Drain { node: u64 },
    /// Retire NODE for good: everything moves off and it hosts nothing again.
    Decommission { node: u64 },
    /// Print a timestamp from the cluster's oracle (for `get --at`, `scan --at`).
    Now,
    /// Show the GC safe point, life time and versions collected.
    Gc {
        /// Keep old versions this long (for example 10m): reads may name
        /// timestamps that far back.
        #[arg(long, value_name = "DURATION")]
        life_time: Option<String>,
    },
    /// Cache mode: budgets and eviction policies for key prefixes.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Encryption at rest: each node's keys, and data key rotation.
    #[command(subcommand)]
    Encryption(encryption::EncryptionCommand),
    /// Create the cluster CA and node and client certificates (no cluster needed).
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Authentication: whether it is on and who you are; turn it on or off.
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Users: add, delete, passwd, grant and revoke roles, list.
    #[command(subcommand)]
    User(auth::UserCommand),
    /// Roles: add, delete, grant and revoke permissions on key spans, list.
    #[command(subcommand)]
    Role(auth::RoleCommand),
    /// Run a cluster of local processes.
    #[command(subcommand)]
    Local(local::LocalCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Local(command) => local::run(command).await,
        Command::Cert(command) => cert::run(command),
        command => {
            let config = cli
                .security
                .client_config(&cli.endpoints, Duration::from_secs(cli.timeout));
            match config.and_then(|config| Ok(Client::new(config)?)) {
                Err(err) => Err(err),
                Ok(client) => match command {
                    Command::Data(command) => data::run(&client, command).await,
                    Command::Txn(args) => txn::run(&client, args).await,
                    Command::Status => status::run(&client).await,
                    Command::Ranges => status::ranges(&client).await,
                    Command::Split { key } => status::split(&client, &key).await,
                    Command::Nodes => status::nodes(&client).await,
                    Command::Zone { node, zone } => status::set_zone(&client, node, &zone).await,
                    Command::Drain { node } => {
                        status::set_state(&client, node, zdb_client::NodeState::Draining).await
                    }
                    Command::Decommission { node } => {
                        status::set_state(&client, node, zdb_client::NodeState::Decommissioned)
                            .await
                    }
                    Command::Now => time::now(&client).await,
                    Command::Gc { life_time } => time::gc(&client, life_time.as_deref()).await,
                    Command::Cache(command) => cache::run(&client, command).await,
                    Command::Encryption(command) => encryption::run(&client, command).await,
                    Command::Auth(command) => auth::auth(&client, command).await,
                    Command::User(command) => auth::user(&client, command).await,
                    Command::Role(command) => auth::role(&client, command).await,
                    Command::Local(_) | Command::Cert(_) => unreachable!("handled above"),
                }
                .map_err(|err| cli.security.explain(err)),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
