//! Transaction commands: prewrite, pessimistic locks, commit, rollback,
//! keep-alive; and the lock check every plain write passes. Each decision
//! reads only replicated state (versions, locks, records, the command's
//! `now_ms`), so every replica decides alike.

use std::collections::HashMap;

use zdb_proto::v1::{
    LockInfo, LockKind, RangeDescriptor, SpanLockInfo, StoredPut, TxnCommitCommand,
    TxnKeepAliveCommand, TxnLockCommand, TxnPrewriteCommand, TxnRollbackCommand,
};

use super::data::DataBatch;
use super::{Outcome, Refusal};
use crate::engine::{ReadView, CF_LOCKS, CF_SPAN_LOCKS, CF_TXN};
use crate::error::Result;
use crate::mvcc::keys as version_keys;
use crate::txn::locks::{
    self, is_shared, lock_key, span_lock_key, stages_write, LockSet, SpanLock,
};
use crate::txn::records::{self, Fate};
use crate::txn::Conflict;

/// What this pass's batch wrote to the transaction column families (None:
/// deleted), readable before the batch is written.
pub type TxnWritten = HashMap<(&'static str, Vec<u8>), Option<Vec<u8>>>;

pub struct TxnBatch<'a, 'b> {
    pub data: &'b mut DataBatch<'a>,
    written: &'b mut TxnWritten,
    range: &'b RangeDescriptor,
}

impl<'a, 'b> TxnBatch<'a, 'b> {
    pub fn new(
        data: &'b mut DataBatch<'a>,
        written: &'b mut TxnWritten,
        range: &'b RangeDescriptor,
    ) -> Self {
        TxnBatch {
            data,
            written,
            range,
        }
    }

    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.written.get(&(cf, key.to_vec())) {
            Some(value) => Ok(value.clone()),
            None => self.data.engine().get(cf, key),
        }
    }

    fn put(&mut self, cf: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.data.batch_mut().put(cf, &key, &value);
        self.written.insert((cf, key), Some(value));
    }

    fn delete(&mut self, cf: &'static str, key: Vec<u8>) {
        self.data.batch_mut().delete(cf, &key);
        self.written.insert((cf, key), None);
    }

    fn lock_set(&self, key: &[u8]) -> Result<LockSet> {
        Ok(match self.get(CF_LOCKS, &lock_key(key))? {
            Some(raw) => LockSet::decode(&raw)?,
            None => LockSet::default(),
        })
    }

    fn save_lock_set(&mut self, key: &[u8], set: &LockSet) {
        if set.holders.is_empty() {
            self.delete(CF_LOCKS, lock_key(key));
        } else {
            self.put(CF_LOCKS, lock_key(key), set.encode());
        }
    }

    fn fate(&self, primary: &[u8], start_ts: u64) -> Result<Option<Fate>> {
        self.get(CF_TXN, &records::record_key(primary, start_ts))?
            .map(|raw| records::decode(&raw))
            .transpose()
    }

    fn record(&mut self, primary: &[u8], start_ts: u64, fate: Fate) {
        self.put(
            CF_TXN,
            records::record_key(primary, start_ts),
            records::encode(fate),
        );
    }

    /// The range's span locks, this batch's included.
    fn span_locks(&self) -> Result<Vec<(Vec<u8>, SpanLock)>> {
        let engine = self.data.engine();
        // Empty bounds are open: every plain write looks here, and the last
        // range's explicit end (delete_bounds) would be 64 KiB to build.
        let lower = version_keys::lower_bound(&self.range.start_key);
        let upper = version_keys::upper_bound(&self.range.end_key);
        let mut found: HashMap<Vec<u8>, SpanLock> = HashMap::new();
        engine.scan(CF_SPAN_LOCKS, &lower, &upper, false, |key, raw| {
            found.insert(key.to_vec(), SpanLock::decode(raw)?);
            Ok(true)
        })?;
        for ((cf, key), value) in self.written.iter() {
            if *cf != CF_SPAN_LOCKS {
                continue;
            }
            match value {
                Some(raw) => found.insert(key.clone(), SpanLock::decode(raw)?),
                None => found.remove(key),
            };
        }
        Ok(found.into_iter().collect())
    }

    /// Another transaction's span lock over `key`, as the lock a writer meets.
    fn span_lock_over(&self, key: &[u8], start_ts: u64) -> Result<Option<LockInfo>> {
        Ok(span_lock_covering(&self.span_locks()?, key, start_ts))
    }

    fn newest_commit_ts(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.data.latest_version(key)?.map(|(ts, _)| ts))
    }
}

