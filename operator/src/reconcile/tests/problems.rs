//! What goes wrong on a real cluster, and what the status says about it:
//! a step the API server refuses, pods that do not run, pods that cannot
//! be created, an image typo before the cluster ever started.

use serde_json::json;

use super::lifecycle::put_claims;
use super::*;
use crate::crd::Phase;
use crate::testing::statefulset_controller::{self, set_waiting};

#[tokio::test]
async fn a_volume_that_cannot_grow_is_reported_and_the_other_steps_go_on() {
    let harness = bootstrapped(3).await;
    put_claims(&harness, "fixed-size", false);
    harness
        .edit_spec(|spec| spec["storage"]["size"] = json!("20Gi"))
        .await;
    harness.placement.running.lock().expect("lock").clear();

    let (_, requests, _) = harness.reconcile().await;
    let cluster = harness.stored_cluster();
    assert_eq!(
        condition(&cluster, status::DEGRADED),
        ("True".into(), status::VOLUME_EXPANSION_FAILED.into())
    );
    let message = condition_message(&cluster, status::DEGRADED);
    assert!(
        message.starts_with("cannot grow data-db-0 to 20Gi: persistentvolumeclaims \"data-db-0\" is forbidden: only dynamically provisioned pvc can be resized"),
        "{message}"
    );
    assert!(
        message.contains("data-db-2"),
        "every claim is named: {message}"
    );
    let status = cluster.status.as_ref().expect("status");
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(status.observed_generation, cluster.metadata.generation);
    // One Warning per claim, with the API server's words.
    let warned = warnings(&requests);
    assert_eq!(warned.len(), 3, "{warned:?}");
    assert!(warned
        .iter()
        .all(|(reason, _)| reason == status::VOLUME_EXPANSION_FAILED));
    // The rest of the pass happened: the StatefulSet was applied and the
    // placement driver still runs.
    assert!(applied(&requests, "statefulsets")
        .iter()
        .all(|r| r.code == 200));
    assert!(!applied(&requests, "statefulsets").is_empty());
    assert_eq!(harness.placement.running(), vec!["prod/db".to_owned()]);

    // The next pass finds the same problems: no new Warning, same status.
    let (_, requests, _) = harness.reconcile().await;
    assert!(warnings(&requests).is_empty(), "{:?}", warnings(&requests));
    assert!(applied(&requests, "zdbclusters/status").is_empty());
}

#[tokio::test]
async fn a_crash_looping_pod_during_bootstrap_is_named_with_its_reason() {
    let harness = Harness::new(cluster(3, "zdb:v1")).await;
    harness.reconcile().await;
    statefulset_controller::sync(&harness.api, NS, NAME);
    set_waiting(
        &harness.api,
        NS,
        "db-0",
        "CrashLoopBackOff",
        "back-off 40s restarting failed container=zdb-node",
        Some((
            1,
            r#"{"level":"ERROR","fields":{"message":"data directory /var/lib/zdb/data belongs to cluster prod-db-uid-0, not prod-db-uid-1"}}"#,
        )),
    );

    let (_, requests, _) = harness.reconcile().await;
    let cluster = harness.stored_cluster();
    assert_eq!(
        condition(&cluster, status::DEGRADED),
        ("True".into(), status::POD_FAILING.into())
    );
    let message = condition_message(&cluster, status::DEGRADED);
    assert!(
        message.starts_with("pod db-0: CrashLoopBackOff: back-off 40s"),
        "{message}"
    );
    assert!(message.contains("last exit code 1"), "{message}");
    assert!(
        message.contains("belongs to cluster prod-db-uid-0"),
        "{message}"
    );
    assert_eq!(
        condition(&cluster, status::PROGRESSING),
        ("True".into(), status::BOOTSTRAPPING.into())
    );
    assert_eq!(
        warnings(&requests),
        [(status::POD_FAILING.to_owned(), message)]
    );
}

