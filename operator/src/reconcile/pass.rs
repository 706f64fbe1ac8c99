//! One reconcile pass of a live (not deleted) `ZdbCluster`. It first sees
//! to the certificates and Secrets the pods need
//! ([`security`]; the StatefulSet waits while one is
//! missing), reads the StatefulSet, its pods and the zdb cluster itself
//! (over TLS when it has TLS on), decides (pure
//! functions in [`scale`](super::scale) and [`upgrade`](super::upgrade)),
//! takes the admin actions the decisions call for (each one an Event),
//! applies every owned object, keeps the cluster's placement driver
//! running, and always ends with a status that says what failed: one
//! failing step does not stop the others, and every problem is in the
//! `Degraded` condition and, when new, in a Warning Event.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event as CoreEvent, Node, PersistentVolumeClaim, PersistentVolumeClaimSpec, Pod,
    Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::apply::{apply, apply_status, describe};
use super::events::Events;
use super::status::{
    self, Problem, ADMIN_CALL_FAILED, APPLY_FAILED, CERTIFICATE_FAILED, INVALID_SPEC,
    POD_DELETE_FAILED, READ_FAILED, RECREATING_STATEFULSET, ROLLOUT_BLOCKED, SECRET_MISSING,
    VOLUME_EXPANSION_FAILED, WAITING_FOR_CERTIFICATES,
};
use super::upgrade::{PodInfo, StatefulSetInfo};
use super::{
    cluster_key, migrate, observe, pods, scale, security, upgrade, volumes, zones, Context,
};
use crate::admin::{ClusterView, NodeState};
use crate::connection::Connection;
use crate::crd::{Phase, ZdbCluster, ZdbClusterStatus};
use crate::error::{Error, Result};
use crate::names::ClusterNames;
use crate::placement::PlacementConfig;
use crate::resources::{configmap, pdb, services, statefulset};

/// How soon to look again while something is in progress (a drain, a
/// restarting pod): the cluster's own progress is not a Kubernetes event.
pub const REQUEUE_BUSY: Duration = Duration::from_secs(5);
/// How soon to look again when all is quiet (node failures are not
/// Kubernetes events either; placement actions trigger a pass at once).
pub const REQUEUE_IDLE: Duration = Duration::from_secs(30);
/// While an old StatefulSet is being deleted to be re-created.
pub const REQUEUE_RECREATE: Duration = Duration::from_secs(2);

/// What a pass did: when to look again, and how many problems it found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub action: Action,
    pub problems: usize,
}

fn state_reason(state: NodeState) -> (&'static str, &'static str) {
    match state {
        NodeState::Active => ("DrainCancelled", "ActivateNode"),
        NodeState::Draining => ("NodeDraining", "DrainNode"),
        NodeState::Decommissioned => ("NodeDecommissioned", "DecommissionNode"),
    }
}

/// The Event action of a problem's Warning.
fn problem_action(reason: &str) -> &'static str {
    match reason {
        INVALID_SPEC => "Scale",
        READ_FAILED => "Observe",
        APPLY_FAILED => "Apply",
        VOLUME_EXPANSION_FAILED => "ExpandVolume",
        ADMIN_CALL_FAILED => "AdminCall",
        POD_DELETE_FAILED => "DeletePod",
        ROLLOUT_BLOCKED => "RollingUpdate",
        CERTIFICATE_FAILED => "IssueCertificate",
        SECRET_MISSING => "ReadSecret",
        _ => "ObservePods",
    }
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

/// Everything a pass needs to write the status.
struct Report<'a> {
    cluster: &'a ZdbCluster,
    names: &'a ClusterNames,
    clusters: &'a Api<ZdbCluster>,
    events: &'a Events<'a>,
    ctx: &'a Context,
}

