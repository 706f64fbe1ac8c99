//! What this node knows of the cluster's time: the newest timestamp the
//! oracle handed out (a bound on every commit so far) and the GC safe point
//! (a bound on the reads still allowed). Shared by the store, the
//! operations and the collector; both only ever grow.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Horizon {
    oracle_seen: AtomicU64,
    safe_point: AtomicU64,
    collected: AtomicU64,
}

impl Horizon {
    /// The newest timestamp this node knows the oracle handed out.
    pub fn oracle_seen(&self) -> u64 {
        self.oracle_seen.load(Ordering::Acquire)
    }

    pub fn observe_oracle(&self, ts: u64) {
        self.oracle_seen.fetch_max(ts, Ordering::AcqRel);
    }

    pub fn safe_point(&self) -> u64 {
        self.safe_point.load(Ordering::Acquire)
    }

    /// Never lowered: a read refused once stays refused.
    pub fn raise_safe_point(&self, safe_point: u64) {
        self.safe_point.fetch_max(safe_point, Ordering::AcqRel);
    }

    /// Versions this node collected since it started.
    pub fn collected(&self) -> u64 {
        self.collected.load(Ordering::Relaxed)
    }

    pub fn count_collected(&self, versions: u64) {
        self.collected.fetch_add(versions, Ordering::Relaxed);
    }
}
