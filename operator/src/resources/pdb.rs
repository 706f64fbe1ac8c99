//! Voluntary disruptions (node drains, evictions) may take down as many
//! nodes as every range can lose while keeping a quorum, that is
//! `(replicationFactor - 1) / 2`, whichever nodes they are (any pod may hold
//! a replica of any range). A pod that is not ready already counts against
//! the budget. A factor of 1 can lose nothing, but a budget of 0 would
//! block every node drain of the Kubernetes cluster for good, so one pod
//! may go (its ranges are unavailable until it is back, which a factor of 1
//! accepts).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::owned_metadata;
use crate::crd::ZdbCluster;
use crate::error::Result;
use crate::names::ClusterNames;

/// How many nodes may be down by voluntary disruption at once.
pub fn max_unavailable(replication_factor: i32) -> i32 {
    ((replication_factor - 1) / 2).max(1)
}

pub fn pod_disruption_budget(
    cluster: &ZdbCluster,
    names: &ClusterNames,
) -> Result<PodDisruptionBudget> {
    Ok(PodDisruptionBudget {
        metadata: owned_metadata(cluster, names, names.pod_disruption_budget())?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable(
                cluster.spec.replication_factor,
            ))),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::max_unavailable;

    #[test]
    fn every_range_keeps_a_quorum() {
        for (factor, budget) in [(1, 1), (3, 1), (5, 2), (7, 3)] {
            assert_eq!(max_unavailable(factor), budget, "factor {factor}");
            if factor > 1 {
                // The survivors of any `budget` lost replicas are a majority.
                assert!(factor - budget > factor / 2);
            }
        }
    }
}
