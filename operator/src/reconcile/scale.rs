//! Scaling decisions, pure: from the spec, the StatefulSet's current size
//! and the cluster's view, what size to apply and which node states to set.
//!
//! Scale down removes the highest ordinal first, one at a time: its node is
//! drained (the placement driver moves its replicas and leaderships away),
//! then decommissioned once it holds nothing, and only when the
//! decommissioned node holds no replica does the StatefulSet shrink past
//! it. Raising `replicas` again sets a draining node back to active.

use crate::admin::{ClusterView, NodeState, NodeView};
use crate::names::ClusterNames;

/// A node state change the reconciler makes through the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStateChange {
    pub node_id: u64,
    pub pod: String,
    pub state: NodeState,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScalePlan {
    /// The StatefulSet size to apply.
    pub replicas: i32,
    pub changes: Vec<NodeStateChange>,
    /// What a scale-down waits for, for status and conditions.
    pub waiting: Option<String>,
    /// Why the spec cannot be followed (a Degraded condition).
    pub refused: Option<String>,
}

impl ScalePlan {
    pub fn in_progress(&self, current: Option<i32>) -> bool {
        self.waiting.is_some() || !self.changes.is_empty() || current != Some(self.replicas)
    }
}

/// The node living in pod `ordinal`: the one registered under that pod's
/// address. If a pod lost its volume and joined again, the registry holds
/// two nodes with its address; the newest one that is not retired wins.
pub fn node_of_ordinal<'a>(
    view: &'a ClusterView,
    names: &ClusterNames,
    ordinal: i32,
) -> Option<&'a NodeView> {
    let address = names.node_address(ordinal);
    view.nodes
        .iter()
        .filter(|node| node.address == address)
        .max_by_key(|node| (node.state != NodeState::Decommissioned, node.node_id))
}

