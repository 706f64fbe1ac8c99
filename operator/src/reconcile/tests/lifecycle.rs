//! Bootstrap, scale, upgrade, pause and volumes, pass by pass.

use serde_json::{json, Value};

use super::*;
use crate::crd::Phase;
use crate::testing::Recorded;

#[tokio::test]
async fn first_reconcile_creates_every_object_with_an_owner() {
    let harness = Harness::new(cluster(3, "zdb:v1")).await;
    let (_, requests, calls) = harness.reconcile().await;
    assert!(calls.is_empty(), "no cluster to talk to yet: {calls:?}");

    for (group, resource, name) in [
        ("", "services", "db-nodes"),
        ("", "services", "db"),
        ("", "configmaps", "db-config"),
        ("policy", "poddisruptionbudgets", "db"),
        ("apps", "statefulsets", "db"),
    ] {
        let object = harness
            .api
            .get(group, resource, NS, name)
            .unwrap_or_else(|| panic!("{resource}/{name} applied"));
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ZdbCluster");
        assert_eq!(owner["uid"], "uid-1");
        assert_eq!(owner["controller"], true);
    }
    // Every write is a server-side apply under the one field manager; the
    // ones that created their object were authorized as create and patch.
    for request in requests
        .iter()
        .filter(|r| r.verb == "patch" && r.resource != "events")
    {
        assert_eq!(
            request.body.as_ref().map(|b| b["kind"].is_string()),
            Some(true)
        );
    }
    for resource in [
        "services",
        "configmaps",
        "poddisruptionbudgets",
        "statefulsets",
    ] {
        let creates: Vec<&Recorded> = applied(&requests, resource);
        assert!(!creates.is_empty());
        for request in creates {
            assert_eq!(request.authorized, ["patch", "create"], "{request:?}");
            assert_eq!(request.code, 201);
        }
    }
    let sts = harness.statefulset();
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["serviceName"], "db-nodes");
    assert_eq!(
        sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"],
        0
    );
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "zdb:v1");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "10Gi"
    );
    let headless = harness
        .api
        .get("", "services", NS, "db-nodes")
        .expect("headless");
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let pdb = harness
        .api
        .get("policy", "poddisruptionbudgets", NS, "db")
        .expect("pdb");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    let config = harness
        .api
        .get("", "configmaps", NS, "db-config")
        .expect("config");
    assert_eq!(config["data"]["bootstrapped"], "false");
    assert_eq!(config["data"]["cluster-id"], "prod-db-uid-1");
    assert_eq!(
        config["data"]["join-seeds"],
        "db-0.db-nodes.prod.svc:7700,db-1.db-nodes.prod.svc:7700,db-2.db-nodes.prod.svc:7700,db.prod.svc:7700"
    );

    assert_eq!(events(&requests), vec!["Created"]);
    let cluster = harness.stored_cluster();
    let status = cluster.status.as_ref().expect("status applied");
    assert_eq!(status.phase, Some(Phase::Bootstrapping));
    assert_eq!(status.cluster_id, None);
    assert_eq!(
        status.selector.as_deref(),
        Some("app.kubernetes.io/component=node,app.kubernetes.io/instance=db,app.kubernetes.io/name=zdb")
    );
    assert_eq!(
        condition(&cluster, status::PROGRESSING),
        ("True".into(), "Bootstrapping".into())
    );
    assert_eq!(condition(&cluster, status::AVAILABLE).0, "False");
    assert!(
        harness.placement.running().is_empty(),
        "no placement before bootstrap"
    );
}

