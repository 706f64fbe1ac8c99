//! The HTTP status port: Prometheus `/metrics`, and the probes Kubernetes
//! expects: `/livez` (the process and its store loop are alive), `/readyz`
//! (it should get requests: started, caught up, not shutting down) and
//! `/healthz` (the same as `/readyz`). A failing probe answers 503 with
//! the reason.

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::health::Health;
use crate::metrics;

fn probe(result: Result<(), String>) -> (StatusCode, String) {
    match result {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

pub async fn serve(
    listener: TcpListener,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(|| async { metrics::render() }))
        .route(
            "/livez",
            get(|State(health): State<Health>| async move { probe(health.liveness()) }),
        )
        .route(
            "/readyz",
            get(|State(health): State<Health>| async move { probe(health.readiness()) }),
        )
        .route(
            "/healthz",
            get(|State(health): State<Health>| async move { probe(health.readiness()) }),
        )
        .with_state(health);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
