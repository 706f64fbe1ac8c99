//! `zdb-node`: one zdb storage node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use zdb_node::config::{EncryptionConfig, Limits, NodeConfig, RaftConfig, MAX_KEY_BYTES_CEILING};
use zdb_node::ops::auth::SecuritySettings;
use zdb_security::tls::TlsFiles;

#[derive(Parser, Debug)]
#[command(name = "zdb-node", version, about = "zdb storage node")]
struct Args {
    /// This node's id; must appear in --peers. Not needed with --join.
    #[arg(long, default_value_t = 0)]
    id: u64,
    /// gRPC address for clients and peers.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// HOST:PORT other nodes and clients reach this node at, if not --listen
    /// (e.g. a stable DNS name when listening on 0.0.0.0).
    #[arg(long)]
    advertise: Option<String>,
    /// HTTP address serving /metrics and /healthz.
    #[arg(long)]
    status_listen: Option<SocketAddr>,
    /// HOST:PORT serving the Redis protocol (RESP2/RESP3); off unless
    /// given. TLS and authentication follow the gRPC port's settings.
    #[arg(long, env = "ZDB_REDIS_LISTEN")]
    redis_listen: Option<SocketAddr>,
    /// Data directory; created if missing.
    #[arg(long)]
    data: PathBuf,
    /// Every founding member, this node included: ID=HOST:PORT, comma-separated.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// For a new node: HOST:PORT of any member of a running cluster to join
    /// (several, comma-separated, are tried in turn).
    /// The cluster assigns the node id.
    #[arg(long, conflicts_with = "peers")]
    join: Option<String>,
    /// Names the cluster; nodes refuse peers from another cluster.
    #[arg(long, default_value = "zdb")]
    cluster_id: String,
    /// The failure domain this node runs in (a zone, a rack): placement
    /// keeps each range's replicas in different zones when it can.
    #[arg(long, env = "ZDB_ZONE", default_value = "")]
    zone: String,
    #[arg(long, default_value_t = Limits::default().max_key_bytes)]
    max_key_bytes: usize,
    #[arg(long, default_value_t = Limits::default().max_value_bytes)]
    max_value_bytes: usize,
    #[arg(long, default_value_t = Limits::default().max_batch_ops)]
    max_batch_ops: usize,
    #[arg(long, default_value_t = Limits::default().max_batch_bytes)]
    max_batch_bytes: usize,
    /// Raft tick in milliseconds; elections and heartbeats count in ticks.
    #[arg(long, default_value_t = 100)]
    raft_tick_ms: u64,
    #[arg(long, default_value_t = RaftConfig::default().election_ticks)]
    election_ticks: usize,
    #[arg(long, default_value_t = RaftConfig::default().heartbeat_ticks)]
    heartbeat_ticks: usize,
    /// Compact a range's Raft log once it holds more entries than this.
    #[arg(long, default_value_t = RaftConfig::default().log_compact_threshold)]
    log_compact_threshold: u64,
    /// Under load, how long the event loop gathers work before each
    /// synced write, in microseconds (more throughput, more latency).
    #[arg(long, default_value_t = RaftConfig::default().batch_linger.as_micros() as u64)]
    batch_linger_us: u64,
    /// Confirm every linearizable read with a ReadIndex round instead of the leader lease.
    #[arg(long)]
    no_lease_reads: bool,
    /// How often the leader removes expired keys from disk, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    ttl_sweep_interval_ms: u64,
    /// On SIGTERM: seconds to hand leaderships to peers and finish the
    /// requests in flight before exiting anyway (keep it well under a pod's
    /// termination grace period).
    #[arg(long, default_value_t = 10)]
    shutdown_timeout_secs: u64,
    /// Log one JSON object per line.
    #[arg(long)]
    log_json: bool,
    /// The cluster CA's certificate (PEM). With --tls-cert-file and
    /// --tls-key-file: the port serves TLS only, and peers must present
    /// node certificates from this CA (`zdbctl cert create-node`). The files
    /// are read again when they change.
    #[arg(long, env = "ZDB_TLS_CA_FILE", requires_all = ["tls_cert_file", "tls_key_file"])]
    tls_ca_file: Option<PathBuf>,
    /// This node's certificate (PEM, common name "node").
    #[arg(long, env = "ZDB_TLS_CERT_FILE", requires = "tls_ca_file")]
    tls_cert_file: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "ZDB_TLS_KEY_FILE", requires = "tls_ca_file")]
    tls_key_file: Option<PathBuf>,
    /// Turn authentication on for the cluster (needs TLS), with user root
    /// (admin on every key) logging in with the password in this file.
    #[arg(long, env = "ZDB_AUTH_ROOT_PASSWORD_FILE", requires = "tls_ca_file")]
    auth_root_password_file: Option<PathBuf>,
    /// How long a password login's token is valid (10m, 1h, ...).
    #[arg(long, default_value = "10m", value_parser = zdb_node::config::parse_duration)]
    auth_token_ttl: Duration,
    /// The audit log (JSON lines of security events and admin actions);
    /// default: audit.log in the data directory, with TLS on.
    #[arg(long, env = "ZDB_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// Encrypt data at rest with data keys wrapped by this master key: a
    /// file of 64 hex characters (`openssl rand -hex 32`).
    #[arg(long, env = "ZDB_ENCRYPTION_KEY_FILE")]
    encryption_key_file: Option<PathBuf>,
    /// During a master key rotation, the master key the data keys are
    /// wrapped by now: they are rewrapped by --encryption-key-file at start.
    #[arg(
        long,
        env = "ZDB_ENCRYPTION_PREVIOUS_KEY_FILE",
        requires = "encryption_key_file"
    )]
    encryption_previous_key_file: Option<PathBuf>,
    /// How long a data key seals new values before a new one replaces it
    /// (30s, 15m, 24h, 7d; old keys stay to read old values).
    #[arg(long, default_value = "7d", value_parser = zdb_node::config::parse_duration)]
    data_key_rotation_period: Duration,
}

