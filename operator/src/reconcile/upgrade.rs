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
//!
//! A cluster that serves nothing (not bootstrapped yet, or no pod ready)
//! has nothing a careful rollout protects: a new template applies to every
//! pod at once (an image typo before bootstrap is fixed by fixing the spec).

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

/// Every pod on the new template at once: partition 0, and the pods on
/// another revision deleted so the StatefulSet recreates them (its own
/// rolling update would wait for each to become ready, which they cannot
/// without a quorum).
fn at_once(
    sts: &StatefulSetInfo,
    desired_hash: &str,
    replicas: i32,
    pods: &[PodInfo],
) -> RolloutPlan {
    let mut plan = RolloutPlan::default();
    if sts.template_hash.as_deref() != Some(desired_hash) {
        plan.in_progress = true;
        plan.waiting = Some("no pod serves yet: every pod takes the new template at once".into());
        return plan;
    }
    let (Some(update), true) = (sts.update_revision.as_deref(), sts.status_current) else {
        return plan;
    };
    for pod in pods.iter().filter(|pod| pod.ordinal < replicas) {
        if pod.revision.as_deref() != Some(update) && !pod.terminating {
            plan.delete_pods.push((
                pod.name.clone(),
                "no pod serves yet: it restarts on the new template at once".into(),
            ));
        }
    }
    if !plan.delete_pods.is_empty() {
        plan.in_progress = true;
        plan.waiting = Some("no pod serves yet: every pod takes the new template at once".into());
    }
    plan
}

