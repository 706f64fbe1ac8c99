//! One reconcile pass of a `ZdbCluster`: level-based and idempotent. It
//! reads the StatefulSet, its pods and the zdb cluster itself, decides
//! (pure functions in [`scale`] and [`upgrade`]), takes the admin actions
//! the decisions call for (each one a Kubernetes Event), applies every owned
//! object with server-side apply under one field manager, keeps the
//! cluster's placement driver running, and reports the status.

pub mod scale;
pub mod status;
pub mod upgrade;
pub mod volumes;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::admin::{ClusterAdmin, ClusterView, NodeState};
use crate::crd::{Phase, ZdbCluster, ZdbClusterStatus};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::names::{ClusterNames, FIELD_MANAGER, TEMPLATE_HASH_ANNOTATION};
use crate::placement::{Placement, PlacementConfig};
use crate::resources::{configmap, pdb, services, statefulset};
use upgrade::{PodInfo, StatefulSetInfo};

/// How soon to look again while something is in progress (a drain, a
/// restarting pod): the cluster's own progress is not a Kubernetes event.
pub const REQUEUE_BUSY: Duration = Duration::from_secs(5);
/// How soon to look again when all is quiet (node failures are not
/// Kubernetes events either).
pub const REQUEUE_IDLE: Duration = Duration::from_secs(30);
pub const REQUEUE_ERROR: Duration = Duration::from_secs(10);

/// Container waiting reasons after which a pod will not become ready
/// without a change of its spec.
const STUCK_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// What every reconcile pass shares.
pub struct Context {
    pub client: kube::Client,
    pub admin: Arc<dyn ClusterAdmin>,
    pub placement: Arc<dyn Placement>,
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    /// The time conditions are stamped with (fixed in tests).
    pub clock: fn() -> Timestamp,
}

pub fn cluster_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

pub async fn reconcile(cluster: Arc<ZdbCluster>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_cluster(&cluster, &ctx).await;
    ctx.metrics.reconciled(result.is_ok(), started.elapsed());
    result
}

pub fn error_policy(cluster: Arc<ZdbCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(REQUEUE_ERROR)
}

/// Publishes Events about one cluster; a failed publish is logged, never
/// fatal (the action itself happened).
struct Events<'a> {
    recorder: Recorder,
    reference: k8s_openapi::api::core::v1::ObjectReference,
    metrics: &'a Metrics,
}

impl Events<'_> {
    async fn publish(&self, type_: EventType, reason: &str, action: &str, note: String) {
        self.metrics.action(action);
        tracing::info!(reason, action, %note, "event");
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, &self.reference).await {
            tracing::warn!(%error, reason, "cannot publish an event");
        }
    }
}

async fn apply<K>(api: &Api<K>, name: &str, object: &K) -> Result<K>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(name, &params, &Patch::Apply(object)).await?)
}

async fn apply_status(api: &Api<ZdbCluster>, name: &str, status: &ZdbClusterStatus) -> Result<()> {
    let body = serde_json::json!({
        "apiVersion": "zdb.io/v1alpha1",
        "kind": "ZdbCluster",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}

fn statefulset_info(sts: &StatefulSet) -> StatefulSetInfo {
    let spec = sts.spec.as_ref();
    let status = sts.status.as_ref();
    StatefulSetInfo {
        replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
        partition: spec
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0),
        template_hash: sts.annotations().get(TEMPLATE_HASH_ANNOTATION).cloned(),
        update_revision: status.and_then(|s| s.update_revision.clone()),
        current_revision: status.and_then(|s| s.current_revision.clone()),
        status_current: status.and_then(|s| s.observed_generation) >= sts.metadata.generation,
    }
}

fn pod_info(pod: &Pod, names: &ClusterNames) -> Option<PodInfo> {
    let name = pod.metadata.name.clone()?;
    let ordinal = names.ordinal_of_pod(&name)?;
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    let stuck = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .find(|reason| STUCK_REASONS.contains(&reason.as_str()));
    Some(PodInfo {
        ordinal,
        revision: pod.labels().get("controller-revision-hash").cloned(),
        ready,
        stuck,
        terminating: pod.metadata.deletion_timestamp.is_some(),
        name,
    })
}

/// The claim templates of an existing StatefulSet, reduced to what the
/// operator applies (they are immutable; re-applying them keeps ownership).
fn existing_claims(sts: &StatefulSet) -> Option<Vec<PersistentVolumeClaim>> {
    let claims = sts.spec.as_ref()?.volume_claim_templates.as_ref()?;
    Some(
        claims
            .iter()
            .map(|claim| PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: claim.metadata.name.clone(),
                    ..ObjectMeta::default()
                },
                spec: claim.spec.as_ref().map(|spec| PersistentVolumeClaimSpec {
                    access_modes: spec.access_modes.clone(),
                    storage_class_name: spec.storage_class_name.clone(),
                    resources: spec.resources.clone(),
                    ..PersistentVolumeClaimSpec::default()
                }),
                status: None,
            })
            .collect(),
    )
}

