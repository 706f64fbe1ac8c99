//! Names, labels and addresses of everything a `ZdbCluster` owns. One place,
//! so the reconciler, the entry script and the admin calls agree.

use std::collections::BTreeMap;

/// gRPC port of every node (clients and peers).
pub const GRPC_PORT: i32 = 7700;
/// HTTP port of every node: `/metrics`, `/readyz` and `/livez` (the probes).
pub const STATUS_PORT: i32 = 7701;
/// The one field manager of every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "zdb-operator";
/// Annotation on the StatefulSet: hash of the pod template the operator last
/// applied. A new hash means a new template, which starts a rolling upgrade.
pub const TEMPLATE_HASH_ANNOTATION: &str = "zdb.io/pod-template-hash";
/// Where each node keeps its data (the volume claim template's mount).
pub const DATA_MOUNT: &str = "/var/lib/zdb";
pub const CONFIG_MOUNT: &str = "/etc/zdb";
pub const DATA_VOLUME: &str = "data";
/// Where each node finds its TLS files (`ca.crt`, `tls.crt`, `tls.key`).
/// Not under [`CONFIG_MOUNT`]: that is a ConfigMap volume, read-only, and
/// a mount point inside it would have to be created in it.
pub const TLS_MOUNT: &str = "/etc/zdb-tls";
/// Where each node finds the root password (authentication).
pub const AUTH_MOUNT: &str = "/etc/zdb-auth";
/// Where each node finds its master key (encryption at rest)...
pub const ENCRYPTION_MOUNT: &str = "/etc/zdb-encryption";
/// ...and the previous one, while the master key changes.
pub const PREVIOUS_ENCRYPTION_MOUNT: &str = "/etc/zdb-encryption-previous";
/// The user the operator's client certificate names.
pub const OPERATOR_USER: &str = "root";

/// Names of one cluster's objects and of its pods' addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNames {
    pub name: String,
    pub namespace: String,
}

