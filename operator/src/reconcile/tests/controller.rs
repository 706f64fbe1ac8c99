//! The running controller against the fake API server: watches drive the
//! passes, and a placement action triggers one at once.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::placement::{Placement, PlacementConfig, PlacementReport};
use zdb_placement::driver::Step;

/// Polls `check` until it holds or `within` passes.
async fn eventually(within: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn status_follows_a_split_within_seconds() {
    let harness = bootstrapped(3).await;
    assert_eq!(harness.stored_cluster().status.map(|s| s.ranges), Some(3));
    let passes_before = harness.ctx.metrics.reconciles_total();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (reports, placement_reports) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(crate::controller::run(
        harness.ctx.clone(),
        vec![NS.to_owned()],
        placement_reports,
        stopping,
    ));

    // The controller's first passes (one per watch's first list) run and
    // find nothing to change; then it waits for its idle requeue (30 s)
    // or a reason to look again. Settled: both watches run and every pass
    // begun (each reads the StatefulSet first) has finished.
    eventually(Duration::from_secs(10), "the controller to settle", || {
        let requests = harness.api.requests();
        let watching = ["zdbclusters", "statefulsets"].iter().all(|resource| {
            requests
                .iter()
                .any(|r| r.verb == "watch" && r.resource == *resource)
        });
        let begun = requests
            .iter()
            .filter(|r| r.resource == "statefulsets" && r.verb == "get")
            .count() as u64;
        let finished = harness.ctx.metrics.reconciles_total() - passes_before;
        watching && begun >= 1 && begun == finished
    })
    .await;

    // The placement driver splits range 1; the cluster now has 4 ranges.
    harness.zdb.edit(|view| {
        view.ranges.push(RangeView {
            range_id: 4,
            voters: vec![1, 2, 3],
            leader: 1,
        })
    });
    let split = PlacementReport {
        cluster: "prod/db".into(),
        step: Step::Split,
        message: "split range 1 at \"user5\" into range 4".into(),
        failed: false,
    };
    reports.send(split).expect("the controller listens");

    let within = REQUEUE_IDLE / 6;
    eventually(within, "the status showing the split", || {
        harness.stored_cluster().status.map(|s| s.ranges) == Some(4)
    })
    .await;
    let placement_events: Vec<String> = harness
        .api
        .list("events.k8s.io", "events", NS)
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    assert!(
        placement_events.contains(&"RangeSplit".to_owned()),
        "{placement_events:?}"
    );

    let _ = stop.send(true);
    running.await.expect("the controller stops");
    harness.take();
}

#[tokio::test]
async fn a_driver_whose_cluster_is_gone_is_stopped() {
    let harness = bootstrapped(3).await;
    let ghost = PlacementConfig {
        endpoints: vec!["ghost-0.ghost-nodes.prod.svc:7700".into()],
        tls: None,
        settings: zdb_placement::planner::Settings::default(),
    };
    harness.placement.ensure(&"prod/ghost".to_owned(), ghost);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (reports, placement_reports) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(crate::controller::run(
        harness.ctx.clone(),
        Vec::new(),
        placement_reports,
        stopping,
    ));
    eventually(Duration::from_secs(10), "the controller to watch", || {
        harness.api.requests().iter().any(|r| r.verb == "watch")
    })
    .await;
    reports
        .send(PlacementReport {
            cluster: "prod/ghost".into(),
            step: Step::Observe,
            message: "cannot read the node registry: no node answers".into(),
            failed: true,
        })
        .expect("the controller listens");
    eventually(Duration::from_secs(5), "the ghost driver to stop", || {
        harness.placement.running() == vec!["prod/db".to_owned()]
    })
    .await;
    let _ = stop.send(true);
    running.await.expect("the controller stops");
    harness.take();
}
