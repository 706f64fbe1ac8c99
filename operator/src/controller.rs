//! Wiring: one kube-runtime Controller per watched namespace (or one for
//! all), reconciling `ZdbCluster`s and the StatefulSets they own; placement
//! reports turned into Events, and into a reconcile of their cluster at
//! once (a split shows in the status within seconds, not at the next idle
//! requeue). Runs until `shutdown` turns true, letting reconciles in flight
//! finish. Deleted clusters stop their placement driver in the finalizer's
//! cleanup; a driver that reports for a cluster no longer there is stopped
//! too.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use tokio::sync::{mpsc, watch};

use crate::crd::ZdbCluster;
use crate::names::FIELD_MANAGER;
use crate::placement::PlacementReport;
use crate::placement_events::PlacementEvents;
use crate::reconcile::{cluster_key, error_policy, reconcile, Context};

fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

fn find_cluster(stores: &[Store<ZdbCluster>], key: &str) -> Option<Arc<ZdbCluster>> {
    stores
        .iter()
        .flat_map(|store| store.state())
        .find(|cluster| {
            cluster
                .namespace()
                .is_some_and(|ns| cluster_key(&ns, &cluster.name_any()) == key)
        })
}

/// Where to send a reconcile request for a cluster: the controller that
/// watches its namespace.
struct Triggers(Vec<(Option<String>, mpsc::UnboundedSender<ObjectRef<ZdbCluster>>)>);

impl Triggers {
    fn send(&self, cluster: &ZdbCluster) {
        let namespace = cluster.namespace();
        if let Some((_, sender)) = self
            .0
            .iter()
            .find(|(scope, _)| scope.is_none() || *scope == namespace)
        {
            let _ = sender.send(ObjectRef::from_obj(cluster));
        }
    }
}

fn stream_of<T: Send + 'static>(
    receiver: mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

async fn until(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

pub async fn run(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    mut placement_reports: mpsc::UnboundedReceiver<PlacementReport>,
    shutdown: watch::Receiver<bool>,
) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={FIELD_MANAGER}"));
    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    let mut triggers = Vec::new();
    for scope in &scopes {
        let (trigger, triggered) = mpsc::unbounded_channel();
        triggers.push((scope.clone(), trigger));
        let controller = Controller::new(
            scoped::<ZdbCluster>(&ctx.client, scope.as_deref()),
            watcher::Config::default(),
        )
        .owns(
            scoped::<StatefulSet>(&ctx.client, scope.as_deref()),
            owned.clone(),
        )
        .reconcile_on(stream_of(triggered))
        .graceful_shutdown_on(until(shutdown.clone()));
        stores.push(controller.store());
        let ctx = ctx.clone();
        controllers.push(
            controller
                .run(reconcile, error_policy, ctx)
                .for_each(|result| async move {
                    if let Err(error) = result {
                        tracing::debug!(%error, "controller");
                    }
                })
                .boxed(),
        );
    }
    let triggers = Triggers(triggers);

    let report_ctx = ctx.clone();
    let reporter = tokio::spawn(async move {
        let mut events =
            PlacementEvents::new(report_ctx.client.clone(), report_ctx.reporter.clone());
        while let Some(report) = placement_reports.recv().await {
            let Some(cluster) = find_cluster(&stores, &report.cluster) else {
                // Its cluster went without a cleanup (a finalizer removed by
                // hand): the driver has nothing left to drive.
                report_ctx.placement.stop(&report.cluster);
                continue;
            };
            if !report.failed {
                triggers.send(&cluster);
            }
            events
                .publish(&cluster.object_ref(&()), &report, &report_ctx.metrics)
                .await;
        }
    });

    futures::future::join_all(controllers).await;
    reporter.abort();
    for running in ctx.placement.running() {
        ctx.placement.stop(&running);
    }
}