/// Whether the range holds all of the span (the coordinator cuts scanned
/// spans by range).
fn span_inside(range: &RangeDescriptor, span: &SpanLockInfo) -> bool {
    let start_inside = crate::range::descriptor::contains(range, &span.start_key);
    let end_inside =
        range.end_key.is_empty() || (!span.end_key.is_empty() && span.end_key <= range.end_key);
    start_inside && end_inside
}

/// Of `span_locks`, one over `key` that another transaction than
/// `start_ts` holds, as the lock a writer meets.
fn span_lock_covering(
    span_locks: &[(Vec<u8>, SpanLock)],
    key: &[u8],
    start_ts: u64,
) -> Option<LockInfo> {
    span_locks
        .iter()
        .map(|(_, span)| span)
        .find(|span| span.0.start_ts != start_ts && span.covers(key))
        .map(|span| span_as_lock(span.0.clone(), key))
}

fn span_as_lock(span: SpanLockInfo, key: &[u8]) -> LockInfo {
    LockInfo {
        key: key.to_vec(),
        primary: span.primary,
        start_ts: span.start_ts,
        kind: LockKind::Shared as i32,
        ttl_ms: span.ttl_ms,
        heartbeat_ms: span.heartbeat_ms,
        ..Default::default()
    }
}

fn refused(start_ts: u64, conflict: Conflict) -> Result<Outcome, Refusal> {
    Err(Refusal::Txn { start_ts, conflict })
}

/// Plain writes (Put, Delete, BatchWrite, compare-and-swap) keep off keys a
/// transaction holds: they would slip under its commit.
pub fn check_plain_write<'k>(
    txn: &TxnBatch<'_, '_>,
    keys: impl Iterator<Item = &'k [u8]>,
) -> Result<Option<Refusal>> {
    let locked = |lock| {
        Ok(Some(Refusal::Txn {
            start_ts: 0,
            conflict: Conflict::Locked(lock),
        }))
    };
    // Read once for all the keys of a batch.
    let span_locks = txn.span_locks()?;
    for key in keys {
        if let Some(held) = txn.lock_set(key)?.holders.into_iter().next() {
            return locked(LockInfo {
                key: key.to_vec(),
                ..held
            });
        }
        if let Some(lock) = span_lock_covering(&span_locks, key, 0) {
            return locked(lock);
        }
    }
    Ok(None)
}

/// A delete-range keeps off a span where a transaction holds a key or a
/// span lock: it would slip under the transaction's commit.
pub fn check_span_write(txn: &TxnBatch<'_, '_>, span: (&[u8], &[u8])) -> Result<Option<Refusal>> {
    let (start, end) = span;
    let mut held: Option<LockInfo> = None;
    let engine = txn.data.engine();
    locks::scan(engine, start, end, |key, _| {
        held = txn
            .lock_set(&key)?
            .holders
            .into_iter()
            .next()
            .map(|lock| LockInfo { key, ..lock });
        Ok(held.is_none())
    })?;
    if held.is_none() {
        // Locks this batch wrote and the engine does not hold yet.
        for (cf, raw_key) in txn.written.keys() {
            if *cf != CF_LOCKS {
                continue;
            }
            let key = locks::decode_lock_key(raw_key)?;
            if key.as_slice() >= start && (end.is_empty() || key.as_slice() < end) {
                if let Some(lock) = txn.lock_set(&key)?.holders.into_iter().next() {
                    held = Some(LockInfo { key, ..lock });
                    break;
                }
            }
        }
    }
    if held.is_none() {
        held = txn
            .span_locks()?
            .into_iter()
            .find(|(_, span)| span.overlaps(start, end))
            .map(|(_, span)| span_as_lock(span.0.clone(), &span.0.start_key));
    }
    Ok(held.map(|lock| Refusal::Txn {
        start_ts: 0,
        conflict: Conflict::Locked(lock),
    }))
}

