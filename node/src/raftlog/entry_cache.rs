//! The newest Raft log entries of one range, kept in memory so that raft-rs
//! reads what it just appended (to apply it, or to send it to a follower)
//! without a RocksDB seek. It holds a contiguous run ending at the last
//! index; anything older comes from the engine.

use std::collections::VecDeque;

use raft::eraftpb::Entry;

/// Entries kept at most, however far apply lags.
const MAX_ENTRIES: usize = 1024;
/// Applied entries kept for followers a little behind.
const KEEP_APPLIED: u64 = 64;

#[derive(Default)]
pub struct EntryCache {
    entries: VecDeque<Entry>,
}

impl EntryCache {
    /// Records entries just appended to the log; like the log, a new suffix
    /// replaces whatever followed its first index.
    pub fn append(&mut self, new: &[Entry]) {
        let Some(first_new) = new.first().map(|entry| entry.index) else {
            return;
        };
        match self.first_index() {
            Some(first) if first_new > first => {
                let keep = (first_new - first) as usize;
                if keep > self.entries.len() {
                    // A gap: the cache would not be contiguous.
                    self.entries.clear();
                } else {
                    self.entries.truncate(keep);
                }
            }
            _ => self.entries.clear(),
        }
        self.entries.extend(new.iter().cloned());
        let excess = self.entries.len().saturating_sub(MAX_ENTRIES);
        self.entries.drain(..excess);
    }

    /// Entries `[low, high)` if all of them are cached.
    pub fn get(&self, low: u64, high: u64) -> Option<Vec<Entry>> {
        let first = self.first_index()?;
        let end = first + self.entries.len() as u64;
        if low < first || high > end || low > high {
            return None;
        }
        let range = (low - first) as usize..(high - first) as usize;
        Some(self.entries.range(range).cloned().collect())
    }

    /// Entries up to `applied` have applied: keep only a short tail of them.
    pub fn applied(&mut self, applied: u64) {
        self.drop_through(applied.saturating_sub(KEEP_APPLIED));
    }

    /// Forgets entries up to and including `index` (compacted, or applied).
    pub fn drop_through(&mut self, index: u64) {
        while self
            .entries
            .front()
            .is_some_and(|entry| entry.index <= index)
        {
            self.entries.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|entry| entry.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(indexes: std::ops::Range<u64>, term: u64) -> Vec<Entry> {
        indexes
            .map(|index| Entry {
                index,
                term,
                ..Default::default()
            })
            .collect()
    }

    fn terms(cache: &EntryCache, low: u64, high: u64) -> Option<Vec<u64>> {
        cache
            .get(low, high)
            .map(|found| found.iter().map(|entry| entry.term).collect())
    }

    #[test]
    fn serves_only_runs_it_holds_entirely() {
        let mut cache = EntryCache::default();
        assert!(cache.get(1, 1).is_none());
        cache.append(&entries(6..11, 1));
        assert_eq!(terms(&cache, 6, 11), Some(vec![1; 5]));
        assert_eq!(terms(&cache, 8, 8), Some(vec![]));
        assert!(cache.get(5, 8).is_none(), "older entries are on disk");
        assert!(cache.get(9, 12).is_none(), "beyond the last index");
    }

    #[test]
    fn a_new_suffix_replaces_the_old_tail() {
        let mut cache = EntryCache::default();
        cache.append(&entries(6..11, 1));
        cache.append(&entries(8..9, 2));
        assert_eq!(terms(&cache, 6, 9), Some(vec![1, 1, 2]));
        assert!(cache.get(9, 10).is_none(), "the old tail is gone");
        // A run that does not follow the cached one replaces it.
        cache.append(&entries(20..22, 3));
        assert!(cache.get(8, 9).is_none());
        assert_eq!(terms(&cache, 20, 22), Some(vec![3, 3]));
        // So does one that starts before it.
        cache.append(&entries(15..16, 4));
        assert_eq!(terms(&cache, 15, 16), Some(vec![4]));
        assert!(cache.get(20, 21).is_none());
    }

    #[test]
    fn stays_bounded_and_drops_what_applied() {
        let mut cache = EntryCache::default();
        cache.append(&entries(1..(MAX_ENTRIES as u64 + 101), 1));
        assert!(cache.get(100, 101).is_none(), "the oldest were evicted");
        assert!(cache.get(101, MAX_ENTRIES as u64 + 101).is_some());
        cache.applied(1000);
        assert!(cache.get(936, 937).is_none());
        assert!(
            cache.get(937, 1001).is_some(),
            "a tail of applied entries stays"
        );
        cache.drop_through(u64::MAX);
        assert!(cache.get(1001, 1002).is_none());
    }
}