fn state_reason(state: NodeState) -> (&'static str, &'static str) {
    match state {
        NodeState::Active => ("DrainCancelled", "ActivateNode"),
        NodeState::Draining => ("NodeDraining", "DrainNode"),
        NodeState::Decommissioned => ("NodeDecommissioned", "DecommissionNode"),
    }
}

async fn reconcile_cluster(cluster: &ZdbCluster, ctx: &Context) -> Result<Action> {
    let namespace = cluster
        .namespace()
        .ok_or(Error::MissingObjectField("metadata.namespace"))?;
    let names = ClusterNames::new(cluster.name_any(), namespace.clone());
    let key = cluster_key(&namespace, &names.name);
    let clusters: Api<ZdbCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let previous = cluster.status.clone();

    if cluster.spec.paused {
        ctx.placement.stop(&key);
        if previous.as_ref().and_then(|s| s.phase.as_ref()) != Some(&Phase::Paused) {
            let status = ZdbClusterStatus {
                phase: Some(Phase::Paused),
                ..previous.unwrap_or_default()
            };
            apply_status(&clusters, &names.name, &status).await?;
        }
        return Ok(Action::await_change());
    }

    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = statefulsets.get_opt(&names.statefulset()).await?;
    let pods: Vec<PodInfo> = match &existing {
        Some(_) => pods_api
            .list(&ListParams::default().labels(&names.label_selector()))
            .await?
            .items
            .iter()
            .filter_map(|pod| pod_info(pod, &names))
            .collect(),
        None => Vec::new(),
    };
    let sts_info = existing.as_ref().map(statefulset_info);
    let current = sts_info.as_ref().map(|s| s.replicas);
    let endpoints = names.node_addresses(current.unwrap_or(0));
    let view: Option<ClusterView> = if endpoints.is_empty() {
        None
    } else {
        match ctx.admin.observe(&endpoints).await {
            Ok(view) => Some(view),
            Err(error) => {
                tracing::info!(cluster = %key, %error, "the cluster does not answer");
                None
            }
        }
    };
    let expected_id = configmap::cluster_id(cluster, &names);
    let cluster_id = previous
        .as_ref()
        .and_then(|s| s.cluster_id.clone())
        .or_else(|| {
            view.as_ref()
                .and_then(|v| v.cluster_id.clone())
                .filter(|id| *id == expected_id)
        });

    let scale = scale::plan(
        cluster.spec.replicas,
        cluster.spec.replication_factor,
        current,
        view.as_ref(),
        &names,
    );
    let template = statefulset::pod_template(cluster, &names);
    let template_hash = statefulset::template_hash(&template)?;
    let rollout = upgrade::plan(
        sts_info.as_ref(),
        &template_hash,
        scale.replicas,
        &pods,
        view.as_ref(),
        &names,
    );

    let events = Events {
        recorder: Recorder::new(ctx.client.clone(), ctx.reporter.clone()),
        reference: cluster.object_ref(&()),
        metrics: &ctx.metrics,
    };
    let mut failures: Vec<String> = Vec::new();

    for change in &scale.changes {
        let (reason, action) = state_reason(change.state);
        match ctx
            .admin
            .set_node_state(&endpoints, change.node_id, change.state)
            .await
        {
            Ok(()) => {
                events
                    .publish(EventType::Normal, reason, action, change.reason.clone())
                    .await
            }
            Err(error) => failures.push(error.to_string()),
        }
    }
    for transfer in &rollout.transfers {
        match ctx
            .admin
            .transfer_leader(&endpoints, transfer.range_id, transfer.to)
            .await
        {
            Ok(()) => {
                events
                    .publish(
                        EventType::Normal,
                        "LeaderMoved",
                        "TransferLeader",
                        format!(
                            "moved the leadership of range {} from node {} to node {} before restarting {}",
                            transfer.range_id, transfer.from, transfer.to, transfer.pod
                        ),
                    )
                    .await
            }
            Err(error) => failures.push(error.to_string()),
        }
    }
    for (pod, why) in &rollout.delete_pods {
        match pods_api.delete(pod, &DeleteParams::default()).await {
            Ok(_) => {
                events
                    .publish(
                        EventType::Warning,
                        "StuckPodDeleted",
                        "DeletePod",
                        format!("deleted pod {pod} ({why}) so the StatefulSet recreates it"),
                    )
                    .await
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => failures.push(format!("deleting pod {pod}: {error}")),
        }
    }

    let owned_services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    apply(
        &owned_services,
        &names.headless_service(),
        &services::headless(cluster, &names)?,
    )
    .await?;
    apply(
        &owned_services,
        &names.client_service(),
        &services::client(cluster, &names)?,
    )
    .await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    apply(
        &config_maps,
        &names.config_map(),
        &configmap::config_map(cluster, &names, cluster_id.is_some(), scale.replicas)?,
    )
    .await?;
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
    apply(
        &budgets,
        &names.pod_disruption_budget(),
        &pdb::pod_disruption_budget(cluster, &names)?,
    )
    .await?;
    let decided = statefulset::Rollout {
        replicas: scale.replicas,
        partition: rollout.partition,
    };
    let applied = apply(
        &statefulsets,
        &names.statefulset(),
        &statefulset::statefulset(
            cluster,
            &names,
            &decided,
            existing.as_ref().and_then(existing_claims),
        )?,
    )
    .await?;

    match &sts_info {
        None => {
            events
                .publish(
                    EventType::Normal,
                    "Created",
                    "CreateCluster",
                    format!(
                        "created the StatefulSet with {} pods; pod 0 founds the cluster",
                        scale.replicas
                    ),
                )
                .await
        }
        Some(before) => {
            if before.replicas != scale.replicas {
                events
                    .publish(
                        EventType::Normal,
                        "Scaled",
                        "ScaleStatefulSet",
                        format!(
                            "StatefulSet from {} to {} pods",
                            before.replicas, scale.replicas
                        ),
                    )
                    .await;
            }
            if before.template_hash.as_deref() != Some(template_hash.as_str()) {
                events
                    .publish(
                        EventType::Normal,
                        "RollingUpdateStarted",
                        "StartRollingUpdate",
                        "new pod template; pods restart one at a time from the highest ordinal"
                            .into(),
                    )
                    .await;
            }
            if let Some(pod) = &rollout.restarting {
                events
                    .publish(
                        EventType::Normal,
                        "PodRestarting",
                        "LowerPartition",
                        format!(
                            "every range keeps its quorum without {pod}: partition {} -> {}",
                            before.partition, rollout.partition
                        ),
                    )
                    .await;
            }
        }
    }

    if let Some(old_size) = existing.as_ref().and_then(volumes::template_size) {
        let size = &cluster.spec.storage.size;
        if old_size != size {
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(ctx.client.clone(), &namespace);
            for claim in volumes::expand(&claims, &names, size).await? {
                events
                    .publish(
                        EventType::Normal,
                        "VolumeExpanded",
                        "ExpandVolume",
                        format!("asked for {size} on {claim} (was {old_size})"),
                    )
                    .await;
            }
        }
    }

    if cluster_id.is_some() {
        ctx.placement.ensure(
            &key,
            PlacementConfig::for_cluster(cluster, names.node_addresses(scale.replicas)),
        );
    }

    let ready_replicas = applied
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let progressing = if cluster_id.is_none() {
        Some((
            status::BOOTSTRAPPING,
            format!("waiting for pod {} to found the cluster", names.pod(0)),
        ))
    } else if rollout.in_progress {
        Some((
            status::ROLLING_UPDATE,
            rollout
                .waiting
                .clone()
                .or_else(|| {
                    rollout
                        .restarting
                        .as_ref()
                        .map(|pod| format!("restarting {pod}"))
                })
                .unwrap_or_else(|| format!("partition at {}", rollout.partition)),
        ))
    } else if scale.in_progress(current) || ready_replicas < scale.replicas {
        Some((
            status::SCALING,
            scale.waiting.clone().unwrap_or_else(|| {
                format!(
                    "{ready_replicas} of {} pods ready ({} asked for)",
                    scale.replicas, cluster.spec.replicas
                )
            }),
        ))
    } else {
        None
    };
    let degraded = if let Some(refused) = &scale.refused {
        Some(("InvalidSpec", refused.clone()))
    } else if let Some(blocked) = &rollout.blocked {
        Some(("RolloutBlocked", blocked.clone()))
    } else if !failures.is_empty() {
        Some(("AdminCallFailed", failures.join("; ")))
    } else {
        None
    };
    let new_status = status::status(
        previous.as_ref(),
        &names,
        &status::Observed {
            generation: cluster.metadata.generation,
            cluster_id,
            replicas: scale.replicas,
            ready_replicas,
            partition: Some(rollout.partition),
            view: view.as_ref(),
            progressing: progressing.clone(),
            degraded: degraded.clone(),
        },
        (ctx.clock)(),
    );
    if previous.as_ref() != Some(&new_status) {
        apply_status(&clusters, &names.name, &new_status).await?;
    }
    Ok(Action::requeue(
        if progressing.is_some() || degraded.is_some() {
            REQUEUE_BUSY
        } else {
            REQUEUE_IDLE
        },
    ))
}
