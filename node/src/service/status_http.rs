//! The HTTP status port: Prometheus `/metrics` and a liveness `/healthz`.

use std::future::Future;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics;

pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(|| async { metrics::render() }))
        .route("/healthz", get(|| async { "ok\n" }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
