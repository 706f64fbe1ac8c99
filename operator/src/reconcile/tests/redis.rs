//! `spec.redis`: the flag, the container port and the Services' ports the
//! nodes get, nothing while it is off, and the ports the CRD refuses.

use serde_json::{json, Value};

use super::*;
use crate::testing::statefulset_controller;

fn with_redis(redis: Value) -> Value {
    let mut cluster = cluster(3, "zdb:v1");
    cluster["spec"]["redis"] = redis;
    cluster
}

fn container(harness: &Harness) -> Value {
    harness.statefulset()["spec"]["template"]["spec"]["containers"][0].clone()
}

fn redis_args(harness: &Harness) -> Vec<String> {
    container(harness)["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|arg| arg.starts_with("--redis"))
        .map(str::to_owned)
        .collect()
}

/// `name=port` of the node container's ports.
fn container_ports(harness: &Harness) -> Vec<String> {
    container(harness)["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{}={}",
                p["name"].as_str().unwrap_or(""),
                p["containerPort"]
            )
        })
        .collect()
}

/// `name=port->targetPort` of a Service's ports.
fn service_ports(harness: &Harness, service: &str) -> Vec<String> {
    let service = harness
        .api
        .get("", "services", NS, service)
        .unwrap_or_else(|| panic!("Service {service} applied"));
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{}={}->{}",
                p["name"].as_str().unwrap_or(""),
                p["port"],
                p["targetPort"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test]
async fn enabled_redis_gets_the_flag_the_container_port_and_the_service_ports() {
    let harness = Harness::new(with_redis(json!({"enabled": true}))).await;
    // The API server filled in the default port.
    assert_eq!(
        harness.stored_cluster().spec.redis.map(|r| r.port),
        Some(6379)
    );
    harness.reconcile().await;
    assert_eq!(redis_args(&harness), ["--redis-listen=0.0.0.0:6379"]);
    assert_eq!(
        container_ports(&harness),
        ["grpc=7700", "status=7701", "redis=6379"]
    );
    let ports = [
        "grpc=7700->grpc",
        "status=7701->status",
        "redis=6379->redis",
    ];
    assert_eq!(service_ports(&harness, "db"), ports);
    assert_eq!(service_ports(&harness, "db-nodes"), ports);
    // The pods the StatefulSet makes of it are admitted.
    statefulset_controller::sync(&harness.api, NS, NAME);
    assert_eq!(harness.api.list("", "pods", NS).len(), 3);

    // Another port moves all three, and rolls the pods.
    harness.settle_statefulset("r1", "r1");
    for ordinal in 0..3 {
        harness.put_pod(ordinal, "r1", true, None);
    }
    harness.running_cluster(3);
    harness.reconcile().await;
    harness
        .edit_spec(|spec| spec["redis"]["port"] = json!(16379))
        .await;
    let (_, requests, _) = harness.reconcile().await;
    assert_eq!(events(&requests), ["RollingUpdateStarted"]);
    assert_eq!(redis_args(&harness), ["--redis-listen=0.0.0.0:16379"]);
    assert_eq!(container_ports(&harness)[2], "redis=16379");
    assert_eq!(service_ports(&harness, "db")[2], "redis=16379->redis");
    assert_eq!(service_ports(&harness, "db-nodes")[2], "redis=16379->redis");
}

#[tokio::test]
async fn disabled_redis_renders_no_flag_and_no_port() {
    for redis in [
        None,
        Some(json!({})),
        Some(json!({"enabled": false, "port": 6380})),
    ] {
        let cluster = match &redis {
            Some(redis) => with_redis(redis.clone()),
            None => cluster(3, "zdb:v1"),
        };
        let harness = Harness::new(cluster).await;
        harness.reconcile().await;
        assert!(redis_args(&harness).is_empty(), "{redis:?}");
        assert_eq!(container_ports(&harness), ["grpc=7700", "status=7701"]);
        for service in ["db", "db-nodes"] {
            assert_eq!(
                service_ports(&harness, service),
                ["grpc=7700->grpc", "status=7701->status"],
                "{service} {redis:?}"
            );
        }
    }
}

#[tokio::test]
async fn ports_out_of_range_or_taken_are_refused_by_the_crd() {
    let (_, api) = FakeApi::start();
    api.namespace(NS, json!({}));
    for (port, says) in [
        (
            0,
            "spec.redis.port in body should be greater than or equal to 1",
        ),
        (
            70000,
            "spec.redis.port in body should be less than or equal to 65535",
        ),
        (7700, "redis.port must not be 7700 (gRPC) or 7701 (status)"),
        (7701, "redis.port must not be 7700 (gRPC) or 7701 (status)"),
    ] {
        let error = api
            .create(
                "zdb.io",
                "zdbclusters",
                NS,
                with_redis(json!({"enabled": true, "port": port})),
            )
            .expect_err("the CRD refuses it");
        assert_eq!(error.code, 422, "{port}");
        assert!(error.message.contains(says), "{port}: {}", error.message);
    }
    assert!(api.get("zdb.io", "zdbclusters", NS, NAME).is_none());

    // Nor can a user change a running cluster's port to one.
    let harness = Harness::new(with_redis(json!({"enabled": true}))).await;
    let error = harness
        .clusters()
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"redis": {"port": 70000}}})),
        )
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("spec.redis.port"), "{error}");
}