pub fn plan(
    desired: i32,
    replication_factor: i32,
    current: Option<i32>,
    view: Option<&ClusterView>,
    names: &ClusterNames,
) -> ScalePlan {
    let Some(current) = current else {
        return ScalePlan {
            replicas: desired,
            ..ScalePlan::default()
        };
    };
    if desired < replication_factor {
        return ScalePlan {
            replicas: current,
            refused: Some(format!(
                "replicas {desired} is below replicationFactor {replication_factor}; keeping {current} nodes"
            )),
            ..ScalePlan::default()
        };
    }
    let mut plan = ScalePlan {
        replicas: current.max(desired),
        ..ScalePlan::default()
    };
    // Nodes that stay: a drain started by an earlier scale-down is cancelled.
    if let Some(view) = view {
        for ordinal in 0..desired.min(current) {
            if let Some(node) = node_of_ordinal(view, names, ordinal) {
                if node.state == NodeState::Draining {
                    plan.changes.push(NodeStateChange {
                        node_id: node.node_id,
                        pod: names.pod(ordinal),
                        state: NodeState::Active,
                        reason: format!(
                            "replicas raised to {desired}: pod {} stays",
                            names.pod(ordinal)
                        ),
                    });
                }
            }
        }
    }
    if desired >= current {
        // A pod whose node was decommissioned by a scale-down that was
        // called off before the StatefulSet shrank: its node will never
        // host a replica again. Shrink past it; the StatefulSet deletes its
        // claim (retention policy), and the next pass brings the pod back
        // with an empty volume, as a new node.
        if let Some(view) = view {
            let highest = current - 1;
            if let Some(node) = node_of_ordinal(view, names, highest) {
                // Reachable: the decommissioned node itself runs in the pod
                // (not a stale registry entry of a pod already recreated).
                if node.state == NodeState::Decommissioned && node.replicas == 0 && node.reachable {
                    plan.replicas = highest;
                    plan.waiting = Some(format!(
                        "{} holds decommissioned node {}: recreating it as a new node",
                        names.pod(highest),
                        node.node_id
                    ));
                }
            }
        }
        return plan;
    }
    let leaving = current - 1;
    let pod = names.pod(leaving);
    let Some(view) = view else {
        plan.waiting = Some(format!(
            "cannot reach the cluster to drain {pod}; not shrinking"
        ));
        return plan;
    };
    let Some(node) = node_of_ordinal(view, names, leaving) else {
        // The pod never joined: it holds nothing.
        plan.replicas = leaving;
        return plan;
    };
    match (node.state, node.replicas) {
        (NodeState::Active, _) => {
            plan.changes.push(NodeStateChange {
                node_id: node.node_id,
                pod: pod.clone(),
                state: NodeState::Draining,
                reason: format!("scaling down to {desired}: draining {pod}"),
            });
            plan.waiting = Some(format!("draining node {} ({pod})", node.node_id));
        }
        (NodeState::Draining, 0) => {
            plan.changes.push(NodeStateChange {
                node_id: node.node_id,
                pod: pod.clone(),
                state: NodeState::Decommissioned,
                reason: format!(
                    "{pod} holds no replica: decommissioning node {}",
                    node.node_id
                ),
            });
            plan.waiting = Some(format!("decommissioning node {} ({pod})", node.node_id));
        }
        (NodeState::Draining, replicas) => {
            plan.waiting = Some(format!(
                "draining node {} ({pod}): {replicas} replicas left",
                node.node_id
            ));
        }
        // Only the node's own count proves it holds nothing: the ranges a
        // view sees may be incomplete while some leader does not answer.
        (NodeState::Decommissioned, 0) if node.reachable => plan.replicas = leaving,
        (NodeState::Decommissioned, 0) => {
            plan.waiting = Some(format!(
                "node {} ({pod}) does not answer; cannot confirm it holds no replica",
                node.node_id
            ));
        }
        (NodeState::Decommissioned, replicas) => {
            plan.waiting = Some(format!(
                "node {} ({pod}) is decommissioned and still holds {replicas} replicas",
                node.node_id
            ));
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ClusterNames {
        ClusterNames::new("db", "ns")
    }

    fn view(nodes: &[(u64, i32, NodeState, u64)]) -> ClusterView {
        ClusterView {
            cluster_id: Some("c".into()),
            nodes: nodes
                .iter()
                .map(|&(node_id, ordinal, state, replicas)| NodeView {
                    node_id,
                    address: names().node_address(ordinal),
                    state,
                    reachable: true,
                    replicas,
                    leaders: 0,
                    zone: String::new(),
                })
                .collect(),
            ranges: Vec::new(),
        }
    }

    use NodeState::{Active, Decommissioned, Draining};

    #[test]
    fn a_new_statefulset_gets_the_desired_size() {
        assert_eq!(plan(5, 3, None, None, &names()).replicas, 5);
    }

    #[test]
    fn scale_down_drains_then_decommissions_then_shrinks() {
        let names = names();
        let nodes = |state, replicas| {
            view(&[
                (1, 0, Active, 3),
                (2, 1, Active, 3),
                (3, 2, Active, 3),
                (4, 3, state, replicas),
            ])
        };
        let active = plan(3, 3, Some(4), Some(&nodes(Active, 2)), &names);
        assert_eq!(active.replicas, 4);
        assert_eq!(active.changes[0].state, Draining);
        assert_eq!(active.changes[0].node_id, 4);

        let draining = plan(3, 3, Some(4), Some(&nodes(Draining, 1)), &names);
        assert_eq!((draining.replicas, draining.changes.len()), (4, 0));
        assert!(draining
            .waiting
            .as_deref()
            .unwrap_or("")
            .contains("1 replicas left"));

        let empty = plan(3, 3, Some(4), Some(&nodes(Draining, 0)), &names);
        assert_eq!(empty.replicas, 4);
        assert_eq!(empty.changes[0].state, Decommissioned);

        let retired = plan(3, 3, Some(4), Some(&nodes(Decommissioned, 0)), &names);
        assert_eq!(retired.replicas, 3);
        assert!(retired.changes.is_empty());
    }

    #[test]
    fn scale_down_never_shrinks_blind() {
        let blind = plan(3, 3, Some(4), None, &names());
        assert_eq!(blind.replicas, 4);
        assert!(blind.waiting.is_some());
        let mut silent = view(&[
            (1, 0, Active, 3),
            (2, 1, Active, 3),
            (3, 2, Active, 3),
            (4, 3, Decommissioned, 0),
        ]);
        silent.nodes[3].reachable = false;
        let unconfirmed = plan(3, 3, Some(4), Some(&silent), &names());
        assert_eq!(unconfirmed.replicas, 4);
        assert!(unconfirmed.waiting.is_some());
    }

    #[test]
    fn raising_replicas_cancels_a_pending_drain() {
        let view = view(&[
            (1, 0, Active, 3),
            (2, 1, Active, 3),
            (3, 2, Active, 3),
            (4, 3, Draining, 2),
        ]);
        let plan = plan(4, 3, Some(4), Some(&view), &names());
        assert_eq!(plan.replicas, 4);
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(
            (plan.changes[0].node_id, plan.changes[0].state),
            (4, Active)
        );
    }

    #[test]
    fn a_decommissioned_pod_that_stays_is_recreated_as_a_new_node() {
        let cluster = view(&[
            (1, 0, Active, 3),
            (2, 1, Active, 3),
            (3, 2, Active, 3),
            (4, 3, Decommissioned, 0),
        ]);
        let shrink = plan(4, 3, Some(4), Some(&cluster), &names());
        assert_eq!(shrink.replicas, 3);
        assert!(shrink.waiting.is_some());
        // Once the pod is gone, the StatefulSet grows back.
        assert_eq!(plan(4, 3, Some(3), Some(&cluster), &names()).replicas, 4);
        // The recreated pod has not joined yet: the old entry no longer
        // answers, and the pod is left alone to join.
        let mut stale = cluster.clone();
        stale.nodes[3].reachable = false;
        let settled = plan(4, 3, Some(4), Some(&stale), &names());
        assert_eq!((settled.replicas, settled.waiting), (4, None));
    }

    #[test]
    fn refuses_to_go_below_the_replication_factor() {
        let plan = plan(2, 3, Some(3), None, &names());
        assert_eq!(plan.replicas, 3);
        assert!(plan.refused.is_some());
    }

    #[test]
    fn a_pod_that_never_joined_goes_without_a_drain() {
        let view = view(&[(1, 0, Active, 1), (2, 1, Active, 1), (3, 2, Active, 1)]);
        let plan = plan(3, 3, Some(4), Some(&view), &names());
        assert_eq!(plan.replicas, 3);
    }
}
