//! Every Kubernetes API call the operator makes, as (API group, resource,
//! verb). The Helm chart's ClusterRole grants exactly these (a test
//! compares), and the reconcile tests check that every request the
//! reconciler sends is in this list.

pub const API_CALLS: &[(&str, &str, &str)] = &[
    // The controller watches clusters and reports their status.
    ("zdb.io", "zdbclusters", "list"),
    ("zdb.io", "zdbclusters", "watch"),
    ("zdb.io", "zdbclusters/status", "patch"),
    // Owned objects, all by server-side apply.
    ("apps", "statefulsets", "get"),
    ("apps", "statefulsets", "list"),
    ("apps", "statefulsets", "watch"),
    ("apps", "statefulsets", "patch"),
    ("", "services", "patch"),
    ("", "configmaps", "patch"),
    ("policy", "poddisruptionbudgets", "patch"),
    // Pod readiness and revisions for rollouts; stuck pods are deleted.
    ("", "pods", "list"),
    ("", "pods", "delete"),
    // Volumes grow in place (claim templates are immutable).
    ("", "persistentvolumeclaims", "list"),
    ("", "persistentvolumeclaims", "patch"),
    // Events: a new one is created, a repeated one patched (a series).
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
    // Leader election.
    ("coordination.k8s.io", "leases", "get"),
    ("coordination.k8s.io", "leases", "create"),
    ("coordination.k8s.io", "leases", "update"),
];

pub fn allows(group: &str, resource: &str, verb: &str) -> bool {
    API_CALLS.contains(&(group, resource, verb))
}
