//! One placement driver per cluster: the same `zdb_placement::driver::run`
//! that `zdbctl local up` runs (splits, repair to the replication factor,
//! moving replicas off draining nodes, balancing), as a background task
//! started and stopped with the `ZdbCluster`, reaching the nodes through
//! their headless-Service DNS names (over TLS, with the operator's client
//! certificate, when the cluster has TLS on: a renewed certificate is a
//! new config, so the driver restarts with it).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use zdb_placement::driver::{Report, Step};
use zdb_placement::planner::{Settings, SplitSettings};

use crate::connection::{ClientTls, Connection};
use crate::crd::ZdbCluster;

/// What one cluster's driver runs with; a change restarts the driver.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementConfig {
    pub endpoints: Vec<String>,
    pub tls: Option<ClientTls>,
    pub settings: Settings,
}

impl PlacementConfig {
    pub fn for_cluster(cluster: &ZdbCluster, nodes: Connection) -> Self {
        let Connection { endpoints, tls } = nodes;
        let split = cluster.spec.split.clone().unwrap_or_default();
        let defaults = SplitSettings::default();
        PlacementConfig {
            endpoints,
            tls,
            settings: Settings {
                replication_factor: usize::try_from(cluster.spec.replication_factor)
                    .unwrap_or(Settings::default().replication_factor),
                split: SplitSettings {
                    max_bytes: split.max_bytes.unwrap_or(defaults.max_bytes),
                    max_writes_per_second: split
                        .max_writes_per_second
                        .map(|writes| writes as f64)
                        .or(defaults.max_writes_per_second),
                },
                ..Settings::default()
            },
        }
    }
}

/// `namespace/name` of a cluster.
pub type ClusterKey = String;

/// One step of a placement round, to report as an Event on the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementReport {
    pub cluster: ClusterKey,
    pub step: Step,
    pub message: String,
    /// The step failed (the driver tries again next round).
    pub failed: bool,
}

impl PlacementReport {
    pub fn new(cluster: &ClusterKey, report: &Report, failed: bool) -> Self {
        PlacementReport {
            cluster: cluster.clone(),
            step: report.step,
            message: report.message.clone(),
            failed,
        }
    }
}

/// Starts and stops the per-cluster drivers.
pub trait Placement: Send + Sync {
    /// Runs the driver of `cluster` with `config` (restarting it if the
    /// config changed; nothing if it already runs with it).
    fn ensure(&self, cluster: &ClusterKey, config: PlacementConfig);
    /// Stops the driver of `cluster`, if one runs.
    fn stop(&self, cluster: &ClusterKey);
    /// The clusters whose driver runs.
    fn running(&self) -> Vec<ClusterKey>;
}

struct Driver {
    config: PlacementConfig,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The real drivers: tokio tasks running `zdb_placement::driver::run`.
pub struct PlacementDrivers {
    interval: Duration,
    dead_after: Duration,
    client_timeout: Duration,
    drivers: Mutex<HashMap<ClusterKey, Driver>>,
    reports: mpsc::UnboundedSender<PlacementReport>,
}

impl PlacementDrivers {
    /// `reports` receives every action and failure of every driver.
    pub fn new(
        interval: Duration,
        dead_after: Duration,
        client_timeout: Duration,
        reports: mpsc::UnboundedSender<PlacementReport>,
    ) -> Self {
        PlacementDrivers {
            interval,
            dead_after,
            client_timeout,
            drivers: Mutex::new(HashMap::new()),
            reports,
        }
    }

