//! The status the reconciler reports: phase, counts, per-node summary, and
//! the `Available`, `Progressing` and `Degraded` conditions in the
//! Kubernetes convention (a condition's transition time changes only when
//! its status does, so an unchanged cluster gets an unchanged status).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::admin::ClusterView;
use crate::crd::{NodeSummary, Phase, ZdbClusterStatus};
use crate::names::ClusterNames;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// What one reconcile pass found and decided, for the status.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub cluster_id: Option<String>,
    pub replicas: i32,
    pub ready_replicas: i32,
    pub partition: Option<i32>,
    pub view: Option<&'a ClusterView>,
    /// (reason, message) of what is in progress, if anything.
    pub progressing: Option<(&'static str, String)>,
    /// (reason, message) of what is wrong, if anything.
    pub degraded: Option<(&'static str, String)>,
}

fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// Whether every range has a majority of reachable voters.
fn ranges_without_quorum(view: &ClusterView) -> Vec<u64> {
    view.ranges
        .iter()
        .filter(|range| {
            let live = range
                .voters
                .iter()
                .filter(|voter| view.node(**voter).is_some_and(|node| node.reachable))
                .count();
            live < range.voters.len() / 2 + 1
        })
        .map(|range| range.range_id)
        .collect()
}

pub fn status(
    previous: Option<&ZdbClusterStatus>,
    names: &ClusterNames,
    observed: &Observed<'_>,
    now: Timestamp,
) -> ZdbClusterStatus {
    let previous_conditions = previous.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    let nodes: Vec<NodeSummary> = observed
        .view
        .map(|view| {
            let mut nodes: Vec<NodeSummary> = view
                .nodes
                .iter()
                .map(|node| NodeSummary {
                    node_id: node.node_id,
                    pod: names
                        .ordinal_of_address(&node.address)
                        .map(|ordinal| names.pod(ordinal))
                        .unwrap_or_else(|| node.address.clone()),
                    state: if node.reachable {
                        node.state.as_str().to_owned()
                    } else {
                        format!("{} (unreachable)", node.state.as_str())
                    },
                    replicas: node.replicas,
                    leaders: node.leaders,
                })
                .collect();
            nodes.sort_by_key(|node| node.node_id);
            nodes
        })
        .unwrap_or_default();

    let (available, available_reason, available_message) = match observed.view {
        None => (
            false,
            "ClusterUnreachable",
            "no node answers the admin API".to_owned(),
        ),
        Some(view) => match ranges_without_quorum(view).as_slice() {
            [] => (
                true,
                "QuorumAvailable",
                format!(
                    "{} ranges on {} nodes, each with a live quorum",
                    view.ranges.len(),
                    view.nodes.len()
                ),
            ),
            lost => (
                false,
                "QuorumLost",
                format!("ranges without a live quorum: {lost:?}"),
            ),
        },
    };
    let generation = observed.generation;
    let conditions = vec![
        condition(
            previous_conditions,
            AVAILABLE,
            available,
            available_reason,
            available_message,
            generation,
            now,
        ),
        match &observed.progressing {
            Some((reason, message)) => condition(
                previous_conditions,
                PROGRESSING,
                true,
                reason,
                message.clone(),
                generation,
                now,
            ),
            None => condition(
                previous_conditions,
                PROGRESSING,
                false,
                "Stable",
                "the cluster matches the spec".into(),
                generation,
                now,
            ),
        },
        match &observed.degraded {
            Some((reason, message)) => condition(
                previous_conditions,
                DEGRADED,
                true,
                reason,
                message.clone(),
                generation,
                now,
            ),
            None => condition(
                previous_conditions,
                DEGRADED,
                false,
                "Healthy",
                "nothing is wrong".into(),
                generation,
                now,
            ),
        },
    ];
    let phase = if observed.degraded.is_some() {
        Phase::Degraded
    } else if observed.cluster_id.is_none() {
        Phase::Bootstrapping
    } else {
        match observed.progressing.as_ref().map(|(reason, _)| *reason) {
            Some(reason) if reason == ROLLING_UPDATE => Phase::Upgrading,
            Some(_) => Phase::Scaling,
            None if available => Phase::Running,
            None => Phase::Degraded,
        }
    };
    ZdbClusterStatus {
        observed_generation: generation,
        phase: Some(phase),
        cluster_id: observed.cluster_id.clone(),
        replicas: observed.replicas,
        ready_replicas: observed.ready_replicas,
        ranges: observed
            .view
            .map_or(previous.map_or(0, |s| s.ranges), |view| {
                view.ranges.len() as u64
            }),
        partition: observed.partition,
        nodes,
        conditions,
    }
}

pub const ROLLING_UPDATE: &str = "RollingUpdate";
pub const SCALING: &str = "Scaling";
pub const BOOTSTRAPPING: &str = "Bootstrapping";
