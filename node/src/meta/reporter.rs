//! Background tasks that keep the meta range's table and this node's view of
//! it current.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use zdb_proto::v1::{RaftRole, RangeDescriptor, RangeEpoch};

use super::MetaClient;
use crate::store::StoreHandle;
use crate::transport::PeerDirectory;

/// How often range leaders confirm their descriptors in the routing table,
/// and nodes refresh their copy of the registry's addresses.
const REPORT_INTERVAL: Duration = Duration::from_secs(2);

async fn pause(stop: &mut watch::Receiver<bool>, how_long: Duration) -> bool {
    tokio::select! {
        _ = stop.wait_for(|stopped| *stopped) => false,
        _ = tokio::time::sleep(how_long) => true,
    }
}

/// Records this node's own address (and its zone, if it was given one) in
/// the registry, through Raft, once per start. Founding members wrote the
/// registry from their own `--peers`, which may name the others by a route
/// (a proxy) rather than where they serve; and an address may change
/// between starts.
pub async fn announce_address(
    meta: MetaClient,
    node_id: u64,
    address: String,
    zone: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match meta.register_node(&address, node_id, &zone).await {
            Ok(_) => {
                tracing::debug!(node_id, %address, "address announced");
                return;
            }
            Err(err) => tracing::debug!(error = %err, "cannot announce this node's address yet"),
        }
        if !pause(&mut stop, Duration::from_secs(1)).await {
            return;
        }
    }
}

/// Keeps the routing table current: every range this node leads is reported
/// whenever its epoch differs from what was last reported, so a split whose
/// meta update was lost (a crash in between) is repaired within seconds.
/// Also refreshes where the other nodes serve from the registry, which a
/// node holding no replica of the meta range cannot read locally.
pub async fn report_ranges(
    store: StoreHandle,
    meta: MetaClient,
    peers: Arc<PeerDirectory>,
    mut stop: watch::Receiver<bool>,
) {
    let mut reported: HashMap<u64, Option<RangeEpoch>> = HashMap::new();
    while pause(&mut stop, REPORT_INTERVAL).await {
        match meta.registry().await {
            Ok(nodes) => {
                for node in nodes {
                    peers.learn(node.node_id, &node.address);
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot read the node registry; will retry"),
        }
        let Ok(replicas) = store.status().await else {
            return;
        };
        let changed: Vec<RangeDescriptor> = replicas
            .into_iter()
            .filter(|replica| replica.role == RaftRole::Leader as i32)
            .filter_map(|replica| replica.range)
            .filter(|range| reported.get(&range.range_id) != Some(&range.epoch))
            .collect();
        if changed.is_empty() {
            continue;
        }
        match meta.update(changed.clone()).await {
            Ok(()) => {
                for range in changed {
                    reported.insert(range.range_id, range.epoch);
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "could not report ranges to the meta range; will retry")
            }
        }
    }
}
