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
    /// Start one more node that joins the running cluster in DATA; the
    /// placement driver of `local up` moves replicas onto it.
    AddNode {
        #[arg(long)]
        data: PathBuf,
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
    },
}

pub async fn run(command: LocalCommand) -> Result<ExitCode> {
    match command {
        LocalCommand::Up { .. } => up(command).await,
        LocalCommand::AddNode {
            data,
            node_bin,
            node_args,
        } => add_node(&data, node_bin, &node_args).await,
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
    } = command
    else {
        unreachable!("called for up only");
    };
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

async fn add_node(
    data: &std::path::Path,
    node_bin: Option<PathBuf>,
    node_args: &[String],
) -> Result<ExitCode> {
    let mut layout = Layout::load(data)?.with_context(|| {
        format!(
            "{} holds no local cluster; run local up first",
            data.display()
        )
    })?;
    let node_bin = supervisor::find_node_binary(node_bin)?;
    let (grpc_port, status_port) = Layout::free_ports()?;
    let dir = format!("joining-{grpc_port}");
    let grpc = format!("127.0.0.1:{grpc_port}");
    let log = std::fs::File::create(data.join(format!("{dir}.log")))?;
    let mut command = std::process::Command::new(&node_bin);
    command
        .arg(format!("--join={}", layout.seed()))
        .arg(format!("--listen={grpc}"))
        .arg(format!("--status-listen=127.0.0.1:{status_port}"))
        .arg(format!("--data={}", data.join(&dir).display()))
        .args(node_args)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group: it outlives this command, and `local up` stops it.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", node_bin.display()))?;
    let client = zdb_client::Client::connect(&grpc)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let node_id = loop {
        if let Ok(status) = client.node_status(&grpc).await {
            break status.node_id;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the new node did not join within 60s; see {}/{dir}.log",
            data.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    layout.nodes.push(layout::NodeLayout {
        id: node_id,
        grpc: grpc.clone(),
        status: format!("127.0.0.1:{status_port}"),
        joined_dir: Some(dir),
    });
    layout.save()?;
    std::fs::write(layout.pid_file(node_id), child.id().to_string())?;
    std::fs::write(data.join("endpoints"), format!("{}\n", layout.endpoints()))?;
    println!("node {node_id} joined at {grpc}; the placement driver moves replicas onto it");
    Ok(ExitCode::SUCCESS)
}

async fn remove_node(data: &std::path::Path, node: u64) -> Result<ExitCode> {
    let mut layout = Layout::load(data)?
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
    let client = zdb_client::Client::connect(&layout.endpoints())?;
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
    if let Some(pid) = std::fs::read_to_string(layout.pid_file(node))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    {
        // SAFETY: kill(2) on the recorded pid of this cluster's node.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while unsafe { libc::kill(pid, 0) } == 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    layout.nodes.retain(|n| n.id != node);
    layout.save()?;
    let _ = std::fs::remove_file(layout.pid_file(node));
    std::fs::write(data.join("endpoints"), format!("{}\n", layout.endpoints()))?;
    println!("node {node} holds nothing and is stopped");
    Ok(ExitCode::SUCCESS)
}
