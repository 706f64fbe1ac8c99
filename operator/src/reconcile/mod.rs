//! Reconciling a `ZdbCluster`, level-based and idempotent. A finalizer
//! makes deletion a step the operator sees: the cluster's placement driver
//! stops before the object goes (owned objects then go by garbage
//! collection; volumes stay). A live cluster gets one [`pass`].
//!
//! - [`security`]: the certificates and Secrets the pods mount (and the
//!   operator's client certificate); [`certificates`]: operator-managed TLS.
//! - [`observe`]: what a pass reads; [`pods`]: what the pods say.
//! - [`scale`], [`upgrade`]: pure decisions; [`migrate`]: StatefulSets an
//!   update cannot fix; [`volumes`]: growing claims; [`zones`]: the zone of
//!   each node, recorded for placement.
//! - [`apply`], [`events`], [`status`]: what a pass writes.

pub mod apply;
pub mod certificates;
pub mod events;
pub mod migrate;
pub mod observe;
pub mod pass;
pub mod pods;
pub mod scale;
pub mod security;
pub mod status;
pub mod upgrade;
pub mod volumes;
pub mod zones;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::finalizer::{finalizer, Event as Finalized};
use kube::{Api, ResourceExt};

use crate::admin::ClusterAdmin;
use crate::crd::ZdbCluster;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::placement::Placement;

pub use pass::{REQUEUE_BUSY, REQUEUE_IDLE};

/// Held by every `ZdbCluster` the operator manages, until its placement
/// driver has stopped.
pub const FINALIZER: &str = "zdb.io/operator";
pub const REQUEUE_ERROR: Duration = Duration::from_secs(10);

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

/// A deleted cluster: its placement driver stops; everything it owns goes
/// by garbage collection once the finalizer is gone.
fn cleanup(cluster: &ZdbCluster, ctx: &Context) -> Action {
    if let Some(namespace) = cluster.namespace() {
        let key = cluster_key(&namespace, &cluster.name_any());
        ctx.placement.stop(&key);
        tracing::info!(cluster = %key, "deleted; placement driver stopped");
    }
    Action::await_change()
}

pub async fn reconcile(cluster: Arc<ZdbCluster>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let namespace = cluster
        .namespace()
        .ok_or(Error::MissingObjectField("metadata.namespace"))?;
    let clusters: Api<ZdbCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut problems = 0;
    let result = finalizer(&clusters, FINALIZER, cluster, |event| async {
        match event {
            Finalized::Apply(cluster) => {
                let outcome = pass::run(&cluster, &ctx).await?;
                problems = outcome.problems;
                Ok::<_, Error>(outcome.action)
            }
            Finalized::Cleanup(cluster) => Ok(cleanup(&cluster, &ctx)),
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)));
    ctx.metrics
        .reconciled(result.is_ok() && problems == 0, started.elapsed());
    result
}

pub fn error_policy(cluster: Arc<ZdbCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), %error, "reconcile failed; retrying");
    Action::requeue(REQUEUE_ERROR)
}
