//! The zone each zdb node runs in, as Kubernetes knows it: the
//! `topology.kubernetes.io/zone` label of the node its pod is scheduled
//! on. The operator records it in the cluster's registry, and placement
//! then keeps each range's replicas in different zones when it can.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;

use crate::admin::ClusterView;
use crate::names::ClusterNames;

pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// A zdb node whose registry zone is not its pod's.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneChange {
    pub node_id: u64,
    pub pod: String,
    pub zone: String,
}

/// The zones (by Kubernetes node name) of the nodes `pods` are scheduled on.
pub async fn zones_of(
    nodes: &Api<Node>,
    pods: &[Pod],
) -> Result<BTreeMap<String, String>, kube::Error> {
    let scheduled_on: BTreeSet<&str> = pods
        .iter()
        .filter_map(|pod| pod.spec.as_ref()?.node_name.as_deref())
        .collect();
    let mut zones = BTreeMap::new();
    for name in scheduled_on {
        let Some(node) = nodes.get_opt(name).await? else {
            continue;
        };
        if let Some(zone) = node
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(ZONE_LABEL))
        {
            zones.insert(name.to_owned(), zone.clone());
        }
    }
    Ok(zones)
}

/// The zdb nodes (answering at their pod's address) whose registry zone
/// differs from the zone of the Kubernetes node their pod runs on.
pub fn changes(
    view: &ClusterView,
    pods: &[Pod],
    zones: &BTreeMap<String, String>,
    names: &ClusterNames,
) -> Vec<ZoneChange> {
    pods.iter()
        .filter_map(|pod| {
            let pod_name = pod.metadata.name.as_deref()?;
            let address = names.node_address(names.ordinal_of_pod(pod_name)?);
            // A pod re-created with an empty volume answers as a new node at
            // the old one's address: the one answering is the pod's.
            let node = view
                .nodes
                .iter()
                .find(|node| node.address == address && node.reachable)?;
            let zone = zones.get(pod.spec.as_ref()?.node_name.as_deref()?)?;
            (node.zone != *zone).then(|| ZoneChange {
                node_id: node.node_id,
                pod: pod_name.to_owned(),
                zone: zone.clone(),
            })
        })
        .collect()
}
