//! What a client connection survives, and what a node tells a client about
//! its API.

use std::time::Duration;

use futures::StreamExt as _;
use tonic::transport::Endpoint;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use zdb_proto::v1::kv_client::KvClient;
use zdb_proto::v1::GetRequest;
use zdb_tests::Cluster;

const WAIT: Duration = Duration::from_secs(30);

/// Issue 15, item 8: a node that was paused finds many streams its
/// clients cancelled meanwhile; it must not answer them by closing the
/// connection (HTTP/2 GOAWAY "too_many_resets") and failing every other
/// call on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cancelled_calls_leave_the_connection_usable() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(WAIT).await;
    let channel = Endpoint::from_shared(format!("http://{}", cluster.node(1).address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut kv = KvClient::new(channel.clone());
    let get = || GetRequest {
        key: b"k".to_vec(),
        ..Default::default()
    };
    kv.get(get()).await.expect("the connection works");

    cluster.signal(1, libc::SIGSTOP);
    let calls = (0..1000).map(|_| {
        let mut kv = KvClient::new(channel.clone());
        async move {
            let mut request = tonic::Request::new(get());
            request.set_timeout(Duration::from_millis(20));
            kv.get(request).await
        }
    });
    let cancelled = futures::future::join_all(calls).await;
    assert!(
        cancelled.iter().all(|call| call.is_err()),
        "the node was paused"
    );
    cluster.signal(1, libc::SIGCONT);

    for _ in 0..20 {
        let mut request = tonic::Request::new(get());
        request.set_timeout(Duration::from_secs(5));
        kv.get(request)
            .await
            .expect("the same connection still serves calls");
    }
}

/// Issue 15: a `grpc.reflection` service, so tools like grpcurl (and any
/// client that discovers the API at run time) see every zdb service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    let cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(WAIT).await;
    let channel = Endpoint::from_shared(format!("http://{}", cluster.node(1).address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("no service list: {answer:?}");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    for expected in ["zdb.v1.Kv", "zdb.v1.Admin", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
}
