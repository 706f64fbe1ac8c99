//! Which lock keeps a read out. A read at `read_ts` must not miss a write
//! that may commit at or below it: a staged put or delete whose transaction
//! started at or below `read_ts` holds it up until the lock is resolved
//! (or the reader learned that transaction commits above it: `bypass`).
//! Shared and exclusive locks stage nothing and never hold up a read.

use zdb_proto::v1::LockInfo;

use super::locks::{self, stages_write};
use crate::engine::ReadView;
use crate::error::{Error, Result};

/// What keeps a transactional write from applying.
#[derive(Debug, Clone, PartialEq)]
pub enum Conflict {
    /// Another transaction holds a lock on the key (or a span lock over it).
    Locked(LockInfo),
    /// A version was committed after the transaction's snapshot.
    Write { key: Vec<u8>, conflict_ts: u64 },
    /// The transaction was rolled back already.
    Aborted(String),
}

fn holds_up(lock: &LockInfo, read_ts: u64, bypass: &[u64]) -> bool {
    stages_write(lock) && lock.start_ts <= read_ts && !bypass.contains(&lock.start_ts)
}

/// The lock that holds up reading `key` at `read_ts`, if any.
pub fn blocking_read_lock(
    view: &impl ReadView,
    key: &[u8],
    read_ts: u64,
    bypass: &[u64],
) -> Result<Option<LockInfo>> {
    let Some(set) = locks::read(view, key)? else {
        return Ok(None);
    };
    Ok(set
        .holders
        .into_iter()
        .find(|lock| holds_up(lock, read_ts, bypass))
        .map(|mut lock| {
            lock.key = key.to_vec();
            lock
        }))
}

/// The first lock in `[start, end)` that holds up a scan at `read_ts`.
pub fn blocking_scan_lock(
    view: &impl ReadView,
    span: (&[u8], &[u8]),
    read_ts: u64,
    bypass: &[u64],
) -> Result<Option<LockInfo>> {
    let mut found = None;
    locks::scan(view, span.0, span.1, |key, set| {
        found = set
            .holders
            .into_iter()
            .find(|lock| holds_up(lock, read_ts, bypass))
            .map(|mut lock| {
                lock.key = key;
                lock
            });
        Ok(found.is_none())
    })?;
    Ok(found)
}

/// Refuses with KeyLocked when a lock holds up reading `key` at `read_ts`.
pub fn unlocked_for_read(
    view: &impl ReadView,
    key: &[u8],
    read_ts: u64,
    bypass: &[u64],
) -> Result<()> {
    match blocking_read_lock(view, key, read_ts, bypass)? {
        Some(lock) => Err(Error::KeyLocked(Box::new(lock))),
        None => Ok(()),
    }
}
