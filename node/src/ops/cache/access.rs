//! What a range's leader knows of how its keys are used: when each was
//! last read or written through this node, and how often (decaying), for
//! the LRU and LFU policies. Kept in memory, only for keys under a cache
//! prefix; a new leader starts from the versions' commit times.

use std::collections::HashMap;
use std::sync::Mutex;

/// Past this many keys tracked, the least recently used half is forgotten.
const MAX_TRACKED: usize = 1 << 20;
/// An access count halves for every minute without an access (Redis's
/// lfu-decay-time).
const DECAY_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    pub last_ms: u64,
    hits: u32,
}

impl Access {
    /// The access count as of `now_ms`, decayed.
    pub fn hits(&self, now_ms: u64) -> u32 {
        let halvings = now_ms.saturating_sub(self.last_ms) / DECAY_MS;
        self.hits.checked_shr(halvings.min(31) as u32).unwrap_or(0)
    }
}

#[derive(Default)]
pub struct AccessStats {
    keys: Mutex<HashMap<Vec<u8>, Access>>,
}

impl AccessStats {
    pub fn touch(&self, key: &[u8], now_ms: u64) {
        let mut keys = self.keys.lock().expect("never poisoned");
        if keys.len() >= MAX_TRACKED && !keys.contains_key(key) {
            forget_older_half(&mut keys);
        }
        let access = keys.entry(key.to_vec()).or_default();
        access.hits = access.hits(now_ms).saturating_add(1);
        access.last_ms = now_ms;
    }

    pub fn get(&self, key: &[u8]) -> Option<Access> {
        self.keys.lock().expect("never poisoned").get(key).copied()
    }

    pub fn forget(&self, key: &[u8]) {
        self.keys.lock().expect("never poisoned").remove(key);
    }
}

fn forget_older_half(keys: &mut HashMap<Vec<u8>, Access>) {
    let mut times: Vec<u64> = keys.values().map(|access| access.last_ms).collect();
    let middle = times.len() / 2;
    let (_, median, _) = times.select_nth_unstable(middle);
    let median = *median;
    keys.retain(|_, access| access.last_ms > median);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_decay_by_half_each_idle_minute() {
        let stats = AccessStats::default();
        for _ in 0..8 {
            stats.touch(b"k", 1_000);
        }
        let access = stats.get(b"k").unwrap();
        assert_eq!(access.hits(1_000), 8);
        assert_eq!(access.hits(1_000 + DECAY_MS), 4);
        assert_eq!(access.hits(1_000 + 3 * DECAY_MS), 1);
        assert_eq!(access.hits(1_000 + 40 * DECAY_MS), 0);
    }
}
