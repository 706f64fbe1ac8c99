//! Snapshot payloads: a range's data at the applied index, read from one
//! RocksDB snapshot, and installing such a payload on a replica.

use prost::Message as _;
use zdb_proto::v1::{KeyValue, SnapshotData};

use super::descriptor;
use crate::engine::{
    keys, Batch, Engine, ReadView, CF_DATA, CF_LOCKS, CF_SPAN_LOCKS, CF_SYSTEM, CF_TTL, CF_TXN,
};
use crate::error::{Error, Result};
use crate::meta::table::{self as meta, META_RANGE_ID};
use crate::mvcc::{self, record, Record};

/// Encodes the range's descriptor and every version in its span, all read
/// from one RocksDB snapshot (the meta range's system keyspace too).
pub fn build(engine: &Engine, range_id: u64) -> Result<Vec<u8>> {
    let view = engine.snapshot();
    let range = descriptor::load_all(&view)?
        .into_iter()
        .find(|range| range.range_id == range_id)
        .ok_or(Error::RangeNotFound(range_id))?;
    let (lower, upper) = mvcc::keys::delete_bounds(&range.start_key, &range.end_key);
    let span_of = |cf| -> Result<Vec<KeyValue>> {
        let mut pairs = Vec::new();
        view.scan(cf, &lower, &upper, false, |key, raw| {
            pairs.push(KeyValue {
                key: key.to_vec(),
                value: raw.to_vec(),
            });
            Ok(true)
        })?;
        Ok(pairs)
    };
    let versions = span_of(CF_DATA)?;
    let locks = span_of(CF_LOCKS)?;
    let span_locks = span_of(CF_SPAN_LOCKS)?;
    let txn_records = span_of(CF_TXN)?;
    let system = if range_id == META_RANGE_ID {
        meta::dump(&view)?
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect()
    } else {
        Vec::new()
    };
    Ok(SnapshotData {
        range: Some(range),
        versions,
        system,
        locks,
        span_locks,
        txn_records,
    }
    .encode_to_vec())
}

/// Replaces the range's data with the snapshot's, in `batch` (which seals
/// the values with this node's own data keys, if it encrypts).
pub fn install(batch: &mut Batch, data: &[u8]) -> Result<SnapshotData> {
    let snapshot = SnapshotData::decode(data)?;
    let range = snapshot
        .range
        .as_ref()
        .ok_or_else(|| Error::corruption("snapshot", "no range descriptor"))?;
    let (lower, upper) = mvcc::keys::delete_bounds(&range.start_key, &range.end_key);
    for cf in keys::SPAN_FAMILIES {
        batch.delete_range(cf, &lower, &upper);
    }
    for version in &snapshot.versions {
        let (key, _) = mvcc::keys::decode(&version.key)?;
        if !descriptor::contains(range, &key) {
            return Err(Error::corruption(
                "snapshot",
                "a version outside the range's span",
            ));
        }
        if let Record::Put { expire_at_ms, .. } = record::decode(&version.value)? {
            if expire_at_ms != 0 {
                batch.put(CF_TTL, keys::ttl_key(expire_at_ms, &key), []);
            }
        }
        batch.put(CF_DATA, &version.key, &version.value);
    }
    for (cf, pairs) in [
        (CF_LOCKS, &snapshot.locks),
        (CF_SPAN_LOCKS, &snapshot.span_locks),
        (CF_TXN, &snapshot.txn_records),
    ] {
        for pair in pairs {
            if pair.key < lower || pair.key >= upper {
                return Err(Error::corruption(
                    "snapshot",
                    "a lock outside the range's span",
                ));
            }
            batch.put(cf, &pair.key, &pair.value);
        }
    }
    if range.range_id == META_RANGE_ID {
        batch.delete_range(CF_SYSTEM, Vec::new(), mvcc::keys::delete_bounds(b"", b"").1);
        for pair in &snapshot.system {
            batch.put(CF_SYSTEM, &pair.key, &pair.value);
        }
    }
    descriptor::save(batch, range);
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::{Versions, LATEST};

    fn put(engine: &Engine, key: &[u8], ts: u64, value: &[u8], expire_at_ms: u64) {
        let raw = record::encode_put(value, expire_at_ms);
        engine
            .put(CF_DATA, &mvcc::keys::version_key(key, ts), &raw, false)
            .unwrap();
    }

    #[test]
    fn round_trip_replaces_the_span_with_every_version() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = Engine::open(source_dir.path()).unwrap();
        let mut batch = source.batch();
        descriptor::save(&mut batch, &descriptor::initial(&[1, 2, 3]));
        source.write(batch, false).unwrap();
        put(&source, b"a", 5, b"1", 0);
        put(&source, b"a", 9, b"1b", 0);
        put(&source, b"b", 5, b"2", 99);
        put(&source, b"\xff\xff", 5, b"3", 0);
        let payload = build(&source, 1).unwrap();

        let target_dir = tempfile::tempdir().unwrap();
        let target = Engine::open(target_dir.path()).unwrap();
        put(&target, b"stale", 1, b"x", 0);
        let mut batch = target.batch();
        let installed = install(&mut batch, &payload).unwrap();
        target.write(batch, false).unwrap();
        assert_eq!(installed.versions.len(), 4);

        let mut seen = Vec::new();
        Versions::new(&target)
            .scan((b"", b""), LATEST, false, 0, |k, v| {
                seen.push((k, v));
                Ok(true)
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (b"a".to_vec(), b"1b".to_vec()),
                (b"b".to_vec(), b"2".to_vec()),
                (b"\xff\xff".to_vec(), b"3".to_vec())
            ]
        );
        assert_eq!(
            Versions::new(&target).get(b"a", 8, 0).unwrap(),
            Some(b"1".to_vec()),
            "older versions travel too"
        );
        let mut expiring = 0;
        target
            .scan(CF_TTL, b"", b"", false, |_, _| {
                expiring += 1;
                Ok(true)
            })
            .unwrap();
        assert_eq!(expiring, 1);
        assert_eq!(
            descriptor::load_all(&target).unwrap(),
            vec![descriptor::initial(&[1, 2, 3])]
        );
        assert!(install(&mut target.batch(), b"\xff garbage").is_err());
    }
}