impl ClusterNames {
    pub fn new(name: impl Into<String>, namespace: impl Into<String>) -> Self {
        ClusterNames {
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    pub fn statefulset(&self) -> String {
        self.name.clone()
    }

    /// The headless Service that gives every pod a stable DNS name.
    pub fn headless_service(&self) -> String {
        format!("{}-nodes", self.name)
    }

    /// The Service applications connect to (any ready node).
    pub fn client_service(&self) -> String {
        self.name.clone()
    }

    pub fn config_map(&self) -> String {
        format!("{}-config", self.name)
    }

    pub fn pod_disruption_budget(&self) -> String {
        self.name.clone()
    }

    /// The CA the operator makes when it manages the certificates.
    pub fn ca_secret(&self) -> String {
        format!("{}-ca", self.name)
    }

    /// The node certificate (operator-managed or cert-manager's).
    pub fn node_tls_secret(&self) -> String {
        format!("{}-node-tls", self.name)
    }

    /// The operator's own client certificate (user root).
    pub fn client_tls_secret(&self) -> String {
        format!("{}-client-{OPERATOR_USER}", self.name)
    }

    /// The cert-manager Certificate of the node certificate.
    pub fn node_certificate(&self) -> String {
        format!("{}-node", self.name)
    }

    /// The cert-manager Certificate of the operator's client certificate.
    pub fn client_certificate(&self) -> String {
        format!("{}-client-{OPERATOR_USER}", self.name)
    }

    /// The DNS names a node certificate must cover: every pod's stable
    /// name (a wildcard under the headless Service, so scaling needs no
    /// new certificate) and the client Service, each with and without the
    /// default cluster domain. `localhost` and `127.0.0.1` come on top.
    pub fn node_certificate_dns_names(&self) -> Vec<String> {
        let headless = format!("*.{}.{}.svc", self.headless_service(), self.namespace);
        let client = self.client_service();
        let client_in_namespace = format!("{client}.{}", self.namespace);
        let client_fqdn = format!("{client_in_namespace}.svc");
        vec![
            format!("{headless}.cluster.local"),
            headless,
            client.clone(),
            client_in_namespace,
            format!("{client_fqdn}.cluster.local"),
            client_fqdn,
            "localhost".into(),
        ]
    }

    /// The host a node certificate is checked against: pod 0's stable
    /// name, as peers and the operator dial it.
    pub fn node_server_name(&self) -> String {
        format!(
            "{}.{}.{}.svc",
            self.pod(0),
            self.headless_service(),
            self.namespace
        )
    }

    pub fn pod(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    pub fn volume_claim(&self, ordinal: i32) -> String {
        format!("{DATA_VOLUME}-{}-{ordinal}", self.name)
    }

    /// `HOST:PORT` of the node in pod `ordinal`, through the headless
    /// Service. Nodes advertise this address, so the node registry maps it
    /// back to the ordinal. No cluster domain: the resolver's search path
    /// completes `svc`, whatever the cluster domain is.
    pub fn node_address(&self, ordinal: i32) -> String {
        format!(
            "{}.{}.{}.svc:{GRPC_PORT}",
            self.pod(ordinal),
            self.headless_service(),
            self.namespace
        )
    }

    /// `HOST:PORT` of the client Service: the seed new nodes join through.
    pub fn client_address(&self) -> String {
        format!(
            "{}.{}.svc:{GRPC_PORT}",
            self.client_service(),
            self.namespace
        )
    }

    /// The pod ordinal a node address belongs to, if it is one of ours.
    pub fn ordinal_of_address(&self, address: &str) -> Option<i32> {
        let suffix = format!(
            ".{}.{}.svc:{GRPC_PORT}",
            self.headless_service(),
            self.namespace
        );
        let pod = address.strip_suffix(&suffix)?;
        self.ordinal_of_pod(pod)
    }

    pub fn ordinal_of_pod(&self, pod: &str) -> Option<i32> {
        let ordinal = pod.strip_prefix(&self.name)?.strip_prefix('-')?;
        if ordinal.starts_with('+') || (ordinal.len() > 1 && ordinal.starts_with('0')) {
            return None;
        }
        ordinal.parse().ok().filter(|ordinal: &i32| *ordinal >= 0)
    }

    /// Endpoints of the nodes in pods `0..replicas`.
    pub fn node_addresses(&self, replicas: i32) -> Vec<String> {
        (0..replicas.max(0)).map(|i| self.node_address(i)).collect()
    }

    /// Labels on every object; the selector labels are a subset.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert("app.kubernetes.io/managed-by".into(), FIELD_MANAGER.into());
        labels
    }

    /// Labels that select this cluster's pods (and nothing else).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "zdb".to_owned()),
            ("app.kubernetes.io/instance".to_owned(), self.name.clone()),
            ("app.kubernetes.io/component".to_owned(), "node".to_owned()),
        ])
    }

    pub fn label_selector(&self) -> String {
        self.selector_labels()
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_map_back_to_their_ordinal() {
        let names = ClusterNames::new("db", "prod");
        assert_eq!(names.node_address(2), "db-2.db-nodes.prod.svc:7700");
        for ordinal in [0, 1, 9, 10, 123] {
            assert_eq!(
                names.ordinal_of_address(&names.node_address(ordinal)),
                Some(ordinal)
            );
        }
        let other = ClusterNames::new("db-2", "prod");
        assert_eq!(names.ordinal_of_address(&other.node_address(0)), None);
        assert_eq!(
            names.ordinal_of_address("db-1.db-nodes.test.svc:7700"),
            None
        );
        assert_eq!(names.ordinal_of_pod("db-01"), None);
        assert_eq!(names.ordinal_of_pod("db-x"), None);
        assert_eq!(names.ordinal_of_pod("db-0"), Some(0));
    }
}
