//! Starting, watching and stopping the node processes of a local cluster.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use zdb_client::Client;
use zdb_proto::v1::RaftRole;

use super::layout::Layout;

pub struct Supervisor {
    children: Vec<(u64, Child)>,
    /// Nodes started by `local add-node` while this supervisor runs.
    adopted: Vec<(u64, i32)>,
    client: Client,
    logs: Vec<(u64, PathBuf)>,
    dir: PathBuf,
}

pub fn find_node_binary(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = given {
        if !path.is_file() {
            bail!("zdb-node binary {} does not exist", path.display());
        }
        return Ok(path);
    }
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("zdb-node")))
        .filter(|path| path.is_file())
    {
        return Ok(sibling);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("zdb-node"))
        .find(|path| path.is_file());
    on_path.context(
        "cannot find the zdb-node binary: build it (cargo build -p zdb-node) or pass --node-bin",
    )
}

/// The command line of one node of the layout.
pub fn node_command(node_bin: &Path, layout: &Layout, id: u64, extra_args: &[String]) -> Command {
    let node = layout
        .nodes
        .iter()
        .find(|n| n.id == id)
        .expect("a node of the layout");
    let mut command = Command::new(node_bin);
    command
        .arg(format!("--listen={}", node.grpc))
        .arg(format!("--status-listen={}", node.status))
        .arg(format!("--data={}", layout.node_dir(node.id).display()));
    match node.joined_dir {
        None => command
            .arg(format!("--id={}", node.id))
            .arg(format!("--peers={}", layout.peers()))
            .arg(format!("--cluster-id={}", layout.cluster_id)),
        Some(_) => command.arg(format!("--join={}", layout.seed())),
    };
    command.args(extra_args);
    command
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

impl Supervisor {
    pub fn start(layout: &Layout, node_bin: &Path, extra_args: &[String]) -> Result<Supervisor> {
        let mut supervisor = Supervisor {
            children: Vec::new(),
            adopted: Vec::new(),
            client: Client::connect(&layout.endpoints())?,
            logs: Vec::new(),
            dir: layout.dir.clone(),
        };
        for node in &layout.nodes {
            let log_path = layout.log_file(node.id);
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("cannot open {}", log_path.display()))?;
            let mut command = node_command(node_bin, layout, node.id, extra_args);
            let child = command
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start {}", node_bin.display()));
            match child {
                Ok(child) => {
                    let _ = std::fs::write(layout.pid_file(node.id), child.id().to_string());
                    supervisor.children.push((node.id, child));
                }
                Err(err) => {
                    supervisor.kill_all();
                    return Err(err);
                }
            }
            supervisor.logs.push((node.id, log_path));
        }
        Ok(supervisor)
    }

    /// Polls the nodes until every one answers and a leader is elected.
    pub async fn wait_until_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last_report = Instant::now();
        loop {
            self.check_children()?;
            let mut up = 0;
            let mut leader = None;
            for endpoint in self.client.endpoints().to_vec() {
                if let Ok(status) = self.client.node_status(&endpoint).await {
                    up += 1;
                    if status
                        .replicas
                        .iter()
                        .any(|r| r.role == RaftRole::Leader as i32)
                    {
                        leader = Some(status.node_id);
                    }
                }
            }
            let total = self.children.len();
            if up == total && leader.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the cluster did not become ready within {timeout:?} ({up}/{total} nodes answering, leader: {}); see the node logs in {}",
                    leader.map_or("none".into(), |id| format!("node {id}")),
                    self.log_dir()
                );
            }
            if last_report.elapsed() >= Duration::from_secs(2) {
                println!(
                    "waiting: {up}/{total} nodes answering, leader: {}",
                    leader.map_or("none".into(), |id| format!("node {id}"))
                );
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_dir(&self) -> String {
        self.logs
            .first()
            .and_then(|(_, path)| path.parent())
            .map_or(".".into(), |dir| dir.display().to_string())
    }

    /// A node that exits while starting is an error worth stopping for.
    fn check_children(&mut self) -> Result<()> {
        for (id, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let log = self
                    .logs
                    .iter()
                    .find(|(node, _)| node == id)
                    .map(|(_, path)| path.display().to_string());
                bail!(
                    "node {id} exited ({status}); see {}",
                    log.unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// Runs until Ctrl-C or SIGTERM, reporting nodes that exit on their own.
    pub async fn supervise(&mut self) {
        let mut terminate =
            signal(SignalKind::terminate()).expect("installing a SIGTERM handler cannot fail");
        let mut interrupt =
            signal(SignalKind::interrupt()).expect("installing a SIGINT handler cannot fail");
        let mut reported = Vec::new();
        loop {
            tokio::select! {
                _ = terminate.recv() => return,
                _ = interrupt.recv() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            self.adopt_added_nodes();
            for (id, child) in &mut self.children {
                if reported.contains(id) {
                    continue;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    eprintln!(
                        "node {id} exited ({status}); the others keep running. See its log in {}",
                        self.logs
                            .first()
                            .and_then(|(_, p)| p.parent())
                            .map_or(String::new(), |d| d.display().to_string())
                    );
                    reported.push(*id);
                }
            }
        }
    }

    /// Takes charge of nodes that `local add-node` started, so that stopping
    /// the cluster stops them too.
    fn adopt_added_nodes(&mut self) {
        let Ok(Some(layout)) = Layout::load(&self.dir) else {
            return;
        };
        for node in layout.nodes.iter().filter(|n| n.joined_dir.is_some()) {
            let known = self.children.iter().any(|(id, _)| *id == node.id)
                || self.adopted.iter().any(|(id, _)| *id == node.id);
            if known {
                continue;
            }
            let pid = std::fs::read_to_string(layout.pid_file(node.id))
                .ok()
                .and_then(|pid| pid.trim().parse().ok());
            if let Some(pid) = pid.filter(|pid| alive(*pid)) {
                println!("node {} joined at {}", node.id, node.grpc);
                self.adopted.push((node.id, pid));
            }
        }
    }

    /// SIGTERM every node, wait for them, SIGKILL the ones that linger.
    pub async fn stop(&mut self) {
        for (_, child) in &self.children {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        for (_, pid) in &self.adopted {
            // SAFETY: kill(2) on the pid of a node of this cluster.
            unsafe {
                libc::kill(*pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (id, pid) in &self.adopted {
            while alive(*pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if alive(*pid) {
                eprintln!("node {id} did not stop in time; killing it");
                unsafe {
                    libc::kill(*pid, libc::SIGKILL);
                }
            }
        }
        for (id, child) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!("node {id} did not stop in time; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }

    fn kill_all(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
