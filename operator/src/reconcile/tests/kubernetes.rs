//! What a real cluster imposes on the operator: the chart's RBAC (every
//! call granted, nothing granted in vain), the scale subresource,
//! PodSecurity "restricted", StatefulSet fields no update may change,
//! finalizers, and a full restart that needs every pod at once.

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::lifecycle::put_claims;
use super::*;
use crate::leader_election::LeaderElector;
use crate::placement::PlacementReport;
use crate::placement_events::PlacementEvents;
use crate::testing::pod_security::ENFORCE_LABEL;
use crate::testing::rbac::Grants;
use crate::testing::statefulset_controller::{self, set_ready, set_waiting};
use zdb_placement::driver::Step;

#[tokio::test]
async fn kubectl_scale_changes_the_replicas() {
    let harness = bootstrapped(3).await;
    let clusters = harness.clusters();
    let scale = clusters.get_scale(NAME).await.expect("a scale subresource");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(3));
    let status = scale.status.expect("a scale status");
    assert_eq!(status.replicas, 3);
    assert_eq!(
        status.selector.as_deref(),
        Some(harness.names.label_selector().as_str())
    );

    // `kubectl scale zdbcluster db --replicas 5`
    clusters
        .patch_scale(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("the API server scales it");
    harness.api.take_requests();
    assert_eq!(harness.stored_cluster().spec.replicas, 5);
    harness.reconcile().await;
    assert_eq!(harness.sts_replicas(), 5);
    let scale = clusters.get_scale(NAME).await.expect("a scale subresource");
    assert_eq!(scale.status.map(|s| s.replicas), Some(5));
}

#[tokio::test]
async fn pods_the_statefulset_creates_pass_pod_security_restricted() {
    let harness =
        Harness::with_namespace(cluster(3, "zdb:v1"), json!({ENFORCE_LABEL: "restricted"})).await;
    harness.reconcile().await;
    statefulset_controller::sync(&harness.api, NS, NAME);
    let pods = harness.api.list("", "pods", NS);
    assert_eq!(pods.len(), 3, "every pod is admitted");
    assert!(
        harness.api.list("", "events", NS).is_empty(),
        "no FailedCreate"
    );
}

#[tokio::test]
async fn a_full_restart_starts_every_pod_at_once() {
    // No pod is ready before a quorum of them runs: creating them one at
    // a time, each waiting for the previous one to be ready, never ends.
    let harness = bootstrapped(3).await;
    statefulset_controller::sync(&harness.api, NS, NAME);
    for pod in harness.api.list("", "pods", NS) {
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_owned();
        harness
            .api
            .delete("", "pods", NS, &name, "Background")
            .expect("deleted");
    }
    statefulset_controller::sync(&harness.api, NS, NAME);
    let pods = harness.api.list("", "pods", NS);
    assert_eq!(pods.len(), 3, "{pods:#?}");
    assert!(pods
        .iter()
        .all(|pod| !statefulset_controller::is_ready(pod)));
}