#[tokio::test]
async fn a_pod_the_statefulset_cannot_create_is_named_with_the_refusal() {
    // Made before the CRD refused names longer than 52 characters: the
    // StatefulSet is accepted, its pods are not (their revision label
    // would pass 63 characters).
    let name = "orders-eu-west-1-production-primary-cluster-number-07";
    assert_eq!(name.len(), 53);
    let (client, api) = FakeApi::start();
    api.namespace(NS, json!({}));
    let mut object = cluster(3, "zdb:v1");
    object["metadata"]["name"] = json!(name);
    object["metadata"]["finalizers"] = json!([FINALIZER]);
    api.put("zdb.io", "zdbclusters", NS, object);
    let harness = Harness::around(client, api, name);

    harness.reconcile().await;
    statefulset_controller::sync(&harness.api, NS, name);
    assert!(harness.api.list("", "pods", NS).is_empty());
    let (_, requests, _) = harness.reconcile().await;
    let cluster = harness.stored_cluster();
    assert_eq!(
        condition(&cluster, status::DEGRADED),
        ("True".into(), status::POD_NOT_CREATED.into())
    );
    let message = condition_message(&cluster, status::DEGRADED);
    assert!(
        message.starts_with(&format!("pod {name}-0 cannot be created: create Pod {name}-0 in StatefulSet {name} failed error:")),
        "{message}"
    );
    assert!(
        message.contains("must be no more than 63 characters"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pod {name}-2 cannot be created")),
        "{message}"
    );
    // The Events were read with a selector on this StatefulSet only.
    let read = requests
        .iter()
        .find(|r| r.group.is_empty() && r.resource == "events")
        .expect("the StatefulSet's Events are read");
    assert_eq!(read.verb, "list");
}

#[tokio::test]
async fn an_image_typo_before_bootstrap_is_fixed_by_fixing_the_spec() {
    let harness = Harness::new(cluster(3, "zdb:tpyo")).await;
    harness.reconcile().await;
    statefulset_controller::sync(&harness.api, NS, NAME);
    for pod in ["db-0", "db-1", "db-2"] {
        set_waiting(
            &harness.api,
            NS,
            pod,
            "ImagePullBackOff",
            "Back-off pulling image \"zdb:tpyo\"",
            None,
        );
    }
    harness.reconcile().await;
    let cluster = harness.stored_cluster();
    let message = condition_message(&cluster, status::DEGRADED);
    assert!(
        message.starts_with("pod db-0: ImagePullBackOff: Back-off pulling image \"zdb:tpyo\""),
        "{message}"
    );
    let old_revision = harness.api.get("", "pods", NS, "db-0").expect("pod")["metadata"]["labels"]
        ["controller-revision-hash"]
        .clone();

    // The fix applies at once: no partition held at the top waiting for a
    // cluster that never answered.
    harness
        .edit_spec(|spec| spec["image"] = json!("zdb:v1"))
        .await;
    harness.reconcile().await;
    assert_eq!(harness.partition(), 0);
    statefulset_controller::sync(&harness.api, NS, NAME);

    // The pods on the broken template go (the StatefulSet controller would
    // wait for each to become ready first, which they cannot).
    let (_, requests, _) = harness.reconcile().await;
    let deleted: Vec<&str> = requests
        .iter()
        .filter(|r| r.verb == "delete" && r.resource == "pods")
        .filter_map(|r| r.name.as_deref())
        .collect();
    assert_eq!(deleted, ["db-0", "db-1", "db-2"]);
    assert_eq!(events(&requests), ["StuckPodDeleted"; 3]);
    statefulset_controller::sync(&harness.api, NS, NAME);
    for pod in ["db-0", "db-1", "db-2"] {
        let pod = harness.api.get("", "pods", NS, pod).expect("recreated");
        assert_eq!(pod["spec"]["containers"][0]["image"], "zdb:v1");
        assert_ne!(
            pod["metadata"]["labels"]["controller-revision-hash"],
            old_revision
        );
    }
}
