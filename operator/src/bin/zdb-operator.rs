//! `zdb-operator`: reconciles `ZdbCluster` objects while it holds the leader
//! lease, and serves `/metrics`, `/healthz` and `/readyz`. On SIGTERM (or
//! Ctrl-C) it lets the reconciles in flight finish, stops the placement
//! drivers and releases the lease, so a standby takes over at once.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::events::Reporter;
use kube::Api;
use zdb_operator::admin::ZdbAdmin;
use zdb_operator::leader_election::LeaderElector;
use zdb_operator::metrics::Metrics;
use zdb_operator::placement::PlacementDrivers;
use zdb_operator::reconcile::Context;

#[derive(Parser, Debug)]
#[command(
    name = "zdb-operator",
    version,
    about = "Kubernetes operator for zdb clusters"
)]
struct Args {
    /// Namespaces to watch (comma-separated); all when empty.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    namespace: Vec<String>,
    /// HTTP address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_listen: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "zdb-operator")]
    lease_name: String,
    /// Namespace of the Lease: the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events.
    #[arg(long, env = "POD_NAME", default_value = "zdb-operator")]
    identity: String,
    #[arg(long, default_value_t = 15)]
    lease_duration_secs: u64,
    /// How often each cluster's placement driver looks at it.
    #[arg(long, default_value_t = 2000)]
    placement_interval_ms: u64,
    /// A node unreachable this long has its replicas re-created elsewhere.
    #[arg(long, default_value_t = 300)]
    dead_after_secs: u64,
    /// Deadline of each zdb admin call, retries included.
    #[arg(long, default_value_t = 5)]
    admin_timeout_secs: u64,
    /// Log one JSON object per line.
    #[arg(long)]
    log_json: bool,
}

/// The namespaces to watch; `WATCH_NAMESPACES=""` (the chart's default)
/// means all of them.
fn watched_namespaces(given: &[String]) -> Vec<String> {
    given
        .iter()
        .map(|namespace| namespace.trim())
        .filter(|namespace| !namespace.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C only");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_json);
    let metrics = match Metrics::new() {
        Ok(metrics) => Arc::new(metrics),
        Err(error) => {
            eprintln!("error: metrics: {error}");
            return ExitCode::FAILURE;
        }
    };
    let client = match kube::Client::try_default().await {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: cannot reach the Kubernetes API: {error}");
            return ExitCode::FAILURE;
        }
    };
    let http = tokio::spawn(zdb_operator::metrics::serve(
        args.metrics_listen.clone(),
        metrics.clone(),
    ));

    let elector = LeaderElector::new(
        Api::<Lease>::namespaced(client.clone(), &args.lease_namespace),
        args.lease_name.clone(),
        args.identity.clone(),
        Duration::from_secs(args.lease_duration_secs),
    );
    tokio::select! {
        _ = elector.acquire() => {}
        result = http => {
            eprintln!("error: the HTTP server stopped: {result:?}");
            return ExitCode::FAILURE;
        }
    }
    metrics.set_leader(true);

    let (reports, placement_reports) = tokio::sync::mpsc::unbounded_channel();
    let admin_timeout = Duration::from_secs(args.admin_timeout_secs);
    let ctx = Arc::new(Context {
        client,
        admin: Arc::new(ZdbAdmin::new(admin_timeout)),
        placement: Arc::new(PlacementDrivers::new(
            Duration::from_millis(args.placement_interval_ms),
            Duration::from_secs(args.dead_after_secs),
            admin_timeout,
            reports,
        )),
        reporter: Reporter {
            controller: "zdb-operator".into(),
            instance: Some(args.identity.clone()),
        },
        metrics: metrics.clone(),
        clock: k8s_openapi::jiff::Timestamp::now,
    });
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing the reconciles in flight");
        let _ = stop.send(true);
    });
    tokio::select! {
        () = zdb_operator::controller::run(ctx, watched_namespaces(&args.namespace), placement_reports, stopping) => {
            metrics.set_leader(false);
            if let Err(error) = elector.release().await {
                tracing::warn!(%error, "cannot release the leader lease; it expires by itself");
            }
            tracing::info!("controllers stopped; exiting");
            ExitCode::SUCCESS
        }
        lost = elector.keep() => {
            // Another replica may act from now on: stop at once.
            metrics.set_leader(false);
            tracing::error!(error = %lost, "leadership lost; exiting");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Args::command().debug_assert();
    }

    #[test]
    fn an_empty_namespace_list_watches_all() {
        use clap::Parser;
        let args =
            super::Args::try_parse_from(["zdb-operator", "--namespace", ""]).expect("parses");
        assert!(super::watched_namespaces(&args.namespace).is_empty());
        let args =
            super::Args::try_parse_from(["zdb-operator", "--namespace", "a, b"]).expect("parses");
        assert_eq!(super::watched_namespaces(&args.namespace), ["a", "b"]);
    }
}
