//! Local mode: a cluster of `zdb-node` processes on 127.0.0.1 with its data
//! in one folder. The folder remembers the cluster (ids, ports, cluster id),
//! so running `local up` on it again restarts the same cluster with its data.

mod layout;
mod supervisor;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Subcommand;

use layout::Layout;
use supervisor::Supervisor;
use zdb_placement::planner::{Settings, SplitSettings};

#[derive(Subcommand)]
pub enum LocalCommand {
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
    },
}

pub async fn run(command: LocalCommand) -> Result<ExitCode> {
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
    } = command;
    anyhow::ensure!(nodes >= 1, "--nodes must be at least 1");
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let layout = match Layout::load(&data)? {
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
    let mut supervisor = Supervisor::start(&layout, &node_bin, &node_args)?;
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
    println!("  zdbctl put hello world && zdbctl get hello");
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
        zdb_client::Client::connect(&endpoints)?,
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
    supervisor.supervise().await;
    let _ = stop_driver.send(true);
    let _ = driver.await;
    supervisor.stop().await;
    println!(
        "stopped; run the same command again to restart with the data in {}",
        data.display()
    );
    Ok(ExitCode::SUCCESS)
}