#[tokio::test]
async fn a_second_reconcile_changes_nothing() {
    let harness = Harness::new(cluster(3, "zdb:v1")).await;
    let (_, first, _) = harness.reconcile().await;
    let (_, second, calls) = harness.reconcile().await;
    for resource in [
        "services",
        "configmaps",
        "poddisruptionbudgets",
        "statefulsets",
    ] {
        let bodies = |requests: &[Recorded]| -> Vec<Option<Value>> {
            applied(requests, resource)
                .iter()
                .map(|r| r.body.clone())
                .collect()
        };
        assert_eq!(
            bodies(&first),
            bodies(&second),
            "{resource} applied differently"
        );
    }
    assert!(
        events(&second).is_empty(),
        "no new action: {:?}",
        events(&second)
    );
    assert!(
        applied(&second, "zdbclusters/status").is_empty(),
        "status unchanged"
    );
    assert!(calls.is_empty());

    // The same once the cluster runs.
    let harness = bootstrapped(3).await;
    let (_, first, _) = harness.reconcile().await;
    let (_, second, calls) = harness.reconcile().await;
    assert_eq!(first, second);
    assert!(events(&second).is_empty());
    assert!(applied(&second, "zdbclusters/status").is_empty());
    assert!(
        calls.is_empty(),
        "no admin action on a settled cluster: {calls:?}"
    );
}

#[tokio::test]
async fn bootstrap_is_recorded_once_and_placement_starts() {
    let harness = bootstrapped(3).await;
    let cluster = harness.stored_cluster();
    let status = cluster.status.as_ref().expect("status");
    assert_eq!(status.cluster_id.as_deref(), Some("prod-db-uid-1"));
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(status.ready_replicas, 3);
    assert_eq!(status.ranges, 3);
    assert_eq!(status.nodes.len(), 3);
    assert_eq!(status.nodes[2].pod, "db-2");
    assert_eq!(
        condition(&cluster, status::AVAILABLE),
        ("True".into(), "QuorumAvailable".into())
    );
    assert_eq!(
        condition(&cluster, status::PROGRESSING),
        ("False".into(), "Stable".into())
    );
    assert_eq!(condition(&cluster, status::DEGRADED).0, "False");
    let config = harness
        .api
        .get("", "configmaps", NS, "db-config")
        .expect("config");
    assert_eq!(config["data"]["bootstrapped"], "true");
    let running = harness.placement.running.lock().expect("lock").clone();
    let placement = running.get("prod/db").expect("placement driver runs");
    assert_eq!(placement.settings.replication_factor, 3);
    assert_eq!(placement.endpoints, harness.names.node_addresses(3));

    // A cluster that stops answering keeps its recorded id and bootstrap.
    harness.zdb.set_view(None);
    harness.reconcile().await;
    let cluster = harness.stored_cluster();
    assert_eq!(
        cluster
            .status
            .as_ref()
            .and_then(|s| s.cluster_id.as_deref()),
        Some("prod-db-uid-1")
    );
    assert_eq!(
        condition(&cluster, status::AVAILABLE),
        ("False".into(), "ClusterUnreachable".into())
    );
    let config = harness
        .api
        .get("", "configmaps", NS, "db-config")
        .expect("config");
    assert_eq!(config["data"]["bootstrapped"], "true");
}

#[tokio::test]
async fn scale_down_waits_for_the_drain_before_shrinking() {
    let harness = bootstrapped(4).await;
    harness.edit_spec(|spec| spec["replicas"] = json!(3)).await;

    let (_, requests, calls) = harness.reconcile().await;
    assert_eq!(calls, vec!["set_node_state(4, Draining)"]);
    assert_eq!(events(&requests), vec!["NodeDraining"]);
    assert_eq!(harness.sts_replicas(), 4);
    let cluster = harness.stored_cluster();
    assert_eq!(
        condition(&cluster, status::PROGRESSING),
        ("True".into(), "Scaling".into())
    );
    assert_eq!(
        cluster.status.as_ref().and_then(|s| s.phase.clone()),
        Some(Phase::Scaling)
    );

    // Still holding replicas: nothing more happens, the StatefulSet stays.
    harness.zdb.edit(|view| view.nodes[3].replicas = 1);
    let (_, requests, calls) = harness.reconcile().await;
    assert!(calls.is_empty());
    assert!(events(&requests).is_empty());
    assert_eq!(harness.sts_replicas(), 4);

    // The placement driver moved everything away: decommission, then shrink.
    harness.zdb.edit(|view| view.nodes[3].replicas = 0);
    let (_, requests, calls) = harness.reconcile().await;
    assert_eq!(calls, vec!["set_node_state(4, Decommissioned)"]);
    assert_eq!(events(&requests), vec!["NodeDecommissioned"]);
    assert_eq!(harness.sts_replicas(), 4);

    let (_, requests, calls) = harness.reconcile().await;
    assert!(calls.is_empty());
    assert_eq!(events(&requests), vec!["Scaled"]);
    assert_eq!(harness.sts_replicas(), 3);
}