impl Report<'_> {
    /// Writes the status (if it changed) and a Warning for each problem the
    /// previous status did not name.
    async fn finish(&self, observed: status::Observed<'_>, requeue: Duration) -> Result<Outcome> {
        let previous = self.cluster.status.as_ref();
        let previously = previous
            .and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == status::DEGRADED && c.status == "True")
            })
            .map(|c| c.message.clone())
            .unwrap_or_default();
        for problem in observed.problems {
            if !previously.contains(&problem.message) {
                self.events
                    .publish(
                        EventType::Warning,
                        problem.reason,
                        problem_action(problem.reason),
                        problem.message.clone(),
                    )
                    .await;
            }
        }
        let problems = observed.problems.len();
        let new_status = status::status(previous, self.names, &observed, (self.ctx.clock)());
        if previous != Some(&new_status) {
            apply_status(self.clusters, &self.names.name, &new_status).await?;
        }
        Ok(Outcome {
            action: Action::requeue(requeue),
            problems,
        })
    }

    /// A pass that cannot decide anything: the status keeps what it knew
    /// and says why.
    async fn unknown(
        &self,
        problems: &[Problem],
        progressing: Option<(&'static str, String)>,
    ) -> Result<Outcome> {
        let previous = self.cluster.status.clone().unwrap_or_default();
        self.finish(
            status::Observed {
                generation: self.cluster.metadata.generation,
                cluster_id: previous.cluster_id.clone(),
                replicas: previous.replicas,
                ready_replicas: previous.ready_replicas,
                selector: self.names.label_selector(),
                partition: previous.partition,
                view: None,
                progressing,
                problems,
            },
            if problems.is_empty() {
                REQUEUE_RECREATE
            } else {
                REQUEUE_BUSY
            },
        )
        .await
    }
}

/// Records in the registry the zone of every node whose pod runs in another
/// zone than the registry says.
async fn record_zones(
    ctx: &Context,
    nodes: &Connection,
    view: &ClusterView,
    pods: &[Pod],
    names: &ClusterNames,
    events: &Events<'_>,
    failures: &mut Vec<Problem>,
) {
    let kubernetes_nodes: Api<Node> = Api::all(ctx.client.clone());
    let known = match zones::zones_of(&kubernetes_nodes, pods).await {
        Ok(known) => known,
        Err(error) => {
            failures.push(Problem::new(
                READ_FAILED,
                format!(
                    "cannot read the Kubernetes nodes the pods run on (for their zones): {}",
                    describe(&error)
                ),
            ));
            return;
        }
    };
    for change in zones::changes(view, pods, &known, names) {
        match ctx
            .admin
            .set_node_zone(nodes, change.node_id, &change.zone)
            .await
        {
            Ok(()) => {
                events
                    .publish(
                        EventType::Normal,
                        "NodeZoneRecorded",
                        "RecordZone",
                        format!(
                            "node {} (pod {}) runs in zone {}",
                            change.node_id, change.pod, change.zone
                        ),
                    )
                    .await
            }
            Err(error) => failures.push(Problem::new(ADMIN_CALL_FAILED, error.to_string())),
        }
    }
}

