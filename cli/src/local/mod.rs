//! Local mode: a cluster of `zdb-node` processes on 127.0.0.1 with its data
//! in one folder. The folder remembers the cluster (ids, ports, cluster id),
//! so running `local up` on it again restarts the same cluster with its data.
//! `local up` is the parent of every node; `local add-node` and `local
//! remove-node` ask it (through its control socket) to start or stop one.
//! With `--secure` the cluster runs with TLS and authentication (`secure`).
//! Every node also serves the Redis protocol on a port of its own.

mod control;
mod layout;
mod secure;
mod supervisor;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;

use control::{ControlSocket, Request};
use layout::Layout;
use secure::Secure;
use supervisor::Supervisor;
use zdb_placement::planner::{Settings, SplitSettings};

#[derive(Subcommand)]
pub enum LocalCommand {
    /// Have the `local up` running on DATA start one more node, which joins
    /// the cluster; the placement driver moves replicas onto it.
    AddNode {
        #[arg(long)]
        data: PathBuf,
        /// The zdb-node binary; by default the one `local up` runs.
        #[arg(long, env = "ZDB_NODE_BIN")]
        node_bin: Option<PathBuf>,
        #[arg(long = "node-arg", allow_hyphen_values = true)]
        node_args: Vec<String>,
    },
    /// Drain and decommission NODE, wait until it holds no replica, stop it.
    RemoveNode {
        #[arg(long)]
        data: PathBuf,
        node: u64,
    },
    /// Start (or restart) a local cluster and run it until Ctrl-C or SIGTERM.
    Up {
        /// Number of nodes of a new cluster (an existing one keeps its own).
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        /// Folder holding the cluster's data, logs and `endpoints` file.
        #[arg(long)]
        data: PathBuf,
        /// The zdb-node binary; by default the one next to zdbctl, then PATH.
        #[arg(long, env = "ZDB_NODE_BIN")]
        node_bin: Option<PathBuf>,
        /// Extra flag passed to every node (repeatable), e.g. --node-arg=--raft-tick-ms=50.
        #[arg(long = "node-arg", allow_hyphen_values = true)]
        node_args: Vec<String>,
        /// How long to wait for the cluster to elect a leader, in seconds.
        #[arg(long, default_value_t = 60)]
        wait: u64,
        /// Split a range once its keys and values pass this many bytes.
        #[arg(long, default_value_t = 64 << 20)]
        split_size: u64,
        /// How often the placement driver looks at the cluster, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        placement_interval_ms: u64,
        /// Replicas per range.
        #[arg(long, default_value_t = 3)]
        replication_factor: usize,
        /// A node unreachable for this long has its replicas re-created elsewhere.
        #[arg(long, default_value_t = 60)]
        dead_after_secs: u64,
        /// TLS everywhere and authentication on: creates DATA/certs and
        /// DATA/root.password on first use. A folder with certs/ always
        /// runs secure.
        #[arg(long)]
        secure: bool,
    },
}

