//! Commands on user keys: puts and deletes, compare-and-swap, delete-range,
//! eviction, expiry. Each
//! writes new versions at the command's commit timestamp; nothing older is
//! changed (a delete is a tombstone version).

use std::collections::HashMap;

use zdb_proto::v1::{
    stored_mutation, CompareAndSwapCommand, EvictCommand, ExpireCommand, StoredPut,
    WriteBatchCommand,
};

use super::Outcome;
use crate::engine::{keys, Batch, Engine, CF_DATA, CF_TTL};
use crate::error::Result;
use crate::metrics;
use crate::mvcc::{self, record, Record, Versions};

/// The batch's versions of user keys (and their TTL index), readable before
/// the batch is written.
pub struct DataBatch<'a> {
    engine: &'a Engine,
    batch: &'a mut Batch,
    /// The newest version this batch wrote for each user key (commit
    /// timestamp, stored record).
    written: &'a mut HashMap<Vec<u8>, (u64, Vec<u8>)>,
    /// The commit timestamp of the command being applied.
    ts: u64,
}

impl<'a> DataBatch<'a> {
    pub fn new(
        engine: &'a Engine,
        batch: &'a mut Batch,
        written: &'a mut HashMap<Vec<u8>, (u64, Vec<u8>)>,
        ts: u64,
    ) -> Self {
        DataBatch {
            engine,
            batch,
            written,
            ts,
        }
    }

    fn write_version(&mut self, key: &[u8], raw: Vec<u8>) {
        self.batch
            .put(CF_DATA, mvcc::keys::version_key(key, self.ts), &raw);
        self.written.insert(key.to_vec(), (self.ts, raw));
    }

    pub fn engine(&self) -> &'a Engine {
        self.engine
    }

    pub fn batch_mut(&mut self) -> &mut Batch {
        self.batch
    }

    pub fn ts(&self) -> u64 {
        self.ts
    }

    pub(super) fn put(&mut self, put: &StoredPut) {
        self.write_version(&put.key, record::encode_put(&put.value, put.expire_at_ms));
        if put.expire_at_ms != 0 {
            self.batch
                .put(CF_TTL, keys::ttl_key(put.expire_at_ms, &put.key), []);
        }
    }

    pub(super) fn delete(&mut self, key: &[u8]) {
        self.write_version(key, record::encode_tombstone());
    }

    fn forget_expiry(&mut self, expire_at_ms: u64, key: &[u8]) {
        self.batch.delete(CF_TTL, keys::ttl_key(expire_at_ms, key));
    }

    /// The newest version of `key` (commit timestamp, stored record), this
    /// batch's writes included.
    pub(super) fn latest_version(&self, key: &[u8]) -> Result<Option<(u64, Vec<u8>)>> {
        if let Some(version) = self.written.get(key) {
            return Ok(Some(version.clone()));
        }
        Versions::new(self.engine).version_at(key, mvcc::LATEST)
    }

    /// A key in `[start, end)` this batch wrote a version of above `ts`.
    pub(super) fn written_after(&self, ts: u64, span: (&[u8], &[u8])) -> Option<(Vec<u8>, u64)> {
        let (start, end) = span;
        self.written
            .iter()
            .find(|(key, (written_ts, _))| {
                *written_ts > ts
                    && key.as_slice() >= start
                    && (end.is_empty() || key.as_slice() < end)
            })
            .map(|(key, (written_ts, _))| (key.clone(), *written_ts))
    }

    fn latest(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.latest_version(key)?.map(|(_, raw)| raw))
    }

    fn live_value(&self, key: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.live_record(key, now_ms)?.map(|(value, _)| value))
    }

    /// The live value of `key` at `now_ms` and its expiry (0: none).
    pub(super) fn live_record(&self, key: &[u8], now_ms: u64) -> Result<Option<(Vec<u8>, u64)>> {
        let Some(raw) = self.latest(key)? else {
            return Ok(None);
        };
        let record = record::decode(&raw)?;
        let expire_at_ms = match record {
            Record::Put { expire_at_ms, .. } => expire_at_ms,
            Record::Tombstone => 0,
        };
        Ok(record
            .live_value(now_ms)
            .map(|value| (value.to_vec(), expire_at_ms)))
    }

    /// The keys in `[start, end)` holding a live value at `now_ms`, this
    /// batch's writes included, in order.
    pub(super) fn live_keys(&self, span: (&[u8], &[u8]), now_ms: u64) -> Result<Vec<Vec<u8>>> {
        let mut keys = std::collections::BTreeSet::new();
        Versions::new(self.engine).scan(span, mvcc::LATEST, false, now_ms, |key, _| {
            keys.insert(key);
            Ok(true)
        })?;
        let (start, end) = span;
        for key in self.written.keys() {
            if key.as_slice() >= start && (end.is_empty() || key.as_slice() < end) {
                keys.insert(key.clone());
            }
        }
        let mut live = Vec::with_capacity(keys.len());
        for key in keys {
            if self.live_value(&key, now_ms)?.is_some() {
                live.push(key);
            }
        }
        Ok(live)
    }
}

