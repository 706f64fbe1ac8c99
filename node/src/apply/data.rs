//! Commands on user keys: puts and deletes, compare-and-swap, expiry.

use std::collections::HashMap;

use rocksdb::WriteBatch;
use zdb_proto::v1::{
    stored_mutation, CompareAndSwapCommand, ExpireCommand, StoredPut, WriteBatchCommand,
};

use super::Outcome;
use crate::engine::{keys, value, Engine, OverlayBatch, CF_DATA, CF_TTL};
use crate::error::Result;
use crate::metrics;

/// The batch's writes to user keys (and their TTL index), readable before
/// the batch is written.
pub struct DataBatch<'a>(OverlayBatch<'a>);

impl<'a> DataBatch<'a> {
    pub fn new(
        engine: &'a Engine,
        batch: &'a mut WriteBatch,
        written: &'a mut HashMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Self {
        DataBatch(OverlayBatch::new(engine, batch, CF_DATA, written))
    }

    fn put(&mut self, put: &StoredPut) {
        self.0
            .put(&put.key, value::encode(&put.value, put.expire_at_ms));
        if put.expire_at_ms != 0 {
            let (engine, batch) = self.0.side();
            batch.put_cf(
                engine.cf(CF_TTL),
                keys::ttl_key(put.expire_at_ms, &put.key),
                [],
            );
        }
    }

    fn delete(&mut self, key: &[u8]) {
        self.0.delete(key);
    }

    fn forget_expiry(&mut self, expire_at_ms: u64, key: &[u8]) {
        let (engine, batch) = self.0.side();
        batch.delete_cf(engine.cf(CF_TTL), keys::ttl_key(expire_at_ms, key));
    }

    fn live_value(&self, key: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>> {
        let Some(raw) = self.0.get(key)? else {
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
        let still_that_version = match data.0.get(&expired.key)? {
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
        data.forget_expiry(expired.expire_at_ms, &expired.key);
    }
    Ok(Outcome::Written)
}
