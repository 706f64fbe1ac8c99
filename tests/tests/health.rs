//! What a node's probes say through its life (issue 15, item 3): not ready
//! while starting, ready once every replica has a leader and has applied
//! its committed log, not ready again when it loses its quorum or shuts
//! down; alive throughout. The gRPC health service says the same.

use std::process::{Command, Stdio};
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use zdb_tests::{binary, eventually, free_port, http_get_with_status, Cluster};

const WAIT: Duration = Duration::from_secs(30);

async fn grpc_status(address: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut health = HealthClient::new(channel);
    let response = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// Polls `/readyz` of `node` until its code is `code` and its body says `says`.
async fn ready_becomes(cluster: &Cluster, node: u64, code: u16, says: &str) {
    eventually(
        &format!("/readyz of node {node} to answer {code} {says:?}"),
        WAIT,
        || async {
            let (got, body) = cluster.probe(node, "/readyz")?;
            (got == code && body.contains(says)).then_some(())
        },
    )
    .await;
}

/// Polls the gRPC health service of `node` until it says `status` (it
/// follows the node's readiness within a fraction of a second).
async fn grpc_becomes(cluster: &Cluster, node: u64, status: ServingStatus) {
    let address = cluster.node(node).address.clone();
    eventually(
        &format!("gRPC health of node {node} to say {status:?}"),
        WAIT,
        || async { (grpc_status(&address).await == Some(status)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_replicas_and_liveness_the_process() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(WAIT).await;
    for node in [1, 2, 3] {
        ready_becomes(&cluster, node, 200, "ok").await;
        grpc_becomes(&cluster, node, ServingStatus::Serving).await;
        assert_eq!(
            cluster.probe(node, "/livez").map(|(code, _)| code),
            Some(200)
        );
    }

    // Node 1 alone cannot have a leader: it is not ready, but alive.
    cluster.kill(2);
    cluster.kill(3);
    ready_becomes(&cluster, 1, 503, "catching up").await;
    assert_eq!(
        cluster.probe(1, "/healthz").map(|(code, _)| code),
        Some(503)
    );
    assert_eq!(cluster.probe(1, "/livez").map(|(code, _)| code), Some(200));
    grpc_becomes(&cluster, 1, ServingStatus::NotServing).await;

    cluster.restart(2);
    cluster.restart(3);
    ready_becomes(&cluster, 1, 200, "ok").await;
    grpc_becomes(&cluster, 1, ServingStatus::Serving).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_still_joining_is_alive_but_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let status = format!("127.0.0.1:{}", free_port());
    // Nobody listens at the seed: the node keeps trying to join.
    let mut node = Command::new(binary("zdb-node"))
        .arg(format!("--join=127.0.0.1:{}", free_port()))
        .arg(format!("--listen=127.0.0.1:{}", free_port()))
        .arg(format!("--status-listen={status}"))
        .arg(format!("--data={}", dir.path().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answer = eventually("the status port to answer", WAIT, || async {
        http_get_with_status(&status, "/readyz").ok()
    })
    .await;
    let live = http_get_with_status(&status, "/livez").ok();
    let _ = node.kill();
    let _ = node.wait();
    assert_eq!(answer.0, 503, "{answer:?}");
    assert!(answer.1.contains("starting"), "{answer:?}");
    assert_eq!(live.map(|(code, _)| code), Some(200));
}

/// While a node hands its leaderships away on SIGTERM it is no longer
/// ready; once done it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_is_not_ready() {
    // Long election timeouts: the leader keeps leading while its peers
    // are paused, so its hand-off takes until the peers come back.
    let mut cluster = Cluster::start(3, &["--election-ticks=60", "--shutdown-timeout-secs=20"]);
    let leader = cluster.wait_for_leader(WAIT).await;
    ready_becomes(&cluster, leader, 200, "ok").await;
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&n| n != leader).collect();
    for &node in &others {
        cluster.signal(node, libc::SIGSTOP);
    }
    cluster.signal(leader, libc::SIGTERM);
    ready_becomes(&cluster, leader, 503, "shutting down").await;
    assert_eq!(
        cluster.probe(leader, "/livez").map(|(code, _)| code),
        Some(200)
    );
    for &node in &others {
        cluster.signal(node, libc::SIGCONT);
    }
    let exited = cluster.wait_exit(leader, Duration::from_secs(25));
    assert!(exited.is_some_and(|status| status.success()), "{exited:?}");
}
