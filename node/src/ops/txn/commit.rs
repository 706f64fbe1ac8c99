//! Committing a transaction. Every key it writes (and, serializable, every
//! key it read and span it scanned) is locked on its range by a prewrite
//! naming one primary key. When all keys live in one range, that one
//! prewrite commits at once (one phase, at a timestamp the range's leader
//! assigns). Otherwise, once every range prewrote, a commit timestamp is
//! taken from the oracle and the primary's range commits: that is the
//! commit point. The other ranges are committed after the answer, and any
//! reader that meets one of their locks rolls it forward from the
//! primary's record.

use std::time::{Duration, Instant};

use futures::future::join_all;
use zdb_proto::v1::*;

use super::super::reads::range_moved;
use super::super::{CallContext, Ops};
use super::table::TxnState;
use crate::error::{Error, Result};
use crate::range::descriptor;

/// The locks of one range.
#[derive(Debug, Clone)]
struct Share {
    locks: Vec<LockInfo>,
    spans: Vec<SpanLockInfo>,
}

impl Share {
    fn keys(&self) -> Vec<Vec<u8>> {
        self.locks.iter().map(|lock| lock.key.clone()).collect()
    }
}

/// Where a commit learns which range holds each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Routes {
    /// The descriptors of this node's replicas first (no round trip; a
    /// stale one is refused at the range and the commit groups again),
    /// the routing table for the keys none of them holds.
    Local,
    /// The routing table in the meta range.
    Meta,
}

/// How long the secondaries' commit keeps trying after the answer.
const SECONDARY_COMMIT_BUDGET: Duration = Duration::from_secs(30);

impl Ops {
    /// Commits `txn`: its commit timestamp, or 0 when it wrote nothing.
    pub(super) async fn commit_state(&self, txn: &mut TxnState) -> Result<u64> {
        if txn.writes.is_empty() {
            // Read-only: its snapshot reads were consistent. Locks it took
            // are released.
            let keys: Vec<Vec<u8>> = txn.locked.keys().cloned().collect();
            self.roll_back_keys(txn.start_ts, keys, txn.primary.clone())
                .await;
            return Ok(0);
        }
        self.check_not_too_old(txn.start_ts)?;
        let deadline = Instant::now() + self.timeout;
        let mut routes = Routes::Local;
        loop {
            match self.commit_once(txn, routes).await {
                // A range split or moved under the grouping: group again,
                // from the routing table.
                Err(err) if range_moved(&err) && Instant::now() < deadline => routes = Routes::Meta,
                outcome => return outcome,
            }
        }
    }

    async fn commit_once(&self, txn: &mut TxnState, routes: Routes) -> Result<u64> {
        let locks = locks_of(txn);
        let primary = txn.primary.clone().unwrap_or_else(|| locks[0].key.clone());
        txn.primary = Some(primary.clone());
        let spans: Vec<(Vec<u8>, Vec<u8>)> = txn.spans.clone();
        let shares = self.shares(locks, &spans, routes).await?;
        let check_conflicts = txn.options.isolation != Isolation::ReadCommitted;
        let ttl_ms = txn.options.lock_ttl.as_millis() as u64;
        if shares.len() == 1 {
            let share = &shares[0];
            let request = prewrite_request(txn, &primary, share, ttl_ms, check_conflicts, true);
            return match self.prewrite_share(request, txn).await {
                Ok(response) => Ok(response.commit_ts),
                Err(err) => {
                    // Its pessimistic locks go with it, unless it is
                    // grouped again and retried.
                    if !txn.locked.is_empty() && !range_moved(&err) {
                        self.roll_back_keys(txn.start_ts, share.keys(), Some(primary))
                            .await;
                    }
                    Err(serialization_error(txn, err))
                }
            };
        }
        let prewrites = shares.iter().map(|share| {
            let request = prewrite_request(txn, &primary, share, ttl_ms, check_conflicts, false);
            self.prewrite_share(request, txn)
        });
        let results = join_all(prewrites).await;
        if let Some(err) = results.into_iter().find_map(Result::err) {
            let keys = shares.iter().flat_map(Share::keys).collect();
            // A retry after grouping again prewrites the primary anew: its
            // rollback is recorded only when the transaction gives up.
            let record = (!range_moved(&err)).then_some(primary);
            self.roll_back_keys(txn.start_ts, keys, record).await;
            return Err(serialization_error(txn, err));
        }
        let commit_ts = self.timestamps.now().await?;
        let (primary_share, secondaries): (Vec<Share>, Vec<Share>) = shares
            .into_iter()
            .partition(|share| share.locks.iter().any(|lock| lock.key == primary));
        let primary_keys = primary_share.iter().flat_map(Share::keys).collect();
        self.commit_primary(txn.start_ts, commit_ts, primary_keys, &primary)
            .await?;
        let ops = self.clone();
        let start_ts = txn.start_ts;
        tokio::spawn(async move {
            ops.commit_secondaries(start_ts, commit_ts, secondaries)
                .await;
        });
        Ok(commit_ts)
    }

