//! At most one node down by voluntary disruption (node drains, evictions):
//! with replication factor 3 or more, every range keeps its quorum.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::owned_metadata;
use crate::crd::ZdbCluster;
use crate::error::Result;
use crate::names::ClusterNames;

pub fn pod_disruption_budget(
    cluster: &ZdbCluster,
    names: &ClusterNames,
) -> Result<PodDisruptionBudget> {
    Ok(PodDisruptionBudget {
        metadata: owned_metadata(cluster, names, names.pod_disruption_budget())?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}
