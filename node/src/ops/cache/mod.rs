//! Cache mode: key prefixes with a size budget and an eviction policy, as
//! Redis's maxmemory and maxmemory-policy, kept for the whole cluster.
//!
//! The policies live in the meta range; every node keeps a copy
//! ([`CacheState`]) to refuse writes under a full noeviction prefix and to
//! count reads of cached keys ([`access`]). The node leading the meta
//! range measures each prefix every [`keeper::CHECK_EVERY`] and, over
//! budget, asks each range's leader to free its share ([`evict`]): the
//! leader chooses the keys by the policy and proposes their deletion
//! through Raft, so every replica removes the same keys.

pub mod access;
pub mod evict;
pub mod keeper;

use std::sync::{Arc, RwLock};

use zdb_proto::v1::{CachePolicy, CacheSettings, EvictionPolicy};

use self::access::AccessStats;
use crate::clock::wall_ms;
use crate::error::{Error, Result};

/// This node's copy of the cache policies, and its access statistics.
#[derive(Default)]
pub struct CacheState {
    settings: RwLock<Arc<CacheSettings>>,
    pub access: AccessStats,
}

impl CacheState {
    pub fn install(&self, settings: CacheSettings) {
        crate::metrics::CACHE_POLICIES.set(settings.policies.len() as i64);
        *self.settings.write().expect("never poisoned") = Arc::new(settings);
    }

    pub fn settings(&self) -> Arc<CacheSettings> {
        self.settings.read().expect("never poisoned").clone()
    }

    /// The policy that covers `key`: the one with the longest prefix.
    fn policy_for<'a>(settings: &'a CacheSettings, key: &[u8]) -> Option<&'a CachePolicy> {
        settings
            .policies
            .iter()
            .filter(|policy| key.starts_with(&policy.prefix))
            .max_by_key(|policy| policy.prefix.len())
    }

    /// Counts a read or write of `key`, if a policy covers it.
    pub fn touch(&self, key: &[u8]) {
        if Self::policy_for(&self.settings(), key).is_some() {
            self.access.touch(key, wall_ms());
        }
    }

    /// Refuses a write that adds data under a full prefix.
    pub fn check_room(&self, key: &[u8]) -> Result<()> {
        match Self::policy_for(&self.settings(), key) {
            Some(policy) if policy.full => Err(Error::CacheFull {
                prefix: policy.prefix.clone(),
                max_bytes: policy.max_bytes,
            }),
            _ => Ok(()),
        }
    }
}

/// The name Redis gives a policy (an unknown number reads as noeviction).
pub fn policy_name(policy: i32) -> &'static str {
    EvictionPolicy::try_from(policy)
        .unwrap_or(EvictionPolicy::Noeviction)
        .redis_name()
}