#[tokio::test]
async fn an_ordered_ready_statefulset_is_recreated_keeping_its_pods() {
    let harness = bootstrapped(3).await;
    statefulset_controller::sync(&harness.api, NS, NAME);
    for ordinal in 0..3 {
        set_ready(&harness.api, NS, &harness.names.pod(ordinal), true);
    }
    // As an older operator left it.
    harness.api.edit("apps", "statefulsets", NS, NAME, |sts| {
        sts["spec"]["podManagementPolicy"] = json!("OrderedReady");
    });
    statefulset_controller::sync(&harness.api, NS, NAME);
    let pod_uids: Vec<Value> = harness
        .api
        .list("", "pods", NS)
        .iter()
        .map(|pod| pod["metadata"]["uid"].clone())
        .collect();
    harness.api.pause_garbage_collector();

    let (_, requests, _) = harness.reconcile().await;
    let deletes: Vec<&Recorded> = requests
        .iter()
        .filter(|r| r.resource == "statefulsets" && r.verb == "delete")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        deletes[0]
            .body
            .as_ref()
            .map(|b| b["propagationPolicy"].clone()),
        Some(json!("Orphan"))
    );
    assert_eq!(events(&requests), ["StatefulSetRecreated"]);
    assert!(
        applied(&requests, "statefulsets").is_empty(),
        "no apply the API server would refuse"
    );

    // While the garbage collector orphans the pods, the operator waits.
    let (_, requests, _) = harness.reconcile().await;
    assert!(applied(&requests, "statefulsets").is_empty());
    assert_eq!(
        condition(&harness.stored_cluster(), status::PROGRESSING),
        ("True".into(), status::RECREATING_STATEFULSET.into())
    );
    harness.api.run_garbage_collector();
    assert!(harness.api.get("apps", "statefulsets", NS, NAME).is_none());

    let (_, requests, _) = harness.reconcile().await;
    assert_eq!(events(&requests), ["StatefulSetCreated"]);
    let sts = harness.statefulset();
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(harness.partition(), 3, "no pod restarts by itself");
    statefulset_controller::sync(&harness.api, NS, NAME);
    let pods = harness.api.list("", "pods", NS);
    let uids: Vec<Value> = pods
        .iter()
        .map(|pod| pod["metadata"]["uid"].clone())
        .collect();
    assert_eq!(uids, pod_uids, "the same pods, adopted");
    assert!(pods
        .iter()
        .all(|pod| pod["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]));
}

#[tokio::test]
async fn deleting_a_cluster_stops_its_placement_driver_before_it_goes() {
    let harness = bootstrapped(3).await;
    assert_eq!(harness.placement.running(), vec!["prod/db".to_owned()]);
    harness
        .api
        .delete("zdb.io", "zdbclusters", NS, NAME, "Background")
        .expect("deleted");
    let deleting = harness.stored_cluster();
    assert!(
        deleting.metadata.deletion_timestamp.is_some(),
        "held by the finalizer"
    );

    let action = reconcile(Arc::new(deleting), harness.ctx.clone())
        .await
        .expect("cleanup succeeds");
    assert_eq!(action, Action::await_change());
    assert!(harness.placement.running().is_empty());
    assert!(harness.api.get("zdb.io", "zdbclusters", NS, NAME).is_none());
    // Everything it owned goes with it.
    assert!(harness.api.get("apps", "statefulsets", NS, NAME).is_none());
    assert!(harness.api.get("", "services", NS, "db-nodes").is_none());
}

#[tokio::test]
async fn the_disruption_budget_follows_the_replication_factor() {
    let mut five = cluster(5, "zdb:v1");
    five["spec"]["replicationFactor"] = json!(5);
    let harness = Harness::new(five).await;
    harness.reconcile().await;
    let pdb = harness
        .api
        .get("policy", "poddisruptionbudgets", NS, NAME)
        .expect("pdb");
    assert_eq!(pdb["spec"]["maxUnavailable"], 2);
}

/// Everything the operator does, once: the verbs it was authorized for
/// are exactly the ones the chart's ClusterRole grants.
#[tokio::test]
async fn the_chart_grants_exactly_the_calls_the_operator_makes() {
    // Bootstrap, scale, grow volumes, re-create a StatefulSet; the pods
    // run on a Kubernetes node whose zone is read.
    let harness = bootstrapped(3).await;
    harness.api.namespace("zdb-system", json!({}));
    harness.api.put(
        "",
        "nodes",
        "",
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": "worker", "labels": {crate::reconcile::zones::ZONE_LABEL: "a"}}}),
    );
    for ordinal in 0..3 {
        harness
            .api
            .edit("", "pods", NS, &harness.names.pod(ordinal), |pod| {
                pod["spec"]["nodeName"] = json!("worker");
            });
    }
    put_claims(&harness, "expandable", true);
    harness
        .edit_spec(|spec| spec["storage"]["size"] = json!("20Gi"))
        .await;
    harness.reconcile().await;
    harness.api.edit("apps", "statefulsets", NS, NAME, |sts| {
        sts["spec"]["podManagementPolicy"] = json!("OrderedReady");
    });
    harness.reconcile().await;
    harness.reconcile().await;

    // Placement Events, one repeated (a series).
    let mut placement =
        PlacementEvents::new(harness.ctx.client.clone(), harness.ctx.reporter.clone());
    let reference = kube::Resource::object_ref(&harness.stored_cluster(), &());
    for _ in 0..2 {
        let report = PlacementReport {
            cluster: "prod/db".into(),
            step: Step::Split,
            message: "split range 1 at \"m\"".into(),
            failed: false,
        };
        placement
            .publish(&reference, &report, &harness.ctx.metrics)
            .await;
    }

    // Leader election: take, renew, release.
    let elector = LeaderElector::new(
        Api::namespaced(harness.ctx.client.clone(), "zdb-system"),
        "zdb-zdb-operator".into(),
        "operator-0".into(),
        Duration::from_secs(15),
    );
    assert!(elector.try_hold().await.expect("takes the lease"));
    assert!(elector.try_hold().await.expect("renews the lease"));
    assert!(elector.release().await.expect("releases the lease"));

    // The controller watches, then the cluster is deleted.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (_reports, placement_reports) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(crate::controller::run(
        harness.ctx.clone(),
        Vec::new(),
        placement_reports,
        stopping,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let watched: Vec<String> = harness
            .api
            .requests()
            .iter()
            .filter(|r| r.verb == "watch")
            .map(|r| r.resource.clone())
            .collect();
        if watched.contains(&"zdbclusters".to_owned())
            && watched.contains(&"statefulsets".to_owned())
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the controller never watched"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    running.await.expect("the controller stops");

    // A cluster that never bootstraps: its pods are deleted at once on a fix.
    let typo = Harness::new(cluster(3, "zdb:tpyo")).await;
    typo.reconcile().await;
    statefulset_controller::sync(&typo.api, NS, NAME);
    set_waiting(&typo.api, NS, "db-0", "ImagePullBackOff", "", None);
    typo.edit_spec(|spec| spec["image"] = json!("zdb:v1")).await;
    typo.reconcile().await;
    statefulset_controller::sync(&typo.api, NS, NAME);
    typo.reconcile().await;
    typo.take();

    // TLS: operator-managed certificates (made, then one renewed), and
    // cert-manager's.
    let managed =
        super::security::harness_with(super::security::with_tls(json!({"enabled": true})), |_| {})
            .await;
    managed.reconcile().await;
    managed
        .api
        .edit("", "secrets", NS, "db-client-root", |secret| {
            if let Some(data) = secret["data"].as_object_mut() {
                data.remove("tls.key");
            }
        });
    managed.reconcile().await;
    let issued = super::security::harness_with(
        super::security::with_tls(json!({"enabled": true, "issuerRef": {"name": "ca"}})),
        crate::testing::cert_manager::install,
    )
    .await;
    issued.reconcile().await;
    issued.reconcile().await;

    harness.take();
    let mut used = FakeApi::operator_verbs(&harness.seen.lock().expect("lock"));
    used.extend(FakeApi::operator_verbs(&typo.seen.lock().expect("lock")));
    used.extend(FakeApi::operator_verbs(&managed.seen.lock().expect("lock")));
    used.extend(FakeApi::operator_verbs(&issued.seen.lock().expect("lock")));
    let granted = Grants::of_operator_chart().triples().clone();
    let unused: Vec<_> = granted.difference(&used).collect();
    let missing: Vec<_> = used.difference(&granted).collect();
    assert!(missing.is_empty(), "the chart does not grant {missing:?}");
    assert!(
        unused.is_empty(),
        "the chart grants what the operator never uses: {unused:?}"
    );
}

/// The zone of the Kubernetes node each pod runs on goes into the zdb
/// registry, once, for placement to spread replicas over zones; a node
/// without a zone label is left alone.
#[tokio::test]
async fn each_nodes_zone_is_recorded_from_its_kubernetes_node() {
    use crate::reconcile::zones::ZONE_LABEL;

    let harness = bootstrapped(3).await;
    let scheduled = [
        ("worker-a", Some("zone-a")),
        ("worker-b", Some("zone-b")),
        ("worker-c", None),
    ];
    for (ordinal, (node, zone)) in scheduled.into_iter().enumerate() {
        let labels = match zone {
            Some(zone) => json!({ ZONE_LABEL: zone }),
            None => json!({}),
        };
        harness.api.put(
            "",
            "nodes",
            "",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": labels}}),
        );
        harness
            .api
            .edit("", "pods", NS, &harness.names.pod(ordinal as i32), |pod| {
                pod["spec"]["nodeName"] = json!(node);
            });
    }
    let (_, requests, calls) = harness.reconcile().await;
    let zone_calls: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("set_node_zone"))
        .collect();
    assert_eq!(
        zone_calls,
        ["set_node_zone(1, zone-a)", "set_node_zone(2, zone-b)"]
    );
    assert_eq!(
        events(&requests)
            .iter()
            .filter(|reason| *reason == "NodeZoneRecorded")
            .count(),
        2
    );
    let (_, _, calls) = harness.reconcile().await;
    assert!(
        calls.iter().all(|c| !c.starts_with("set_node_zone")),
        "{calls:?}"
    );
}
