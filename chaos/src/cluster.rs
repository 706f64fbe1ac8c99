//! A local cluster of real `zdb-node` processes whose node-to-node traffic
//! crosses one [`Proxy`] per ordered pair of nodes.
//!
//! Node `i` is started with `--peers i=<its own address>,j=<address of P(i,j)>`,
//! and configured peer addresses are pinned in zdb-node, so Raft streams,
//! snapshots and meta-range calls from `i` to `j` all go through `P(i, j)`.
//! Clients talk to the nodes' own addresses. Every process is killed when
//! the cluster is dropped, also when a test fails.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zdb_client::{Client, ClientConfig};
use zdb_security::pki;

use crate::error::{ChaosError, Result};
use crate::proxy::{LinkFault, Proxy};

/// How to start the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub nodes: u64,
    /// zdb-node flags on top of the ones the harness sets.
    pub extra_args: Vec<String>,
    /// Environment for the node processes (e.g. a planted-bug switch).
    pub env: Vec<(String, String)>,
    /// Compact a range's Raft log beyond this many entries. Small values
    /// make lagging and re-added replicas need snapshots, which puts
    /// snapshot transfer under the faults.
    pub log_compact_threshold: u64,
    /// TLS on every connection (node certificates between nodes, through
    /// the proxies) and authentication on; the harness's clients log in as
    /// root with its client certificate.
    pub secure: bool,
}

impl ClusterConfig {
    pub fn new(nodes: u64) -> Self {
        ClusterConfig {
            nodes,
            // Fast elections so faults heal quickly.
            extra_args: vec!["--raft-tick-ms=50".into()],
            env: Vec::new(),
            log_compact_threshold: 300,
            secure: false,
        }
    }
}

struct NodeProcess {
    address: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

pub struct ChaosCluster {
    dir: tempfile::TempDir,
    binary: PathBuf,
    config: ClusterConfig,
    nodes: BTreeMap<u64, NodeProcess>,
    /// (from, to) -> the proxy `from` dials to reach `to`.
    links: BTreeMap<(u64, u64), Proxy>,
}

/// The `zdb-node` binary: `$ZDB_NODE_BIN`, or next to the running executable
/// (target/<profile>/ for binaries, its parent for test executables in deps/).
pub fn node_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ZDB_NODE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent();
    while let Some(candidate) = dir {
        let path = candidate.join("zdb-node");
        if path.is_file() {
            return Ok(path);
        }
        if candidate.file_name().is_some_and(|name| name != "deps") {
            break;
        }
        dir = candidate.parent();
    }
    Err(ChaosError::MissingBinary(format!(
        "no zdb-node next to {}; build it first (cargo build -p zdb-node) or set ZDB_NODE_BIN",
        exe.display()
    )))
}

/// Certificates for 127.0.0.1 and a root password in `dir`, and the
/// environment that gives them to a node.
fn secure_env(dir: &Path) -> Result<Vec<(String, String)>> {
    let certs = dir.join("certs");
    pki::write_working_set(&certs, &[])
        .map_err(|err| ChaosError::Config(format!("certificates: {err}")))?;
    let password = dir.join("root.password");
    std::fs::write(&password, "chaos-root")?;
    let file = |name: &str| certs.join(name).display().to_string();
    Ok(vec![
        ("ZDB_TLS_CA_FILE".into(), file(pki::CA_CERT_FILE)),
        ("ZDB_TLS_CERT_FILE".into(), file(pki::NODE_CERT_FILE)),
        ("ZDB_TLS_KEY_FILE".into(), file(pki::NODE_KEY_FILE)),
        (
            "ZDB_AUTH_ROOT_PASSWORD_FILE".into(),
            password.display().to_string(),
        ),
    ])
}

fn free_address() -> Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

impl ChaosCluster {
    /// Starts every node and every proxy; does not wait for the cluster to
    /// be ready (see [`ChaosCluster::wait_ready`]).
    pub async fn start(config: ClusterConfig) -> Result<ChaosCluster> {
        if config.nodes == 0 {
            return Err(ChaosError::Config(
                "a cluster needs at least one node".into(),
            ));
        }
        let binary = node_binary()?;
        let dir = tempfile::Builder::new().prefix("zdb-chaos-").tempdir()?;
        let mut config = config;
        if config.secure {
            config.env.extend(secure_env(dir.path())?);
        }
        let mut nodes = BTreeMap::new();
        for id in 1..=config.nodes {
            nodes.insert(
                id,
                NodeProcess {
                    address: free_address()?,
                    data_dir: dir.path().join(format!("node-{id}")),
                    log: dir.path().join(format!("node-{id}.log")),
                    child: None,
                    paused: false,
                },
            );
        }
        // The nodes' ports were only probed free, not held: a proxy given
        // one of them by the kernel would keep that node from starting.
        let reserved: Vec<SocketAddr> = nodes.values().map(|node| node.address).collect();
        let mut links = BTreeMap::new();
        for &from in nodes.keys() {
            for (&to, node) in &nodes {
                if from != to {
                    let proxy = loop {
                        let proxy = Proxy::start(node.address).await?;
                        if !reserved.contains(&proxy.address()) {
                            break proxy;
                        }
                    };
                    links.insert((from, to), proxy);
                }
            }
        }
        let mut cluster = ChaosCluster {
            dir,
            binary,
            config,
            nodes,
            links,
        };
        for id in cluster.node_ids() {
            cluster.start_node(id)?;
        }
        Ok(cluster)
    }

    pub fn node_ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn address(&self, id: u64) -> Option<String> {
        self.nodes.get(&id).map(|node| node.address.to_string())
    }

