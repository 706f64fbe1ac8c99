//! Placement reports as Kubernetes Events on their cluster, each kind of
//! step with its own reason (`RangeSplit`, `ReplicaAdded`, ...; failures as
//! Warnings: `SplitFailed`, ...). kube-runtime folds Events of one
//! Recorder with the same reason and action into a series that keeps the
//! first note, so each distinct message gets its own Recorder: a repeat of
//! the same message counts up its series, a different message is an Event
//! of its own. A failure that repeats every round is published at most
//! once a minute.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use zdb_placement::driver::Step;

use crate::metrics::Metrics;
use crate::placement::{ClusterKey, PlacementReport};

/// kube-runtime forgets a series after six minutes; so do we.
const FORGET_AFTER: Duration = Duration::from_secs(6 * 60);
/// How often the same failure is published again.
const FAILURE_REPEAT: Duration = Duration::from_secs(60);

/// The Event reason and action of a step, done or failed.
pub fn reason(step: Step, failed: bool) -> (&'static str, &'static str) {
    match (step, failed) {
        (Step::Observe, false) => ("ClusterObserved", "ObserveCluster"),
        (Step::Observe, true) => ("ObserveFailed", "ObserveCluster"),
        (Step::Split, false) => ("RangeSplit", "SplitRange"),
        (Step::Split, true) => ("SplitFailed", "SplitRange"),
        (Step::AddReplica, false) => ("ReplicaAdded", "AddReplica"),
        (Step::AddReplica, true) => ("AddReplicaFailed", "AddReplica"),
        (Step::RemoveReplica, false) => ("ReplicaRemoved", "RemoveReplica"),
        (Step::RemoveReplica, true) => ("RemoveReplicaFailed", "RemoveReplica"),
        (Step::TransferLeader, false) => ("LeaderTransferred", "TransferLeader"),
        (Step::TransferLeader, true) => ("TransferLeaderFailed", "TransferLeader"),
    }
}

struct Published {
    recorder: Recorder,
    last: Instant,
}

/// Publishes placement reports; keeps one Recorder per recent message.
pub struct PlacementEvents {
    client: kube::Client,
    reporter: Reporter,
    recent: HashMap<(ClusterKey, &'static str, String), Published>,
}

impl PlacementEvents {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        PlacementEvents {
            client,
            reporter,
            recent: HashMap::new(),
        }
    }

    /// Publishes `report` as an Event regarding `cluster`.
    pub async fn publish(
        &mut self,
        cluster: &ObjectReference,
        report: &PlacementReport,
        metrics: &Metrics,
    ) {
        let now = Instant::now();
        self.recent
            .retain(|_, published| now.duration_since(published.last) < FORGET_AFTER);
        let (reason, action) = reason(report.step, report.failed);
        let key = (report.cluster.clone(), reason, report.message.clone());
        if let Some(published) = self.recent.get(&key) {
            if report.failed && now.duration_since(published.last) < FAILURE_REPEAT {
                return;
            }
        }
        let published = self.recent.entry(key).or_insert_with(|| Published {
            recorder: Recorder::new(self.client.clone(), self.reporter.clone()),
            last: now,
        });
        published.last = now;
        if report.failed {
            tracing::info!(cluster = %report.cluster, reason, message = %report.message, "placement step failed; the driver retries");
        } else {
            metrics.action(action);
        }
        let event = Event {
            type_: if report.failed {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(crate::reconcile::events::note(&report.message)),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = published.recorder.publish(&event, cluster).await {
            tracing::warn!(%error, reason, "cannot publish a placement event");
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::Resource;
    use serde_json::json;

    use super::*;
    use crate::crd::ZdbCluster;
    use crate::testing::FakeApi;

    fn report(step: Step, message: &str, failed: bool) -> PlacementReport {
        PlacementReport {
            cluster: "prod/db".into(),
            step,
            message: message.into(),
            failed,
        }
    }

    #[tokio::test]
    async fn different_actions_give_readable_events() {
        let (client, api) = FakeApi::start();
        api.namespace("prod", json!({}));
        let cluster: ZdbCluster = serde_json::from_value(json!({
            "apiVersion": "zdb.io/v1alpha1", "kind": "ZdbCluster",
            "metadata": {"name": "db", "namespace": "prod", "uid": "uid-1"},
            "spec": {"replicas": 3, "image": "zdb:1", "storage": {"size": "1Gi"}},
        }))
        .expect("a cluster");
        let reference = cluster.object_ref(&());
        let metrics = Metrics::new().expect("fresh registry");
        let mut events = PlacementEvents::new(
            client,
            Reporter {
                controller: "zdb-operator".into(),
                instance: Some("test".into()),
            },
        );
        for placed in [
            report(
                Step::AddReplica,
                "added a replica of range 1 on node 2",
                false,
            ),
            report(Step::Split, "split range 1 at \"user5\"", false),
            report(
                Step::AddReplica,
                "added a replica of range 3 on node 4",
                false,
            ),
            report(
                Step::AddReplica,
                "added a replica of range 1 on node 2",
                false,
            ),
            report(Step::TransferLeader, "cannot reach node 3", true),
            report(Step::TransferLeader, "cannot reach node 3", true),
        ] {
            events.publish(&reference, &placed, &metrics).await;
        }
        let stored = api.list("events.k8s.io", "events", "prod");
        let mut seen: Vec<(String, String, i64)> = stored
            .iter()
            .map(|event| {
                (
                    event["reason"].as_str().unwrap_or("").to_owned(),
                    event["note"].as_str().unwrap_or("").to_owned(),
                    event["series"]["count"].as_i64().unwrap_or(1),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("RangeSplit".into(), "split range 1 at \"user5\"".into(), 1),
                (
                    "ReplicaAdded".into(),
                    "added a replica of range 1 on node 2".into(),
                    2
                ),
                (
                    "ReplicaAdded".into(),
                    "added a replica of range 3 on node 4".into(),
                    1
                ),
                // The repeated failure within a minute is not published again.
                (
                    "TransferLeaderFailed".into(),
                    "cannot reach node 3".into(),
                    1
                ),
            ]
        );
        assert!(stored.iter().any(|e| e["type"] == "Warning"));
        assert_eq!(metrics.actions_taken("AddReplica"), 3);
    }
}