fn parse_peers(peers: &[String]) -> Result<BTreeMap<u64, String>, String> {
    peers
        .iter()
        .map(|peer| {
            let (id, address) = peer
                .split_once('=')
                .ok_or_else(|| format!("peer {peer:?} is not ID=HOST:PORT"))?;
            let id = id
                .parse()
                .map_err(|_| format!("peer id {id:?} is not a number"))?;
            Ok((id, address.to_owned()))
        })
        .collect()
}

fn config(args: Args) -> Result<NodeConfig, String> {
    if args.max_key_bytes > MAX_KEY_BYTES_CEILING {
        return Err(format!(
            "--max-key-bytes may be at most {MAX_KEY_BYTES_CEILING}"
        ));
    }
    if args.join.is_none() && (args.id == 0 || args.peers.is_empty()) {
        return Err(
            "give --id and --peers (the founding members), or --join HOST:PORT for a new node"
                .into(),
        );
    }
    if args.data_key_rotation_period.is_zero() {
        return Err("--data-key-rotation-period must be longer than 0".into());
    }
    let root_password = match &args.auth_root_password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|err| format!("cannot read {}: {err}", path.display()))?
                .trim()
                .to_owned(),
        )
        .filter(|password| !password.is_empty())
        .ok_or_else(|| format!("{} holds no password", path.display()))
        .map(Some)?,
        None => None,
    };
    let tls = match (args.tls_ca_file, args.tls_cert_file, args.tls_key_file) {
        (Some(ca), Some(cert), Some(key)) => Some(TlsFiles { ca, cert, key }),
        _ => None,
    };
    Ok(NodeConfig {
        tls,
        security: SecuritySettings {
            root_password,
            token_ttl: args.auth_token_ttl,
        },
        audit_log: args.audit_log,
        node_id: args.id,
        join: args.join,
        listen: args.listen,
        advertise: args.advertise,
        status_listen: args.status_listen,
        redis_listen: args.redis_listen,
        data_dir: args.data,
        peers: parse_peers(&args.peers)?,
        cluster_id: args.cluster_id,
        zone: args.zone,
        limits: Limits {
            max_key_bytes: args.max_key_bytes,
            max_value_bytes: args.max_value_bytes,
            max_batch_ops: args.max_batch_ops,
            max_batch_bytes: args.max_batch_bytes,
            ..Limits::default()
        },
        raft: RaftConfig {
            tick: Duration::from_millis(args.raft_tick_ms),
            election_ticks: args.election_ticks,
            heartbeat_ticks: args.heartbeat_ticks,
            log_compact_threshold: args.log_compact_threshold,
            lease_reads: !args.no_lease_reads,
            batch_linger: Duration::from_micros(args.batch_linger_us),
        },
        ttl_sweep_interval: Duration::from_millis(args.ttl_sweep_interval_ms),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
        encryption: args.encryption_key_file.map(|key_file| EncryptionConfig {
            key_file,
            previous_key_file: args.encryption_previous_key_file,
            data_key_rotation_period: args.data_key_rotation_period,
        }),
    })
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler cannot fail");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    zdb_node::logging::init(args.log_json);
    zdb_node::planted::announce();
    // Crash-only: a panic on any thread (the store's above all) stops the
    // node instead of leaving it half alive. Restart recovers from disk.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        std::process::exit(101);
    }));
    let config = match config(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(2);
        }
    };
    if let Err(err) = zdb_node::server::run(config, shutdown_signal()).await {
        tracing::error!(error = %err, "node stopped");
        eprintln!("error: {err}");
        let code = match err {
            // This node's data directory was wiped: it must come back as a new node.
            zdb_node::Error::IdentityChanged { .. } => 3,
            zdb_node::Error::Engine(_) | zdb_node::Error::Io(_) => 70,
            _ => 1,
        };
        std::process::exit(code);
    }
}
