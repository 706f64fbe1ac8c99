//! Test doubles of the zdb side: an in-memory model of a cluster's admin
//! API, and a placement recorder.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use futures::future::BoxFuture;

use crate::admin::{AdminError, ClusterAdmin, ClusterView, NodeState};
use crate::connection::{ClientTls, Connection};
use crate::placement::{ClusterKey, Placement, PlacementConfig};

/// An in-memory zdb cluster: node states, replica and leader counts,
/// ranges. `None` view: no node answers.
#[derive(Default)]
pub struct FakeZdb {
    pub view: Mutex<Option<ClusterView>>,
    pub calls: Mutex<Vec<String>>,
    /// The TLS material of every call, in order (None: plaintext).
    pub tls_seen: Mutex<Vec<Option<ClientTls>>>,
}

impl FakeZdb {
    pub fn set_view(&self, view: Option<ClusterView>) {
        *self.view.lock().expect("fake zdb lock") = view;
    }

    pub fn edit(&self, change: impl FnOnce(&mut ClusterView)) {
        if let Some(view) = self.view.lock().expect("fake zdb lock").as_mut() {
            change(view);
        }
    }

    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.lock().expect("fake zdb lock"))
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("fake zdb lock").push(call);
    }

    fn connected(&self, nodes: &Connection) {
        self.tls_seen
            .lock()
            .expect("fake zdb lock")
            .push(nodes.tls.clone());
    }

    /// The TLS material of the calls since the last take.
    pub fn take_tls_seen(&self) -> Vec<Option<ClientTls>> {
        std::mem::take(&mut self.tls_seen.lock().expect("fake zdb lock"))
    }
}

impl ClusterAdmin for FakeZdb {
    fn observe<'a>(
        &'a self,
        nodes: &'a Connection,
    ) -> BoxFuture<'a, Result<ClusterView, AdminError>> {
        self.connected(nodes);
        let view = self.view.lock().expect("fake zdb lock").clone();
        Box::pin(async move { view.ok_or_else(|| AdminError("no node answers".into())) })
    }

    fn set_node_state<'a>(
        &'a self,
        nodes: &'a Connection,
        node_id: u64,
        state: NodeState,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        self.connected(nodes);
        self.record(format!("set_node_state({node_id}, {state:?})"));
        self.edit(|view| {
            if let Some(node) = view.nodes.iter_mut().find(|n| n.node_id == node_id) {
                node.state = state;
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn transfer_leader<'a>(
        &'a self,
        nodes: &'a Connection,
        range_id: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        self.connected(nodes);
        self.record(format!("transfer_leader({range_id}, {to})"));
        self.edit(|view| {
            let Some(range) = view.ranges.iter_mut().find(|r| r.range_id == range_id) else {
                return;
            };
            let from = std::mem::replace(&mut range.leader, to);
            for node in &mut view.nodes {
                if node.node_id == from {
                    node.leaders = node.leaders.saturating_sub(1);
                }
                if node.node_id == to {
                    node.leaders += 1;
                }
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn set_node_zone<'a>(
        &'a self,
        nodes: &'a Connection,
        node_id: u64,
        zone: &'a str,
    ) -> BoxFuture<'a, Result<(), AdminError>> {
        self.connected(nodes);
        self.zone_recorded(node_id, zone);
        Box::pin(async { Ok(()) })
    }
}

impl FakeZdb {
    fn zone_recorded(&self, node_id: u64, zone: &str) {
        self.record(format!("set_node_zone({node_id}, {zone})"));
        self.edit(|view| {
            if let Some(node) = view.nodes.iter_mut().find(|n| n.node_id == node_id) {
                node.zone = zone.to_owned();
            }
        });
    }
}

/// Records which clusters have a placement driver.
#[derive(Default)]
pub struct FakePlacement {
    pub running: Mutex<BTreeMap<ClusterKey, PlacementConfig>>,
    pub stopped: Mutex<BTreeSet<ClusterKey>>,
}

impl Placement for FakePlacement {
    fn ensure(&self, cluster: &ClusterKey, config: PlacementConfig) {
        self.running
            .lock()
            .expect("lock")
            .insert(cluster.clone(), config);
    }

    fn stop(&self, cluster: &ClusterKey) {
        self.running.lock().expect("lock").remove(cluster);
        self.stopped.lock().expect("lock").insert(cluster.clone());
    }

    fn running(&self) -> Vec<ClusterKey> {
        self.running.lock().expect("lock").keys().cloned().collect()
    }
}