#[tokio::test]
async fn raising_replicas_cancels_a_pending_drain() {
    let harness = bootstrapped(4).await;
    harness.edit_spec(|spec| spec["replicas"] = json!(3)).await;
    harness.reconcile().await;
    harness.edit_spec(|spec| spec["replicas"] = json!(4)).await;
    let (_, requests, calls) = harness.reconcile().await;
    assert_eq!(calls, vec!["set_node_state(4, Active)"]);
    assert_eq!(events(&requests), vec!["DrainCancelled"]);
    assert_eq!(harness.sts_replicas(), 4);
}

#[tokio::test]
async fn scale_below_the_replication_factor_is_refused() {
    let harness = bootstrapped(3).await;
    harness.edit_spec_unchecked(|spec| spec["replicas"] = json!(2));
    let (_, _, calls) = harness.reconcile().await;
    assert!(calls.is_empty());
    assert_eq!(harness.sts_replicas(), 3);
    let cluster = harness.stored_cluster();
    assert_eq!(
        condition(&cluster, status::DEGRADED),
        ("True".into(), "InvalidSpec".into())
    );
}

#[tokio::test]
async fn an_upgrade_moves_the_partition_one_pod_at_a_time() {
    let harness = bootstrapped(3).await;
    harness
        .edit_spec(|spec| spec["image"] = json!("zdb:v2"))
        .await;

    // New template: the partition starts at the top, no pod restarts.
    let (_, requests, _) = harness.reconcile().await;
    assert_eq!(events(&requests), vec!["RollingUpdateStarted"]);
    assert_eq!(harness.partition(), 3);
    assert_eq!(
        harness.statefulset()["spec"]["template"]["spec"]["containers"][0]["image"],
        "zdb:v2"
    );
    harness.settle_statefulset("r1", "r2");

    // Pod 2's node (3) leads range 3: its leadership moves first.
    let (_, requests, calls) = harness.reconcile().await;
    assert_eq!(calls, vec!["transfer_leader(3, 1)"]);
    assert_eq!(events(&requests), vec!["LeaderMoved"]);
    assert_eq!(harness.partition(), 3);

    let (_, requests, calls) = harness.reconcile().await;
    assert!(calls.is_empty());
    assert_eq!(events(&requests), vec!["PodRestarting"]);
    assert_eq!(harness.partition(), 2);
    let cluster = harness.stored_cluster();
    assert_eq!(
        cluster.status.as_ref().and_then(|s| s.phase.clone()),
        Some(Phase::Upgrading)
    );

    // Pod 2 is not back yet: the partition waits.
    harness.settle_statefulset("r1", "r2");
    harness.put_pod(2, "r2", false, None);
    harness.reconcile().await;
    assert_eq!(harness.partition(), 2);

    // Pod 2 is ready on r2, but pod 0 is down: restarting pod 1 now would
    // leave range 2 (voters 2, 3, 1) without a quorum.
    harness.put_pod(2, "r2", true, None);
    harness.put_pod(0, "r1", false, None);
    let (_, _, calls) = harness.reconcile().await;
    assert!(calls.is_empty());
    assert_eq!(harness.partition(), 2);
    let cluster = harness.stored_cluster();
    let progressing = cluster
        .status
        .as_ref()
        .expect("status")
        .conditions
        .iter()
        .find(|c| c.type_ == status::PROGRESSING)
        .expect("condition")
        .message
        .clone();
    assert!(
        progressing.contains("would lose its quorum without db-1"),
        "{progressing}"
    );

    // Pod 0 is back; pod 1's node leads range 2: it moves, then pod 1 restarts.
    harness.put_pod(0, "r1", true, None);
    let (_, _, calls) = harness.reconcile().await;
    assert_eq!(calls, vec!["transfer_leader(2, 3)"]);
    harness.reconcile().await;
    assert_eq!(harness.partition(), 1);
    harness.settle_statefulset("r1", "r2");

    // Node 1 leads range 1, and range 3 since pod 2 restarted.
    harness.put_pod(1, "r2", true, None);
    let (_, _, calls) = harness.reconcile().await;
    assert_eq!(
        calls,
        vec!["transfer_leader(1, 2)", "transfer_leader(3, 3)"]
    );
    harness.reconcile().await;
    assert_eq!(harness.partition(), 0);

    harness.put_pod(0, "r2", true, None);
    harness.settle_statefulset("r2", "r2");
    harness.reconcile().await;
    let cluster = harness.stored_cluster();
    assert_eq!(
        condition(&cluster, status::PROGRESSING),
        ("False".into(), "Stable".into())
    );
    assert_eq!(
        cluster.status.as_ref().and_then(|s| s.phase.clone()),
        Some(Phase::Running)
    );
}

