//! `zdbctl` as users and scripts run it: `local up` starts a cluster, the
//! data commands follow their output contract, a second `local up` on the
//! same folder brings the same data back, `txn` runs a script as one
//! transaction, and `local up --secure` runs a cluster with TLS and users.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use zdb_client::{Isolation, TxnOptions};
use zdb_tests::{binary, Cluster};

const WAIT: Duration = Duration::from_secs(60);

/// `zdbctl local up` in the background; stopped (SIGTERM, then SIGKILL) on drop.
struct LocalUp {
    child: Child,
}

impl LocalUp {
    fn start(data: &Path) -> LocalUp {
        LocalUp::start_with(data, &[])
    }

    fn start_with(data: &Path, extra: &[&str]) -> LocalUp {
        LocalUp::start_printing_to(data, extra, Stdio::null())
    }

    /// Waits until it wrote its `endpoints` file; what it prints goes to `stdout`.
    fn start_printing_to(data: &Path, extra: &[&str], stdout: Stdio) -> LocalUp {
        let _ = std::fs::remove_file(data.join("endpoints"));
        let child = Command::new(binary("zdbctl"))
            .args(["local", "up", "--nodes", "3", "--data"])
            .arg(data)
            .arg("--node-arg=--raft-tick-ms=50")
            .args(extra)
            .env("ZDB_NODE_BIN", binary("zdb-node"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .expect("zdbctl starts");
        let up = LocalUp { child };
        let deadline = Instant::now() + WAIT;
        while !data.join("endpoints").exists() {
            assert!(
                Instant::now() < deadline,
                "local up did not write its endpoints file"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    }

    fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "local up did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LocalUp {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(15);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn zdbctl(endpoints: &str, args: &[&str]) -> Output {
    Command::new(binary("zdbctl"))
        .env("ZDB_ENDPOINTS", endpoints)
        .args(args)
        .output()
        .expect("zdbctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `zdbctl txn ARGS` with `script` on its stdin, off the async runtime.
async fn txn_script(endpoints: &str, args: &[&str], script: &str) -> Output {
    let (endpoints, script) = (endpoints.to_owned(), script.to_owned());
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(binary("zdbctl"))
            .env("ZDB_ENDPOINTS", endpoints)
            .arg("txn")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("zdbctl runs");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes())
            .expect("zdbctl reads its script");
        child.wait_with_output().expect("zdbctl runs")
    })
    .await
    .unwrap()
}

async fn value(client: &zdb_client::Client, key: &str) -> Option<String> {
    client
        .get(key)
        .await
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

/// The `redis: redis-cli -p PORT  (any node: P1,P2,P3)` line `local up`
/// printed into `out`, waiting for it: the redis-cli arguments and every port.
fn printed_redis_line(out: &Path) -> (Vec<String>, Vec<String>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let printed = std::fs::read_to_string(out).unwrap_or_default();
        if let Some(line) = printed.lines().find_map(|l| l.strip_prefix("redis: ")) {
            let (command, all) = line.split_once("  (any node: ").expect(line);
            let args: Vec<String> = command.split(' ').map(str::to_owned).collect();
            assert_eq!(args[..2], ["redis-cli", "-p"], "{line}");
            let ports: Vec<String> = all
                .trim_end_matches(')')
                .split(',')
                .map(str::to_owned)
                .collect();
            assert_eq!(ports.len(), 3, "{line}");
            assert_eq!(args[2], ports[0], "{line}");
            return (args, ports);
        }
        assert!(
            Instant::now() < deadline,
            "local up printed no redis-cli line:\n{printed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether redis-cli runs; when it does not, the check skips, unless
/// ZDB_REQUIRE_REDIS_TOOLS is set, when it fails.
fn have_redis_cli() -> bool {
    let works = Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !works {
        assert!(
            std::env::var_os("ZDB_REQUIRE_REDIS_TOOLS").is_none_or(|value| value.is_empty()),
            "redis-cli is missing and ZDB_REQUIRE_REDIS_TOOLS is set: apt-get install redis-tools"
        );
        eprintln!(
            "SKIPPED the redis-cli check: redis-cli is missing (apt-get install redis-tools)"
        );
    }
    works
}

#[test]
fn local_cluster_and_data_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    let out = dir.path().join("up.out");
    let up = LocalUp::start_printing_to(
        &data,
        &[],
        Stdio::from(std::fs::File::create(&out).unwrap()),
    );
    let endpoints = std::fs::read_to_string(data.join("endpoints"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(endpoints.split(',').count(), 3);

    // Every node serves Redis; the command printed reaches one.
    let (redis_cli, redis_ports) = printed_redis_line(&out);
    if have_redis_cli() {
        for port in &redis_ports {
            let mut args = redis_cli[1..].to_vec();
            args[1] = port.clone();
            let ping = Command::new(&redis_cli[0])
                .args(&args)
                .arg("PING")
                .output()
                .unwrap();
            assert_eq!(stdout(&ping), "PONG\n", "{args:?}: {ping:?}");
        }
    }

    let put = zdbctl(&endpoints, &["put", "greeting", "hello world"]);
    assert!(put.status.success(), "{put:?}");
    let get = zdbctl(&endpoints, &["get", "greeting"]);
    assert!(get.status.success());
    assert_eq!(stdout(&get), "hello world\n");

    let missing = zdbctl(&endpoints, &["get", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    assert!(zdbctl(&endpoints, &["put", "a1", "x"]).status.success());
    assert!(zdbctl(&endpoints, &["put", "a2", "y"]).status.success());
    let scan = zdbctl(&endpoints, &["scan", "a", "b"]);
    assert_eq!(stdout(&scan), "a1\tx\na2\ty\n");
    let limited = zdbctl(&endpoints, &["scan", "a", "b", "--limit", "1"]);
    assert_eq!(stdout(&limited), "a1\tx\n");

    assert!(zdbctl(&endpoints, &["cas", "a1", "x", "z"])
        .status
        .success());
    assert_eq!(
        zdbctl(&endpoints, &["cas", "a1", "x", "w"]).status.code(),
        Some(1)
    );
    assert!(zdbctl(&endpoints, &["cas", "fresh", "v", "--absent"])
        .status
        .success());
    assert_eq!(
        zdbctl(&endpoints, &["cas", "fresh", "v", "--absent"])
            .status
            .code(),
        Some(1)
    );
    assert!(zdbctl(&endpoints, &["del", "a2"]).status.success());
    assert!(zdbctl(&endpoints, &["put", "temp", "t", "--ttl", "600"])
        .status
        .success());
    assert_eq!(stdout(&zdbctl(&endpoints, &["get", "temp"])), "t\n");

    let bad = zdbctl(&endpoints, &["put", "", "v"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("key is empty"));

    assert!(up.stop().success());

    // Same folder, same cluster, same data.
    let up = LocalUp::start(&data);
    let endpoints_again = std::fs::read_to_string(data.join("endpoints"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(endpoints_again, endpoints);
    assert_eq!(
        stdout(&zdbctl(&endpoints, &["get", "greeting"])),
        "hello world\n"
    );
    assert_eq!(stdout(&zdbctl(&endpoints, &["get", "a1"])), "z\n");
    assert_eq!(zdbctl(&endpoints, &["get", "a2"]).status.code(), Some(1));
    assert!(up.stop().success());
}

#[test]
fn local_mode_splits_ranges_past_the_size_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    let up = LocalUp::start_with(&data, &["--split-size=4000", "--placement-interval-ms=200"]);
    let endpoints = std::fs::read_to_string(data.join("endpoints"))
        .unwrap()
        .trim()
        .to_owned();
    let value = "x".repeat(100);
    for i in 0..200 {
        let put = zdbctl(&endpoints, &["put", &format!("key{i:03}"), &value]);
        assert!(put.status.success(), "{put:?}");
    }
    // About 21 KB in a 4 KB-threshold cluster: the driver keeps splitting.
    let deadline = Instant::now() + WAIT;
    loop {
        let ranges = zdbctl(&endpoints, &["ranges"]);
        assert!(ranges.status.success(), "{ranges:?}");
        let count = stdout(&ranges).lines().count() - 1;
        if count >= 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} ranges after the deadline:\n{}",
            stdout(&ranges)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let scan = zdbctl(&endpoints, &["scan", "key", "kez"]);
    assert_eq!(
        stdout(&scan).lines().count(),
        200,
        "splits lost or duplicated keys"
    );
    let split = zdbctl(&endpoints, &["split", "key150x"]);
    assert!(split.status.success(), "{split:?}");
    assert!(up.stop().success());
}

#[test]
fn local_mode_adds_and_removes_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    let up = LocalUp::start_with(&data, &["--placement-interval-ms=200"]);
    let endpoints = std::fs::read_to_string(data.join("endpoints"))
        .unwrap()
        .trim()
        .to_owned();
    for i in 0..20 {
        assert!(zdbctl(&endpoints, &["put", &format!("k{i:02}"), "v"])
            .status
            .success());
    }
    // Four ranges: twelve replicas to spread over four nodes.
    for key in ["k05", "k10", "k15"] {
        assert!(zdbctl(&endpoints, &["split", key]).status.success());
    }
    let data_arg = data.to_str().unwrap();
    let added = Command::new(binary("zdbctl"))
        .args([
            "local",
            "add-node",
            "--data",
            data_arg,
            "--node-arg=--raft-tick-ms=50",
        ])
        .env("ZDB_NODE_BIN", binary("zdb-node"))
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    assert!(
        stdout(&added).contains("node 4 joined"),
        "{}",
        stdout(&added)
    );

    // The driver gives the new node replicas.
    let deadline = Instant::now() + WAIT;
    loop {
        let nodes = stdout(&zdbctl(&endpoints, &["nodes"]));
        let line = nodes
            .lines()
            .find(|l| l.starts_with("4\t"))
            .unwrap_or_default()
            .to_owned();
        if line
            .split('\t')
            .nth(3)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            > 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "node 4 got no replica:\n{nodes}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let removed = Command::new(binary("zdbctl"))
        .args(["local", "remove-node", "--data", data_arg, "1"])
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");
    let nodes = stdout(&zdbctl(&endpoints, &["nodes"]));
    assert!(
        nodes
            .lines()
            .any(|l| l.starts_with("1\t") && l.contains("decommissioned")),
        "{nodes}"
    );
    for i in 0..20 {
        assert_eq!(
            stdout(&zdbctl(&endpoints, &["get", &format!("k{i:02}")])),
            "v\n"
        );
    }
    assert!(up.stop().success());
}

fn answers(address: &str) -> bool {
    std::net::TcpStream::connect(address).is_ok()
}

/// Issue 16, item 8: the nodes of `local up` stop on SIGTERM (within their
/// shutdown timeout, not after a SIGKILL), and die with `local up` when it
/// is killed.
#[test]
fn local_nodes_stop_with_local_up_however_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    let up = LocalUp::start(&data);
    let endpoints: Vec<String> = std::fs::read_to_string(data.join("endpoints"))
        .unwrap()
        .trim()
        .split(',')
        .map(str::to_owned)
        .collect();
    let started = Instant::now();
    assert!(up.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "local up took {:?} to stop its nodes",
        started.elapsed()
    );
    assert!(endpoints.iter().all(|address| !answers(address)));

    let mut up = LocalUp::start(&data);
    assert!(endpoints.iter().all(|address| answers(address)));
    let _ = up.child.kill(); // SIGKILL: no handler runs in local up
    let _ = up.child.wait();
    let deadline = Instant::now() + WAIT;
    while endpoints.iter().any(|address| answers(address)) {
        assert!(
            Instant::now() < deadline,
            "nodes outlived a killed local up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `zdbctl txn` runs a script as one transaction over keys in two ranges;
/// a script with a syntax error is refused, naming its line, before
/// anything is sent; a conflict says the script can be run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_runs_a_script_in_one_transaction_across_ranges() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    client.split_at(b"txn-m").await.unwrap();
    let ranges = client.ranges(b"txn-a", b"txn-z").await.unwrap();
    assert_eq!(ranges.len(), 2, "txn-a.. and txn-t.. are in two ranges");
    let endpoints = cluster.endpoints();

    let script = "\
# two keys in two ranges, one transaction
put txn-a1 hello world
put txn-t1 second

get txn-a1
get txn-none
scan txn- txn.
commit
";
    let run = txn_script(&endpoints, &[], script).await;
    assert!(run.status.success(), "{run:?}");
    let out = stdout(&run);
    let lines: Vec<&str> = out.lines().collect();
    let (commit_ts, results) = lines.split_last().expect("output");
    assert_eq!(
        results,
        [
            "OK",
            "OK",
            "hello world",
            "txn-a1\thello world",
            "txn-t1\tsecond"
        ],
        "{out}"
    );
    assert!(
        commit_ts.parse::<u64>().is_ok_and(|ts| ts > 0),
        "commit prints its timestamp: {out}"
    );
    assert!(
        stderr(&run).contains("line 6 (get txn-none): not found"),
        "{run:?}"
    );
    assert_eq!(
        value(&client, "txn-a1").await.as_deref(),
        Some("hello world")
    );
    assert_eq!(value(&client, "txn-t1").await.as_deref(), Some("second"));

    // From a file, without commit or rollback: committed at the end.
    let file = cluster.dir.path().join("script.txn");
    std::fs::write(
        &file,
        "get-for-update txn-a1\ndel txn-a1\nput txn-t1 third\n",
    )
    .unwrap();
    let file_arg = file.to_str().unwrap().to_owned();
    let run = txn_script(&endpoints, &["--isolation", "snapshot", &file_arg], "").await;
    assert!(run.status.success(), "{run:?}");
    let out = stdout(&run);
    assert!(out.starts_with("hello world\nOK\nOK\n"), "{out}");
    assert_eq!(value(&client, "txn-a1").await, None);
    assert_eq!(value(&client, "txn-t1").await.as_deref(), Some("third"));

    let run = txn_script(&endpoints, &[], "put txn-a2 x\nput txn-t2 y\nrollback\n").await;
    assert!(run.status.success(), "{run:?}");
    assert_eq!(stdout(&run), "OK\nOK\nrolled back\n");
    assert_eq!(value(&client, "txn-a2").await, None);
    assert_eq!(value(&client, "txn-t2").await, None);

    // A syntax error on line 2: refused whole, nothing written.
    let run = txn_script(&endpoints, &[], "put txn-a3 x\nputt txn-t3 y\ncommit\n").await;
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    let err = stderr(&run);
    assert!(err.contains("line 2 (putt txn-t3 y)"), "{err}");
    assert!(err.contains("unknown command"), "{err}");
    assert_eq!(stdout(&run), "");
    assert_eq!(value(&client, "txn-a3").await, None);
    assert_eq!(value(&client, "txn-t3").await, None);

    // Another transaction holds a lock on txn-t4: the script's commit meets
    // a write conflict, applies nothing, and says it can be run again.
    let mut holder = client
        .begin(TxnOptions::new(Isolation::Snapshot))
        .await
        .unwrap();
    holder.get_for_update("txn-t4").await.unwrap();
    let script = "put txn-a4 x\nput txn-t4 y\ncommit\n";
    let run = txn_script(&endpoints, &[], script).await;
    assert_eq!(run.status.code(), Some(3), "{run:?}");
    let err = stderr(&run);
    assert!(err.contains("line 3 (commit): write conflict"), "{err}");
    assert!(err.contains("not committed"), "{err}");
    assert!(err.contains("run the script again"), "{err}");
    assert_eq!(value(&client, "txn-a4").await, None);
    holder.rollback().await.unwrap();
    let run = txn_script(&endpoints, &[], script).await;
    assert!(run.status.success(), "{run:?}");
    assert_eq!(value(&client, "txn-a4").await.as_deref(), Some("x"));
    assert_eq!(value(&client, "txn-t4").await.as_deref(), Some("y"));
}

/// `local up --secure` in the background, and the environment it prints
/// for connecting as root with root's certificate.
fn secure_local_up(data: &Path, out: &Path) -> (LocalUp, Vec<(String, String)>) {
    let file = std::fs::File::create(out).unwrap();
    let up = LocalUp::start_printing_to(data, &["--secure"], Stdio::from(file));
    let deadline = Instant::now() + WAIT;
    loop {
        let printed = std::fs::read_to_string(out).unwrap_or_default();
        if let Some(line) = printed.lines().find(|line| line.contains("ZDB_CERT=")) {
            let env = line
                .trim()
                .trim_start_matches("export ")
                .split(' ')
                .filter_map(|pair| pair.split_once('='))
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            return (up, env);
        }
        assert!(
            Instant::now() < deadline,
            "local up printed no certificate environment:\n{printed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `zdbctl` with `env` on top of ZDB_ENDPOINTS.
fn zdbctl_with(endpoints: &str, env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(binary("zdbctl"))
        .env("ZDB_ENDPOINTS", endpoints)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .args(args)
        .output()
        .expect("zdbctl runs")
}

/// Issue 19: `local up --secure` makes a cluster with TLS and
/// authentication, and prints how to connect as root; a client without
/// the CA is refused with a hint; users and roles made with zdbctl hold
/// (a role on prefix a/ lets alice write a/1, not b/1), are listed, and
/// survive a restart, which reuses the certificates and root's password
/// (`local up` without --secure runs a folder with certificates secure).
#[test]
fn secure_local_cluster_with_users_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    let (up, root) = secure_local_up(&data, &dir.path().join("up.out"));
    let names: Vec<&str> = root.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["ZDB_CA_CERT", "ZDB_CERT", "ZDB_KEY"]);
    let ca = root[0].1.clone();
    let endpoints = std::fs::read_to_string(data.join("endpoints"))
        .unwrap()
        .trim()
        .to_owned();
    let as_root = |args: &[&str]| {
        let output = zdbctl_with(&endpoints, &root, args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        stdout(&output)
    };
    assert_eq!(as_root(&["put", "hello", "world"]), "OK\n");
    assert_eq!(as_root(&["get", "hello"]), "world\n");

    let plain = zdbctl(&endpoints, &["get", "hello", "--timeout", "3"]);
    assert_eq!(plain.status.code(), Some(2));
    assert!(
        stderr(&plain).contains("pass --ca-cert"),
        "{}",
        stderr(&plain)
    );

    as_root(&["user", "add", "alice", "--password", "pw"]);
    as_root(&["role", "add", "r"]);
    as_root(&[
        "role",
        "grant",
        "r",
        "--access",
        "readwrite",
        "--prefix",
        "a/",
    ]);
    as_root(&["user", "grant", "alice", "r"]);
    let users = as_root(&["user", "list"]);
    assert!(users.lines().any(|line| line == "alice\tr"), "{users}");
    assert!(users.lines().any(|line| line == "root\troot"), "{users}");
    let roles = as_root(&["role", "list"]);
    assert!(
        roles
            .lines()
            .any(|line| line == "r\treadwrite [\"a/\", \"a0\")"),
        "{roles}"
    );

    let as_alice = |args: &[&str]| {
        let mut all = vec!["--ca-cert", &ca, "--user", "alice", "--password", "pw"];
        all.extend_from_slice(args);
        zdbctl(&endpoints, &all)
    };
    let allowed = as_alice(&["put", "a/1", "x"]);
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    let denied = as_alice(&["put", "b/1", "x"]);
    assert_eq!(denied.status.code(), Some(2));
    let message = stderr(&denied);
    assert!(
        message.contains("permission denied") && message.contains("write on key \"b/1\""),
        "{message}"
    );
    assert!(up.stop().success());

    // The same certificates and password, without --secure.
    let password = std::fs::read_to_string(data.join("root.password")).unwrap();
    let up = LocalUp::start(&data);
    let with_password = [
        ("ZDB_CA_CERT".to_owned(), ca.clone()),
        ("ZDB_USER".to_owned(), "root".to_owned()),
        ("ZDB_PASSWORD".to_owned(), password.trim().to_owned()),
    ];
    let read = zdbctl_with(&endpoints, &with_password, &["get", "a/1"]);
    assert_eq!(stdout(&read), "x\n", "{}", stderr(&read));
    assert_eq!(stdout(&as_alice(&["get", "a/1"])), "x\n");
    assert!(up.stop().success());
}