/// `bootstrapped`: pod 0 has founded the cluster (its id is recorded).
pub fn plan(
    existing: Option<&StatefulSetInfo>,
    desired_hash: &str,
    replicas: i32,
    pods: &[PodInfo],
    view: Option<&ClusterView>,
    names: &ClusterNames,
    bootstrapped: bool,
) -> RolloutPlan {
    let Some(sts) = existing else {
        return RolloutPlan::default();
    };
    let serving = bootstrapped && pods.iter().any(|pod| pod.ready && !pod.terminating);
    if !serving {
        return at_once(sts, desired_hash, replicas, pods);
    }
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

    // No rollout: every pod runs the one revision (new pods of a scale-up
    // are the scaling's business, not the rollout's).
    if partition == 0 && sts.current_revision.as_deref() == Some(update) {
        plan.partition = 0;
        return plan;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{NodeState, NodeView, RangeView};

    fn names() -> ClusterNames {
        ClusterNames::new("db", "ns")
    }

    fn sts(partition: i32, hash: &str, current: &str, update: &str) -> StatefulSetInfo {
        StatefulSetInfo {
            replicas: 3,
            partition,
            template_hash: Some(hash.into()),
            update_revision: Some(update.into()),
            current_revision: Some(current.into()),
            status_current: true,
        }
    }

    fn pod(ordinal: i32, revision: &str, ready: bool, stuck: Option<&str>) -> PodInfo {
        PodInfo {
            ordinal,
            name: names().pod(ordinal),
            revision: Some(revision.into()),
            ready,
            stuck: stuck.map(str::to_owned),
            terminating: false,
        }
    }

    fn view() -> ClusterView {
        ClusterView {
            cluster_id: Some("c".into()),
            nodes: (0..3)
                .map(|ordinal| NodeView {
                    node_id: ordinal as u64 + 1,
                    address: names().node_address(ordinal),
                    state: NodeState::Active,
                    reachable: true,
                    replicas: 1,
                    leaders: u64::from(ordinal == 0),
                    zone: String::new(),
                })
                .collect(),
            ranges: vec![RangeView {
                range_id: 1,
                voters: vec![1, 2, 3],
                leader: 1,
            }],
        }
    }

    #[test]
    fn a_new_statefulset_has_no_rollout() {
        let plan = plan(None, "h", 3, &[], None, &names(), true);
        assert_eq!((plan.partition, plan.in_progress), (0, false));
    }

    #[test]
    fn a_new_template_starts_with_the_partition_at_the_top() {
        let old = sts(0, "old", "r1", "r1");
        let pods: Vec<PodInfo> = (0..3).map(|i| pod(i, "r1", true, None)).collect();
        let plan = plan(Some(&old), "new", 3, &pods, Some(&view()), &names(), true);
        assert_eq!((plan.partition, plan.in_progress), (3, true));
        assert!(plan.transfers.is_empty() && plan.restarting.is_none());
    }

    #[test]
    fn nothing_moves_until_the_statefulset_controller_caught_up() {
        let mut stale = sts(3, "h", "r1", "r2");
        stale.status_current = false;
        let pods: Vec<PodInfo> = (0..3).map(|i| pod(i, "r1", true, None)).collect();
        let plan = plan(Some(&stale), "h", 3, &pods, Some(&view()), &names(), true);
        assert_eq!(plan.partition, 3);
        assert!(plan.waiting.is_some());
    }

    #[test]
    fn the_highest_pod_restarts_first_and_leaders_move_before_the_lowest() {
        let pods: Vec<PodInfo> = (0..3).map(|i| pod(i, "r1", true, None)).collect();
        let rolling = sts(3, "h", "r1", "r2");
        let step = plan(Some(&rolling), "h", 3, &pods, Some(&view()), &names(), true);
        assert_eq!(step.partition, 2);
        assert_eq!(step.restarting.as_deref(), Some("db-2"));

        // Pod 0's node leads range 1: the leadership moves first.
        let pods = [
            pod(0, "r1", true, None),
            pod(1, "r2", true, None),
            pod(2, "r2", true, None),
        ];
        let at_one = sts(1, "h", "r1", "r2");
        let step = plan(Some(&at_one), "h", 3, &pods, Some(&view()), &names(), true);
        assert_eq!(step.partition, 1);
        assert_eq!(step.transfers.len(), 1);
        assert_eq!((step.transfers[0].from, step.transfers[0].to), (1, 2));
    }

    #[test]
    fn a_stuck_pod_on_the_new_template_blocks_the_rollout() {
        let pods = [
            pod(0, "r1", true, None),
            pod(1, "r1", true, None),
            pod(2, "r2", false, Some("ImagePullBackOff")),
        ];
        let rolling = sts(2, "h", "r1", "r2");
        let plan = plan(Some(&rolling), "h", 3, &pods, Some(&view()), &names(), true);
        assert_eq!(plan.partition, 2);
        assert!(plan
            .blocked
            .as_deref()
            .unwrap_or("")
            .contains("ImagePullBackOff"));
        assert!(
            plan.delete_pods.is_empty(),
            "it runs the template it should"
        );
    }

    #[test]
    fn a_pod_that_never_joined_restarts_without_checks() {
        let pods: Vec<PodInfo> = (0..3).map(|i| pod(i, "r1", true, None)).collect();
        let mut cluster = view();
        cluster.nodes.retain(|node| node.node_id != 3);
        let rolling = sts(3, "h", "r1", "r2");
        let plan = plan(
            Some(&rolling),
            "h",
            3,
            &pods,
            Some(&cluster),
            &names(),
            true,
        );
        assert_eq!(plan.partition, 2);
    }

    #[test]
    fn a_cluster_that_serves_nothing_takes_a_new_template_at_once() {
        // Never bootstrapped: pod 0 cannot pull its image, the others wait.
        let pods = [
            pod(0, "r1", false, Some("ImagePullBackOff")),
            pod(1, "r1", false, None),
            pod(2, "r1", false, None),
        ];
        let typo = sts(0, "typo", "r1", "r1");
        let fixed = plan(Some(&typo), "fixed", 3, &pods, None, &names(), false);
        assert_eq!((fixed.partition, fixed.in_progress), (0, true));
        assert!(fixed.transfers.is_empty() && fixed.blocked.is_none());

        // The StatefulSet has the new revision: every pod on the old one goes.
        let applied = sts(0, "fixed", "r1", "r2");
        let step = plan(Some(&applied), "fixed", 3, &pods, None, &names(), false);
        let deleted: Vec<&str> = step
            .delete_pods
            .iter()
            .map(|(pod, _)| pod.as_str())
            .collect();
        assert_eq!(deleted, ["db-0", "db-1", "db-2"]);
        assert_eq!(step.partition, 0);

        // Bootstrapped, but no pod ready: the same.
        let step = plan(
            Some(&applied),
            "fixed",
            3,
            &pods,
            Some(&view()),
            &names(),
            true,
        );
        assert_eq!(step.delete_pods.len(), 3);

        // Once they run the new revision there is nothing left to do.
        let recreated: Vec<PodInfo> = (0..3).map(|i| pod(i, "r2", false, None)).collect();
        let done = plan(
            Some(&applied),
            "fixed",
            3,
            &recreated,
            None,
            &names(),
            false,
        );
        assert!(done.delete_pods.is_empty() && !done.in_progress);
    }
}