/// Whether a plain write may expire `key` now (a locked key waits).
pub fn may_expire(txn: &TxnBatch<'_, '_>, key: &[u8]) -> Result<bool> {
    Ok(txn.lock_set(key)?.holders.is_empty())
}

/// Why `lock` cannot be taken for its transaction, if it cannot.
fn check_lock(
    txn: &TxnBatch<'_, '_>,
    lock: &LockInfo,
    check_conflicts: bool,
    start_ts: u64,
) -> Result<Option<Conflict>> {
    let set = txn.lock_set(&lock.key)?;
    if let Some(held) = set.conflicting(start_ts, is_shared(lock)) {
        return Ok(Some(Conflict::Locked(LockInfo {
            key: lock.key.clone(),
            ..held.clone()
        })));
    }
    if !is_shared(lock) {
        if let Some(span) = txn.span_lock_over(&lock.key, start_ts)? {
            return Ok(Some(Conflict::Locked(span)));
        }
    }
    // A key this transaction locked pessimistically was checked then.
    let own_lock = set.held_by(start_ts).is_some_and(|own| !is_shared(own));
    if check_conflicts && !own_lock && !skip_conflict_check() {
        if let Some(conflict_ts) = txn.newest_commit_ts(&lock.key)? {
            if conflict_ts > start_ts {
                return Ok(Some(Conflict::Write {
                    key: lock.key.clone(),
                    conflict_ts,
                }));
            }
        }
    }
    Ok(None)
}

/// Why a scanned span cannot be locked: a version committed in it after the
/// snapshot, or another transaction's staged write in it.
fn check_span(
    txn: &TxnBatch<'_, '_>,
    span: &SpanLockInfo,
    start_ts: u64,
) -> Result<Option<Conflict>> {
    let (start, end) = (span.start_key.as_slice(), span.end_key.as_slice());
    if skip_conflict_check() {
        return Ok(None);
    }
    if let Some((key, conflict_ts)) = txn.data.written_after(start_ts, (start, end)) {
        return Ok(Some(Conflict::Write { key, conflict_ts }));
    }
    let engine = txn.data.engine();
    let (lower, upper) = (
        version_keys::lower_bound(start),
        version_keys::upper_bound(end),
    );
    let mut conflict = None;
    engine.scan(
        crate::engine::CF_DATA,
        &lower,
        &upper,
        false,
        |raw_key, _| {
            let ts = version_keys::commit_ts(raw_key)?;
            if ts > start_ts {
                let (key, _) = version_keys::decode(raw_key)?;
                conflict = Some(Conflict::Write {
                    key,
                    conflict_ts: ts,
                });
            }
            Ok(conflict.is_none())
        },
    )?;
    if conflict.is_some() {
        return Ok(conflict);
    }
    let staged_by_other = |key: Vec<u8>, set: LockSet| {
        set.holders
            .into_iter()
            .find(|held| held.start_ts != start_ts && stages_write(held))
            .map(|held| Conflict::Locked(LockInfo { key, ..held }))
    };
    for ((cf, raw_key), value) in txn.written.iter() {
        let Some(raw) = value.as_ref().filter(|_| *cf == CF_LOCKS) else {
            continue;
        };
        let key = locks::decode_lock_key(raw_key)?;
        if key.as_slice() >= start && (end.is_empty() || key.as_slice() < end) {
            if let Some(found) = staged_by_other(key, LockSet::decode(raw)?) {
                return Ok(Some(found));
            }
        }
    }
    locks::scan(engine, start, end, |key, set| {
        if !txn.written.contains_key(&(CF_LOCKS, lock_key(&key))) {
            conflict = staged_by_other(key, set);
        }
        Ok(conflict.is_none())
    })?;
    Ok(conflict)
}

/// The planted bug that lets conflicting transactions through (test builds).
fn skip_conflict_check() -> bool {
    crate::planted::active() == Some(crate::planted::PlantedBug::SkipConflictCheck)
}

