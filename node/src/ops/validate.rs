//! Request checks done before anything is proposed: a refused request changes nothing.

use zdb_proto::v1::{mutation, LockInfo, LockKind, Mutation, SpanLockInfo};

use crate::config::Limits;
use crate::error::{Error, Result};

fn invalid(message: String) -> Error {
    Error::InvalidArgument(message)
}

pub fn key(limits: &Limits, key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(invalid("key is empty; keys must be 1 or more bytes".into()));
    }
    if key.len() > limits.max_key_bytes {
        return Err(invalid(format!(
            "key is {} bytes; the limit is {} bytes (node flag --max-key-bytes)",
            key.len(),
            limits.max_key_bytes
        )));
    }
    Ok(())
}

pub fn value(limits: &Limits, value: &[u8]) -> Result<()> {
    if value.len() > limits.max_value_bytes {
        return Err(invalid(format!(
            "value is {} bytes; the limit is {} bytes (node flag --max-value-bytes)",
            value.len(),
            limits.max_value_bytes
        )));
    }
    Ok(())
}

pub fn batch_len(limits: &Limits, what: &str, len: usize) -> Result<()> {
    if len == 0 {
        return Err(invalid(format!("{what} is empty")));
    }
    if len > limits.max_batch_ops {
        return Err(invalid(format!(
            "{what} has {len} entries; the limit is {} (node flag --max-batch-ops)",
            limits.max_batch_ops
        )));
    }
    Ok(())
}

pub fn mutations(limits: &Limits, mutations: &[Mutation]) -> Result<()> {
    batch_len(limits, "batch", mutations.len())?;
    let mut bytes = 0usize;
    for (i, mutation) in mutations.iter().enumerate() {
        match &mutation.op {
            Some(mutation::Op::Put(put)) => {
                key(limits, &put.key).map_err(|err| invalid(format!("mutation {i}: {err}")))?;
                value(limits, &put.value).map_err(|err| invalid(format!("mutation {i}: {err}")))?;
                bytes += put.key.len() + put.value.len();
            }
            Some(mutation::Op::Delete(delete)) => {
                key(limits, &delete.key).map_err(|err| invalid(format!("mutation {i}: {err}")))?;
                bytes += delete.key.len();
            }
            None => {
                return Err(invalid(format!(
                    "mutation {i} is neither a put nor a delete"
                )))
            }
        }
    }
    if bytes > limits.max_batch_bytes {
        return Err(invalid(format!(
            "batch holds {bytes} bytes of keys and values; the limit is {} (node flag --max-batch-bytes)",
            limits.max_batch_bytes
        )));
    }
    Ok(())
}

pub fn scan(limits: &Limits, start: &[u8], end: &[u8], limit: u32) -> Result<()> {
    if !end.is_empty() && start >= end {
        return Err(invalid(
            "scan start must sort before its end (an empty end means no bound)".into(),
        ));
    }
    if start.len() > limits.max_key_bytes || end.len() > limits.max_key_bytes {
        return Err(invalid(format!(
            "scan bounds are limited to {} bytes",
            limits.max_key_bytes
        )));
    }
    if limit > limits.max_scan_limit {
        return Err(invalid(format!(
            "scan limit {limit} is above the maximum page of {}; page with a smaller limit",
            limits.max_scan_limit
        )));
    }
    Ok(())
}

/// Absolute expiry for a TTL given in seconds; 0 means none.
pub fn expiry(now_ms: u64, ttl_seconds: u64) -> Result<u64> {
    if ttl_seconds == 0 {
        return Ok(0);
    }
    ttl_seconds
        .checked_mul(1000)
        .and_then(|ttl_ms| now_ms.checked_add(ttl_ms))
        .ok_or_else(|| invalid(format!("ttl of {ttl_seconds} seconds is too large")))
}

/// The keys of a transaction call on one range: present, within limits,
/// each once.
pub fn txn_keys(limits: &Limits, keys: &[Vec<u8>]) -> Result<()> {
    batch_len(limits, "key list", keys.len())?;
    let mut seen = std::collections::HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        key(limits, k).map_err(|err| invalid(format!("key {i}: {err}")))?;
        if !seen.insert(k) {
            return Err(invalid(format!("key {i} appears twice")));
        }
    }
    Ok(())
}

/// A prewrite's or lock call's locks and spans.
pub fn txn_locks(limits: &Limits, locks: &[LockInfo], spans: &[SpanLockInfo]) -> Result<()> {
    batch_len(limits, "lock list", locks.len() + spans.len())?;
    let keys: Vec<Vec<u8>> = locks.iter().map(|lock| lock.key.clone()).collect();
    if !keys.is_empty() {
        txn_keys(limits, &keys)?;
    }
    for lock in locks {
        if LockKind::try_from(lock.kind).is_err() {
            return Err(invalid(format!("unknown lock kind {}", lock.kind)));
        }
        value(limits, &lock.value)?;
    }
    for span in spans {
        if !span.end_key.is_empty() && span.end_key <= span.start_key {
            return Err(invalid("a span's end must be above its start".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdb_proto::v1::{DeleteOp, PutOp};

    fn put(key: &[u8], value: &[u8]) -> Mutation {
        Mutation {
            op: Some(mutation::Op::Put(PutOp {
                key: key.to_vec(),
                value: value.to_vec(),
                ttl_seconds: 0,
            })),
        }
    }

    #[test]
    fn keys_and_values() {
        let limits = Limits {
            max_key_bytes: 4,
            max_value_bytes: 8,
            ..Limits::default()
        };
        assert!(key(&limits, b"").unwrap_err().to_string().contains("empty"));
        assert!(key(&limits, b"abcd").is_ok());
        assert!(key(&limits, b"abcde")
            .unwrap_err()
            .to_string()
            .contains("limit is 4"));
        assert!(value(&limits, b"").is_ok());
        assert!(value(&limits, &[0; 9])
            .unwrap_err()
            .to_string()
            .contains("--max-value-bytes"));
    }

    #[test]
    fn batches() {
        let limits = Limits {
            max_batch_ops: 2,
            max_batch_bytes: 10,
            ..Limits::default()
        };
        assert!(mutations(&limits, &[]).is_err());
        assert!(mutations(&limits, &[put(b"a", b"1"), put(b"b", b"2")]).is_ok());
        assert!(mutations(
            &limits,
            &[put(b"a", b"1"), put(b"b", b"2"), put(b"c", b"3")]
        )
        .is_err());
        let err = mutations(&limits, &[put(b"a", &[0; 20])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--max-batch-bytes"), "{err}");
        let bad_key = Mutation {
            op: Some(mutation::Op::Delete(DeleteOp { key: vec![] })),
        };
        assert!(mutations(&limits, &[bad_key])
            .unwrap_err()
            .to_string()
            .starts_with("invalid argument: mutation 0"));
        assert!(mutations(&limits, &[Mutation { op: None }]).is_err());
    }

    #[test]
    fn scans_and_ttls() {
        let limits = Limits::default();
        assert!(scan(&limits, b"b", b"a", 0).is_err());
        assert!(scan(&limits, b"a", b"a", 0).is_err());
        assert!(scan(&limits, b"a", b"", 0).is_ok());
        assert!(scan(&limits, b"", b"", limits.max_scan_limit + 1).is_err());
        assert_eq!(expiry(1000, 0).unwrap(), 0);
        assert_eq!(expiry(1000, 2).unwrap(), 3000);
        assert!(expiry(1000, u64::MAX).is_err());
    }
}
