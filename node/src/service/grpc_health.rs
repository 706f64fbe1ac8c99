//! The standard `grpc.health.v1` service, reporting the node's real
//! readiness: SERVING only while `Health::readiness` holds, for the whole
//! server ("") and for `zdb.v1.Kv`.

use std::time::Duration;

use tokio::sync::watch;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;

use crate::health::Health;

const SERVICES: [&str; 2] = ["", "zdb.v1.Kv"];
const POLL: Duration = Duration::from_millis(200);

/// The health service, already reporting the present state, and kept in
/// step with `health` until `stop` (then NOT_SERVING).
pub async fn service(health: Health, stop: watch::Receiver<bool>) -> HealthServer<HealthService> {
    let reporter = HealthReporter::new();
    let reported = report(&health, &reporter, None).await;
    tokio::spawn(follow(health, reporter.clone(), reported, stop));
    HealthServer::new(HealthService::from_health_reporter(reporter))
}

async fn report(
    health: &Health,
    reporter: &HealthReporter,
    reported: Option<ServingStatus>,
) -> Option<ServingStatus> {
    let status = match health.readiness() {
        Ok(()) => ServingStatus::Serving,
        Err(_) => ServingStatus::NotServing,
    };
    if reported != Some(status) {
        for service in SERVICES {
            reporter.set_service_status(service, status).await;
        }
    }
    Some(status)
}

async fn follow(
    health: Health,
    reporter: HealthReporter,
    mut reported: Option<ServingStatus>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = tokio::time::sleep(POLL) => {}
        }
        reported = report(&health, &reporter, reported).await;
    }
    for service in SERVICES {
        reporter
            .set_service_status(service, ServingStatus::NotServing)
            .await;
    }
}
