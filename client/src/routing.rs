//! The client's view of the cluster: which range holds which keys, which
//! node leads each range, and where nodes listen. Filled from the meta range
//! (`Locate`) and corrected by the typed errors nodes return.

use std::collections::{BTreeMap, HashMap};

use zdb_proto::v1::{LocateResponse, RangeDescriptor};

#[derive(Debug, Clone)]
pub struct CachedRange {
    pub range: RangeDescriptor,
    pub leader: Option<u64>,
}

#[derive(Default)]
pub struct RangeCache {
    /// By start key.
    ranges: BTreeMap<Vec<u8>, CachedRange>,
    nodes: HashMap<u64, String>,
}

fn holds(range: &RangeDescriptor, key: &[u8]) -> bool {
    key >= range.start_key.as_slice()
        && (range.end_key.is_empty() || key < range.end_key.as_slice())
}

fn version(range: &RangeDescriptor) -> (u64, u64) {
    range
        .epoch
        .as_ref()
        .map_or((0, 0), |e| (e.version, e.conf_ver))
}

impl RangeCache {
    pub fn lookup(&self, key: &[u8]) -> Option<CachedRange> {
        let (_, cached) = self.ranges.range(..=key.to_vec()).next_back()?;
        holds(&cached.range, key).then(|| cached.clone())
    }

    /// Adds a descriptor, dropping cached ranges it overlaps unless they are newer.
    pub fn insert(&mut self, range: RangeDescriptor, leader: Option<u64>) {
        let overlapping: Vec<Vec<u8>> = self
            .ranges
            .iter()
            .filter(|(_, cached)| overlaps(&cached.range, &range))
            .map(|(start, _)| start.clone())
            .collect();
        for start in &overlapping {
            let cached = &self.ranges[start];
            if cached.range.range_id == range.range_id && version(&cached.range) > version(&range) {
                return;
            }
        }
        let leader = leader.or_else(|| {
            overlapping
                .iter()
                .filter_map(|start| self.ranges.get(start))
                .find(|cached| cached.range.range_id == range.range_id)
                .and_then(|cached| cached.leader)
        });
        for start in overlapping {
            self.ranges.remove(&start);
        }
        self.ranges
            .insert(range.start_key.clone(), CachedRange { range, leader });
    }

    pub fn absorb(&mut self, located: LocateResponse) {
        for node in located.nodes {
            self.nodes.insert(node.node_id, node.address);
        }
        for location in located.ranges {
            if let Some(range) = location.range {
                let leader = (location.leader_node_id != 0).then_some(location.leader_node_id);
                self.insert(range, leader);
            }
        }
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    pub fn invalidate(&mut self, range_id: u64) {
        self.ranges
            .retain(|_, cached| cached.range.range_id != range_id);
    }

    pub fn set_leader(&mut self, range_id: u64, leader: Option<u64>) {
        for cached in self
            .ranges
            .values_mut()
            .filter(|c| c.range.range_id == range_id)
        {
            cached.leader = leader;
        }
    }

    pub fn learn_node(&mut self, node_id: u64, address: String) {
        if node_id != 0 && !address.is_empty() {
            self.nodes.insert(node_id, address);
        }
    }

    pub fn address(&self, node_id: u64) -> Option<String> {
        self.nodes.get(&node_id).cloned()
    }

    /// Every node address learned from the cluster.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.values().cloned().collect()
    }
}

fn overlaps(a: &RangeDescriptor, b: &RangeDescriptor) -> bool {
    (b.end_key.is_empty() || a.start_key < b.end_key)
        && (a.end_key.is_empty() || b.start_key < a.end_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdb_proto::v1::RangeEpoch;

    fn range(id: u64, start: &str, end: &str, version: u64) -> RangeDescriptor {
        RangeDescriptor {
            range_id: id,
            start_key: start.into(),
            end_key: end.into(),
            epoch: Some(RangeEpoch {
                conf_ver: 1,
                version,
            }),
            replicas: vec![],
        }
    }

    #[test]
    fn lookups_follow_splits_and_ignore_stale_descriptors() {
        let mut cache = RangeCache::default();
        cache.insert(range(1, "", "", 1), Some(3));
        assert_eq!(cache.lookup(b"zzz").unwrap().range.range_id, 1);

        cache.insert(range(1, "", "m", 2), None);
        assert_eq!(
            cache.lookup(b"a").unwrap().leader,
            Some(3),
            "leader survives an epoch change"
        );
        assert!(
            cache.lookup(b"x").is_none(),
            "the right half is unknown until located"
        );
        cache.insert(range(2, "m", "", 2), None);
        assert_eq!(cache.lookup(b"m").unwrap().range.range_id, 2);
        assert_eq!(cache.lookup(b"l").unwrap().range.range_id, 1);

        cache.insert(range(1, "", "", 1), None);
        assert_eq!(
            cache.lookup(b"x").unwrap().range.range_id,
            2,
            "an older epoch does not replace a newer one"
        );

        cache.invalidate(2);
        assert!(cache.lookup(b"x").is_none());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// After any sequence of splits reported in any order, lookups
            /// agree with the newest descriptors.
            #[test]
            fn lookup_matches_the_newest_split_table(
                mut cuts in proptest::collection::btree_set(proptest::collection::vec(b'a'..=b'z', 1..4), 1..12),
                probes in proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 0..5), 1..30),
                order in proptest::collection::vec(any::<usize>(), 0..40),
            ) {
                let cuts: Vec<Vec<u8>> = std::mem::take(&mut cuts).into_iter().collect();
                // The final table: ranges between consecutive cuts, ids by position.
                let mut bounds = vec![Vec::new()];
                bounds.extend(cuts.iter().cloned());
                let table: Vec<RangeDescriptor> = (0..bounds.len())
                    .map(|i| RangeDescriptor {
                        range_id: i as u64 + 1,
                        start_key: bounds[i].clone(),
                        end_key: bounds.get(i + 1).cloned().unwrap_or_default(),
                        epoch: Some(RangeEpoch { conf_ver: 1, version: 100 }),
                        replicas: vec![],
                    })
                    .collect();
                let mut cache = RangeCache::default();
                // Stale whole-keyspace view first, then the final ranges in a shuffled order.
                cache.insert(RangeDescriptor { range_id: 1, epoch: Some(RangeEpoch { conf_ver: 1, version: 1 }), ..RangeDescriptor::default() }, None);
                let mut indexes: Vec<usize> = (0..table.len()).collect();
                for (i, pick) in order.iter().enumerate() {
                    let len = indexes.len();
                    indexes.swap(i % len, pick % len);
                }
                for i in indexes {
                    cache.insert(table[i].clone(), None);
                }
                for probe in probes {
                    let expected = table.iter().find(|r| holds(r, &probe)).map(|r| r.range_id);
                    prop_assert_eq!(cache.lookup(&probe).map(|c| c.range.range_id), expected);
                }
            }
        }
    }
}