/// Writes the staged value of `lock` as a version at the batch's timestamp.
fn write_staged(txn: &mut TxnBatch<'_, '_>, lock: &LockInfo) {
    if lock.kind == LockKind::Put as i32 {
        txn.data.put(&StoredPut {
            key: lock.key.clone(),
            value: lock.value.clone(),
            expire_at_ms: lock.expire_at_ms,
        });
    } else if lock.kind == LockKind::Delete as i32 {
        txn.data.delete(&lock.key);
    }
}

pub fn prewrite(
    txn: &mut TxnBatch<'_, '_>,
    cmd: &TxnPrewriteCommand,
    now_ms: u64,
) -> Result<Result<Outcome, Refusal>> {
    let start_ts = cmd.start_ts;
    if crate::range::descriptor::contains(txn.range, &cmd.primary) {
        match txn.fate(&cmd.primary, start_ts)? {
            Some(Fate::RolledBack) => {
                return Ok(refused(
                    start_ts,
                    Conflict::Aborted(
                        "the transaction was rolled back before this prewrite arrived".into(),
                    ),
                ))
            }
            Some(Fate::Committed(_)) => {
                return Ok(Err(Refusal::Precondition(
                    "the transaction committed already".into(),
                )))
            }
            None => {}
        }
    }
    if let Some(span) = cmd.spans.iter().find(|span| !span_inside(txn.range, span)) {
        return Ok(Err(Refusal::KeyNotInRange {
            key: span.end_key.clone(),
            current: txn.range.clone(),
        }));
    }
    for lock in &cmd.locks {
        if let Some(conflict) = check_lock(txn, lock, cmd.check_conflicts, start_ts)? {
            return Ok(refused(start_ts, conflict));
        }
    }
    for span in &cmd.spans {
        if let Some(conflict) = check_span(txn, span, start_ts)? {
            return Ok(refused(start_ts, conflict));
        }
    }
    if cmd.one_phase {
        for lock in &cmd.locks {
            let mut set = txn.lock_set(&lock.key)?;
            if set.release(start_ts).is_some() {
                txn.save_lock_set(&lock.key, &set);
            }
            write_staged(txn, lock);
        }
        return Ok(Ok(Outcome::Timestamp(txn.data.ts())));
    }
    for lock in &cmd.locks {
        let mut set = txn.lock_set(&lock.key)?;
        set.hold(LockInfo {
            key: Vec::new(),
            primary: cmd.primary.clone(),
            start_ts,
            heartbeat_ms: now_ms,
            ..lock.clone()
        });
        txn.save_lock_set(&lock.key, &set);
    }
    for span in &cmd.spans {
        let stored = SpanLockInfo {
            primary: cmd.primary.clone(),
            start_ts,
            heartbeat_ms: now_ms,
            ..span.clone()
        };
        txn.put(
            CF_SPAN_LOCKS,
            span_lock_key(&span.start_key, start_ts),
            prost::Message::encode_to_vec(&stored),
        );
    }
    Ok(Ok(Outcome::Written))
}

/// Pessimistic locks: taken at once, no conflict check (a locking read
/// reads the latest committed value once it holds the lock).
pub fn lock(
    txn: &mut TxnBatch<'_, '_>,
    cmd: &TxnLockCommand,
    now_ms: u64,
) -> Result<Result<Outcome, Refusal>> {
    let start_ts = cmd.start_ts;
    if crate::range::descriptor::contains(txn.range, &cmd.primary)
        && txn.fate(&cmd.primary, start_ts)?.is_some()
    {
        return Ok(refused(
            start_ts,
            Conflict::Aborted("the transaction ended before this lock arrived".into()),
        ));
    }
    for lock in &cmd.locks {
        if let Some(conflict) = check_lock(txn, lock, false, cmd.start_ts)? {
            return Ok(refused(start_ts, conflict));
        }
    }
    for lock in &cmd.locks {
        let mut set = txn.lock_set(&lock.key)?;
        // A shared lock never weakens an exclusive one the holder has.
        if set.held_by(cmd.start_ts).is_some_and(|own| !is_shared(own)) && is_shared(lock) {
            continue;
        }
        set.hold(LockInfo {
            key: Vec::new(),
            primary: cmd.primary.clone(),
            start_ts: cmd.start_ts,
            heartbeat_ms: now_ms,
            ..lock.clone()
        });
        txn.save_lock_set(&lock.key, &set);
    }
    Ok(Ok(Outcome::Written))
}

