//! The StatefulSet of storage nodes: stable identities (pod `<name>-<i>`,
//! volume `data-<name>-<i>`), the pod template of [`super::pod_template`],
//! all pods managed in parallel, claims kept when the cluster is deleted.
//!
//! The reconciler decides `replicas` and the rolling-update `partition`; the
//! pod template is a pure function of the spec, and its hash (an annotation
//! on the StatefulSet) tells the reconciler when a new template starts a
//! rolling upgrade.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodTemplateSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::owned_metadata;
pub use super::pod_template::pod_template;
use crate::crd::ZdbCluster;
use crate::error::{Error, Result};
use crate::names::{ClusterNames, DATA_VOLUME, TEMPLATE_HASH_ANNOTATION};

/// Every pod is created and started at once, not one after the other once
/// the previous one is ready: a node is ready only with a quorum of its
/// ranges, so after a full-cluster restart `OrderedReady` would wait for
/// pod 0 forever while pod 1 is never created. Pod 0 still founds a new
/// cluster alone (the entry script); the others retry their join.
pub const POD_MANAGEMENT_POLICY: &str = "Parallel";

/// What the reconciler decided for this apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub replicas: i32,
    /// Pods with an ordinal at or above this run the new template.
    pub partition: i32,
}

pub fn volume_claim_template(cluster: &ZdbCluster) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.into()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: cluster.spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(cluster.spec.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// FNV-1a: a hash that stays the same across Rust and operator versions, so
/// upgrading the operator does not restart every pod.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub fn template_hash(template: &PodTemplateSpec) -> Result<String> {
    let bytes = serde_json::to_vec(template).map_err(|source| Error::Serialize {
        what: "pod template",
        source,
    })?;
    Ok(format!("{:016x}", stable_hash(&bytes)))
}

/// The desired StatefulSet. `existing_claims`: the volume claim templates of
/// the StatefulSet that exists already; they are immutable, so a grown
/// `storage.size` is applied to the claims themselves, not here.
pub fn statefulset(
    cluster: &ZdbCluster,
    names: &ClusterNames,
    rollout: &Rollout,
    existing_claims: Option<Vec<PersistentVolumeClaim>>,
) -> Result<StatefulSet> {
    let template = pod_template(cluster, names);
    let mut metadata = owned_metadata(cluster, names, names.statefulset())?;
    metadata.annotations = Some(BTreeMap::from([(
        TEMPLATE_HASH_ANNOTATION.to_owned(),
        template_hash(&template)?,
    )]));
    Ok(StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(rollout.replicas),
            service_name: Some(names.headless_service()),
            selector: LabelSelector {
                match_labels: Some(names.selector_labels()),
                ..LabelSelector::default()
            },
            // A pod removed by a scale-down held a decommissioned node:
            // its volume goes too, so a later scale-up starts a new node.
            // Deleting the cluster keeps the volumes (the data).
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some("Delete".into()),
                    when_deleted: Some("Retain".into()),
                },
            ),
            pod_management_policy: Some(POD_MANAGEMENT_POLICY.into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(rollout.partition),
                    ..RollingUpdateStatefulSetStrategy::default()
                }),
            }),
            template,
            volume_claim_templates: Some(
                existing_claims.unwrap_or_else(|| vec![volume_claim_template(cluster)]),
            ),
            ..StatefulSetSpec::default()
        }),
        status: None,
    })
}
