//! Lock records. A key's lock is held by one transaction that writes it
//! (a staged put or delete, or an exclusive lock without a value) or by any
//! number of transactions that share it for reading. A span lock keeps
//! writers out of a span a serializable transaction scanned.

use prost::Message as _;
use zdb_proto::v1::{LockInfo, LockKind, SpanLockInfo, StoredLocks};

use crate::engine::{ReadView, CF_LOCKS, CF_SPAN_LOCKS};
use crate::error::{Error, Result};
use crate::mvcc::keys;

/// The holders of one key's lock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LockSet {
    pub holders: Vec<LockInfo>,
}

pub fn lock_key(key: &[u8]) -> Vec<u8> {
    keys::encode_key(key)
}

pub fn span_lock_key(start: &[u8], start_ts: u64) -> Vec<u8> {
    keys::version_key(start, start_ts)
}

pub fn is_shared(lock: &LockInfo) -> bool {
    lock.kind == LockKind::Shared as i32
}

/// Whether the lock stages a write that readers must not miss.
pub fn stages_write(lock: &LockInfo) -> bool {
    lock.kind == LockKind::Put as i32 || lock.kind == LockKind::Delete as i32
}

/// Whether the lock's time to live ran out by `now_ms`.
pub fn expired(lock: &LockInfo, now_ms: u64) -> bool {
    lock.heartbeat_ms.saturating_add(lock.ttl_ms) < now_ms
}

impl LockSet {
    pub fn decode(raw: &[u8]) -> Result<Self> {
        let stored = StoredLocks::decode(raw).map_err(|err| Error::corruption("lock", err))?;
        Ok(LockSet {
            holders: stored.holders,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        StoredLocks {
            holders: self.holders.clone(),
        }
        .encode_to_vec()
    }

    pub fn held_by(&self, start_ts: u64) -> Option<&LockInfo> {
        self.holders.iter().find(|lock| lock.start_ts == start_ts)
    }

    /// Removes the holder `start_ts`, returning its lock.
    pub fn release(&mut self, start_ts: u64) -> Option<LockInfo> {
        let at = self
            .holders
            .iter()
            .position(|lock| lock.start_ts == start_ts)?;
        Some(self.holders.remove(at))
    }

    /// The lock of another transaction that keeps a lock of transaction
    /// `start_ts` out: any other holder, unless both share.
    pub fn conflicting(&self, start_ts: u64, shared: bool) -> Option<&LockInfo> {
        self.holders
            .iter()
            .find(|held| held.start_ts != start_ts && !(is_shared(held) && shared))
    }

    /// Adds (or replaces) the holder of `lock.start_ts`.
    pub fn hold(&mut self, lock: LockInfo) {
        self.release(lock.start_ts);
        self.holders.push(lock);
    }
}

/// The lock set of `key` in `view`, if any.
pub fn read(view: &impl ReadView, key: &[u8]) -> Result<Option<LockSet>> {
    view.get(CF_LOCKS, &lock_key(key))?
        .map(|raw| LockSet::decode(&raw))
        .transpose()
}

/// Visits the lock sets of the keys in `[start, end)` (empty end: unbounded).
pub fn scan(
    view: &impl ReadView,
    start: &[u8],
    end: &[u8],
    mut visit: impl FnMut(Vec<u8>, LockSet) -> Result<bool>,
) -> Result<()> {
    let (lower, upper) = (keys::lower_bound(start), keys::upper_bound(end));
    view.scan(CF_LOCKS, &lower, &upper, false, |raw_key, raw| {
        let key = decode_lock_key(raw_key)?;
        visit(key, LockSet::decode(raw)?)
    })
}

/// The user key of a lock key: the escaped key without a timestamp.
pub fn decode_lock_key(raw: &[u8]) -> Result<Vec<u8>> {
    // A version key with a zero timestamp appended decodes the same body.
    let mut with_ts = raw.to_vec();
    with_ts.extend_from_slice(&(!0u64).to_be_bytes());
    Ok(keys::decode(&with_ts)?.0)
}

/// A span lock as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanLock(pub SpanLockInfo);

impl SpanLock {
    pub fn decode(raw: &[u8]) -> Result<Self> {
        SpanLockInfo::decode(raw)
            .map(SpanLock)
            .map_err(|err| Error::corruption("span lock", err))
    }

    pub fn covers(&self, key: &[u8]) -> bool {
        key >= self.0.start_key.as_slice()
            && (self.0.end_key.is_empty() || key < self.0.end_key.as_slice())
    }

    /// Whether the span meets `[start, end)` (empty end: unbounded).
    pub fn overlaps(&self, start: &[u8], end: &[u8]) -> bool {
        (end.is_empty() || self.0.start_key.as_slice() < end)
            && (self.0.end_key.is_empty() || start < self.0.end_key.as_slice())
    }
}

/// Every span lock stored in `[start, end)` of the span-lock family (the
/// spans that start there).
pub fn span_locks(view: &impl ReadView, start: &[u8], end: &[u8]) -> Result<Vec<SpanLock>> {
    let (lower, upper) = (keys::lower_bound(start), keys::upper_bound(end));
    let mut found = Vec::new();
    view.scan(CF_SPAN_LOCKS, &lower, &upper, false, |_, raw| {
        found.push(SpanLock::decode(raw)?);
        Ok(true)
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(start_ts: u64, kind: LockKind) -> LockInfo {
        LockInfo {
            start_ts,
            kind: kind as i32,
            ..Default::default()
        }
    }

    #[test]
    fn shared_holders_coexist_and_writers_exclude_everyone() {
        let mut set = LockSet::default();
        set.hold(lock(1, LockKind::Shared));
        assert!(set.conflicting(2, true).is_none());
        assert_eq!(set.conflicting(2, false).unwrap().start_ts, 1);
        assert!(set.conflicting(1, false).is_none(), "its own lock");
        set.hold(lock(2, LockKind::Shared));
        set.hold(lock(1, LockKind::Put));
        assert_eq!(
            set.holders.len(),
            2,
            "an upgrade replaces the holder's lock"
        );
        assert_eq!(set.conflicting(3, true).unwrap().start_ts, 1);
        assert!(set.release(1).is_some());
        assert!(set.release(1).is_none());
    }

    #[test]
    fn lock_keys_decode_to_their_user_key() {
        for key in [&b""[..], b"a", b"a\x00b", b"\xff\x00"] {
            assert_eq!(decode_lock_key(&lock_key(key)).unwrap(), key);
        }
    }

    #[test]
    fn span_locks_cover_their_half_open_span() {
        let span = SpanLock(SpanLockInfo {
            start_key: b"b".to_vec(),
            end_key: b"d".to_vec(),
            ..Default::default()
        });
        assert!(span.covers(b"b") && span.covers(b"c") && !span.covers(b"d"));
        assert!(!span.covers(b"a"));
        assert!(
            span.overlaps(b"a", b"c") && !span.overlaps(b"d", b"") && !span.overlaps(b"", b"b")
        );
    }
}