    /// Refuses to commit a transaction whose snapshot is closer to the GC
    /// safe point than half the GC life time. Replicas collect on their own
    /// schedule, and a conflict check against versions that one replica
    /// collected and another not yet could decide differently; a margin of
    /// half the life time keeps the checked versions far above what any
    /// replica may collect.
    fn check_not_too_old(&self, start_ts: u64) -> Result<()> {
        use zdb_proto::timestamp::physical_ms;
        let safe_point = physical_ms(self.horizon.safe_point());
        let life_time = physical_ms(self.horizon.oracle_seen()).saturating_sub(safe_point);
        if safe_point != 0 && physical_ms(start_ts) < safe_point + life_time / 2 {
            return Err(Error::TxnAborted {
                start_ts,
                reason: "it ran longer than half the GC life time (zdbctl gc --life-time)".into(),
            });
        }
        Ok(())
    }

    /// Prewrites one range's share, settling stale locks it meets. A lock
    /// of a running transaction is a conflict: optimistic transactions do
    /// not wait (two of them would wait for each other).
    async fn prewrite_share(
        &self,
        request: PrewriteRequest,
        txn: &TxnState,
    ) -> Result<PrewriteResponse> {
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0;
        loop {
            let mut ctx = CallContext::new(0, Some(deadline));
            let err = match self.prewrite(request.clone(), &mut ctx).await {
                Ok(response) => return Ok(response),
                Err(err) => err,
            };
            attempt += 1;
            match err {
                Error::KeyLocked(lock) if lock.start_ts != txn.start_ts => {
                    match self.resolve_lock(&lock).await? {
                        super::Resolution::Resolved if attempt < 5 => continue,
                        _ => {
                            return Err(Error::WriteConflict {
                                key: lock.key.clone(),
                                start_ts: txn.start_ts,
                                conflict_ts: lock.start_ts,
                            })
                        }
                    }
                }
                Error::NotApplied(_) | Error::OutcomeUnknown if Instant::now() < deadline => {
                    // A prewrite is idempotent: propose it again.
                    continue;
                }
                err => return Err(err),
            }
        }
    }

