//! The `ZdbCluster` custom resource (group `zdb.io`, version `v1alpha1`).
//!
//! Invalid specs are refused by the API server: the schema carries the
//! types and bounds, and CEL rules (`x-kubernetes-validations`) carry what a
//! schema cannot say (cross-field and transition rules). The rule texts are
//! constants so the tests evaluate exactly what the generated CRD holds.

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `replicas >= replicationFactor`: fewer nodes than replicas per range
/// cannot hold every range.
pub const RULE_REPLICAS_COVER_FACTOR: &str = "self.replicas >= self.replicationFactor";
/// Raft needs a majority; an even factor adds a replica without adding
/// tolerance to failures.
pub const RULE_FACTOR_ODD: &str = "self.replicationFactor % 2 == 1";
/// Changing the factor of a running cluster is a data migration the
/// operator does not do.
pub const RULE_FACTOR_IMMUTABLE: &str = "self == oldSelf";
pub const RULE_SIZE_IS_QUANTITY: &str = "isQuantity(self)";
/// Volumes can grow but never shrink.
pub const RULE_SIZE_NOT_SHRINKING: &str =
    "!isQuantity(oldSelf) || quantity(self).compareTo(quantity(oldSelf)) >= 0";
/// A volume claim's class cannot change once claimed.
pub const RULE_STORAGE_CLASS_IMMUTABLE: &str = "self == oldSelf";

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
    printcolumn = r#"{"name":"Ready","type":"integer","description":"Nodes whose pod is ready","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","description":"Nodes asked for","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ranges","type":"integer","description":"Ranges (Raft groups) in the cluster","jsonPath":".status.ranges"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = kube::core::Rule::new(RULE_REPLICAS_COVER_FACTOR)
        .message("replicas must be at least replicationFactor")
        .reason(kube::core::Reason::FieldValueInvalid),
    validation = kube::core::Rule::new(RULE_FACTOR_ODD)
        .message("replicationFactor must be odd")
        .reason(kube::core::Reason::FieldValueInvalid),
)]
#[serde(rename_all = "camelCase")]
pub struct ZdbClusterSpec {
    /// Storage nodes (pods). Scaling down drains the highest ordinals first.
    #[schemars(range(min = 1))]
    pub replicas: i32,
    /// Replicas per range (Raft group size). Odd, immutable.
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 7))]
    #[x_kube(validation = kube::core::Rule::new(RULE_FACTOR_IMMUTABLE).message("replicationFactor is immutable"))]
    pub replication_factor: i32,
    /// The zdb-node container image. Changing it starts a rolling upgrade.
    #[schemars(length(min = 1))]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    pub storage: StorageSpec,
    /// Compute resources of each node's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// Stops every action of the operator on this cluster (placement included).
    #[serde(default)]
    pub paused: bool,
}

pub fn default_replication_factor() -> i32 {
    3
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each node's volume, a Kubernetes quantity ("10Gi"). Can grow, never shrink.
    #[x_kube(
        validation = kube::core::Rule::new(RULE_SIZE_IS_QUANTITY).message("storage.size must be a quantity such as 10Gi"),
        validation = kube::core::Rule::new(RULE_SIZE_NOT_SHRINKING).message("storage.size cannot shrink"),
    )]
    pub size: String,
    /// StorageClass of the volumes; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(RULE_STORAGE_CLASS_IMMUTABLE).message("storage.storageClassName is immutable"))]
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
pub struct RaftSpec {
    /// Raft tick in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tick_ms: Option<u32>,
    /// Ticks without a heartbeat before a follower calls an election.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    pub election_ticks: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
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
    /// Pods the StatefulSet runs now.
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
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
}
