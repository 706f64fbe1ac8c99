//! Size of a range's data and the key that halves it, measured by reading the
//! span (exact, and off the Raft thread). Results are cached briefly so that
//! frequent status calls do not rescan large ranges.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zdb_proto::v1::RangeDescriptor;

use crate::clock::wall_ms as now_ms;
use crate::engine::Engine;
use crate::error::Result;
use crate::mvcc::{Versions, LATEST};

/// A measurement is reused for this long, or for CACHE_COST_FACTOR times as
/// long as it took if that is longer: measuring then never takes more than
/// a few percent of a core, however large the range.
const CACHE_FOR: Duration = Duration::from_secs(5);
const CACHE_COST_FACTOR: u32 = 50;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeSize {
    pub keys: u64,
    /// Keys plus values.
    pub bytes: u64,
}

pub fn measure(engine: &Engine, range: &RangeDescriptor) -> Result<RangeSize> {
    let now = now_ms();
    let mut size = RangeSize::default();
    Versions::new(engine).scan(
        (&range.start_key, &range.end_key),
        LATEST,
        false,
        now,
        |key, value| {
            size.keys += 1;
            size.bytes += (key.len() + value.len()) as u64;
            Ok(true)
        },
    )?;
    Ok(size)
}

/// The first key at which the bytes before it reach half the range, if that
/// key is strictly inside the range (a range of one key cannot split).
pub fn middle_key(engine: &Engine, range: &RangeDescriptor) -> Result<Option<Vec<u8>>> {
    let total = measure(engine, range)?.bytes;
    let mut seen = 0u64;
    let mut middle = None;
    Versions::new(engine).scan(
        (&range.start_key, &range.end_key),
        LATEST,
        false,
        now_ms(),
        |key, value| {
            if seen * 2 >= total && key > range.start_key {
                middle = Some(key);
                return Ok(false);
            }
            seen += (key.len() + value.len()) as u64;
            Ok(true)
        },
    )?;
    Ok(middle)
}

/// Sizes by range id and epoch version, reused for a few seconds.
#[derive(Default)]
pub struct SizeCache {
    entries: Mutex<HashMap<(u64, u64), Cached>>,
}

struct Cached {
    fresh_until: Instant,
    size: RangeSize,
}

impl SizeCache {
    pub fn get_or_measure(&self, engine: &Engine, range: &RangeDescriptor) -> Result<RangeSize> {
        let key = (
            range.range_id,
            range.epoch.as_ref().map_or(0, |e| e.version),
        );
        let now = Instant::now();
        if let Some(cached) = self
            .entries
            .lock()
            .expect("cache lock is never poisoned")
            .get(&key)
        {
            if now < cached.fresh_until {
                return Ok(cached.size);
            }
        }
        let size = measure(engine, range)?;
        let took = now.elapsed();
        let mut entries = self.entries.lock().expect("cache lock is never poisoned");
        entries.retain(|_, cached| now < cached.fresh_until + CACHE_FOR * 4);
        entries.insert(
            key,
            Cached {
                fresh_until: now + CACHE_FOR.max(took * CACHE_COST_FACTOR),
                size,
            },
        );
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::CF_DATA;
    use crate::mvcc::{keys, record};
    use crate::range::descriptor;

    fn put(engine: &Engine, key: &[u8], ts: u64, value: &[u8]) {
        let raw = record::encode_put(value, 0);
        engine
            .put(CF_DATA, &keys::version_key(key, ts), &raw, false)
            .unwrap();
    }

    #[test]
    fn middle_key_halves_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        for i in 0..10u8 {
            // Older versions do not count: the range holds what reads see.
            put(&engine, &[b'k', i], 1, &[0; 500]);
            put(&engine, &[b'k', i], 2, &[0; 98]);
        }
        let range = descriptor::initial(&[1]);
        assert_eq!(
            measure(&engine, &range).unwrap(),
            RangeSize {
                keys: 10,
                bytes: 1000
            }
        );
        assert_eq!(middle_key(&engine, &range).unwrap(), Some(vec![b'k', 5]));

        let single = tempfile::tempdir().unwrap();
        let engine = Engine::open(single.path()).unwrap();
        put(&engine, b"only", 1, b"v");
        let range = RangeDescriptor {
            start_key: b"only".to_vec(),
            ..descriptor::initial(&[1])
        };
        assert_eq!(middle_key(&engine, &range).unwrap(), None);
    }
}
