//! Harness for end-to-end tests: a cluster of real `zdb-node` processes on
//! 127.0.0.1 ports picked at runtime, with data in a temporary folder. Nodes
//! can be killed (SIGKILL), paused, restarted and wiped; every process is
//! killed when the cluster is dropped, also when a test fails.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zdb_client::{Client, ClientConfig, Consistency};
use zdb_proto::v1::RaftRole;

/// The `zdb-node` binary cargo built next to the test executable.
pub fn binary(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(format!("{}_BIN", name.to_uppercase().replace('-', "_"))) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

fn cluster_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("zdb-e2e-")
        .tempdir()
        .expect("temp dir")
}

fn master_key_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("node-{id}.master.key"))
}

/// With ZDB_E2E_ENCRYPTION set, every node a test cluster starts (joined
/// nodes aside) encrypts at rest with a master key of its own: the whole
/// suite runs over encrypted storage.
fn encryption_knob(dir: &Path, id: u64, mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    let given = env
        .iter()
        .any(|(name, _)| name == "ZDB_ENCRYPTION_KEY_FILE");
    if std::env::var_os("ZDB_E2E_ENCRYPTION").is_some() && !given {
        let path = master_key_path(dir, id);
        write_master_key(&path);
        env.push((
            "ZDB_ENCRYPTION_KEY_FILE".to_owned(),
            path.display().to_string(),
        ));
    }
    env
}

/// A new master key file: 32 random bytes as 64 hex characters.
pub fn write_master_key(path: &Path) {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .expect("random bytes");
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    std::fs::write(path, hex).expect("write the master key");
}

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

pub struct Node {
    pub id: u64,
    pub address: String,
    pub status_address: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    /// The node's Redis-protocol address (`--redis-listen`), in clusters
    /// started with [`Cluster::start_with_redis`]; kept across restarts.
    pub redis_address: Option<String>,
    process: Option<Child>,
    /// Extra environment of the node's process.
    env: Vec<(String, String)>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<Node>,
    cluster_id: String,
    extra_args: Vec<String>,
    /// TLS and authentication, for clusters started secure.
    secure: Option<Secure>,
}

/// A secure cluster's certificates (made with `zdb_security::pki`) and
/// root password.
pub struct Secure {
    pub certs: PathBuf,
    pub root_password: String,
}

/// The user root's password in secure test clusters.
pub const ROOT_PASSWORD: &str = "root-secret";

impl Secure {
    fn create(dir: &Path) -> Secure {
        let certs = dir.join("certs");
        zdb_security::pki::write_working_set(&certs, &[]).expect("a certificate set");
        std::fs::write(dir.join("root.password"), ROOT_PASSWORD).expect("the password file");
        Secure {
            certs,
            root_password: ROOT_PASSWORD.to_owned(),
        }
    }

    fn env(&self, dir: &Path) -> Vec<(String, String)> {
        let file = |name: &str| self.certs.join(name).display().to_string();
        vec![
            ("ZDB_TLS_CA_FILE".into(), file("ca.crt")),
            ("ZDB_TLS_CERT_FILE".into(), file("node.crt")),
            ("ZDB_TLS_KEY_FILE".into(), file("node.key")),
            (
                "ZDB_AUTH_ROOT_PASSWORD_FILE".into(),
                dir.join("root.password").display().to_string(),
            ),
        ]
    }

    /// Trust the cluster CA, log in with `user`'s client certificate.
    pub fn tls_as(&self, user: Option<&str>) -> zdb_client::TlsConfig {
        zdb_client::TlsConfig::Files {
            ca: self.certs.join("ca.crt"),
            cert_and_key: user.map(|user| {
                (
                    self.certs.join(format!("client.{user}.crt")),
                    self.certs.join(format!("client.{user}.key")),
                )
            }),
        }
    }
}

impl Cluster {
    /// Starts `count` nodes with fast Raft timings plus `extra_args`.
    pub fn start(count: u64, extra_args: &[&str]) -> Cluster {
        Self::start_with_env(count, extra_args, |_| Vec::new())
    }

    /// As `start`, each node with the environment `env` gives it.
    pub fn start_with_env(
        count: u64,
        extra_args: &[&str],
        env: impl Fn(u64) -> Vec<(String, String)>,
    ) -> Cluster {
        Self::start_in(cluster_dir(), count, extra_args, env)
    }