    async fn commit_primary(
        &self,
        start_ts: u64,
        commit_ts: u64,
        keys: Vec<Vec<u8>>,
        primary: &[u8],
    ) -> Result<()> {
        let deadline = Instant::now() + self.timeout;
        let request = CommitKeysRequest {
            header: None,
            start_ts,
            commit_ts,
            keys,
            primary: primary.to_vec(),
        };
        let mut unknown = false;
        loop {
            let mut ctx = CallContext::new(0, Some(deadline));
            match self.commit_keys(request.clone(), &mut ctx).await {
                Ok(_) => return Ok(()),
                // Committing again is harmless: a recorded commit answers Ok.
                Err(Error::NotApplied(_)) | Err(Error::OutcomeUnknown) | Err(Error::Timeout(_))
                    if Instant::now() < deadline =>
                {
                    unknown = true;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(Error::TxnAborted { .. }) | Err(Error::KeyNotInRange { .. }) if unknown => {
                    return Err(Error::OutcomeUnknown)
                }
                Err(err) if unknown && Instant::now() >= deadline => {
                    tracing::warn!(start_ts, error = %err, "commit outcome unknown");
                    return Err(Error::OutcomeUnknown);
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn commit_secondaries(&self, start_ts: u64, commit_ts: u64, shares: Vec<Share>) {
        let deadline = Instant::now() + SECONDARY_COMMIT_BUDGET;
        let commits = shares.into_iter().map(|share| async move {
            let request = CommitKeysRequest {
                header: None,
                start_ts,
                commit_ts,
                keys: share.keys(),
                primary: Vec::new(),
            };
            let mut pending = vec![request];
            while let Some(request) = pending.pop() {
                let mut ctx = CallContext::new(0, Some(deadline));
                match self.commit_keys(request.clone(), &mut ctx).await {
                    Ok(_) => {}
                    Err(_) if Instant::now() < deadline => {
                        // Moved or busy: per key, wherever it lives now.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        pending.extend(request.keys.iter().map(|key| CommitKeysRequest {
                            keys: vec![key.clone()],
                            ..request.clone()
                        }));
                    }
                    Err(err) => {
                        // Readers roll these locks forward from the primary.
                        tracing::warn!(start_ts, error = %err, "secondary commit left to resolvers");
                        return;
                    }
                }
            }
        });
        join_all(commits).await;
    }

    /// Rolls back the transaction's locks on `keys` (the primary's range
    /// records the rollback). Best effort: locks left behind run out and
    /// are resolved from the primary's record.
    pub(super) async fn roll_back_keys(
        &self,
        start_ts: u64,
        keys: Vec<Vec<u8>>,
        primary: Option<Vec<u8>>,
    ) {
        if keys.is_empty() && primary.is_none() {
            return;
        }
        let mut keys = keys;
        if let Some(primary) = &primary {
            if !keys.contains(primary) {
                keys.push(primary.clone());
            }
        }
        let groups = match self.group_keys(keys, Routes::Meta).await {
            Ok(groups) => groups,
            Err(err) => {
                tracing::warn!(start_ts, error = %err, "rollback left to resolvers");
                return;
            }
        };
        let rollbacks = groups.into_iter().map(|keys| {
            let holds_primary = primary.as_ref().is_some_and(|p| keys.contains(p));
            let request = RollbackKeysRequest {
                header: None,
                start_ts,
                keys,
                primary: if holds_primary {
                    primary.clone().unwrap_or_default()
                } else {
                    Vec::new()
                },
            };
            async move {
                let deadline = Some(Instant::now() + self.timeout);
                if let Err(err) = self
                    .rollback_keys(request, &mut CallContext::new(0, deadline))
                    .await
                {
                    tracing::warn!(start_ts, error = %err, "rollback left to resolvers");
                }
            }
        });
        join_all(rollbacks).await;
    }

    /// `keys` grouped by the range that holds them now.
    pub(super) async fn group_keys(
        &self,
        mut keys: Vec<Vec<u8>>,
        routes: Routes,
    ) -> Result<Vec<Vec<Vec<u8>>>> {
        keys.sort();
        keys.dedup();
        let mut groups: Vec<(RangeDescriptor, Vec<Vec<u8>>)> = Vec::new();
        let mut ranges: Vec<RangeDescriptor> = match routes {
            Routes::Local => descriptor::load_all(&self.engine)?,
            Routes::Meta => Vec::new(),
        };
        let ctx = CallContext::new(0, None);
        for key in keys {
            if !ranges.iter().any(|range| descriptor::contains(range, &key)) {
                ranges = self.ranges_covering(&key, &[], &ctx).await?;
            }
            let Some(range) = ranges
                .iter()
                .find(|range| descriptor::contains(range, &key))
            else {
                return Err(Error::Timeout("the routing table holds no range for a key"));
            };
            match groups
                .iter_mut()
                .find(|(r, _)| r.range_id == range.range_id)
            {
                Some((_, group)) => group.push(key),
                None => groups.push((range.clone(), vec![key])),
            }
        }
        Ok(groups.into_iter().map(|(_, keys)| keys).collect())
    }

    /// The locks and spans cut by range.
    async fn shares(
        &self,
        locks: Vec<LockInfo>,
        spans: &[(Vec<u8>, Vec<u8>)],
        routes: Routes,
    ) -> Result<Vec<Share>> {
        let keys = locks.iter().map(|lock| lock.key.clone()).collect();
        let mut shares: Vec<Share> = self
            .group_keys(keys, routes)
            .await?
            .into_iter()
            .map(|keys| Share {
                locks: locks
                    .iter()
                    .filter(|lock| keys.contains(&lock.key))
                    .cloned()
                    .collect(),
                spans: Vec::new(),
            })
            .collect();
        let ctx = CallContext::new(0, None);
        for (start, end) in spans {
            for range in self.ranges_covering(start, end, &ctx).await? {
                let piece_start = start.clone().max(range.start_key.clone());
                let piece_end = match (end.is_empty(), range.end_key.is_empty()) {
                    (true, _) => range.end_key.clone(),
                    (false, true) => end.clone(),
                    (false, false) => end.clone().min(range.end_key.clone()),
                };
                let span = SpanLockInfo {
                    start_key: piece_start,
                    end_key: piece_end,
                    ..Default::default()
                };
                let holder = shares.iter_mut().find(|share| {
                    share
                        .locks
                        .first()
                        .is_some_and(|lock| descriptor::contains(&range, &lock.key))
                });
                match holder {
                    Some(share) => share.spans.push(span),
                    None => shares.push(Share {
                        locks: Vec::new(),
                        spans: vec![span],
                    }),
                }
            }
        }
        Ok(shares)
    }
}

/// Every lock the transaction's commit takes: its writes, then (serializable)
/// the keys it only read, and the pessimistic locks it holds.
fn locks_of(txn: &TxnState) -> Vec<LockInfo> {
    let mut locks: Vec<LockInfo> = txn
        .writes
        .iter()
        .map(|(key, value)| LockInfo {
            key: key.clone(),
            kind: match value {
                Some(_) => LockKind::Put,
                None => LockKind::Delete,
            } as i32,
            value: value.clone().unwrap_or_default(),
            expire_at_ms: txn.expiries.get(key).copied().unwrap_or(0),
            ..Default::default()
        })
        .collect();
    if txn.serializable() {
        locks.extend(
            txn.reads
                .iter()
                .filter(|key| !txn.writes.contains_key(*key) && !txn.locked.contains_key(*key))
                .map(|key| LockInfo {
                    key: key.clone(),
                    kind: LockKind::Shared as i32,
                    ..Default::default()
                }),
        );
    }
    locks.extend(
        txn.locked
            .iter()
            .filter(|(key, _)| !txn.writes.contains_key(*key))
            .map(|(key, (kind, _))| LockInfo {
                key: key.clone(),
                kind: *kind as i32,
                ..Default::default()
            }),
    );
    locks
}

fn prewrite_request(
    txn: &TxnState,
    primary: &[u8],
    share: &Share,
    ttl_ms: u64,
    check_conflicts: bool,
    one_phase: bool,
) -> PrewriteRequest {
    PrewriteRequest {
        header: None,
        primary: primary.to_vec(),
        start_ts: txn.start_ts,
        ttl_ms,
        locks: share.locks.clone(),
        check_conflicts,
        one_phase,
        spans: share.spans.clone(),
    }
}

/// A conflict on a key the transaction only read (or a span it scanned) is
/// a serialization failure: what it read changed.
fn serialization_error(txn: &TxnState, err: Error) -> Error {
    match err {
        Error::WriteConflict { key, start_ts, .. } if !txn.writes.contains_key(&key) => {
            Error::SerializationFailure { key, start_ts }
        }
        err => err,
    }
}