pub async fn run(cluster: &ZdbCluster, ctx: &Context) -> Result<Outcome> {
    let namespace = cluster
        .namespace()
        .ok_or(Error::MissingObjectField("metadata.namespace"))?;
    let names = ClusterNames::new(cluster.name_any(), namespace.clone());
    let key = cluster_key(&namespace, &names.name);
    let clusters: Api<ZdbCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let previous = cluster.status.clone();
    let events = Events::new(
        ctx.client.clone(),
        ctx.reporter.clone(),
        cluster.object_ref(&()),
        &ctx.metrics,
    );
    let report = Report {
        cluster,
        names: &names,
        clusters: &clusters,
        events: &events,
        ctx,
    };

    if cluster.spec.paused {
        ctx.placement.stop(&key);
        if previous.as_ref().and_then(|s| s.phase.as_ref()) != Some(&Phase::Paused) {
            let status = ZdbClusterStatus {
                phase: Some(Phase::Paused),
                ..previous.unwrap_or_default()
            };
            apply_status(&clusters, &names.name, &status).await?;
        }
        return Ok(Outcome {
            action: Action::await_change(),
            problems: 0,
        });
    }

    // Certificates and Secrets first: the pods mount them, and the
    // operator's own calls may need the client certificate.
    let security = security::prepare(cluster, &names, &ctx.client, &events).await;
    let with_security = |problem: Problem| {
        let mut problems = security.problems.clone();
        problems.push(problem);
        problems
    };

    // Nothing can be decided without the StatefulSet and the pods.
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = match statefulsets.get_opt(&names.statefulset()).await {
        Ok(existing) => existing,
        Err(error) => {
            let problem = Problem::new(
                READ_FAILED,
                format!(
                    "cannot read StatefulSet {}: {}",
                    names.statefulset(),
                    describe(&error)
                ),
            );
            return report.unknown(&with_security(problem), None).await;
        }
    };
    let pods = match observe::pods(&pods_api, &names).await {
        Ok(pods) => pods,
        Err(error) => {
            let problem = Problem::new(
                READ_FAILED,
                format!("cannot list the pods: {}", describe(&error)),
            );
            return report.unknown(&with_security(problem), None).await;
        }
    };
    if existing
        .as_ref()
        .is_some_and(|sts| sts.metadata.deletion_timestamp.is_some())
    {
        let waiting = format!(
            "waiting for the old StatefulSet {} to go (its pods stay and keep running)",
            names.statefulset()
        );
        return report
            .unknown(&security.problems, Some((RECREATING_STATEFULSET, waiting)))
            .await;
    }

    let pod_infos: Vec<PodInfo> = pods
        .iter()
        .filter_map(|pod| pods::pod_info(pod, &names))
        .collect();
    let sts_info: Option<StatefulSetInfo> = match &existing {
        Some(sts) => Some(observe::statefulset_info(sts)),
        None => observe::orphaned_pods_info(&pod_infos),
    };
    let current = sts_info.as_ref().map(|s| s.replicas);
    let nodes = Connection::new(
        names.node_addresses(current.unwrap_or(0)),
        security.client_tls.clone(),
    );
    let view: Option<ClusterView> = if nodes.is_empty() {
        None
    } else {
        match ctx.admin.observe(&nodes).await {
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
        &pod_infos,
        view.as_ref(),
        &names,
        cluster_id.is_some(),
    );
    let desired_sts = statefulset::statefulset(
        cluster,
        &names,
        &statefulset::Rollout {
            replicas: scale.replicas,
            partition: rollout.partition,
        },
        existing.as_ref().and_then(existing_claims),
    )?;

    if let Some(why) = existing
        .as_ref()
        .filter(|_| !security.hold)
        .and_then(|sts| migrate::recreate_reason(sts, &desired_sts))
    {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            preconditions: Some(Preconditions {
                uid: existing.as_ref().and_then(|sts| sts.metadata.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let mut problems = security.problems.clone();
        match statefulsets.delete(&names.statefulset(), &params).await {
            Ok(_) => {
                events
                    .publish(
                        EventType::Normal,
                        "StatefulSetRecreated",
                        "RecreateStatefulSet",
                        format!("deleted StatefulSet {} keeping its pods and volumes, to create it again: {why}", names.statefulset()),
                    )
                    .await;
            }
            Err(error) => problems.push(Problem::new(
                APPLY_FAILED,
                format!(
                    "cannot delete StatefulSet {} to re-create it ({why}): {}",
                    names.statefulset(),
                    describe(&error)
                ),
            )),
        }
        return report
            .unknown(
                &problems,
                Some((
                    RECREATING_STATEFULSET,
                    format!("re-creating the StatefulSet: {why}"),
                )),
            )
            .await;
    }

    let mut failures: Vec<Problem> = Vec::new();
    for change in &scale.changes {
        let (reason, action) = state_reason(change.state);
        match ctx
            .admin
            .set_node_state(&nodes, change.node_id, change.state)
            .await
        {
            Ok(()) => {
                events
                    .publish(EventType::Normal, reason, action, change.reason.clone())
                    .await
            }
            Err(error) => failures.push(Problem::new(ADMIN_CALL_FAILED, error.to_string())),
        }
    }
    // A held StatefulSet restarts no pod: no leader needs to move off one.
    for transfer in rollout.transfers.iter().filter(|_| !security.hold) {
        match ctx
            .admin
            .transfer_leader(&nodes, transfer.range_id, transfer.to)
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
            Err(error) => failures.push(Problem::new(ADMIN_CALL_FAILED, error.to_string())),
        }
    }
    if let Some(view) = &view {
        record_zones(ctx, &nodes, view, &pods, &names, &events, &mut failures).await;
    }
    let mut deleted_pods: Vec<&str> = Vec::new();
    for (pod, why) in &rollout.delete_pods {
        match pods_api.delete(pod, &DeleteParams::default()).await {
            Ok(_) => {
                deleted_pods.push(pod);
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
            Err(error) => failures.push(Problem::new(
                POD_DELETE_FAILED,
                format!("cannot delete pod {pod}: {}", describe(&error)),
            )),
        }
    }

    let owned_services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut apply_failed = |what: String, error: kube::Error| {
        failures.push(Problem::new(
            APPLY_FAILED,
            format!("cannot apply {what}: {}", describe(&error)),
        ))
    };
    for service in [
        services::headless(cluster, &names)?,
        services::client(cluster, &names)?,
    ] {
        let name = service.name_any();
        if let Err(error) = apply(&owned_services, &name, &service).await {
            apply_failed(format!("Service {name}"), error);
        }
    }
    let config = configmap::config_map(cluster, &names, cluster_id.is_some(), scale.replicas)?;
    if let Err(error) = apply(&config_maps, &names.config_map(), &config).await {
        apply_failed(format!("ConfigMap {}", names.config_map()), error);
    }
    let budget = pdb::pod_disruption_budget(cluster, &names)?;
    if let Err(error) = apply(&budgets, &names.pod_disruption_budget(), &budget).await {
        apply_failed(
            format!("PodDisruptionBudget {}", names.pod_disruption_budget()),
            error,
        );
    }
    // Pods that could not mount their Secrets would only wait: the
    // StatefulSet waits instead (the security problems say why).
    let applied = if security.hold {
        None
    } else {
        match apply(&statefulsets, &names.statefulset(), &desired_sts).await {
            Ok(applied) => Some(applied),
            Err(error) => {
                apply_failed(format!("StatefulSet {}", names.statefulset()), error);
                None
            }
        }
    };

    if applied.is_some() {
        match (&existing, &sts_info) {
            (None, None) => {
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
            (None, Some(adopted)) => {
                events
                    .publish(
                        EventType::Normal,
                        "StatefulSetCreated",
                        "CreateStatefulSet",
                        format!(
                            "created StatefulSet {} over the {} pods already running; they move to its template one at a time",
                            names.statefulset(), adopted.replicas
                        ),
                    )
                    .await
            }
            (Some(_), Some(before)) => {
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
            (Some(_), None) => {}
        }
    }

    if let Some(old_size) = existing.as_ref().and_then(volumes::template_size) {
        let size = &cluster.spec.storage.size;
        if old_size != size {
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(ctx.client.clone(), &namespace);
            let expansion = volumes::expand(&claims, &names, size).await;
            for claim in expansion.expanded {
                events
                    .publish(
                        EventType::Normal,
                        "VolumeExpanded",
                        "ExpandVolume",
                        format!("asked for {size} on {claim} (was {old_size})"),
                    )
                    .await;
            }
            failures.extend(
                expansion
                    .failures
                    .into_iter()
                    .map(|failure| Problem::new(VOLUME_EXPANSION_FAILED, failure)),
            );
        }
    }

    if cluster_id.is_some() {
        ctx.placement.ensure(
            &key,
            PlacementConfig::for_cluster(
                cluster,
                Connection::new(
                    names.node_addresses(scale.replicas),
                    security.client_tls.clone(),
                ),
            ),
        );
    }

    // Pods the StatefulSet controller cannot create leave only an Event.
    let sts_now = applied.as_ref().or(existing.as_ref());
    let mut create_failures: Vec<CoreEvent> = Vec::new();
    if let Some(sts) = sts_now.filter(|_| pods::any_missing(&pods, &names, scale.replicas)) {
        let core_events: Api<CoreEvent> = Api::namespaced(ctx.client.clone(), &namespace);
        match observe::create_failures(&core_events, sts).await {
            Ok(found) => create_failures = found,
            Err(error) => failures.push(Problem::new(
                READ_FAILED,
                format!("cannot read the StatefulSet's Events: {}", describe(&error)),
            )),
        }
    }

    let ready_replicas = sts_now
        .and_then(|sts| sts.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let progressing = if let Some(waiting) = &security.waiting {
        Some((WAITING_FOR_CERTIFICATES, waiting.clone()))
    } else if cluster_id.is_none() {
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

    let mut problems: Vec<Problem> = Vec::new();
    if let Some(refused) = &scale.refused {
        problems.push(Problem::new(INVALID_SPEC, refused.clone()));
    }
    problems.extend(security.problems.iter().cloned());
    problems.extend(failures);
    if let Some(blocked) = &rollout.blocked {
        problems.push(Problem::new(ROLLOUT_BLOCKED, blocked.clone()));
    }
    // A pod deleted this pass is being replaced: what ailed it is past.
    let remaining: Vec<Pod> = pods
        .into_iter()
        .filter(|pod| !deleted_pods.contains(&pod.name_any().as_str()))
        .collect();
    problems.extend(pods::problems(
        &remaining,
        &names,
        scale.replicas,
        &create_failures,
    ));

    let busy = progressing.is_some() || !problems.is_empty();
    report
        .finish(
            status::Observed {
                generation: cluster.metadata.generation,
                cluster_id,
                replicas: scale.replicas,
                ready_replicas,
                selector: names.label_selector(),
                partition: Some(rollout.partition),
                view: view.as_ref(),
                progressing,
                problems: &problems,
            },
            if busy { REQUEUE_BUSY } else { REQUEUE_IDLE },
        )
        .await
}
