//! Commands on user keys: puts and deletes, compare-and-swap, expiry.

use std::collections::HashMap;

use rocksdb::WriteBatch;
use zdb_proto::v1::{
    stored_mutation, CompareAndSwapCommand, ExpireCommand, StoredPut, WriteBatchCommand,
};

use super::Outcome;
use crate::engine::{keys, value, Engine, ReadView, CF_DATA, CF_TTL};
use crate::error::Result;
use crate::metrics;

/// Writes to user keys going into one write batch, readable before the
/// batch is written: a compare-and-swap later in the batch must see what an
/// earlier command wrote.
pub struct DataBatch<'a> {
    engine: &'a Engine,
    batch: &'a mut WriteBatch,
    /// Raw stored value per key written in this batch; None for deleted.
    written: &'a mut HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> DataBatch<'a> {
    pub fn new(
        engine: &'a Engine,
        batch: &'a mut WriteBatch,
        written: &'a mut HashMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Self {
        DataBatch {
            engine,
            batch,
            written,
        }
    }

    fn put(&mut self, put: &StoredPut) {
        let raw = value::encode(&put.value, put.expire_at_ms);
        self.batch.put_cf(self.engine.cf(CF_DATA), &put.key, &raw);
        if put.expire_at_ms != 0 {
            self.batch.put_cf(
                self.engine.cf(CF_TTL),
                keys::ttl_key(put.expire_at_ms, &put.key),
                [],
            );
        }
        self.written.insert(put.key.clone(), Some(raw));
    }

    fn delete(&mut self, key: &[u8]) {
        self.batch.delete_cf(self.engine.cf(CF_DATA), key);
        self.written.insert(key.to_vec(), None);
    }

    fn raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.written.get(key) {
            Some(raw) => Ok(raw.clone()),
            None => self.engine.get(CF_DATA, key),
        }
    }

    fn live_value(&self, key: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>> {
        let Some(raw) = self.raw(key)? else {
            return Ok(None);
        };
        let stored = value::decode(&raw)?;
        Ok(stored.is_live_at(now_ms).then(|| stored.value.to_vec()))
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

/// Removes keys whose time to live ran out, if they still hold the expired
/// version (a newer write to the key keeps it).
pub fn expire(data: &mut DataBatch<'_>, expire: &ExpireCommand, now_ms: u64) -> Result<Outcome> {
    for expired in &expire.keys {
        let still_that_version = match data.raw(&expired.key)? {
            Some(raw) => {
                let stored = value::decode(&raw)?;
                stored.expire_at_ms == expired.expire_at_ms && !stored.is_live_at(now_ms)
            }
            None => false,
        };
        if still_that_version {
            data.delete(&expired.key);
            metrics::TTL_KEYS_REMOVED.inc();
        }
        data.batch.delete_cf(
            data.engine.cf(CF_TTL),
            keys::ttl_key(expired.expire_at_ms, &expired.key),
        );
    }
    Ok(Outcome::Written)
}
