//! Reading the engine: directly (each read sees the latest writes) or from
//! one RocksDB snapshot (every read sees the same moment, so a multi-key read
//! never sees half of a batch the store wrote meanwhile). Values of sealed
//! column families are opened here, before any caller sees them.

use std::borrow::Cow;

use rocksdb::{DBAccess, DBRawIteratorWithThreadMode, Direction, IteratorMode, ReadOptions, DB};
use zdb_security::encryption::KeyRing;

use super::Engine;
use crate::error::Result;

/// Point reads and ordered scans of one column family.
pub trait ReadView {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits the pairs of `cf` in `[start, end)` (an empty `end` is
    /// unbounded), in order or in reverse, until `visit` returns false.
    fn scan(
        &self,
        cf: &'static str,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()>;

    /// An iterator over `[lower, upper)` of `cf` (empty: unbounded), for
    /// readers that seek.
    fn raw_iterator(&self, cf: &'static str, lower: &[u8], upper: &[u8]) -> RawIter<'_>;
}

/// A seeking iterator over one column family; [`value`](Self::value) opens
/// sealed values, and only when asked (a reader that skips a version by
/// its key pays nothing for it).
pub struct RawIter<'a> {
    inner: DBRawIteratorWithThreadMode<'a, DB>,
    sealer: Option<&'a KeyRing>,
}

impl RawIter<'_> {
    pub fn seek(&mut self, key: &[u8]) {
        self.inner.seek(key);
    }

    pub fn seek_to_first(&mut self) {
        self.inner.seek_to_first();
    }

    pub fn seek_to_last(&mut self) {
        self.inner.seek_to_last();
    }

    pub fn next(&mut self) {
        self.inner.next();
    }

    pub fn prev(&mut self) {
        self.inner.prev();
    }

    /// The key at the iterator, None past either end (or on an error:
    /// see [`status`](Self::status)).
    pub fn key(&self) -> Option<&[u8]> {
        self.inner.key()
    }

    /// The value at the iterator, opened.
    pub fn value(&self) -> Result<Option<Cow<'_, [u8]>>> {
        let (Some(key), Some(stored)) = (self.inner.key(), self.inner.value()) else {
            return Ok(None);
        };
        Ok(Some(match self.sealer {
            None => Cow::Borrowed(stored),
            Some(ring) => Cow::Owned(ring.open(stored, key)?),
        }))
    }

    pub fn status(&self) -> Result<()> {
        Ok(self.inner.status()?)
    }
}

/// Every read through it sees the engine as it was when it was taken.
pub struct Snapshot<'a> {
    engine: &'a Engine,
    snapshot: rocksdb::Snapshot<'a>,
}

impl Engine {
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            engine: self,
            snapshot: self.db().snapshot(),
        }
    }
}

fn bounded(start: &[u8], end: &[u8]) -> ReadOptions {
    let mut opts = ReadOptions::default();
    if !start.is_empty() {
        opts.set_iterate_lower_bound(start.to_vec());
    }
    if !end.is_empty() {
        opts.set_iterate_upper_bound(end.to_vec());
    }
    opts
}

fn mode(start: &[u8], reverse: bool) -> IteratorMode<'_> {
    if reverse {
        IteratorMode::End
    } else {
        IteratorMode::From(start, Direction::Forward)
    }
}

fn visit_all<D: DBAccess>(
    iterator: rocksdb::DBIteratorWithThreadMode<'_, D>,
    sealer: Option<&KeyRing>,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
) -> Result<()> {
    for item in iterator {
        let (key, stored) = item?;
        let more = match sealer {
            None => visit(&key, &stored)?,
            Some(ring) => visit(&key, &ring.open(&stored, &key)?)?,
        };
        if !more {
            break;
        }
    }
    Ok(())
}

impl ReadView for Engine {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.db().get_cf(self.cf(cf), key)? {
            Some(stored) => Ok(Some(self.open_owned(cf, key, stored)?)),
            None => Ok(None),
        }
    }

    fn scan(
        &self,
        cf: &'static str,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let iterator =
            self.db()
                .iterator_cf_opt(self.cf(cf), bounded(start, end), mode(start, reverse));
        visit_all(iterator, self.sealer(cf), visit)
    }

    fn raw_iterator(&self, cf: &'static str, lower: &[u8], upper: &[u8]) -> RawIter<'_> {
        RawIter {
            inner: self
                .db()
                .raw_iterator_cf_opt(self.cf(cf), bounded(lower, upper)),
            sealer: self.sealer(cf),
        }
    }
}

impl ReadView for Snapshot<'_> {
    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.snapshot.get_cf(self.engine.cf(cf), key)? {
            Some(stored) => Ok(Some(self.engine.open_owned(cf, key, stored)?)),
            None => Ok(None),
        }
    }

    fn scan(
        &self,
        cf: &'static str,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        visit: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let iterator = self.snapshot.iterator_cf_opt(
            self.engine.cf(cf),
            bounded(start, end),
            mode(start, reverse),
        );
        visit_all(iterator, self.engine.sealer(cf), visit)
    }

    fn raw_iterator(&self, cf: &'static str, lower: &[u8], upper: &[u8]) -> RawIter<'_> {
        RawIter {
            inner: self
                .snapshot
                .raw_iterator_cf_opt(self.engine.cf(cf), bounded(lower, upper)),
            sealer: self.engine.sealer(cf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::CF_DATA;

    #[test]
    fn a_snapshot_does_not_see_later_batches() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        engine.put(CF_DATA, b"a", b"1", false).unwrap();
        let snapshot = engine.snapshot();
        let mut batch = engine.batch();
        batch.put(CF_DATA, b"a", b"2");
        batch.put(CF_DATA, b"b", b"2");
        engine.write(batch, false).unwrap();
        assert_eq!(snapshot.get(CF_DATA, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(snapshot.get(CF_DATA, b"b").unwrap(), None);
        let mut seen = Vec::new();
        snapshot
            .scan(CF_DATA, b"", b"", false, |key, _| {
                seen.push(key.to_vec());
                Ok(true)
            })
            .unwrap();
        assert_eq!(seen, vec![b"a".to_vec()]);
        assert_eq!(engine.get(CF_DATA, b"b").unwrap(), Some(b"2".to_vec()));
    }
}
