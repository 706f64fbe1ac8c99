//! The planner: a cluster snapshot in, actions out. Pure, so that every
//! decision can be tested on made-up clusters.

/// One range as its leader reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeLoad {
    pub range_id: u64,
    pub bytes: u64,
    pub keys: u64,
    pub writes_per_second: f64,
    /// gRPC address of the node leading the range.
    pub leader_address: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitSettings {
    /// Split a range once its keys and values pass this many bytes.
    pub max_bytes: u64,
    /// Split a range taking more writes per second than this (None: never for load).
    pub max_writes_per_second: Option<f64>,
}

impl Default for SplitSettings {
    fn default() -> Self {
        SplitSettings {
            max_bytes: 64 << 20,
            max_writes_per_second: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Split at the key that halves the range by size (chosen by its leader).
    Split {
        range_id: u64,
        leader_address: String,
        reason: String,
    },
}

/// Ranges too big or too hot, biggest first. A range with fewer than two
/// keys cannot be split and is left alone.
pub fn plan_splits(ranges: &[RangeLoad], settings: &SplitSettings) -> Vec<Action> {
    let mut candidates: Vec<(&RangeLoad, String)> = ranges
        .iter()
        .filter(|range| range.keys >= 2)
        .filter_map(|range| {
            if range.bytes > settings.max_bytes {
                return Some((
                    range,
                    format!("{} bytes > {}", range.bytes, settings.max_bytes),
                ));
            }
            match settings.max_writes_per_second {
                Some(limit) if range.writes_per_second > limit => Some((
                    range,
                    format!("{:.0} writes/s > {limit:.0}", range.writes_per_second),
                )),
                _ => None,
            }
        })
        .collect();
    candidates.sort_by(|a, b| b.0.bytes.cmp(&a.0.bytes));
    candidates
        .into_iter()
        .map(|(range, reason)| Action::Split {
            range_id: range.range_id,
            leader_address: range.leader_address.clone(),
            reason,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(range_id: u64, bytes: u64, keys: u64, writes: f64) -> RangeLoad {
        RangeLoad {
            range_id,
            bytes,
            keys,
            writes_per_second: writes,
            leader_address: format!("node-of-{range_id}"),
        }
    }

    #[test]
    fn splits_big_and_hot_ranges_biggest_first() {
        let settings = SplitSettings {
            max_bytes: 100,
            max_writes_per_second: Some(50.0),
        };
        let plan = plan_splits(
            &[
                range(1, 10, 5, 0.0),
                range(2, 150, 5, 0.0),
                range(3, 500, 9, 0.0),
                range(4, 10, 5, 80.0),
            ],
            &settings,
        );
        let ids: Vec<u64> = plan
            .iter()
            .map(|Action::Split { range_id, .. }| *range_id)
            .collect();
        assert_eq!(ids, vec![3, 2, 4]);
    }

    #[test]
    fn single_key_ranges_are_never_split() {
        let settings = SplitSettings {
            max_bytes: 1,
            max_writes_per_second: Some(0.0),
        };
        assert!(plan_splits(&[range(1, 1 << 30, 1, 1e6)], &settings).is_empty());
    }

    proptest! {
        #[test]
        fn plans_only_ranges_over_a_threshold(
            sizes in proptest::collection::vec((0u64..1000, 0u64..10, 0.0f64..100.0), 0..20),
            max_bytes in 1u64..1000,
        ) {
            let ranges: Vec<RangeLoad> = sizes
                .iter()
                .enumerate()
                .map(|(i, (bytes, keys, writes))| range(i as u64 + 1, *bytes, *keys, *writes))
                .collect();
            let settings = SplitSettings { max_bytes, max_writes_per_second: None };
            let plan = plan_splits(&ranges, &settings);
            for Action::Split { range_id, .. } in &plan {
                let r = &ranges[*range_id as usize - 1];
                prop_assert!(r.bytes > max_bytes && r.keys >= 2);
            }
            let expected = ranges.iter().filter(|r| r.bytes > max_bytes && r.keys >= 2).count();
            prop_assert_eq!(plan.len(), expected);
        }
    }
}