    fn start(&self, cluster: &ClusterKey, config: PlacementConfig) -> Option<Driver> {
        let nodes = Connection::new(config.endpoints.clone(), config.tls.clone());
        let client = match zdb_client::Client::new(nodes.client_config(self.client_timeout)) {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(%cluster, error = %err, "cannot start the placement driver");
                return None;
            }
        };
        let (stop, stopped) = watch::channel(false);
        let reports = self.reports.clone();
        let key = cluster.clone();
        let task = tokio::spawn(zdb_placement::driver::run(
            client,
            config.settings.clone(),
            self.interval,
            self.dead_after,
            stopped,
            move |round| {
                for done in &round.done {
                    let _ = reports.send(PlacementReport::new(&key, done, false));
                }
                for failure in &round.failures {
                    let _ = reports.send(PlacementReport::new(&key, failure, true));
                }
            },
        ));
        tracing::info!(%cluster, nodes = config.endpoints.len(), "placement driver started");
        Some(Driver { config, stop, task })
    }
}

impl Placement for PlacementDrivers {
    fn ensure(&self, cluster: &ClusterKey, config: PlacementConfig) {
        let Ok(mut drivers) = self.drivers.lock() else {
            return;
        };
        if let Some(driver) = drivers.get(cluster) {
            if driver.config == config && !driver.task.is_finished() {
                return;
            }
        }
        if let Some(old) = drivers.remove(cluster) {
            let _ = old.stop.send(true);
        }
        if let Some(driver) = self.start(cluster, config) {
            drivers.insert(cluster.clone(), driver);
        }
    }

    fn stop(&self, cluster: &ClusterKey) {
        let Ok(mut drivers) = self.drivers.lock() else {
            return;
        };
        if let Some(driver) = drivers.remove(cluster) {
            let _ = driver.stop.send(true);
            tracing::info!(%cluster, "placement driver stopped");
        }
    }

    fn running(&self) -> Vec<ClusterKey> {
        self.drivers
            .lock()
            .map(|drivers| drivers.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{SplitSpec, ZdbCluster, ZdbClusterSpec};

    fn cluster() -> ZdbCluster {
        let spec: ZdbClusterSpec = serde_json::from_value(serde_json::json!({
            "replicas": 5, "replicationFactor": 5, "image": "zdb:1",
            "storage": {"size": "1Gi"}, "split": {"maxBytes": 1000},
        }))
        .expect("a valid spec");
        ZdbCluster::new("db", spec)
    }

    #[test]
    fn settings_follow_the_spec() {
        let config =
            PlacementConfig::for_cluster(&cluster(), Connection::new(vec!["a:1".into()], None));
        assert_eq!(config.settings.replication_factor, 5);
        assert_eq!(config.settings.split.max_bytes, 1000);
        let mut other = cluster();
        other.spec.split = Some(SplitSpec {
            max_bytes: None,
            max_writes_per_second: Some(50),
        });
        let config = PlacementConfig::for_cluster(&other, Connection::default());
        assert_eq!(
            config.settings.split.max_bytes,
            SplitSettings::default().max_bytes
        );
        assert_eq!(config.settings.split.max_writes_per_second, Some(50.0));
    }

    #[tokio::test]
    async fn one_driver_per_cluster_restarted_only_on_a_new_config() {
        let (reports, _receiver) = mpsc::unbounded_channel();
        // A long interval: the drivers never reach out during the test.
        let drivers = PlacementDrivers::new(
            Duration::from_secs(3600),
            Duration::from_secs(60),
            Duration::from_secs(1),
            reports,
        );
        let key: ClusterKey = "prod/db".into();
        let config = PlacementConfig::for_cluster(
            &cluster(),
            Connection::new(vec!["127.0.0.1:1".into()], None),
        );
        drivers.ensure(&key, config.clone());
        let first_task_id = drivers.drivers.lock().expect("lock")[&key].task.id();
        drivers.ensure(&key, config.clone());
        assert_eq!(
            drivers.drivers.lock().expect("lock")[&key].task.id(),
            first_task_id
        );
        let mut grown = config;
        grown.endpoints.push("127.0.0.1:2".into());
        drivers.ensure(&key, grown);
        assert_ne!(
            drivers.drivers.lock().expect("lock")[&key].task.id(),
            first_task_id
        );
        assert_eq!(drivers.running(), vec![key.clone()]);
        drivers.stop(&key);
        assert!(drivers.running().is_empty());
    }
}
