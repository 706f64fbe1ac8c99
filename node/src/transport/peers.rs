use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::engine::{keys, Engine, ReadView, CF_META};
use crate::error::{Error, Result};

/// Addresses of the cluster's nodes, and the store id each peer showed
/// first. A peer that comes back with another store id lost its data and
/// must not take part under its old node id.
///
/// Addresses given in the configuration (`--peers`) win over announced
/// ones: an operator may route node-to-node traffic through a different
/// address (a proxy, a Service) than the one a node announces.
pub struct PeerDirectory {
    engine: Engine,
    configured: BTreeMap<u64, String>,
    addresses: RwLock<BTreeMap<u64, String>>,
    /// Addresses of cluster members whose ids are unknown (`--join` seeds):
    /// a node with no replicas yet reaches the cluster through them.
    seeds: Vec<String>,
}

impl PeerDirectory {
    pub fn new(engine: Engine, configured: BTreeMap<u64, String>, seeds: Vec<String>) -> Self {
        PeerDirectory {
            engine,
            addresses: RwLock::new(configured.clone()),
            configured,
            seeds,
        }
    }

    /// A node's address: as configured or announced, else from the node
    /// registry in this node's copy of the meta range.
    pub fn address(&self, node_id: u64) -> Option<String> {
        if node_id == 0 {
            return None;
        }
        let known = self
            .addresses
            .read()
            .expect("peer directory lock is never poisoned")
            .get(&node_id)
            .cloned();
        known.or_else(|| {
            let (_, address) = crate::meta::table::nodes(&self.engine)
                .ok()?
                .into_iter()
                .find(|(id, _)| *id == node_id)?;
            self.learn(node_id, &address);
            Some(address)
        })
    }

    /// Every address this node knows another node at, seeds included.
    pub fn known_addresses(&self) -> Vec<String> {
        let mut addresses: Vec<String> = self
            .addresses
            .read()
            .expect("peer directory lock is never poisoned")
            .values()
            .chain(&self.seeds)
            .cloned()
            .collect();
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// Remembers where a node serves (announced in its stream headers).
    pub fn learn(&self, node_id: u64, address: &str) {
        if node_id == 0 || address.is_empty() || self.configured.contains_key(&node_id) {
            return;
        }
        let mut addresses = self
            .addresses
            .write()
            .expect("peer directory lock is never poisoned");
        if addresses.get(&node_id).map(String::as_str) != Some(address) {
            addresses.insert(node_id, address.to_owned());
        }
    }

    /// Accepts the peer's store id if it is the first one seen for the node,
    /// or the same as before.
    pub fn verify_store(&self, node_id: u64, store_id: &str) -> Result<()> {
        let key = keys::peer_store_key(node_id);
        match self.engine.get(CF_META, &key)? {
            Some(known) if known == store_id.as_bytes() => Ok(()),
            Some(_) => Err(Error::IdentityChanged { node_id }),
            None => self.engine.put(CF_META, &key, store_id.as_bytes(), true),
        }
    }
}
