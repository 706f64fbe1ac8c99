//! Collecting versions no read can need: reads below the GC safe point are
//! refused, so of each key's versions at or below it only the newest
//! matters, and not even that one when it is a tombstone. Each replica
//! collects on its own, from a snapshot of the engine, in slices so that
//! one round never holds the engine long; what it removes was invisible to
//! every read the node still serves.

use super::{keys, record, Horizon, Record};
use crate::engine::{Engine, ReadView, CF_DATA};
use crate::error::Result;
use crate::metrics;

/// Versions one slice looks at.
const VERSIONS_PER_SLICE: usize = 20_000;

/// Walks the data column family a slice at a time, round and round.
#[derive(Default)]
pub struct Collector {
    /// The encoded key to resume at; empty: from the start.
    resume: Vec<u8>,
}

/// What one slice did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Slice {
    pub examined: usize,
    pub removed: usize,
    /// The slice reached the end of the key space.
    pub wrapped: bool,
}

impl Collector {
    /// Removes, in the next slice of keys, the versions below the safe
    /// point that no allowed read can see.
    pub fn collect_slice(&mut self, engine: &Engine, known: &Horizon) -> Result<Slice> {
        let horizon = known.safe_point();
        let mut slice = Slice::default();
        if horizon == 0 {
            return Ok(slice);
        }
        let snapshot = engine.snapshot();
        let mut iter = snapshot.raw_iterator(CF_DATA, &self.resume, &[]);
        iter.seek_to_first();
        let mut batch = engine.batch();
        // The key being walked, and whether its version at or below the
        // horizon that reads need was passed already.
        let mut group: Vec<u8> = Vec::new();
        let mut kept_below = false;
        while let Some(raw_key) = iter.key() {
            let part = keys::key_part(raw_key);
            if part != group.as_slice() {
                if slice.examined >= VERSIONS_PER_SLICE {
                    self.resume = part.to_vec();
                    break;
                }
                group.clear();
                group.extend_from_slice(part);
                kept_below = false;
            }
            slice.examined += 1;
            let ts = keys::commit_ts(raw_key)?;
            if ts <= horizon {
                if kept_below {
                    batch.delete(CF_DATA, raw_key);
                    slice.removed += 1;
                } else {
                    // The newest version at or below the horizon: what reads
                    // at the horizon see. A tombstone shows nothing, so it
                    // and everything older go.
                    kept_below = true;
                    let raw = iter.value()?.unwrap_or_default();
                    if record::decode(&raw)? == Record::Tombstone {
                        batch.delete(CF_DATA, raw_key);
                        slice.removed += 1;
                    }
                }
            }
            iter.next();
        }
        iter.status()?;
        if iter.key().is_none() {
            self.resume.clear();
            slice.wrapped = true;
        }
        drop(iter);
        drop(snapshot);
        if slice.removed > 0 {
            engine.write(batch, false)?;
            metrics::GC_VERSIONS_COLLECTED.inc_by(slice.removed as u64);
            known.count_collected(slice.removed as u64);
        }
        Ok(slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::{put_version as put, Versions, LATEST};

    fn version_count(engine: &Engine) -> usize {
        let mut count = 0;
        engine
            .scan(CF_DATA, b"", b"", false, |_, _| {
                count += 1;
                Ok(true)
            })
            .unwrap();
        count
    }

    #[test]
    fn versions_below_the_safe_point_go_and_reads_at_or_above_it_are_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        for ts in 1..=10 {
            put(&engine, b"a", ts * 10, Some(format!("a{ts}").as_bytes()));
        }
        put(&engine, b"b", 10, Some(b"b1"));
        put(&engine, b"b", 20, None);
        put(&engine, b"c", 70, Some(b"c7"));
        let expected: Vec<_> = [50, 60, 75, 100, LATEST]
            .iter()
            .map(|&ts| {
                let versions = Versions::new(&engine);
                [b"a", b"b", b"c"].map(|key| versions.get(key, ts, 0).unwrap())
            })
            .collect();
        let safe_point = Horizon::default();
        safe_point.raise_safe_point(55);
        let slice = Collector::default()
            .collect_slice(&engine, &safe_point)
            .unwrap();
        // a: 10..=40 go (50 is what a read at 55 sees); b: all of it (its
        // newest below is a tombstone); c is above.
        assert_eq!(slice.removed, 4 + 2);
        assert!(slice.wrapped);
        assert_eq!(version_count(&engine), 6 + 1);
        let after: Vec<_> = [50, 60, 75, 100, LATEST]
            .iter()
            .map(|&ts| {
                let versions = Versions::new(&engine);
                [b"a", b"b", b"c"].map(|key| versions.get(key, ts, 0).unwrap())
            })
            .collect();
        assert_eq!(after[1..], expected[1..]);
        assert_eq!(after[0][0], Some(b"a5".to_vec()));
        assert_eq!(safe_point.collected(), 6);
    }

    #[test]
    fn slices_resume_where_the_last_one_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let keys_count = VERSIONS_PER_SLICE / 2 + 10;
        for i in 0..keys_count {
            let key = format!("k{i:06}");
            put(&engine, key.as_bytes(), 1, Some(b"old"));
            put(&engine, key.as_bytes(), 2, Some(b"new"));
        }
        let safe_point = Horizon::default();
        safe_point.raise_safe_point(5);
        let mut collector = Collector::default();
        let first = collector.collect_slice(&engine, &safe_point).unwrap();
        assert!(!first.wrapped);
        let second = collector.collect_slice(&engine, &safe_point).unwrap();
        assert!(second.wrapped);
        assert_eq!(first.removed + second.removed, keys_count);
        assert_eq!(version_count(&engine), keys_count);
    }

    #[test]
    fn nothing_is_collected_before_a_safe_point_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        put(&engine, b"a", 1, Some(b"1"));
        put(&engine, b"a", 2, Some(b"2"));
        let slice = Collector::default()
            .collect_slice(&engine, &Horizon::default())
            .unwrap();
        assert_eq!(slice.removed, 0);
        assert_eq!(version_count(&engine), 2);
    }
}
