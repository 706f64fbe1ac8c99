//! The `ZdbCluster` custom resource (group `zdb.io`, version `v1alpha1`).
//!
//! Invalid specs are refused by the API server: the schema carries the
//! types, enums and bounds, and CEL rules (`x-kubernetes-validations`) carry
//! what a schema cannot say (cross-field and transition rules). Every rule's
//! message says what to change. The rule texts are constants so the tests
//! evaluate exactly what the generated CRD holds.

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod redis;
mod security;

pub use redis::{RedisSpec, DEFAULT_REDIS_PORT, RULE_REDIS_PORT_FREE};
pub use security::{
    parse_duration, AuthSpec, EncryptionSpec, IssuerRef, MasterKeySecretRef, PasswordSecretRef,
    TlsSource, TlsSpec, DEFAULT_CA_VALID_FOR, DEFAULT_VALID_FOR, RULE_AT_LEAST_AN_HOUR,
    RULE_AUTH_NEEDS_TLS, RULE_CERT_MANAGER_KIND, RULE_CLIENT_SECRET_NEEDS_SECRET, RULE_TLS_KEPT,
    RULE_TLS_ONE_SOURCE,
};

/// The longest cluster name: the StatefulSet controller labels every pod
/// with `controller-revision-hash: <name>-<hash of up to 10 characters>`,
/// and a label value may have at most 63 characters.
pub const MAX_NAME_LENGTH: usize = 52;

pub const RULE_NAME_LENGTH: &str = "self.metadata.name.size() <= 52";
/// The name also names Services, which must be DNS-1035 labels.
pub const RULE_NAME_DNS_LABEL: &str = "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')";
/// `replicas >= replicationFactor`: fewer nodes than replicas per range
/// cannot hold every range.
pub const RULE_REPLICAS_COVER_FACTOR: &str = "self.replicas >= self.replicationFactor";
/// Raft needs a majority; an even factor adds a replica without adding
/// tolerance to failures.
pub const RULE_FACTOR_ODD: &str = "self.replicationFactor % 2 == 1";
/// Changing the factor of a running cluster is a data migration the
/// operator does not do.
pub const RULE_FACTOR_IMMUTABLE: &str = "self == oldSelf";
pub const RULE_SIZE_POSITIVE_QUANTITY: &str = "isQuantity(self) && quantity(self).sign() > 0";
/// Volumes can grow but never shrink. Says nothing about a size that is not
/// a quantity (the rule above does), so one mistake gets one message.
pub const RULE_SIZE_NOT_SHRINKING: &str =
    "!isQuantity(self) || !isQuantity(oldSelf) || quantity(self).compareTo(quantity(oldSelf)) >= 0";
/// A volume claim's class cannot change once claimed...
pub const RULE_STORAGE_CLASS_IMMUTABLE: &str = "self == oldSelf";
/// ...nor be added or removed (the field-level rule above only sees a
/// change between two values).
pub const RULE_STORAGE_CLASS_KEPT: &str =
    "has(self.storageClassName) == has(oldSelf.storageClassName)";
/// The zdb-node defaults (node/src/config.rs, `RaftConfig::default`) stand
/// in for a timing left out.
pub const RULE_ELECTION_AFTER_HEARTBEAT: &str = "(has(self.electionTicks) ? self.electionTicks : 10) > (has(self.heartbeatTicks) ? self.heartbeatTicks : 2)";
pub const RULE_REQUESTS_WITHIN_LIMITS: &str = "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || !isQuantity(string(self.requests[k])) || !isQuantity(string(self.limits[k])) || quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)";

/// A Kubernetes quantity that is not negative (what a container's requests
/// and limits accept): the upstream quantity pattern without the minus sign.
pub const QUANTITY_PATTERN: &str = r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "zdb.io",
    version = "v1alpha1",
    kind = "ZdbCluster",
    plural = "zdbclusters",
    shortname = "zdb",
    namespaced,
    status = "ZdbClusterStatus",
    derive = "PartialEq",
    doc = "A zdb cluster: storage nodes in a StatefulSet, kept healthy, scaled and upgraded by the operator",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    validation = kube::core::Rule::new(RULE_NAME_LENGTH)
        .message("metadata.name may have at most 52 characters (pod labels carry it plus a revision hash, within 63): choose a shorter name")
        .reason(kube::core::Reason::FieldValueInvalid),
    validation = kube::core::Rule::new(RULE_NAME_DNS_LABEL)
        .message("metadata.name must start with a lowercase letter and hold only lowercase letters, digits and '-' (it names the cluster's Services)")
        .reason(kube::core::Reason::FieldValueInvalid),
    printcolumn = r#"{"name":"Ready","type":"integer","description":"Nodes whose pod is ready","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","description":"Nodes asked for","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ranges","type":"integer","description":"Ranges (Raft groups) in the cluster","jsonPath":".status.ranges"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = kube::core::Rule::new(RULE_REPLICAS_COVER_FACTOR)
        .message("replicas must be at least replicationFactor: raise replicas")
        .reason(kube::core::Reason::FieldValueInvalid),
    validation = kube::core::Rule::new(RULE_FACTOR_ODD)
        .message("replicationFactor must be odd (1, 3, 5 or 7): an even factor adds a replica but no tolerance to failures")
        .reason(kube::core::Reason::FieldValueInvalid),
    validation = kube::core::Rule::new(RULE_AUTH_NEEDS_TLS)
        .message("auth needs tls.enabled: true (passwords and certificates must not cross the network in the clear): turn TLS on, or drop auth")
        .reason(kube::core::Reason::FieldValueForbidden),
    validation = kube::core::Rule::new(RULE_TLS_KEPT)
        .message("tls.enabled cannot change once the cluster exists (nodes serving TLS and plaintext cannot reach each other during the rolling restart): set it back, or create a new cluster and copy the data")
        .reason(kube::core::Reason::FieldValueForbidden),
)]
#[serde(rename_all = "camelCase")]
pub struct ZdbClusterSpec {
    /// Storage nodes (pods). Scaling down drains the highest ordinals first.
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// Replicas per range (Raft group size). Odd, immutable.
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 7))]
    #[x_kube(validation = kube::core::Rule::new(RULE_FACTOR_IMMUTABLE).message("replicationFactor cannot change on a running cluster: set it back, or create a new cluster and copy the data"))]
    pub replication_factor: i32,
    /// The zdb-node container image. Changing it starts a rolling upgrade.
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// When the kubelet pulls the image; its default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    pub storage: StorageSpec,
    /// Compute resources of each node's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "node_resources_schema")]
    pub resources: Option<ResourceRequirements>,
    /// When the placement driver splits a range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitSpec>,
    /// Raft timings of every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// How pods spread over the Kubernetes nodes and zones. When absent,
    /// over both (`kubernetes.io/hostname` and `topology.kubernetes.io/zone`,
    /// skew 1, best effort); an empty list spreads nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// Stops every action of the operator on this cluster (placement included).
    #[serde(default)]
    pub paused: bool,
    /// TLS for every connection to and between nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Authentication (needs TLS): the root user's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Encryption at rest: the master key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
    /// The Redis protocol on every node, beside gRPC, with the TLS and
    /// authentication of `tls` and `auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,
}

