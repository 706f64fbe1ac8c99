//! Snapshot payloads: a range's data at the applied index, read from one
//! RocksDB snapshot, and installing such a payload on a replica.

use prost::Message as _;
use rocksdb::WriteBatch;
use zdb_proto::v1::{KeyValue, SnapshotData, StoredPut};

use super::descriptor;
use crate::engine::{keys, value, Engine, ReadView, CF_DATA, CF_SYSTEM, CF_TTL};
use crate::error::{Error, Result};
use crate::meta::table::{self as meta, META_RANGE_ID};

fn span_end(end_key: &[u8]) -> Vec<u8> {
    if end_key.is_empty() {
        // 0xff followed by anything sorts after 0xff alone; extend so that the
        // bound is above any key that fits the configured key size limit.
        vec![0xff; crate::config::MAX_KEY_BYTES_CEILING + 1]
    } else {
        end_key.to_vec()
    }
}

/// Encodes the range's descriptor and every pair in its span, all read from
/// one RocksDB snapshot (the meta range's system keyspace too).
pub fn build(engine: &Engine, range_id: u64) -> Result<Vec<u8>> {
    let view = engine.snapshot();
    let range = descriptor::load_all(&view)?
        .into_iter()
        .find(|range| range.range_id == range_id)
        .ok_or(Error::RangeNotFound(range_id))?;
    let mut pairs = Vec::new();
    view.scan(
        CF_DATA,
        &range.start_key,
        &span_end(&range.end_key),
        false,
        |key, raw| {
            let stored = value::decode(raw)?;
            pairs.push(StoredPut {
                key: key.to_vec(),
                value: stored.value.to_vec(),
                expire_at_ms: stored.expire_at_ms,
            });
            Ok(true)
        },
    )?;
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
        pairs,
        system,
    }
    .encode_to_vec())
}

/// Replaces the range's data with the snapshot's, in `batch`.
pub fn install(engine: &Engine, batch: &mut WriteBatch, data: &[u8]) -> Result<SnapshotData> {
    let snapshot = SnapshotData::decode(data)?;
    let range = snapshot
        .range
        .as_ref()
        .ok_or_else(|| Error::corruption("snapshot", "no range descriptor"))?;
    let data_cf = engine.cf(CF_DATA);
    batch.delete_range_cf(data_cf, range.start_key.clone(), span_end(&range.end_key));
    for pair in &snapshot.pairs {
        batch.put_cf(
            data_cf,
            &pair.key,
            value::encode(&pair.value, pair.expire_at_ms),
        );
        if pair.expire_at_ms != 0 {
            batch.put_cf(
                engine.cf(CF_TTL),
                keys::ttl_key(pair.expire_at_ms, &pair.key),
                [],
            );
        }
    }
    if range.range_id == META_RANGE_ID {
        let system_cf = engine.cf(CF_SYSTEM);
        batch.delete_range_cf(system_cf, Vec::new(), span_end(&[]));
        for pair in &snapshot.system {
            batch.put_cf(system_cf, &pair.key, &pair.value);
        }
    }
    descriptor::save(engine, batch, range);
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_replaces_the_span() {
        let source_dir = tempfile::tempdir().unwrap();
        let source = Engine::open(source_dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        descriptor::save(&source, &mut batch, &descriptor::initial(&[1, 2, 3]));
        source.write(batch, false).unwrap();
        source
            .put(CF_DATA, b"a", &value::encode(b"1", 0), false)
            .unwrap();
        source
            .put(CF_DATA, b"b", &value::encode(b"2", 99), false)
            .unwrap();
        source
            .put(CF_DATA, b"\xff\xff", &value::encode(b"3", 0), false)
            .unwrap();
        let payload = build(&source, 1).unwrap();

        let target_dir = tempfile::tempdir().unwrap();
        let target = Engine::open(target_dir.path()).unwrap();
        target
            .put(CF_DATA, b"stale", &value::encode(b"x", 0), false)
            .unwrap();
        let mut batch = WriteBatch::default();
        let installed = install(&target, &mut batch, &payload).unwrap();
        target.write(batch, false).unwrap();
        assert_eq!(installed.pairs.len(), 3);

        let mut seen = Vec::new();
        target
            .scan(CF_DATA, b"", b"", false, |k, v| {
                seen.push((k.to_vec(), value::decode(v)?.value.to_vec()));
                Ok(true)
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec()),
                (b"\xff\xff".to_vec(), b"3".to_vec())
            ]
        );
        assert_eq!(
            descriptor::load_all(&target).unwrap(),
            vec![descriptor::initial(&[1, 2, 3])]
        );
        assert!(install(&target, &mut WriteBatch::default(), b"\xff garbage").is_err());
    }
}