    /// As `start`, every node encrypting data at rest with a master key of
    /// its own ([`master_key_file`](Self::master_key_file), given to it
    /// through ZDB_ENCRYPTION_KEY_FILE).
    pub fn start_encrypted(count: u64, extra_args: &[&str]) -> Cluster {
        let dir = cluster_dir();
        for id in 1..=count {
            write_master_key(&master_key_path(dir.path(), id));
        }
        let folder = dir.path().to_owned();
        Self::start_in(dir, count, extra_args, move |id| {
            vec![(
                "ZDB_ENCRYPTION_KEY_FILE".to_owned(),
                master_key_path(&folder, id).display().to_string(),
            )]
        })
    }

    /// As `start`, with TLS between every node and client (certificates
    /// from one CA, in `secure().certs`) and authentication on (user root,
    /// [`ROOT_PASSWORD`]); [`client`](Self::client) logs in as root with
    /// its client certificate.
    pub fn start_secure(count: u64, extra_args: &[&str]) -> Cluster {
        let dir = cluster_dir();
        let secure = Secure::create(dir.path());
        let env = secure.env(dir.path());
        let mut cluster = Self::prepare(dir, count, extra_args, move |_| env.clone());
        cluster.secure = Some(secure);
        cluster.start_all();
        cluster
    }

    /// As `start`, every node also serving Redis clients on a port of its
    /// own (`--redis-listen=127.0.0.1:<free port>`, the same one after a
    /// restart): see [`redis_address`](Self::redis_address).
    pub fn start_with_redis(count: u64, extra_args: &[&str]) -> Cluster {
        let mut cluster = Self::prepare(cluster_dir(), count, extra_args, |_| Vec::new());
        for node in &mut cluster.nodes {
            node.redis_address = Some(format!("127.0.0.1:{}", free_port()));
        }
        cluster.start_all();
        cluster
    }

    /// Node `id`'s Redis address, `127.0.0.1:PORT` (clusters started with
    /// [`start_with_redis`](Self::start_with_redis)).
    pub fn redis_address(&self, id: u64) -> String {
        self.node(id).redis_address.clone().unwrap_or_else(|| {
            panic!("node {id} serves no Redis: start the cluster with start_with_redis")
        })
    }

    /// Every node's Redis address, comma-separated in node order (as
    /// ZDB_REDIS_ADDRS wants them).
    pub fn redis_addresses(&self) -> String {
        self.nodes
            .iter()
            .filter_map(|node| node.redis_address.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until node `id` answers a Redis PING with PONG.
    pub async fn wait_for_redis(&self, id: u64, timeout: Duration) {
        let address = self.redis_address(id);
        eventually(
            &format!("node {id} to answer PING on {address}"),
            timeout,
            || {
                let address = address.clone();
                async move {
                    tokio::task::spawn_blocking(move || redis_ping(&address))
                        .await
                        .ok()
                        .and_then(|answered| answered.then_some(()))
                }
            },
        )
        .await
    }

    pub fn secure(&self) -> &Secure {
        self.secure.as_ref().expect("a cluster started secure")
    }

    /// A client configuration for `endpoints`, with the cluster's TLS and
    /// root's certificate when it is secure.
    pub fn client_config(&self, endpoints: impl IntoIterator<Item = String>) -> ClientConfig {
        let mut config = ClientConfig::new(endpoints);
        if let Some(secure) = &self.secure {
            config.tls = Some(secure.tls_as(Some("root")));
        }
        config
    }

    /// Node `id`'s master key (encrypted clusters), outside its data folder.
    pub fn master_key_file(&self, id: u64) -> PathBuf {
        master_key_path(self.dir.path(), id)
    }

    /// The extra environment node `id` starts with from now on.
    pub fn set_env(&mut self, id: u64, env: Vec<(String, String)>) {
        self.node_mut(id).env = env;
    }

    fn start_in(
        dir: tempfile::TempDir,
        count: u64,
        extra_args: &[&str],
        env: impl Fn(u64) -> Vec<(String, String)>,
    ) -> Cluster {
        let mut cluster = Self::prepare(dir, count, extra_args, env);
        cluster.start_all();
        cluster
    }

    fn start_all(&mut self) {
        let ids: Vec<u64> = self.nodes.iter().map(|node| node.id).collect();
        for id in ids {
            self.restart(id);
        }
    }

    fn prepare(
        dir: tempfile::TempDir,
        count: u64,
        extra_args: &[&str],
        env: impl Fn(u64) -> Vec<(String, String)>,
    ) -> Cluster {
        let nodes = (1..=count)
            .map(|id| Node {
                id,
                address: format!("127.0.0.1:{}", free_port()),
                status_address: format!("127.0.0.1:{}", free_port()),
                data_dir: dir.path().join(format!("node-{id}")),
                log: dir.path().join(format!("node-{id}.log")),
                redis_address: None,
                process: None,
                env: encryption_knob(dir.path(), id, env(id)),
            })
            .collect();
        Cluster {
            dir,
            nodes,
            cluster_id: "e2e".into(),
            extra_args: ["--raft-tick-ms=50"]
                .iter()
                .chain(extra_args)
                .map(|arg| arg.to_string())
                .collect(),
            secure: None,
        }
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|node| node.id == id)
            .expect("a node of this cluster")
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|node| node.id == id)
            .expect("a node of this cluster")
    }