    pub fn log_files(&self) -> Vec<(u64, PathBuf)> {
        self.nodes
            .iter()
            .map(|(&id, node)| (id, node.log.clone()))
            .collect()
    }

    /// Every node's client address, comma-separated.
    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .values()
            .map(|node| node.address.to_string())
            .collect()
    }

    /// A client of the whole cluster with a per-call deadline of `timeout`.
    pub fn client(&self, timeout: Duration) -> Result<Client> {
        let mut config = ClientConfig::new(self.endpoints());
        config.timeout = timeout;
        config.connect_timeout = Duration::from_millis(500);
        if self.config.secure {
            let certs = self.dir.path().join("certs");
            config.tls = Some(zdb_client::TlsConfig::Files {
                ca: certs.join(pki::CA_CERT_FILE),
                cert_and_key: Some((
                    certs.join(pki::client_cert_file("root")),
                    certs.join(pki::client_key_file("root")),
                )),
            });
        }
        Ok(Client::new(config)?)
    }

    fn node(&mut self, id: u64) -> Result<&mut NodeProcess> {
        self.nodes
            .get_mut(&id)
            .ok_or_else(|| ChaosError::Config(format!("no node {id}")))
    }

    /// Starts node `id` on its data directory if it is not running.
    pub fn start_node(&mut self, id: u64) -> Result<()> {
        let peers = self
            .nodes
            .iter()
            .map(|(&peer, node)| match self.links.get(&(id, peer)) {
                Some(proxy) => format!("{peer}={}", proxy.address()),
                None => format!("{peer}={}", node.address),
            })
            .collect::<Vec<_>>()
            .join(",");
        let binary = self.binary.clone();
        let config = self.config.clone();
        let node = self.node(id)?;
        if node.child.is_some() {
            return Ok(());
        }
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let mut command = Command::new(binary);
        // SAFETY: prctl(2) is async-signal-safe; nothing else runs between
        // fork and exec. A node must not outlive the harness (even one
        // killed by a signal, which runs no destructors).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .arg(format!("--id={id}"))
            .arg(format!("--listen={}", node.address))
            .arg(format!("--data={}", node.data_dir.display()))
            .arg(format!("--peers={peers}"))
            .arg("--cluster-id=chaos")
            .arg(format!(
                "--log-compact-threshold={}",
                config.log_compact_threshold
            ))
            .args(&config.extra_args)
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// SIGKILL: the node dies at whatever point it was.
    pub fn kill(&mut self, id: u64) -> Result<()> {
        let node = self.node(id)?;
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
        Ok(())
    }

    fn signal(&mut self, id: u64, signal: libc::c_int) -> Result<bool> {
        let node = self.node(id)?;
        let Some(child) = node.child.as_ref() else {
            return Ok(false);
        };
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) } == 0;
        Ok(sent)
    }

    /// SIGSTOP: the node freezes mid-flight; its peers see a silent node.
    pub fn pause(&mut self, id: u64) -> Result<()> {
        if self.signal(id, libc::SIGSTOP)? {
            self.node(id)?.paused = true;
        }
        Ok(())
    }

    pub fn resume(&mut self, id: u64) -> Result<()> {
        if self.signal(id, libc::SIGCONT)? {
            self.node(id)?.paused = false;
        }
        Ok(())
    }

    /// Whether the process is alive (paused counts as alive).
    pub fn is_running(&mut self, id: u64) -> bool {
        match self.nodes.get_mut(&id).and_then(|node| node.child.as_mut()) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Nodes whose process exited although nobody killed it (a crash).
    pub fn crashed_nodes(&mut self) -> Vec<u64> {
        self.node_ids()
            .into_iter()
            .filter(|&id| {
                self.nodes.get(&id).is_some_and(|node| node.child.is_some()) && !self.is_running(id)
            })
            .collect()
    }

    pub fn set_link(&self, from: u64, to: u64, fault: LinkFault) {
        if let Some(proxy) = self.links.get(&(from, to)) {
            proxy.set(fault);
        }
    }

    /// Sets both directions between `a` and `b`.
    pub fn set_link_both(&self, a: u64, b: u64, fault: LinkFault) {
        self.set_link(a, b, fault);
        self.set_link(b, a, fault);
    }

    /// Cuts every link between nodes of different groups (both directions).
    pub fn partition(&self, groups: &[Vec<u64>]) {
        let group_of = |id: u64| groups.iter().position(|group| group.contains(&id));
        for &(from, to) in self.links.keys() {
            if group_of(from) != group_of(to) {
                self.set_link(from, to, LinkFault::Blackhole);
            }
        }
    }

    pub fn reset_connections(&self, from: u64, to: u64) {
        if let Some(proxy) = self.links.get(&(from, to)) {
            proxy.reset_connections();
        }
    }

    /// Every link back to normal.
    pub fn heal_network(&self) {
        for proxy in self.links.values() {
            proxy.set(LinkFault::Pass);
        }
    }

    /// Heals the network, resumes paused nodes and restarts stopped ones.
    pub fn heal_all(&mut self) -> Result<()> {
        self.heal_network();
        for id in self.node_ids() {
            self.resume(id)?;
            if !self.is_running(id) {
                self.kill(id)?; // reap a crashed process before restarting it
                self.start_node(id)?;
            }
        }
        Ok(())
    }

    /// Waits until a write through the cluster succeeds.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let client = self.client(Duration::from_secs(2))?;
        let deadline = Instant::now() + timeout;
        loop {
            match client.put("chaos/ready", "1").await {
                Ok(()) => return Ok(()),
                Err(err) if Instant::now() >= deadline => {
                    return Err(ChaosError::Timeout(format!(
                        "the cluster to accept writes (last error: {err})"
                    )))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
