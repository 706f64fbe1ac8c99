//! RBAC as the API server's authorizer applies it: a request is allowed
//! when a rule grants its verb on its resource (`resource/subresource` for
//! a subresource) in its API group. The operator's rules come from the
//! chart's rendered ClusterRole, so a verb the chart forgot is refused here
//! as on a real cluster.

use std::collections::BTreeSet;

use serde_json::Value;

use super::chart;

/// The service account the chart runs the operator as.
pub const OPERATOR_USER: &str = "system:serviceaccount:zdb-system:zdb-operator";

/// (API group, resource, verb) triples a role grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants(BTreeSet<(String, String, String)>);

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

impl Grants {
    pub fn from_rules(rules: &[Value]) -> Grants {
        let mut grants = BTreeSet::new();
        for rule in rules {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        grants.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
        Grants(grants)
    }

    /// What the chart's ClusterRole grants the operator.
    pub fn of_operator_chart() -> Grants {
        Grants::from_rules(&chart::operator_cluster_role_rules())
    }

    pub fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        let matches = |g: &str, r: &str, v: &str| {
            (g == group || g == "*") && (r == resource || r == "*") && (v == verb || v == "*")
        };
        self.0.iter().any(|(g, r, v)| matches(g, r, v))
    }

    pub fn triples(&self) -> &BTreeSet<(String, String, String)> {
        &self.0
    }
}

/// The API server's text for a refused request.
pub fn forbidden(
    verb: &str,
    group: &str,
    resource: &str,
    name: Option<&str>,
    namespace: &str,
) -> String {
    let base = resource.split('/').next().unwrap_or(resource);
    let qualified = if group.is_empty() {
        base.to_owned()
    } else {
        format!("{base}.{group}")
    };
    let object = match name {
        Some(name) => format!("{qualified} {name:?}"),
        None => qualified,
    };
    let scope = if namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {namespace:?}")
    };
    format!(
        "{object} is forbidden: User {OPERATOR_USER:?} cannot {verb} resource {resource:?} in API group {group:?} {scope}"
    )
}