    pub fn endpoints(&self) -> String {
        self.nodes
            .iter()
            .map(|node| node.address.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn client(&self) -> Client {
        let endpoints = self.nodes.iter().map(|node| node.address.clone());
        Client::new(self.client_config(endpoints)).expect("valid endpoints")
    }

    /// A client that only knows one node to start from (it still routes
    /// each request to the range's leader).
    pub fn client_of(&self, id: u64) -> Client {
        let mut config = self.client_config([self.node(id).address.clone()]);
        config.timeout = Duration::from_secs(2);
        Client::new(config).expect("valid endpoint")
    }

    /// The value of `key` in node `id`'s own copy of the data.
    pub async fn local_value(&self, id: u64, key: &str) -> Option<Vec<u8>> {
        self.client_of(id)
            .get_at_node(&self.node(id).address, key.as_bytes(), Consistency::Stale)
            .await
            .ok()
            .flatten()
    }

    /// Starts a new node that joins through node `seed`; returns its id.
    pub async fn join_node(&mut self, seed: u64) -> u64 {
        let address = format!("127.0.0.1:{}", free_port());
        let index = self.nodes.len() as u64 + 1;
        let data_dir = self.dir.path().join(format!("joined-{index}"));
        let log = self.dir.path().join(format!("joined-{index}.log"));
        let mut command = Command::new(binary("zdb-node"));
        command
            .arg(format!("--join={}", self.node(seed).address))
            .arg(format!("--listen={address}"))
            .arg(format!("--status-listen=127.0.0.1:{}", free_port()))
            .arg(format!("--data={}", data_dir.display()))
            .args(&self.extra_args)
            .stdin(Stdio::null());
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("zdb-node starts");
        let client = self.client();
        let node_id = eventually("the new node to join", Duration::from_secs(30), || {
            let (client, address) = (client.clone(), address.clone());
            async move {
                client
                    .node_status(&address)
                    .await
                    .ok()
                    .map(|status| status.node_id)
            }
        })
        .await;
        self.nodes.push(Node {
            id: node_id,
            address,
            status_address: String::new(),
            data_dir,
            log,
            redis_address: None,
            process: Some(child),
            env: Vec::new(),
        });
        node_id
    }

    fn command(&self, id: u64) -> Command {
        let peers = self
            .nodes
            .iter()
            .map(|node| format!("{}={}", node.id, node.address))
            .collect::<Vec<_>>()
            .join(",");
        let node = self.node(id);
        let mut command = Command::new(binary("zdb-node"));
        command
            .arg(format!("--id={id}"))
            .arg(format!("--listen={}", node.address))
            .arg(format!("--status-listen={}", node.status_address))
            .arg(format!("--data={}", node.data_dir.display()))
            .arg(format!("--peers={peers}"))
            .arg(format!("--cluster-id={}", self.cluster_id))
            .args(&self.extra_args)
            .envs(node.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null());
        if let Some(redis) = &node.redis_address {
            command.arg(format!("--redis-listen={redis}"));
        }
        command
    }

    /// (Re)starts a node that is not running, on its data directory.
    pub fn restart(&mut self, id: u64) {
        assert!(
            self.node(id).process.is_none(),
            "node {id} is already running"
        );
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.node(id).log)
            .expect("log file");
        let child = self
            .command(id)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("zdb-node starts");
        self.node_mut(id).process = Some(child);
    }

    /// Runs a node to completion (for nodes expected to refuse to start).
    pub fn run_to_exit(&self, id: u64, timeout: Duration) -> (std::process::ExitStatus, String) {
        let mut child = self
            .command(id)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("zdb-node starts");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let mut stderr = String::new();
                use std::io::Read;
                child
                    .stderr
                    .take()
                    .expect("piped")
                    .read_to_string(&mut stderr)
                    .expect("stderr");
                return (status, stderr);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let mut stderr = String::new();
                use std::io::Read;
                let _ = child
                    .stderr
                    .take()
                    .expect("piped")
                    .read_to_string(&mut stderr);
                panic!("node {id} was expected to exit within {timeout:?} but kept running; it said:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.node_mut(id).process.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self, id: u64) {
        if let Some(mut child) = self.node_mut(id).process.take() {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().expect("wait").is_none() {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }

    /// Sends `signal` to a running node (SIGSTOP, SIGCONT, SIGTERM...).
    pub fn signal(&mut self, id: u64, signal: libc::c_int) {
        if let Some(child) = self.node_mut(id).process.as_mut() {
            if child.try_wait().ok().flatten().is_none() {
                // SAFETY: kill(2) on a child we spawned and have not reaped.
                unsafe {
                    libc::kill(child.id() as libc::pid_t, signal);
                }
            }
        }
    }

    /// Waits until the node's process exits (reaping it); None if it is
    /// still running after `timeout`.
    pub fn wait_exit(&mut self, id: u64, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.node_mut(id).process.as_mut()?;
            if let Some(status) = child.try_wait().ok().flatten() {
                self.node_mut(id).process = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// HTTP status code and body of a GET on the node's status port.
    pub fn probe(&self, id: u64, path: &str) -> Option<(u16, String)> {
        http_get_with_status(&self.node(id).status_address, path).ok()
    }

    pub fn wipe(&mut self, id: u64) {
        assert!(
            self.node(id).process.is_none(),
            "stop node {id} before wiping it"
        );
        let _ = std::fs::remove_dir_all(&self.node(id).data_dir);
    }

    pub fn is_running(&mut self, id: u64) -> bool {
        match self.node_mut(id).process.as_mut() {
            Some(child) => child.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// Waits until the running nodes agree on one leader; returns its id.
    pub async fn wait_for_leader(&self, timeout: Duration) -> u64 {
        let client = self.client();
        let addresses: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.process.is_some())
            .map(|n| n.address.clone())
            .collect();
        eventually("a leader", timeout, || {
            let client = client.clone();
            let addresses = addresses.clone();
            async move {
                for address in &addresses {
                    if let Ok(status) = client.node_status(address).await {
                        if status
                            .replicas
                            .iter()
                            .any(|r| r.role == RaftRole::Leader as i32)
                        {
                            return Some(status.node_id);
                        }
                    }
                }
                None
            }
        })
        .await
    }

    /// A node's Prometheus metric value (summed over label sets).
    pub async fn metric(&self, id: u64, name: &str) -> f64 {
        let address = self.node(id).status_address.clone();
        let body = tokio::task::spawn_blocking(move || http_get(&address, "/metrics"))
            .await
            .expect("metrics fetch")
            .unwrap_or_default();
        body.lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.iter().map(|node| node.id).collect();
        for id in ids {
            self.kill(id);
        }
        if std::thread::panicking() {
            for node in &self.nodes {
                eprintln!(
                    "---- log of node {} ----\n{}",
                    node.id,
                    tail(&self.log_of(node.id), 60)
                );
            }
            return;
        }
        // A panicked thread inside a node can go unnoticed by the test's
        // requests (another replica answers): fail the test anyway.
        for node in &self.nodes {
            let log = self.log_of(node.id);
            if let Some(at) = log.find("panicked at") {
                panic!("node {} panicked:\n{}", node.id, tail(&log[at..], 40));
            }
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Whether the Redis server at `address` answers `PING` with `+PONG`.
pub fn redis_ping(address: &str) -> bool {
    use std::io::{BufRead, Write};
    let ping = || -> std::io::Result<bool> {
        let address: std::net::SocketAddr = address
            .parse()
            .map_err(|_| std::io::Error::other("not a socket address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n")?;
        let mut line = String::new();
        std::io::BufReader::new(stream).read_line(&mut line)?;
        Ok(line == "+PONG\r\n")
    };
    ping().unwrap_or(false)
}

/// A minimal HTTP/1.0 GET, enough for the status port.
pub fn http_get(address: &str, path: &str) -> std::io::Result<String> {
    http_get_with_status(address, path).map(|(_, body)| body)
}

/// The status code and body of a minimal HTTP/1.0 GET.
pub fn http_get_with_status(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}