#[tokio::test]
async fn a_pod_that_never_becomes_ready_stops_the_rollout_until_the_spec_is_fixed() {
    let harness = bootstrapped(3).await;
    harness
        .edit_spec(|spec| spec["image"] = json!("zdb:broken"))
        .await;
    harness.reconcile().await;
    harness.settle_statefulset("r1", "r2");
    harness.reconcile().await; // leadership of range 3 moves
    harness.reconcile().await; // partition 3 -> 2
    assert_eq!(harness.partition(), 2);
    harness.settle_statefulset("r1", "r2");
    harness.put_pod(2, "r2", false, Some("CrashLoopBackOff"));

    let (_, _, calls) = harness.reconcile().await;
    assert!(calls.is_empty());
    assert_eq!(harness.partition(), 2, "the rollout stops");
    let cluster = harness.stored_cluster();
    assert_eq!(
        condition(&cluster, status::DEGRADED),
        ("True".into(), "RolloutBlocked".into())
    );
    assert_eq!(
        cluster.status.as_ref().and_then(|s| s.phase.clone()),
        Some(Phase::Degraded)
    );

    // The fix: a new template restarts the rollout from the top, and the
    // stuck pod is deleted so it comes back from a working template.
    harness
        .edit_spec(|spec| spec["image"] = json!("zdb:v2"))
        .await;
    harness.reconcile().await;
    assert_eq!(harness.partition(), 3);
    harness.settle_statefulset("r1", "r3");
    let (_, requests, _) = harness.reconcile().await;
    assert!(requests
        .iter()
        .any(|r| r.verb == "delete" && r.resource == "pods" && r.name.as_deref() == Some("db-2")));
    assert!(events(&requests).contains(&"StuckPodDeleted".to_owned()));
    let cluster = harness.stored_cluster();
    assert_eq!(condition(&cluster, status::DEGRADED).0, "False");
}

#[tokio::test]
async fn paused_does_nothing() {
    let harness = bootstrapped(4).await;
    harness
        .edit_spec(|spec| {
            spec["paused"] = json!(true);
            spec["replicas"] = json!(3);
            spec["image"] = json!("zdb:v2");
        })
        .await;
    let sts_before = harness.statefulset();
    let (action, requests, calls) = harness.reconcile().await;
    assert_eq!(action, Action::await_change());
    assert!(calls.is_empty());
    assert!(harness.placement.running().is_empty(), "placement stopped");
    // Only the phase is reported, once.
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].resource, "zdbclusters/status");
    assert_eq!(
        harness.stored_cluster().status.and_then(|s| s.phase),
        Some(Phase::Paused)
    );
    let (_, requests, calls) = harness.reconcile().await;
    assert!(requests.is_empty(), "{requests:?}");
    assert!(calls.is_empty());
    assert_eq!(harness.statefulset(), sts_before);
}

