//! Issue 15, "any-language clients": a Python application with a client
//! generated from the repository's .proto files (grpcio-tools) and one
//! address works, through a node that leads nothing, and through each node
//! in turn while leaderships move; its transactions (the Txn service) span
//! ranges through that one address too. Needs `python3 -m pip install
//! grpcio grpcio-tools` (`.ci/run` installs them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use zdb_proto::v1::RaftRole;
use zdb_tests::Cluster;

const WAIT: Duration = Duration::from_secs(30);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_owned()
}

/// Generates the Python client into `out`, as an application would.
fn generate_python_client(out: &Path) {
    let generated = Command::new("python3")
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(repository().join("proto/proto"))
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .args([
            "zdb/v1/kv.proto",
            "zdb/v1/txn.proto",
            "zdb/v1/auth.proto",
            "google/rpc/status.proto",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        generated.status.success(),
        "generating the Python client failed (install it: python3 -m pip install grpcio grpcio-tools): {}",
        String::from_utf8_lossy(&generated.stderr)
    );
}

fn run_application(generated: &Path, address: &str, prefix: &str, count: usize) {
    let output = Command::new("python3")
        .arg(repository().join("tests/python/any_language.py"))
        .args([address, prefix, &count.to_string()])
        .env("PYTHONPATH", generated)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the Python application failed through {address}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every range's id and voters, from its leader.
async fn ranges(cluster: &Cluster) -> Vec<(u64, Vec<u64>)> {
    let client = cluster.client();
    client
        .ranges(b"", b"")
        .await
        .unwrap()
        .into_iter()
        .map(|range| {
            let voters = range
                .replicas
                .iter()
                .filter(|r| !r.learner)
                .map(|r| r.node_id)
                .collect();
            (range.range_id, voters)
        })
        .collect()
}

async fn leads_nothing(cluster: &Cluster, node: u64) -> bool {
    let status = cluster
        .client()
        .node_status(&cluster.node(node).address)
        .await
        .unwrap();
    !status
        .replicas
        .iter()
        .any(|r| r.role == RaftRole::Leader as i32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_works_through_a_node_that_leads_nothing() {
    let generated = tempfile::tempdir().unwrap();
    generate_python_client(generated.path());
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    // The keys span three ranges, all led by node 1.
    for key in ["py-0010", "py-0020"] {
        client.split_at(key.as_bytes()).await.unwrap();
    }
    for (range_id, _) in ranges(&cluster).await {
        client.transfer_leader(None, range_id, 1).await.unwrap();
    }
    assert!(leads_nothing(&cluster, 3).await);
    let address = cluster.node(3).address.clone();
    let path = generated.path().to_owned();
    tokio::task::spawn_blocking(move || run_application(&path, &address, "py", 30))
        .await
        .unwrap();
    assert!(
        leads_nothing(&cluster, 3).await,
        "the leaders stayed where they were"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_works_through_each_node_while_leaders_move() {
    let generated = tempfile::tempdir().unwrap();
    generate_python_client(generated.path());
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let client = cluster.client();
    for key in ["mv1-0010", "mv2-0010", "mv3-0010"] {
        client.split_at(key.as_bytes()).await.unwrap();
    }
    let table = ranges(&cluster).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let (client, stop) = (client.clone(), stop.clone());
        tokio::spawn(async move {
            let mut moves = 0;
            while !stop.load(Ordering::SeqCst) {
                let (range_id, voters) = table[rand::rng().random_range(0..table.len())].clone();
                let to = voters[rand::rng().random_range(0..voters.len())];
                if client.transfer_leader(None, range_id, to).await.is_ok() {
                    moves += 1;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            moves
        })
    };
    for node in [1, 2, 3] {
        let address = cluster.node(node).address.clone();
        let path = generated.path().to_owned();
        tokio::task::spawn_blocking(move || {
            run_application(&path, &address, &format!("mv{node}"), 20)
        })
        .await
        .unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    assert!(mover.await.unwrap() > 3, "the leaderships moved meanwhile");
}

/// Issue 19: the same generated client over TLS (trusting the cluster CA)
/// with a password login: its token goes as `authorization` metadata, a
/// write outside the user's keys is PERMISSION_DENIED with the typed
/// detail, a call without the token UNAUTHENTICATED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_logs_in_over_tls_and_gets_typed_refusals() {
    use zdb_proto::v1::auth_client::AuthClient;
    use zdb_proto::v1::{
        Access, Permission, RoleAddRequest, RoleGrantPermissionRequest, UserAddRequest,
        UserRoleRequest,
    };
    use zdb_security::tls::{ClientTls, ClientTlsSource, Connector};

    let generated = tempfile::tempdir().unwrap();
    generate_python_client(generated.path());
    let cluster = Cluster::start_secure(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    let certs = cluster.secure().certs.clone();
    let tls = ClientTls::load(&ClientTlsSource::Files {
        ca: certs.join("ca.crt"),
        cert_and_key: Some((certs.join("client.root.crt"), certs.join("client.root.key"))),
    })
    .unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.node(1).address))
            .unwrap()
            .connect_with_connector_lazy(Connector::new(Arc::new(tls), Duration::from_secs(2)));
    let mut admin = AuthClient::new(channel);
    zdb_tests::eventually("the user to be added", WAIT, || {
        let mut admin = admin.clone();
        async move {
            admin
                .user_add(UserAddRequest {
                    name: "py".into(),
                    password: "py-secret".into(),
                })
                .await
                .ok()
        }
    })
    .await;
    admin
        .role_add(RoleAddRequest {
            name: "py-rw".into(),
        })
        .await
        .unwrap();
    admin
        .role_grant_permission(RoleGrantPermissionRequest {
            role: "py-rw".into(),
            permission: Some(Permission {
                access: Access::ReadWrite as i32,
                start: b"py/".to_vec(),
                end: b"py0".to_vec(),
            }),
        })
        .await
        .unwrap();
    admin
        .user_grant_role(UserRoleRequest {
            user: "py".into(),
            role: "py-rw".into(),
        })
        .await
        .unwrap();
    let address = cluster.node(2).address.clone();
    let path = generated.path().to_owned();
    let ca = certs.join("ca.crt");
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new("python3")
            .arg(repository().join("tests/python/secure_client.py"))
            .arg(&address)
            .arg(&ca)
            .args(["py", "py-secret", "py"])
            .env("PYTHONPATH", &path)
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "the secure Python client failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    })
    .await
    .unwrap();
    assert_eq!(
        cluster.client().get(b"py/python").await.unwrap(),
        Some(b"from python".to_vec())
    );
}