pub fn write(data: &mut DataBatch<'_>, write: &WriteBatchCommand) -> Outcome {
    for mutation in &write.mutations {
        match &mutation.op {
            Some(stored_mutation::Op::Put(put)) => data.put(put),
            Some(stored_mutation::Op::Delete(key)) => data.delete(key),
            None => {}
        }
    }
    Outcome::Written
}

pub fn compare_and_swap(
    data: &mut DataBatch<'_>,
    cas: &CompareAndSwapCommand,
    now_ms: u64,
) -> Result<Outcome> {
    let current = data.live_value(&cas.key, now_ms)?;
    let succeeded = match &current {
        None => cas.expect_absent,
        Some(value) => !cas.expect_absent && *value == cas.expected_value,
    };
    if succeeded {
        if let Some(new_value) = &cas.new_value {
            data.put(new_value);
        }
    }
    Ok(Outcome::CompareAndSwap { succeeded, current })
}

/// A tombstone for every live key of the span (already clipped to the
/// range): what FLUSHDB and `zdbctl clear` do, one range at a time.
pub fn delete_range(
    data: &mut DataBatch<'_>,
    span: (&[u8], &[u8]),
    now_ms: u64,
) -> Result<Outcome> {
    let keys = data.live_keys(span, now_ms)?;
    for key in &keys {
        data.delete(key);
    }
    Ok(Outcome::Deleted(keys.len() as u64))
}

/// Deletes the keys a cache range's leader chose, each only if it still
/// holds the version the leader saw.
pub fn evict(data: &mut DataBatch<'_>, evict: &EvictCommand) -> Result<Outcome> {
    let mut evicted = 0;
    for chosen in &evict.keys {
        let still_that_version = matches!(
            data.latest_version(&chosen.key)?,
            Some((ts, raw)) if ts == chosen.version_ts && record::decode(&raw)? != Record::Tombstone
        );
        if still_that_version {
            data.delete(&chosen.key);
            evicted += 1;
        }
    }
    metrics::EVICTED_KEYS.inc_by(evicted);
    Ok(Outcome::Deleted(evicted))
}

/// Ends the keys whose time to live ran out with a tombstone, if they still
/// hold the expired version (a newer write to the key keeps it). Reads
/// already saw them as absent; older reads still see the value.
pub fn expire(data: &mut DataBatch<'_>, expire: &ExpireCommand, now_ms: u64) -> Result<Outcome> {
    for expired in &expire.keys {
        let still_that_version = match data.latest(&expired.key)? {
            Some(raw) => match record::decode(&raw)? {
                record @ Record::Put { expire_at_ms, .. } => {
                    expire_at_ms == expired.expire_at_ms && record.live_value(now_ms).is_none()
                }
                Record::Tombstone => false,
            },
            None => false,
        };
        if still_that_version {
            data.delete(&expired.key);
            metrics::TTL_KEYS_REMOVED.inc();
        }
        data.forget_expiry(expired.expire_at_ms, &expired.key);
    }
    Ok(Outcome::Written)
}