#[tokio::test]
async fn a_larger_storage_size_grows_the_claims_not_the_template() {
    let harness = bootstrapped(3).await;
    put_claims(&harness, "expandable", true);
    let template_before = harness.statefulset()["spec"]["volumeClaimTemplates"].clone();
    harness
        .edit_spec(|spec| spec["storage"]["size"] = json!("20Gi"))
        .await;
    let (_, requests, _) = harness.reconcile().await;
    assert_eq!(
        harness.statefulset()["spec"]["volumeClaimTemplates"],
        template_before
    );
    assert_eq!(events(&requests), vec!["VolumeExpanded"; 3]);
    for ordinal in 0..3 {
        let claim = harness
            .api
            .get(
                "",
                "persistentvolumeclaims",
                NS,
                &format!("data-db-{ordinal}"),
            )
            .expect("claim");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "20Gi");
    }
    // Done once: the next pass finds every claim at the new size.
    let (_, requests, _) = harness.reconcile().await;
    assert!(events(&requests).is_empty());
}

#[tokio::test]
async fn scale_up_grows_the_statefulset_and_hands_the_new_nodes_to_placement() {
    let harness = bootstrapped(3).await;
    harness.edit_spec(|spec| spec["replicas"] = json!(5)).await;
    let (_, requests, calls) = harness.reconcile().await;
    assert!(calls.is_empty(), "new pods join by themselves: {calls:?}");
    assert_eq!(events(&requests), vec!["Scaled"]);
    assert_eq!(harness.sts_replicas(), 5);
    let running = harness.placement.running.lock().expect("lock").clone();
    assert_eq!(
        running
            .get("prod/db")
            .map(|config| config.endpoints.clone()),
        Some(harness.names.node_addresses(5)),
        "the placement driver reaches the new nodes"
    );
    let cluster = harness.stored_cluster();
    assert_eq!(
        condition(&cluster, status::PROGRESSING),
        ("True".into(), "Scaling".into())
    );
    assert_eq!(cluster.status.as_ref().map(|s| s.replicas), Some(5));

    // The new pods are ready and their nodes joined: the scale-up is done.
    harness.settle_statefulset("r1", "r1");
    for ordinal in 3..5 {
        harness.put_pod(ordinal, "r1", true, None);
    }
    harness.running_cluster(5);
    let (_, requests, _) = harness.reconcile().await;
    assert!(events(&requests).is_empty());
    let cluster = harness.stored_cluster();
    assert_eq!(condition(&cluster, status::PROGRESSING).0, "False");
    assert_eq!(cluster.status.as_ref().map(|s| s.ready_replicas), Some(5));
}

/// The claims of pods 0..3, as the StatefulSet controller made them, of
/// StorageClass `class` (which may allow volume expansion or not).
pub fn put_claims(harness: &Harness, class: &str, expandable: bool) {
    harness.api.put(
        "storage.k8s.io",
        "storageclasses",
        "",
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
               "metadata": {"name": class}, "provisioner": "csi.example.com",
               "allowVolumeExpansion": expandable}),
    );
    for ordinal in 0..3 {
        harness.api.put(
            "",
            "persistentvolumeclaims",
            NS,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": format!("data-db-{ordinal}"), "namespace": NS,
                                "labels": harness.names.selector_labels()},
                   "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                            "volumeMode": "Filesystem",
                            "resources": {"requests": {"storage": "10Gi"}}},
                   "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}}}),
        );
    }
}
