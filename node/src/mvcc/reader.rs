//! Reading versions: the state of a key, or of a span, as of a timestamp.
//! A version committed above the read's timestamp is invisible, and so is a
//! tombstone or a value whose time to live ran out by the read's wall-clock
//! time.

use super::{keys, record};
use crate::engine::{ReadView, CF_DATA};
use crate::error::Result;

/// Reads at the newest timestamp there is: every committed version.
pub const LATEST: u64 = u64::MAX;

/// A read of one view of the engine (the engine itself or a snapshot).
pub struct Versions<'a, V> {
    view: &'a V,
}

impl<'a, V: ReadView> Versions<'a, V> {
    pub fn new(view: &'a V) -> Self {
        Versions { view }
    }

    /// The newest version of `key` committed at or below `ts`: its commit
    /// timestamp and stored record.
    pub fn version_at(&self, key: &[u8], ts: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let from = keys::version_key(key, ts);
        let mut iter = self
            .view
            .raw_iterator(CF_DATA, &from, &keys::versions_end(key));
        iter.seek(&from);
        match (iter.key(), iter.value()?) {
            (Some(raw_key), Some(raw)) => Ok(Some((keys::commit_ts(raw_key)?, raw.into_owned()))),
            _ => {
                iter.status()?;
                Ok(None)
            }
        }
    }

