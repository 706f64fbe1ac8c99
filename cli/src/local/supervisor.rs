//! Starting, watching and stopping the node processes of a local cluster.
//! `local up` is the parent of every node, the ones `local add-node` asks
//! for included, and the only one that signals them: it signals a node only
//! while that node is its child and has not exited (a reaped pid may belong
//! to another process by then). Each node gets SIGTERM when `local up`
//! dies, however it dies.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use zdb_client::Client;
use zdb_proto::v1::RaftRole;

use super::control::{ControlSocket, Incoming, Request};
use super::layout::{Layout, NodeLayout};
use super::secure::{self, Secure};

/// How long a node gets to stop on SIGTERM (it hands its leaderships away
/// first) before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

struct NodeProcess {
    id: u64,
    child: Child,
    log: PathBuf,
    /// Set once reaped: the pid is no longer ours to signal.
    exited: Option<ExitStatus>,
}

impl NodeProcess {
    /// Reaps the process if it exited; true while it runs.
    fn running(&mut self) -> bool {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited.is_none()
    }

    fn signal(&mut self, signal: libc::c_int) {
        if self.running() {
            // SAFETY: kill(2) on our own child, which has not been reaped
            // (checked just above), so the pid is still its.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, signal);
            }
        }
    }
}

pub struct Supervisor {
    nodes: Vec<NodeProcess>,
    node_bin: PathBuf,
    node_args: Vec<String>,
    /// TLS and authentication flags, given to every node (added ones too).
    security_args: Vec<String>,
    client: Client,
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
fn node_command(
    node_bin: &Path,
    layout: &Layout,
    node: &NodeLayout,
    security_args: &[String],
    extra_args: &[String],
) -> Command {
    let mut command = Command::new(node_bin);
    command
        .arg(format!("--listen={}", node.grpc))
        .arg(format!("--status-listen={}", node.status))
        .arg(format!("--data={}", layout.node_dir(node.id).display()));
    if let Some(redis) = &node.redis {
        command.arg(format!("--redis-listen={redis}"));
    }
    match node.joined_dir {
        None => command
            .arg(format!("--id={}", node.id))
            .arg(format!("--peers={}", layout.peers()))
            .arg(format!("--cluster-id={}", layout.cluster_id)),
        Some(_) => command.arg(format!("--join={}", layout.seed())),
    };
    command.args(security_args).args(extra_args);
    command
}

/// Starts `command` as a child that gets SIGTERM when this process dies.
fn spawn(mut command: Command, log: &Path) -> Result<Child> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec. A node
    // must not outlive `local up`, even one killed by a signal (which runs
    // no destructors); if the parent died before prctl took effect, exit.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("cannot start {:?}", command.get_program()))
}

impl Supervisor {
    pub fn start(
        layout: &Layout,
        node_bin: &Path,
        node_args: &[String],
        security: Option<&Secure>,
    ) -> Result<Supervisor> {
        let mut supervisor = Supervisor {
            nodes: Vec::new(),
            node_bin: node_bin.to_owned(),
            node_args: node_args.to_vec(),
            security_args: security.map(Secure::node_args).unwrap_or_default(),
            client: Client::new(secure::client_config(security, &layout.endpoints()))?,
            dir: layout.dir.clone(),
        };
        for node in &layout.nodes {
            let log = layout.log_file(node.id);
            let command =
                node_command(node_bin, layout, node, &supervisor.security_args, node_args);
            match spawn(command, &log) {
                Ok(child) => supervisor.nodes.push(NodeProcess {
                    id: node.id,
                    child,
                    log,
                    exited: None,
                }),
                Err(err) => {
                    supervisor.kill_all();
                    return Err(err);
                }
            }
        }
        Ok(supervisor)
    }

