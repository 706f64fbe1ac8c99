//! Wiring: one kube-runtime Controller per watched namespace (or one for
//! all), reconciling `ZdbCluster`s and the StatefulSets they own; placement
//! reports turned into Events; placement drivers of deleted clusters
//! stopped.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use tokio::sync::mpsc;

use crate::crd::ZdbCluster;
use crate::names::FIELD_MANAGER;
use crate::placement::PlacementReport;
use crate::reconcile::{cluster_key, error_policy, reconcile, Context};

/// How often drivers of clusters that no longer exist are looked for.
const JANITOR_INTERVAL: Duration = Duration::from_secs(30);

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

fn known_clusters(stores: &[Store<ZdbCluster>]) -> HashSet<String> {
    stores
        .iter()
        .flat_map(|store| store.state())
        .filter_map(|cluster| Some(cluster_key(&cluster.namespace()?, &cluster.name_any())))
        .collect()
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

/// Runs until the controllers stop (SIGTERM / Ctrl-C).
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    mut placement_reports: mpsc::UnboundedReceiver<PlacementReport>,
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
    for scope in &scopes {
        let controller = Controller::new(
            scoped::<ZdbCluster>(&ctx.client, scope.as_deref()),
            watcher::Config::default(),
        )
        .owns(
            scoped::<StatefulSet>(&ctx.client, scope.as_deref()),
            owned.clone(),
        )
        .shutdown_on_signal();
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

    let janitor_stores = stores.clone();
    let janitor_ctx = ctx.clone();
    let janitor = tokio::spawn(async move {
        loop {
            tokio::time::sleep(JANITOR_INTERVAL).await;
            let known = known_clusters(&janitor_stores);
            for running in janitor_ctx.placement.running() {
                if !known.contains(&running) {
                    janitor_ctx.placement.stop(&running);
                }
            }
        }
    });

    let report_stores = stores.clone();
    let report_ctx = ctx.clone();
    let reporter = tokio::spawn(async move {
        let recorder = Recorder::new(report_ctx.client.clone(), report_ctx.reporter.clone());
        while let Some(report) = placement_reports.recv().await {
            if let Some(failure) = report.failure {
                tracing::info!(cluster = %report.cluster, %failure, "placement action failed; the driver retries");
                continue;
            }
            let (Some(done), Some(cluster)) =
                (report.done, find_cluster(&report_stores, &report.cluster))
            else {
                continue;
            };
            report_ctx.metrics.action("Placement");
            let event = Event {
                type_: EventType::Normal,
                reason: "Placement".into(),
                note: Some(done),
                action: "Placement".into(),
                secondary: None,
            };
            if let Err(error) = recorder.publish(&event, &cluster.object_ref(&())).await {
                tracing::warn!(%error, "cannot publish a placement event");
            }
        }
    });

    futures::future::join_all(controllers).await;
    janitor.abort();
    reporter.abort();
    for running in ctx.placement.running() {
        ctx.placement.stop(&running);
    }
}
