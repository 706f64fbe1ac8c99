//! The status the reconciler reports: phase, counts, per-node summary, and
//! the `Available`, `Progressing` and `Degraded` conditions in the
//! Kubernetes convention (a condition's transition time changes only when
//! its status does, so an unchanged cluster gets an unchanged status).
//! `Degraded` names every problem of the pass (a failed step with the API
//! server's message, a pod that does not run and why, a refused spec), so
//! `kubectl describe zdbcluster` says what to fix.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::admin::ClusterView;
use crate::crd::{NodeSummary, Phase, ZdbClusterStatus};
use crate::names::ClusterNames;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// Something wrong that a reconcile pass found: the `Degraded` condition's
/// reason (the first problem's) and message (every problem's), and a
/// Warning Event when it is new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

/// Problem reasons.
pub const INVALID_SPEC: &str = "InvalidSpec";
pub const READ_FAILED: &str = "ReadFailed";
pub const APPLY_FAILED: &str = "ApplyFailed";
pub const VOLUME_EXPANSION_FAILED: &str = "VolumeExpansionFailed";
pub const ADMIN_CALL_FAILED: &str = "AdminCallFailed";
pub const POD_DELETE_FAILED: &str = "PodDeleteFailed";
pub const ROLLOUT_BLOCKED: &str = "RolloutBlocked";
pub const POD_FAILING: &str = "PodFailing";
pub const POD_UNSCHEDULABLE: &str = "PodUnschedulable";
pub const POD_NOT_CREATED: &str = "PodNotCreated";
/// A certificate could not be made or issued, or does not verify.
pub const CERTIFICATE_FAILED: &str = "CertificateFailed";
/// A Secret the spec names is missing, lacks a key or holds what the node
/// cannot use.
pub const SECRET_MISSING: &str = "SecretMissing";

/// The longest message a condition carries (the API's limit is 32768).
const MAX_CONDITION_MESSAGE: usize = 16 * 1024;

/// What one reconcile pass found and decided, for the status.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    pub generation: Option<i64>,
    pub cluster_id: Option<String>,
    pub replicas: i32,
    pub ready_replicas: i32,
    /// The label selector of the cluster's pods.
    pub selector: String,
    pub partition: Option<i32>,
    pub view: Option<&'a ClusterView>,
    /// (reason, message) of what is in progress, if anything.
    pub progressing: Option<(&'static str, String)>,
    /// What is wrong, most important first.
    pub problems: &'a [Problem],
}

/// The `Degraded` condition's message: every problem, in order.
pub fn degraded_message(problems: &[Problem]) -> String {
    let mut message = problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if message.len() > MAX_CONDITION_MESSAGE {
        let mut end = MAX_CONDITION_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(" ...");
    }
    message
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
        match observed.problems.first() {
            Some(first) => condition(
                previous_conditions,
                DEGRADED,
                true,
                first.reason,
                degraded_message(observed.problems),
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
    let phase = if !observed.problems.is_empty() {
        Phase::Degraded
    } else if observed.cluster_id.is_none() {
        Phase::Bootstrapping
    } else {
        match observed.progressing.as_ref().map(|(reason, _)| *reason) {
            Some(reason)
                if reason == ROLLING_UPDATE
                    || reason == RECREATING_STATEFULSET
                    || reason == WAITING_FOR_CERTIFICATES =>
            {
                Phase::Upgrading
            }
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
        selector: Some(observed.selector.clone()),
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
/// An old StatefulSet is deleted (its pods orphaned) to be created again.
pub const RECREATING_STATEFULSET: &str = "RecreatingStatefulSet";
pub const SCALING: &str = "Scaling";
pub const BOOTSTRAPPING: &str = "Bootstrapping";
/// cert-manager has not issued a certificate the pods mount yet.
pub const WAITING_FOR_CERTIFICATES: &str = "WaitingForCertificates";