    /// Polls the nodes until every one answers and a leader is elected.
    pub async fn wait_until_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last_report = Instant::now();
        loop {
            self.check_started()?;
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
            let total = self.nodes.len();
            let leader_text = leader.map_or("none".into(), |id| format!("node {id}"));
            if up == total && leader.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the cluster did not become ready within {timeout:?} ({up}/{total} nodes answering, leader: {leader_text}); see the node logs in {}",
                    self.dir.display()
                );
            }
            if last_report.elapsed() >= Duration::from_secs(2) {
                println!("waiting: {up}/{total} nodes answering, leader: {leader_text}");
                last_report = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A node that exits while starting is an error worth stopping for.
    fn check_started(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            if !node.running() {
                bail!(
                    "node {} exited ({}); see {}",
                    node.id,
                    node.exited.expect("reaped"),
                    node.log.display()
                );
            }
        }
        Ok(())
    }

    /// Runs until Ctrl-C or SIGTERM: serves the requests of `local
    /// add-node` and `local remove-node`, and reports nodes that exit.
    pub async fn supervise(&mut self, control: &ControlSocket) -> Result<()> {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut reported = Vec::new();
        loop {
            tokio::select! {
                _ = terminate.recv() => return Ok(()),
                _ = interrupt.recv() => return Ok(()),
                incoming = control.next() => self.serve(incoming).await,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            for node in &mut self.nodes {
                if !node.running() && !reported.contains(&node.id) {
                    eprintln!(
                        "node {} exited ({}); the others keep running. See {}",
                        node.id,
                        node.exited.expect("reaped"),
                        node.log.display()
                    );
                    reported.push(node.id);
                }
            }
        }
    }

    async fn serve(&mut self, mut incoming: Incoming) {
        let result = match incoming.request.clone() {
            Request::AddNode {
                node_bin,
                node_args,
            } => self.add_node(&mut incoming, node_bin, node_args).await,
            Request::StopNode(id) => self.stop_node(id).await,
        };
        incoming.finish(result).await;
    }

    /// Starts a node that joins the cluster, waits until it has its id,
    /// and records it in the folder.
    async fn add_node(
        &mut self,
        incoming: &mut Incoming,
        node_bin: Option<PathBuf>,
        node_args: Vec<String>,
    ) -> Result<String> {
        let mut layout = Layout::load(&self.dir)?.context("the cluster folder lost its layout")?;
        let (grpc_port, status_port, redis_port) = layout.free_ports()?;
        let node = NodeLayout {
            id: 0,
            grpc: format!("127.0.0.1:{grpc_port}"),
            status: format!("127.0.0.1:{status_port}"),
            redis: Some(format!("127.0.0.1:{redis_port}")),
            joined_dir: Some(format!("joining-{grpc_port}")),
        };
        let log = self.dir.join(format!("joining-{grpc_port}.log"));
        let node_bin = node_bin.unwrap_or_else(|| self.node_bin.clone());
        let node_args = if node_args.is_empty() {
            self.node_args.clone()
        } else {
            node_args
        };
        let mut command = Command::new(&node_bin);
        command
            .arg(format!("--join={}", layout.seed()))
            .arg(format!("--listen={}", node.grpc))
            .arg(format!("--status-listen={}", node.status))
            .arg(format!("--redis-listen=127.0.0.1:{redis_port}"))
            .arg(format!(
                "--data={}",
                self.dir
                    .join(node.joined_dir.as_deref().unwrap_or_default())
                    .display()
            ))
            .args(&self.security_args)
            .args(&node_args);
        let mut process = NodeProcess {
            id: 0,
            child: spawn(command, &log)?,
            log: log.clone(),
            exited: None,
        };
        incoming
            .progress(&format!(
                "started a node at {}; waiting for it to join",
                node.grpc
            ))
            .await;
        let deadline = Instant::now() + JOIN_TIMEOUT;
        let node_id = loop {
            if let Ok(status) = self.client.node_status(&node.grpc).await {
                break status.node_id;
            }
            if !process.running() || Instant::now() >= deadline {
                process.signal(libc::SIGKILL);
                bail!(
                    "the new node did not join within {JOIN_TIMEOUT:?}; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        process.id = node_id;
        self.nodes.push(process);
        layout.nodes.push(NodeLayout {
            id: node_id,
            ..node
        });
        layout.save()?;
        std::fs::write(
            self.dir.join("endpoints"),
            format!("{}\n", layout.endpoints()),
        )?;
        println!(
            "node {node_id} joined at {} (Redis port {redis_port})",
            layout.nodes.last().map_or("", |n| n.grpc.as_str())
        );
        Ok(format!(
            "node {node_id} joined at 127.0.0.1:{grpc_port} (Redis port {redis_port}); the placement driver moves replicas onto it"
        ))
    }

    /// Stops node `id` (SIGTERM, then SIGKILL after a while) and removes it
    /// from the folder's layout.
    async fn stop_node(&mut self, id: u64) -> Result<String> {
        let Some(index) = self.nodes.iter().position(|node| node.id == id) else {
            bail!("node {id} is not a node this `local up` runs");
        };
        let mut node = self.nodes.remove(index);
        stop_one(&mut node).await;
        let mut layout = Layout::load(&self.dir)?.context("the cluster folder lost its layout")?;
        layout.nodes.retain(|n| n.id != id);
        layout.save()?;
        std::fs::write(
            self.dir.join("endpoints"),
            format!("{}\n", layout.endpoints()),
        )?;
        Ok(format!("node {id} is stopped"))
    }

    /// SIGTERM every node still running, wait for them, SIGKILL the ones
    /// that linger.
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            node.signal(libc::SIGTERM);
        }
        for node in &mut self.nodes {
            stop_one(node).await;
        }
    }

    fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.signal(libc::SIGKILL);
            let _ = node.child.wait();
        }
    }
}

async fn stop_one(node: &mut NodeProcess) {
    node.signal(libc::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while node.running() {
        if Instant::now() >= deadline {
            eprintln!("node {} did not stop in time; killing it", node.id);
            node.signal(libc::SIGKILL);
            let _ = node.child.wait();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