pub fn commit(
    txn: &mut TxnBatch<'_, '_>,
    cmd: &TxnCommitCommand,
) -> Result<Result<Outcome, Refusal>> {
    let start_ts = cmd.start_ts;
    let commit_ts = txn.data.ts();
    if !cmd.primary.is_empty() {
        match txn.fate(&cmd.primary, start_ts)? {
            Some(Fate::Committed(_)) => return Ok(Ok(Outcome::Written)),
            Some(Fate::RolledBack) => {
                return Ok(refused(
                    start_ts,
                    Conflict::Aborted(
                        "the transaction was rolled back (its locks outlived their time to live)"
                            .into(),
                    ),
                ))
            }
            None => {
                if txn.lock_set(&cmd.primary)?.held_by(start_ts).is_none() {
                    return Ok(refused(
                        start_ts,
                        Conflict::Aborted("the transaction's primary lock is gone".into()),
                    ));
                }
            }
        }
    }
    for key in &cmd.keys {
        let mut set = txn.lock_set(key)?;
        let Some(lock) = set.release(start_ts) else {
            continue;
        };
        txn.save_lock_set(key, &set);
        write_staged(
            txn,
            &LockInfo {
                key: key.clone(),
                ..lock
            },
        );
    }
    release_span_locks(txn, start_ts)?;
    if !cmd.primary.is_empty() {
        txn.record(&cmd.primary, start_ts, Fate::Committed(commit_ts));
    }
    Ok(Ok(Outcome::Written))
}

fn release_span_locks(txn: &mut TxnBatch<'_, '_>, start_ts: u64) -> Result<()> {
    for (key, span) in txn.span_locks()? {
        if span.0.start_ts == start_ts {
            txn.delete(CF_SPAN_LOCKS, key);
        }
    }
    Ok(())
}

/// Rolls the transaction back on `keys`. The outcome is the transaction's
/// fate: `Committed` when its primary committed (nothing is rolled back),
/// `None` while an `only_if_expired` rollback finds the primary alive.
pub fn rollback(
    txn: &mut TxnBatch<'_, '_>,
    cmd: &TxnRollbackCommand,
    now_ms: u64,
) -> Result<Result<Outcome, Refusal>> {
    let start_ts = cmd.start_ts;
    if !cmd.primary.is_empty() {
        match txn.fate(&cmd.primary, start_ts)? {
            Some(Fate::Committed(commit_ts)) => {
                return Ok(Ok(Outcome::TxnFate(Some(Fate::Committed(commit_ts)))))
            }
            Some(Fate::RolledBack) => {}
            None => {
                let primary_lock = txn.lock_set(&cmd.primary)?.held_by(start_ts).cloned();
                if cmd.only_if_expired
                    && primary_lock.is_some_and(|lock| !locks::expired(&lock, now_ms))
                {
                    return Ok(Ok(Outcome::TxnFate(None)));
                }
            }
        }
    }
    for key in &cmd.keys {
        let mut set = txn.lock_set(key)?;
        if set.release(start_ts).is_some() {
            txn.save_lock_set(key, &set);
        }
    }
    release_span_locks(txn, start_ts)?;
    if !cmd.primary.is_empty() {
        txn.record(&cmd.primary, start_ts, Fate::RolledBack);
    }
    Ok(Ok(Outcome::TxnFate(Some(Fate::RolledBack))))
}

pub fn keep_alive(
    txn: &mut TxnBatch<'_, '_>,
    cmd: &TxnKeepAliveCommand,
    now_ms: u64,
) -> Result<Result<Outcome, Refusal>> {
    let start_ts = cmd.start_ts;
    let mut set = txn.lock_set(&cmd.primary)?;
    let Some(mut lock) = set.release(cmd.start_ts) else {
        return Ok(refused(
            start_ts,
            Conflict::Aborted("the transaction's primary lock is gone (rolled back)".into()),
        ));
    };
    lock.heartbeat_ms = lock.heartbeat_ms.max(now_ms);
    set.hold(lock);
    txn.save_lock_set(&cmd.primary, &set);
    Ok(Ok(Outcome::Written))
}
