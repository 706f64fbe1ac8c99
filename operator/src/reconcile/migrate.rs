//! StatefulSets made by an older operator. Most of a StatefulSet's spec is
//! immutable: the API server refuses an apply that changes
//! `podManagementPolicy` (older operators used `OrderedReady`), the
//! selector or the service name. Such a StatefulSet is deleted with
//! `propagationPolicy: Orphan` (its pods and claims stay, and keep
//! running) and applied again; the new one adopts the pods, starting with
//! its partition at the top, so the usual rollout moves them onto the new
//! template one at a time.

use k8s_openapi::api::apps::v1::StatefulSet;

use crate::resources::statefulset::POD_MANAGEMENT_POLICY;

/// Why `existing` cannot become `desired` by an update, if it cannot.
pub fn recreate_reason(existing: &StatefulSet, desired: &StatefulSet) -> Option<String> {
    let (Some(old), Some(new)) = (existing.spec.as_ref(), desired.spec.as_ref()) else {
        return None;
    };
    // The API server's default, for StatefulSets applied without one.
    let policy = old
        .pod_management_policy
        .as_deref()
        .unwrap_or("OrderedReady");
    if policy
        != new
            .pod_management_policy
            .as_deref()
            .unwrap_or(POD_MANAGEMENT_POLICY)
    {
        return Some(format!(
            "podManagementPolicy {policy} (a full restart would wait for pod 0 forever) becomes {}",
            new.pod_management_policy
                .as_deref()
                .unwrap_or(POD_MANAGEMENT_POLICY)
        ));
    }
    if old.service_name != new.service_name {
        return Some(format!(
            "serviceName {:?} becomes {:?}",
            old.service_name, new.service_name
        ));
    }
    if old.selector.match_labels != new.selector.match_labels
        || old.selector.match_expressions.is_some()
    {
        return Some("the pod selector changes".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSetSpec;

    use super::*;

    fn sts(policy: Option<&str>) -> StatefulSet {
        StatefulSet {
            spec: Some(StatefulSetSpec {
                pod_management_policy: policy.map(str::to_owned),
                service_name: Some("db-nodes".into()),
                ..StatefulSetSpec::default()
            }),
            ..StatefulSet::default()
        }
    }

    #[test]
    fn ordered_ready_statefulsets_are_recreated() {
        let desired = sts(Some("Parallel"));
        assert!(recreate_reason(&sts(Some("OrderedReady")), &desired).is_some());
        assert!(
            recreate_reason(&sts(None), &desired).is_some(),
            "the default is OrderedReady"
        );
        assert_eq!(recreate_reason(&sts(Some("Parallel")), &desired), None);
    }
}