    /// The value of `key` as of `ts`, for a reader whose clock says `now_ms`.
    pub fn get(&self, key: &[u8], ts: u64, now_ms: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.get_expiring(key, ts, now_ms)?.map(|(value, _)| value))
    }

    /// As [`Versions::get`], with the value's expiry (0: none).
    pub fn get_expiring(&self, key: &[u8], ts: u64, now_ms: u64) -> Result<Option<(Vec<u8>, u64)>> {
        let Some((_, raw)) = self.version_at(key, ts)? else {
            return Ok(None);
        };
        Ok(match record::decode(&raw)? {
            record @ record::Record::Put { expire_at_ms, .. } => record
                .live_value(now_ms)
                .map(|value| (value.to_vec(), expire_at_ms)),
            record::Record::Tombstone => None,
        })
    }

    /// Visits the live keys of `[start, end)` (an empty end is unbounded) as
    /// of `ts`, in order or in reverse, until `visit` returns false.
    pub fn scan(
        &self,
        span: (&[u8], &[u8]),
        ts: u64,
        reverse: bool,
        now_ms: u64,
        mut visit: impl FnMut(Vec<u8>, Vec<u8>) -> Result<bool>,
    ) -> Result<()> {
        let (start, end) = span;
        let mut iter =
            self.view
                .raw_iterator(CF_DATA, &keys::lower_bound(start), &keys::upper_bound(end));
        let mut emit = |raw_key: &[u8], raw: &[u8]| -> Result<bool> {
            match record::decode(raw)?.live_value(now_ms) {
                Some(value) => visit(keys::decode(raw_key)?.0, value.to_vec()),
                None => Ok(true),
            }
        };
        if reverse {
            // Backwards, a key's versions come oldest first: the last one at
            // or below `ts` before the key changes is the one to see.
            iter.seek_to_last();
            let mut candidate: Option<(Vec<u8>, Vec<u8>)> = None;
            let mut group: Vec<u8> = Vec::new();
            while let Some(raw_key) = iter.key() {
                if keys::key_part(raw_key) != group.as_slice() {
                    if let Some((key, value)) = candidate.take() {
                        if !emit(&key, &value)? {
                            return Ok(());
                        }
                    }
                    group = keys::key_part(raw_key).to_vec();
                }
                if keys::commit_ts(raw_key)? <= ts {
                    let raw = iter.value()?.unwrap_or_default();
                    candidate = Some((raw_key.to_vec(), raw.into_owned()));
                }
                iter.prev();
            }
            iter.status()?;
            if let Some((key, value)) = candidate {
                emit(&key, &value)?;
            }
            return Ok(());
        }
        iter.seek_to_first();
        let mut done: Vec<u8> = Vec::new();
        while let Some(raw_key) = iter.key() {
            let part = keys::key_part(raw_key);
            if part != done.as_slice() && keys::commit_ts(raw_key)? <= ts {
                // Newest first: the first version at or below `ts` is the one.
                done.clear();
                done.extend_from_slice(part);
                let raw = iter.value()?.unwrap_or_default();
                if !emit(raw_key, &raw)? {
                    return Ok(());
                }
            }
            iter.next();
        }
        iter.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::mvcc::put_version;
    use crate::mvcc::record::encode_put;

    /// Key, commit timestamp, value (None: a tombstone).
    type Version<'a> = (&'a [u8], u64, Option<&'a [u8]>);

    fn engine_with(versions: &[Version<'_>]) -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        for &(key, ts, value) in versions {
            put_version(&engine, key, ts, value);
        }
        (dir, engine)
    }

    fn scan(engine: &Engine, ts: u64, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut seen = Vec::new();
        Versions::new(engine)
            .scan((b"", b""), ts, reverse, 0, |key, value| {
                seen.push((key, value));
                Ok(true)
            })
            .unwrap();
        seen
    }

    #[test]
    fn a_read_sees_the_newest_version_at_or_below_its_timestamp() {
        let (_dir, engine) = engine_with(&[
            (b"a", 10, Some(b"a10")),
            (b"a", 20, None),
            (b"a", 30, Some(b"a30")),
            (b"a\x00", 15, Some(b"z15")),
            (b"b", 25, Some(b"b25")),
        ]);
        let versions = Versions::new(&engine);
        assert_eq!(versions.get(b"a", 9, 0).unwrap(), None);
        assert_eq!(versions.get(b"a", 10, 0).unwrap(), Some(b"a10".to_vec()));
        assert_eq!(versions.get(b"a", 29, 0).unwrap(), None, "deleted at 20");
        assert_eq!(
            versions.get(b"a", LATEST, 0).unwrap(),
            Some(b"a30".to_vec())
        );
        assert_eq!(
            versions.get(b"a\x00", LATEST, 0).unwrap(),
            Some(b"z15".to_vec())
        );
        assert_eq!(versions.get(b"c", LATEST, 0).unwrap(), None);

        let pair = |k: &[u8], v: &[u8]| (k.to_vec(), v.to_vec());
        assert_eq!(
            scan(&engine, 15, false),
            vec![pair(b"a", b"a10"), pair(b"a\x00", b"z15")]
        );
        assert_eq!(
            scan(&engine, 25, false),
            vec![pair(b"a\x00", b"z15"), pair(b"b", b"b25")]
        );
        assert_eq!(
            scan(&engine, LATEST, false),
            vec![
                pair(b"a", b"a30"),
                pair(b"a\x00", b"z15"),
                pair(b"b", b"b25")
            ]
        );
        assert_eq!(
            scan(&engine, 15, true),
            vec![pair(b"a\x00", b"z15"), pair(b"a", b"a10")]
        );
        assert_eq!(
            scan(&engine, LATEST, true),
            vec![
                pair(b"b", b"b25"),
                pair(b"a\x00", b"z15"),
                pair(b"a", b"a30")
            ]
        );
        assert_eq!(scan(&engine, 5, true), vec![]);
    }

    #[test]
    fn a_scan_stays_inside_its_span_and_stops_when_asked() {
        let (_dir, engine) = engine_with(&[
            (b"a", 1, Some(b"1")),
            (b"b", 1, Some(b"1")),
            (b"b", 2, Some(b"2")),
            (b"c", 1, Some(b"1")),
        ]);
        let mut seen = Vec::new();
        Versions::new(&engine)
            .scan((b"b", b"c"), LATEST, false, 0, |key, value| {
                seen.push((key, value));
                Ok(true)
            })
            .unwrap();
        assert_eq!(seen, vec![(b"b".to_vec(), b"2".to_vec())]);
        let mut first = Vec::new();
        Versions::new(&engine)
            .scan((b"", b""), LATEST, true, 0, |key, _| {
                first.push(key);
                Ok(false)
            })
            .unwrap();
        assert_eq!(first, vec![b"c".to_vec()]);
    }

    #[test]
    fn an_expired_value_reads_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        engine
            .put(
                CF_DATA,
                &keys::version_key(b"k", 1),
                &encode_put(b"v", 100),
                false,
            )
            .unwrap();
        let versions = Versions::new(&engine);
        assert_eq!(versions.get(b"k", LATEST, 99).unwrap(), Some(b"v".to_vec()));
        assert_eq!(versions.get(b"k", LATEST, 100).unwrap(), None);
    }
}
