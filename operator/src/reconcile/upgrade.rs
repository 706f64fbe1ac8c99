//! Rolling upgrades, pure: where the StatefulSet's rolling-update partition
//! goes next, and what has to happen first.
//!
//! A new pod template (image or any other field) starts with the partition
//! at the top, so no pod restarts by itself. Then, one pod at a time from
//! the highest ordinal: its leaderships move to other voters, and the
//! partition is lowered past it only when every range it is a voter of
//! keeps a quorum of live voters without it. The next pod waits until the
//! restarted one is ready on the new template.
//!
//! No deadlock on a pod that never becomes ready: such a pod stops the
//! rollout with a blocked reason (a `Degraded` condition). When the spec is
//! corrected, the new template starts a new rollout, and a stuck pod that
//! runs a template it should not run is deleted, so the StatefulSet
//! recreates it from the right one (the StatefulSet controller itself waits
//! forever for a broken pod).

use std::collections::BTreeMap;

use crate::admin::ClusterView;
use crate::names::ClusterNames;
use crate::reconcile::scale::node_of_ordinal;

/// A pod of the cluster as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub ordinal: i32,
    pub name: String,
    /// The StatefulSet revision it was created from.
    pub revision: Option<String>,
    pub ready: bool,
    /// Why it will not become ready by itself (crash loop, image pull
    /// failure, ...), if that is the case.
    pub stuck: Option<String>,
    pub terminating: bool,
}

/// The StatefulSet that exists, as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatefulSetInfo {
    pub replicas: i32,
    pub partition: i32,
    /// The template hash the operator applied last.
    pub template_hash: Option<String>,
    pub update_revision: Option<String>,
    pub current_revision: Option<String>,
    /// The StatefulSet controller has seen the latest spec.
    pub status_current: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderTransfer {
    pub range_id: u64,
    pub from: u64,
    pub to: u64,
    pub pod: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RolloutPlan {
    pub partition: i32,
    pub transfers: Vec<LeaderTransfer>,
    /// Pods to delete so the StatefulSet recreates them: (pod, why).
    pub delete_pods: Vec<(String, String)>,
    /// The pod this step restarts (the partition moved past it).
    pub restarting: Option<String>,
    pub in_progress: bool,
    pub waiting: Option<String>,
    /// Why the rollout cannot go on (a Degraded condition).
    pub blocked: Option<String>,
}

pub fn plan(
    existing: Option<&StatefulSetInfo>,
    desired_hash: &str,
    replicas: i32,
    pods: &[PodInfo],
    view: Option<&ClusterView>,
    names: &ClusterNames,
) -> RolloutPlan {
    let Some(sts) = existing else {
        return RolloutPlan::default();
    };
    if sts.template_hash.as_deref() != Some(desired_hash) {
        return RolloutPlan {
            partition: replicas,
            in_progress: true,
            waiting: Some("new pod template: rolling the pods one at a time".into()),
            ..RolloutPlan::default()
        };
    }
    let mut plan = RolloutPlan {
        partition: sts.partition,
        ..RolloutPlan::default()
    };
    let (Some(update), true) = (sts.update_revision.as_deref(), sts.status_current) else {
        plan.in_progress = sts.partition > 0;
        plan.waiting = Some("waiting for the StatefulSet controller".into());
        return plan;
    };
    let partition = sts.partition.min(replicas);
    let by_ordinal: BTreeMap<i32, &PodInfo> = pods
        .iter()
        .filter(|pod| pod.ordinal < replicas)
        .map(|pod| (pod.ordinal, pod))
        .collect();

    // A stuck pod on a template it should not run blocks the StatefulSet
    // controller forever: delete it so it comes back from the right one.
    for pod in by_ordinal.values() {
        let expected = if pod.ordinal >= partition {
            Some(update)
        } else {
            sts.current_revision.as_deref()
        };
        if let Some(stuck) = &pod.stuck {
            if !pod.ready && !pod.terminating && pod.revision.as_deref() != expected {
                plan.delete_pods.push((
                    pod.name.clone(),
                    format!("{stuck} on a template it should not run"),
                ));
            }
        }
    }

    // Every pod past the partition must be on the new template and ready
    // before the next one restarts.
    for ordinal in (partition..replicas).rev() {
        let Some(pod) = by_ordinal.get(&ordinal) else {
            plan.in_progress = true;
            plan.waiting = Some(format!(
                "waiting for pod {} to be created",
                names.pod(ordinal)
            ));
            return plan;
        };
        if pod.revision.as_deref() == Some(update) && pod.ready {
            continue;
        }
        plan.in_progress = true;
        match (&pod.stuck, pod.revision.as_deref() == Some(update)) {
            (Some(stuck), true) => {
                plan.blocked = Some(format!(
                    "pod {} does not become ready on the new template ({stuck}); fix the spec to resume",
                    pod.name
                ));
            }
            _ => {
                plan.waiting = Some(format!(
                    "waiting for pod {} to be ready on the new template",
                    pod.name
                ))
            }
        }
        return plan;
    }
    if partition == 0 {
        plan.partition = 0;
        plan.in_progress = sts.current_revision.as_deref() != Some(update);
        return plan;
    }
    plan.in_progress = true;
    let candidate = partition - 1;
    let pod_name = names.pod(candidate);
    if by_ordinal
        .get(&candidate)
        .is_some_and(|pod| pod.revision.as_deref() == Some(update))
    {
        plan.partition = candidate;
        return plan;
    }
    let Some(view) = view else {
        plan.waiting = Some(format!(
            "cannot reach the cluster to check that {pod_name} may restart"
        ));
        return plan;
    };
    let Some(node) = node_of_ordinal(view, names, candidate) else {
        plan.partition = candidate;
        plan.restarting = Some(pod_name);
        return plan;
    };
    let live = |node_id: u64| {
        view.node(node_id).is_some_and(|node| {
            node.reachable
                && names
                    .ordinal_of_address(&node.address)
                    .and_then(|ordinal| by_ordinal.get(&ordinal))
                    .is_some_and(|pod| pod.ready && !pod.terminating)
        })
    };
    for range in view
        .ranges
        .iter()
        .filter(|r| r.voters.contains(&node.node_id))
    {
        let others_live = range
            .voters
            .iter()
            .filter(|&&voter| voter != node.node_id && live(voter))
            .count();
        let quorum = range.voters.len() / 2 + 1;
        if others_live < quorum {
            plan.waiting = Some(format!(
                "range {} would lose its quorum without {pod_name} ({others_live} of {} voters live)",
                range.range_id,
                range.voters.len()
            ));
            return plan;
        }
        if range.leader == node.node_id {
            if let Some(&to) = range
                .voters
                .iter()
                .find(|&&voter| voter != node.node_id && live(voter))
            {
                plan.transfers.push(LeaderTransfer {
                    range_id: range.range_id,
                    from: node.node_id,
                    to,
                    pod: pod_name.clone(),
                });
            }
        }
    }
    if !plan.transfers.is_empty() || node.leaders > 0 {
        plan.waiting = Some(format!("moving the leaderships off {pod_name}"));
        return plan;
    }
    plan.partition = candidate;
    plan.restarting = Some(pod_name);
    plan
}
