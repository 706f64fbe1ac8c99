//! The operator's own metrics, and its HTTP port: Prometheus `/metrics`,
//! `/healthz` (the process serves) and `/readyz` (it holds the lease and
//! its controller runs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::error::{Error, Result};

/// Metrics of one operator process; its own registry so tests can make as
/// many as they like.
pub struct Metrics {
    registry: Registry,
    reconciles: IntCounterVec,
    reconcile_seconds: HistogramVec,
    actions: IntCounterVec,
    leader: IntGauge,
    ready: AtomicBool,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "zdb_operator_reconciles_total",
                "reconcile passes by result",
            ),
            &["result"],
        )?;
        let reconcile_seconds = HistogramVec::new(
            HistogramOpts::new(
                "zdb_operator_reconcile_seconds",
                "duration of a reconcile pass",
            ),
            &["result"],
        )?;
        let actions = IntCounterVec::new(
            Opts::new(
                "zdb_operator_actions_total",
                "actions taken on clusters (each one is also an Event)",
            ),
            &["action"],
        )?;
        let leader = IntGauge::new(
            "zdb_operator_leader",
            "1 while this replica holds the leader lease",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(reconcile_seconds.clone()))?;
        registry.register(Box::new(actions.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(Metrics {
            registry,
            reconciles,
            reconcile_seconds,
            actions,
            leader,
            ready: AtomicBool::new(false),
        })
    }

    pub fn reconciled(&self, ok: bool, took: Duration) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles.with_label_values(&[result]).inc();
        self.reconcile_seconds
            .with_label_values(&[result])
            .observe(took.as_secs_f64());
    }

    /// Reconcile passes finished, whatever their result.
    pub fn reconciles_total(&self) -> u64 {
        ["ok", "error"]
            .iter()
            .map(|result| self.reconciles.with_label_values(&[*result]).get())
            .sum()
    }

    pub fn action(&self, action: &str) {
        self.actions.with_label_values(&[action]).inc();
    }

    pub fn actions_taken(&self, action: &str) -> u64 {
        self.actions.with_label_values(&[action]).get()
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
        self.ready.store(leader, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

pub fn router(metrics: Arc<Metrics>) -> Router {
    let for_metrics = metrics.clone();
    Router::new()
        .route("/metrics", get(move || async move { for_metrics.render() }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || async move {
                if metrics.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "leader\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "standby\n")
                }
            }),
        )
}

pub async fn serve(address: String, metrics: Arc<Metrics>) -> Result<()> {
    let address = address.as_str();
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Http {
            address: address.to_owned(),
            source,
        })?;
    axum::serve(listener, router(metrics))
        .await
        .map_err(|source| Error::Http {
            address: address.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counted_actions() {
        let metrics = Metrics::new().expect("fresh registry");
        metrics.action("DrainNode");
        metrics.reconciled(true, Duration::from_millis(3));
        let text = metrics.render();
        assert!(text.contains(r#"zdb_operator_actions_total{action="DrainNode"} 1"#));
        assert!(text.contains(r#"zdb_operator_reconciles_total{result="ok"} 1"#));
    }
}