pub fn default_replication_factor() -> i32 {
    3
}

/// The container image pull policies Kubernetes knows.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl ImagePullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

/// The schema of `resources`: requests and limits whose values must be
/// quantities (Kubernetes' own schema accepts any string, and the pods then
/// fail much later), and no request above its limit.
fn node_resources_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let quantities = |what: &str| {
        serde_json::json!({
            "description": format!("{what}, by resource name (cpu, memory, ephemeral-storage, ...): quantities such as 500m, 2 or 4Gi"),
            "type": "object",
            "maxProperties": 16,
            "additionalProperties": {
                "x-kubernetes-int-or-string": true,
                "pattern": QUANTITY_PATTERN,
                "maxLength": 64,
            },
        })
    };
    schemars::json_schema!({
        "description": "Compute resources of each node's container.",
        "type": "object",
        "nullable": true,
        "properties": {
            "limits": quantities("Limits"),
            "requests": quantities("Requests"),
        },
        "x-kubernetes-validations": [{
            "rule": RULE_REQUESTS_WITHIN_LIMITS,
            "message": "resources.requests may not exceed resources.limits of the same resource: raise the limit or lower the request",
            "reason": "FieldValueInvalid",
        }],
    })
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(RULE_STORAGE_CLASS_KEPT).message("storage.storageClassName cannot be added or removed once the cluster exists (its volumes are claimed): restore it, or create a new cluster"))]
pub struct StorageSpec {
    /// Size of each node's volume, a Kubernetes quantity ("10Gi"). Can grow
    /// (if the StorageClass allows volume expansion), never shrink.
    #[schemars(length(max = 64))]
    #[x_kube(
        validation = kube::core::Rule::new(RULE_SIZE_POSITIVE_QUANTITY).message("storage.size must be a positive quantity such as 10Gi"),
        validation = kube::core::Rule::new(RULE_SIZE_NOT_SHRINKING).message("storage.size cannot shrink (volumes only grow): set it back to at least its current value"),
    )]
    pub size: String,
    /// StorageClass of the volumes; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::Rule::new(RULE_STORAGE_CLASS_IMMUTABLE).message("storage.storageClassName cannot change once the cluster exists (its volumes are claimed): restore it, or create a new cluster"))]
    pub storage_class_name: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SplitSpec {
    /// Split a range once its keys and values pass this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_bytes: Option<u64>,
    /// Split a range taking more writes per second than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_writes_per_second: Option<u64>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(RULE_ELECTION_AFTER_HEARTBEAT).message("raft.electionTicks must be greater than raft.heartbeatTicks (zdb-node defaults: 10 and 2): a follower must miss several heartbeats before it calls an election"))]
pub struct RaftSpec {
    /// Raft tick in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub tick_ms: Option<u32>,
    /// Ticks without a heartbeat before a follower calls an election.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 1000))]
    pub election_ticks: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub heartbeat_ticks: Option<u32>,
}

/// What the operator last observed and did.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ZdbClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Set once pod 0 has bootstrapped the cluster; from then on every pod joins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Pods the StatefulSet runs now (the scale subresource's replicas).
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the cluster's pods (the scale subresource's, for
    /// a HorizontalPodAutoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(default)]
    pub ranges: u64,
    /// The StatefulSet's rolling-update partition: pods at or above it run the new template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    #[serde(default)]
    pub nodes: Vec<NodeSummary>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Bootstrapping,
    Running,
    Scaling,
    Upgrading,
    Degraded,
    Paused,
}

/// One storage node as the cluster reports it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub node_id: u64,
    pub pod: String,
    /// Active, Draining or Decommissioned; Unreachable when it does not answer.
    pub state: String,
    pub replicas: u64,
    pub leaders: u64,
}

impl ZdbCluster {
    pub fn replication_factor(&self) -> i32 {
        self.spec.replication_factor
    }

    /// Where the node certificate comes from; None when TLS is off.
    pub fn tls_source(&self) -> Option<TlsSource<'_>> {
        self.spec.tls.as_ref().and_then(TlsSpec::source)
    }

    /// The port the nodes serve Redis on; None when Redis is off.
    pub fn redis_port(&self) -> Option<i32> {
        self.spec.redis.as_ref().and_then(RedisSpec::serving_port)
    }
}
