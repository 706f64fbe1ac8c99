use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::engine::{keys, Engine, CF_META};
use crate::error::{Error, Result};

/// Addresses of the cluster's nodes, and the store id each peer showed
/// first. A peer that comes back with another store id lost its data and
/// must not take part under its old node id.
pub struct PeerDirectory {
    engine: Engine,
    addresses: RwLock<BTreeMap<u64, String>>,
}

impl PeerDirectory {
    pub fn new(engine: Engine, addresses: BTreeMap<u64, String>) -> Self {
        PeerDirectory {
            engine,
            addresses: RwLock::new(addresses),
        }
    }

    pub fn address(&self, node_id: u64) -> Option<String> {
        self.addresses
            .read()
            .expect("peer directory lock is never poisoned")
            .get(&node_id)
            .cloned()
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