pub async fn run(command: LocalCommand) -> Result<ExitCode> {
    match command {
        LocalCommand::Up { .. } => up(command).await,
        LocalCommand::AddNode {
            data,
            node_bin,
            node_args,
        } => {
            let request = Request::AddNode {
                node_bin,
                node_args,
            };
            println!("{}", control::ask(&data, &request).await?);
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::RemoveNode { data, node } => remove_node(&data, node).await,
    }
}

async fn up(command: LocalCommand) -> Result<ExitCode> {
    let LocalCommand::Up {
        nodes,
        data,
        node_bin,
        node_args,
        wait,
        split_size,
        placement_interval_ms,
        replication_factor,
        dead_after_secs,
        secure,
    } = command
    else {
        unreachable!("called for up only");
    };
    anyhow::ensure!(nodes >= 1, "--nodes must be at least 1");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let mut layout = match Layout::load(&data)? {
        Some(layout) => {
            if layout.nodes.len() as u64 != nodes {
                eprintln!(
                    "note: {} holds a {}-node cluster; restarting it as it is (--nodes {nodes} applies to new clusters)",
                    data.display(),
                    layout.nodes.len()
                );
            }
            println!("restarting the cluster in {}", data.display());
            layout
        }
        None => {
            let layout = Layout::create(&data, nodes)?;
            println!("creating a {nodes}-node cluster in {}", data.display());
            layout
        }
    };
    let node_bin = supervisor::find_node_binary(node_bin)?;
    // First: a second `local up` on this folder is refused before it starts nodes.
    let control = ControlSocket::bind(&data)?;
    // A folder made before nodes served Redis: give them ports, once.
    if layout.give_redis_ports()? {
        layout.save()?;
        println!("note: gave the nodes Redis ports (saved in the cluster folder)");
    }
    let security = match secure {
        true => Some(Secure::set_up(&data)?),
        false => Secure::of(&data)?,
    };
    if !secure && security.is_some() {
        println!(
            "note: {} holds certificates: running the cluster secure (as with --secure)",
            data.display()
        );
    }
    let mut supervisor = Supervisor::start(&layout, &node_bin, &node_args, security.as_ref())?;
    let ready = supervisor.wait_until_ready(Duration::from_secs(wait)).await;
    if let Err(err) = ready {
        supervisor.stop().await;
        return Err(err);
    }
    let endpoints = layout.endpoints();
    std::fs::write(data.join("endpoints"), format!("{endpoints}\n"))?;
    println!(
        "cluster is up: {} nodes, leader elected",
        layout.nodes.len()
    );
    println!("endpoints: {endpoints}");
    println!("  export ZDB_ENDPOINTS={endpoints}");
    if let Some(security) = &security {
        println!("  {}", security.certificate_env());
    }
    println!("  zdbctl put hello world && zdbctl get hello");
    if let Some(security) = &security {
        println!("or, to log in as root with its password rather than its certificate:");
        println!("  {}", security.password_env());
    }
    if let Some(line) = redis_line(&layout, &data, security.is_some()) {
        println!("{line}");
    }
    println!(
        "logs: {}/node-*.log; metrics: {}",
        data.display(),
        layout.metrics_urls().join(" ")
    );
    println!("press Ctrl-C to stop");
    let (stop_driver, driver_stopped) = tokio::sync::watch::channel(false);
    let settings = Settings {
        replication_factor: replication_factor.min(layout.nodes.len()),
        split: SplitSettings {
            max_bytes: split_size,
            ..SplitSettings::default()
        },
        ..Settings::default()
    };
    let driver = tokio::spawn(zdb_placement::driver::run(
        zdb_client::Client::new(secure::client_config(security.as_ref(), &endpoints))?,
        settings,
        Duration::from_millis(placement_interval_ms),
        Duration::from_secs(dead_after_secs),
        driver_stopped,
        |round| {
            for done in &round.done {
                println!("placement: {done}");
            }
            for failure in &round.failures {
                eprintln!("placement: {failure}; will retry");
            }
        },
    ));
    let supervised = supervisor.supervise(&control).await;
    let _ = stop_driver.send(true);
    let _ = driver.await;
    supervisor.stop().await;
    supervised?;
    println!(
        "stopped; run the same command again to restart with the data in {}",
        data.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// How to talk to the nodes' Redis ports with redis-cli: over TLS, as root
/// with its certificate, when the cluster is secure. None if no node has
/// a Redis port.
fn redis_line(layout: &Layout, data: &Path, secure: bool) -> Option<String> {
    let ports = layout.redis_ports();
    let first = ports.first()?;
    let mut line = String::from("redis: redis-cli ");
    if secure {
        // Where `secure` keeps them: DATA/certs, DATA being absolute.
        let certs = std::fs::canonicalize(data)
            .unwrap_or_else(|_| data.to_owned())
            .join("certs");
        line.push_str(&format!(
            "--tls --cacert {} --cert {} --key {} ",
            certs.join(zdb_security::pki::CA_CERT_FILE).display(),
            certs
                .join(zdb_security::pki::client_cert_file("root"))
                .display(),
            certs
                .join(zdb_security::pki::client_key_file("root"))
                .display(),
        ));
    }
    line.push_str(&format!("-p {first}"));
    if ports.len() > 1 {
        let all: Vec<String> = ports.iter().map(u16::to_string).collect();
        line.push_str(&format!("  (any node: {})", all.join(",")));
    }
    Some(line)
}

async fn remove_node(data: &std::path::Path, node: u64) -> Result<ExitCode> {
    let layout = Layout::load(data)?
        .with_context(|| format!("{} holds no local cluster", data.display()))?;
    let address = layout
        .nodes
        .iter()
        .find(|n| n.id == node)
        .map(|n| n.grpc.clone())
        .with_context(|| {
            format!(
                "node {node} is not part of the cluster in {}",
                data.display()
            )
        })?;
    let security = Secure::of(data)?;
    let client = zdb_client::Client::new(secure::client_config(
        security.as_ref(),
        &layout.endpoints(),
    ))?;
    client
        .set_node_state(node, zdb_client::NodeState::Decommissioned)
        .await?;
    println!("node {node} is decommissioned; waiting for its replicas to move away");
    let mut last_report = std::time::Instant::now();
    loop {
        let held = client
            .node_status(&address)
            .await
            .map(|s| s.replica_count)?;
        if held == 0 {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            println!("node {node} still holds {held} replicas");
            last_report = std::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // `local up` is the nodes' parent: it stops the node and forgets it.
    control::ask(data, &Request::StopNode(node)).await?;
    println!("node {node} holds nothing and is stopped");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redis_line_names_every_port_and_the_secure_files() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path(), 3).unwrap();
        let ports = layout.redis_ports();
        let plain = redis_line(&layout, dir.path(), false).unwrap();
        assert_eq!(
            plain,
            format!(
                "redis: redis-cli -p {}  (any node: {},{},{})",
                ports[0], ports[0], ports[1], ports[2]
            )
        );

        // The files the secure form names are the ones zdbctl is told to use.
        let security = Secure::set_up(dir.path()).unwrap();
        let secure = redis_line(&layout, dir.path(), true).unwrap();
        let env = security.certificate_env();
        for (flag, var) in [
            ("--cacert", "ZDB_CA_CERT"),
            ("--cert", "ZDB_CERT"),
            ("--key", "ZDB_KEY"),
        ] {
            let path = secure
                .split(&format!("{flag} "))
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap();
            assert!(
                env.contains(&format!("{var}={path} ")) || env.ends_with(&format!("{var}={path}")),
                "{secure} / {env}"
            );
            assert!(Path::new(path).is_file(), "{path}");
        }
        assert!(
            secure.starts_with("redis: redis-cli --tls --cacert "),
            "{secure}"
        );
        assert!(
            secure.contains(&format!(" -p {}  (any node: ", ports[0])),
            "{secure}"
        );
    }
}
