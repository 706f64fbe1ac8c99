//! The StatefulSet of storage nodes: stable identities (pod `<name>-<i>`,
//! volume `data-<name>-<i>`), the entry script from the ConfigMap, a
//! readiness probe on the gRPC health service, scheduling from the spec.
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
    ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, GRPCAction,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::configmap::ENTRYPOINT_KEY;
use super::owned_metadata;
use crate::crd::ZdbCluster;
use crate::error::{Error, Result};
use crate::names::{
    ClusterNames, CONFIG_MOUNT, DATA_MOUNT, DATA_VOLUME, GRPC_PORT, STATUS_PORT,
    TEMPLATE_HASH_ANNOTATION,
};

/// The user the zdb-node image runs as (docker/node.Dockerfile).
const NODE_USER: i64 = 10001;

/// What the reconciler decided for this apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub replicas: i32,
    /// Pods with an ordinal at or above this run the new template.
    pub partition: i32,
}

/// The container args: node settings that need a restart to change, so
/// they belong to the template (a change rolls the pods one at a time).
fn node_args(cluster: &ZdbCluster) -> Vec<String> {
    let mut args = vec!["--log-json".to_owned()];
    if let Some(raft) = &cluster.spec.raft {
        if let Some(tick) = raft.tick_ms {
            args.push(format!("--raft-tick-ms={tick}"));
        }
        if let Some(ticks) = raft.election_ticks {
            args.push(format!("--election-ticks={ticks}"));
        }
        if let Some(ticks) = raft.heartbeat_ticks {
            args.push(format!("--heartbeat-ticks={ticks}"));
        }
    }
    args
}

fn env(names: &ClusterNames) -> Vec<EnvVar> {
    let field = |path: &str| EnvVarSource {
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            ..ObjectFieldSelector::default()
        }),
        ..EnvVarSource::default()
    };
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..EnvVar::default()
    };
    vec![
        EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(field("metadata.name")),
            ..EnvVar::default()
        },
        EnvVar {
            name: "POD_NAMESPACE".into(),
            value_from: Some(field("metadata.namespace")),
            ..EnvVar::default()
        },
        value("HEADLESS_SERVICE", names.headless_service()),
        value("GRPC_PORT", GRPC_PORT.to_string()),
        value("STATUS_PORT", STATUS_PORT.to_string()),
    ]
}

pub fn pod_template(cluster: &ZdbCluster, names: &ClusterNames) -> PodTemplateSpec {
    let spec = &cluster.spec;
    let container = Container {
        name: "zdb-node".into(),
        image: Some(spec.image.clone()),
        image_pull_policy: spec.image_pull_policy.clone(),
        command: Some(vec![
            "/bin/sh".into(),
            format!("{CONFIG_MOUNT}/{ENTRYPOINT_KEY}"),
        ]),
        args: Some(node_args(cluster)),
        env: Some(env(names)),
        ports: Some(vec![
            ContainerPort {
                name: Some("grpc".into()),
                container_port: GRPC_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("status".into()),
                container_port: STATUS_PORT,
                ..ContainerPort::default()
            },
        ]),
        readiness_probe: Some(Probe {
            grpc: Some(GRPCAction {
                port: GRPC_PORT,
                service: None,
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::String("status".into()),
                ..HTTPGetAction::default()
            }),
            // Generous: a node replaying a long Raft log must not be killed.
            initial_delay_seconds: Some(30),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Probe::default()
        }),
        resources: spec.resources.clone(),
        volume_mounts: Some(vec![
            VolumeMount {
                name: DATA_VOLUME.into(),
                mount_path: DATA_MOUNT.into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "config".into(),
                mount_path: CONFIG_MOUNT.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(names.labels()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            volumes: Some(vec![Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: names.config_map(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }]),
            affinity: spec.affinity.clone(),
            tolerations: spec.tolerations.clone(),
            topology_spread_constraints: spec.topology_spread_constraints.clone(),
            termination_grace_period_seconds: Some(60),
            // The node image runs as user 10001; the volume must be its.
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(NODE_USER),
                run_as_group: Some(NODE_USER),
                fs_group: Some(NODE_USER),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
    }
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
            // Pod 0 founds the cluster before the others join it.
            pod_management_policy: Some("OrderedReady".into()),
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
