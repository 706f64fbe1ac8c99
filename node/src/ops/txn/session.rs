//! A transaction's calls before its commit: Begin, reads as its isolation
//! level sees them (its own buffered writes first), buffered writes,
//! Rollback, Heartbeat; and Atomic, a whole transaction in one call.

use std::time::{Duration, Instant};

use zdb_proto::v1::*;

use super::super::{validate, CallContext, Ops};
use super::table::{SharedTxn, TxnOptions, TxnState};
use crate::error::{Error, Result};

const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(3);
const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(3);
const DEFAULT_IDLE: Duration = Duration::from_secs(30);
/// Shorter lock lifetimes would run out between two keep-alives.
const MIN_LOCK_TTL_MS: u64 = 300;

fn or_default(ms: u64, default: Duration) -> Duration {
    match ms {
        0 => default,
        ms => Duration::from_millis(ms),
    }
}

/// Whether a transaction that failed with `err` may succeed when run again.
pub fn retryable(err: &Error) -> bool {
    matches!(
        err,
        Error::WriteConflict { .. }
            | Error::SerializationFailure { .. }
            | Error::Deadlock { .. }
            | Error::TxnAborted { .. }
            | Error::LockWaitTimeout { .. }
            | Error::KeyLocked(_)
            | Error::NotApplied(_)
    )
}

impl Ops {
    pub async fn begin(&self, req: BeginRequest) -> Result<BeginResponse> {
        self.admit()?;
        let isolation = Isolation::try_from(req.isolation).map_err(|_| {
            Error::InvalidArgument(format!("unknown isolation level {}", req.isolation))
        })?;
        if req.lock_ttl_ms != 0 && req.lock_ttl_ms < MIN_LOCK_TTL_MS {
            return Err(Error::InvalidArgument(format!(
                "lock_ttl_ms {} is below the minimum of {MIN_LOCK_TTL_MS} ms (0: 3 s)",
                req.lock_ttl_ms
            )));
        }
        let options = TxnOptions {
            isolation,
            lock_wait_timeout: or_default(req.lock_wait_timeout_ms, DEFAULT_LOCK_WAIT),
            lock_ttl: or_default(req.lock_ttl_ms, DEFAULT_LOCK_TTL),
            idle_timeout: or_default(req.idle_timeout_ms, DEFAULT_IDLE),
        };
        let start_ts = self.timestamps.now().await?;
        self.transactions
            .insert(TxnState::new(start_ts, start_ts, options));
        Ok(BeginResponse {
            txn_id: start_ts,
            start_ts,
        })
    }

    /// The running transaction `id`, locked for this call.
    async fn running(
        &self,
        id: u64,
    ) -> Result<(SharedTxn, tokio::sync::OwnedMutexGuard<TxnState>)> {
        let shared = self.transactions.get(id)?;
        let guard = shared.clone().lock_owned().await;
        guard.check_running()?;
        Ok((shared, guard))
    }

    /// The timestamp the transaction's next read sees the data at.
    async fn read_ts_of(&self, txn: &TxnState) -> Result<u64> {
        match txn.options.isolation {
            Isolation::ReadCommitted => self.timestamps.now().await,
            Isolation::Snapshot | Isolation::Serializable => Ok(txn.start_ts),
        }
    }

    pub async fn txn_get(&self, req: TxnGetRequest, ctx: &CallContext) -> Result<TxnGetResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.key)?;
        let (_, mut txn) = self.running(req.txn_id).await?;
        txn.touch();
        let lock = ReadLock::try_from(req.lock)
            .map_err(|_| Error::InvalidArgument(format!("unknown read lock {}", req.lock)))?;
        let value = match lock {
            ReadLock::None => self.txn_read(&mut txn, &req.key, ctx).await?,
            ReadLock::Shared | ReadLock::Exclusive => {
                let kind = if lock == ReadLock::Shared {
                    LockKind::Shared
                } else {
                    LockKind::Exclusive
                };
                match self.lock_for_read(&mut txn, &req.key, kind).await {
                    Ok(value) => value.map(|value| (value, 0)),
                    Err(err) => {
                        // A deadlock victim or a timed-out waiter ends at
                        // once, so the others get its locks now.
                        if matches!(err, Error::Deadlock { .. } | Error::LockWaitTimeout { .. }) {
                            self.abort(&mut txn).await;
                        }
                        return Err(err);
                    }
                }
            }
        };
        Ok(match value {
            Some((value, expire_at_ms)) => TxnGetResponse {
                found: true,
                value,
                expire_at_ms,
            },
            None => TxnGetResponse::default(),
        })
    }

    /// The key's value as the transaction sees it, and its expiry.
    async fn txn_read(
        &self,
        txn: &mut TxnState,
        key: &[u8],
        ctx: &CallContext,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        if let Some(written) = txn.writes.get(key) {
            let expire_at_ms = txn.expiries.get(key).copied().unwrap_or(0);
            return Ok(written.clone().map(|value| (value, expire_at_ms)));
        }
        if let Some((_, value)) = txn.locked.get(key) {
            return Ok(value.clone().map(|value| (value, 0)));
        }
        let read_ts = self.read_ts_of(txn).await?;
        let read = GetRequest {
            header: None,
            key: key.to_vec(),
            consistency: ReadConsistency::Linearizable as i32,
            read_ts,
        };
        let response = self
            .get(read, &mut CallContext::new(0, ctx.deadline))
            .await?;
        if txn.serializable() {
            txn.reads.insert(key.to_vec());
        }
        Ok(response
            .found
            .then_some((response.value, response.expire_at_ms)))
    }

    pub async fn txn_batch_get(
        &self,
        req: TxnBatchGetRequest,
        ctx: &CallContext,
    ) -> Result<TxnBatchGetResponse> {
        self.admit()?;
        validate::batch_len(&self.limits, "key list", req.keys.len())?;
        for key in &req.keys {
            validate::key(&self.limits, key)?;
        }
        let (_, mut txn) = self.running(req.txn_id).await?;
        txn.touch();
        let unread: Vec<Vec<u8>> = req
            .keys
            .iter()
            .filter(|key| !txn.writes.contains_key(*key) && !txn.locked.contains_key(*key))
            .cloned()
            .collect();
        let mut fetched = std::collections::HashMap::new();
        if !unread.is_empty() {
            let read = BatchGetRequest {
                header: None,
                keys: unread.clone(),
                consistency: ReadConsistency::Linearizable as i32,
                read_ts: self.read_ts_of(&txn).await?,
            };
            let response = self
                .batch_get(read, &mut CallContext::new(0, ctx.deadline))
                .await?;
            fetched.extend(response.pairs.into_iter().map(|kv| (kv.key, kv.value)));
            if txn.serializable() {
                txn.reads.extend(unread);
            }
        }
        let pairs = req
            .keys
            .into_iter()
            .filter_map(|key| {
                let value = match (txn.writes.get(&key), txn.locked.get(&key)) {
                    (Some(written), _) => written.clone(),
                    (None, Some((_, value))) => value.clone(),
                    (None, None) => fetched.get(&key).cloned(),
                };
                value.map(|value| KeyValue { key, value })
            })
            .collect();
        Ok(TxnBatchGetResponse { pairs })
    }

    pub async fn txn_scan(
        &self,
        req: TxnScanRequest,
        ctx: &CallContext,
    ) -> Result<TxnScanResponse> {
        self.admit()?;
        validate::scan(&self.limits, &req.start_key, &req.end_key, req.limit)?;
        let (_, mut txn) = self.running(req.txn_id).await?;
        txn.touch();
        let limit = match req.limit {
            0 => self.limits.max_scan_limit,
            limit => limit,
        } as usize;
        let read = ScanRequest {
            header: None,
            start_key: req.start_key.clone(),
            end_key: req.end_key.clone(),
            limit: limit as u32,
            reverse: false,
            consistency: ReadConsistency::Linearizable as i32,
            read_ts: self.read_ts_of(&txn).await?,
        };
        let page = self
            .scan(read, &mut CallContext::new(0, ctx.deadline))
            .await?;
        let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = page
            .pairs
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        // The span the page covers: up to its last key when it stopped early.
        let covered_end = match (page.more, merged.keys().next_back()) {
            (true, Some(last)) => [last.as_slice(), &[0]].concat(),
            _ => req.end_key.clone(),
        };
        let in_span =
            |key: &Vec<u8>| *key >= req.start_key && (covered_end.is_empty() || *key < covered_end);
        for (key, written) in txn.writes.iter().filter(|(key, _)| in_span(key)) {
            match written {
                Some(value) => merged.insert(key.clone(), value.clone()),
                None => merged.remove(key),
            };
        }
        if txn.serializable() {
            txn.spans.push((req.start_key.clone(), covered_end));
        }
        let more = page.more || merged.len() > limit;
        let pairs = merged
            .into_iter()
            .take(limit)
            .map(|(key, value)| KeyValue { key, value })
            .collect();
        Ok(TxnScanResponse { pairs, more })
    }

    pub async fn txn_put(&self, req: TxnPutRequest) -> Result<TxnPutResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.key)?;
        validate::value(&self.limits, &req.value)?;
        let (_, mut txn) = self.running(req.txn_id).await?;
        txn.touch();
        self.check_txn_size(&txn, &req.key)?;
        match req.expire_at_ms {
            0 => txn.expiries.remove(&req.key),
            at => txn.expiries.insert(req.key.clone(), at),
        };
        txn.writes.insert(req.key, Some(req.value));
        Ok(TxnPutResponse {})
    }

    pub async fn txn_delete(&self, req: TxnDeleteRequest) -> Result<TxnDeleteResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.key)?;
        let (_, mut txn) = self.running(req.txn_id).await?;
        txn.touch();
        self.check_txn_size(&txn, &req.key)?;
        txn.expiries.remove(&req.key);
        txn.writes.insert(req.key, None);
        Ok(TxnDeleteResponse {})
    }

    fn check_txn_size(&self, txn: &TxnState, key: &[u8]) -> Result<()> {
        if !txn.writes.contains_key(key) && txn.writes.len() >= self.limits.max_batch_ops {
            return Err(Error::InvalidArgument(format!(
                "a transaction writes at most {} keys (node flag --max-batch-ops)",
                self.limits.max_batch_ops
            )));
        }
        Ok(())
    }

    pub async fn txn_commit(&self, req: CommitRequest) -> Result<CommitResponse> {
        self.admit()?;
        if !req.mutations.is_empty() {
            validate::mutations(&self.limits, &req.mutations)?;
        }
        let (_, mut txn) = self.running(req.txn_id).await?;
        for mutation in &req.mutations {
            let key = match &mutation.op {
                Some(mutation::Op::Put(put)) => &put.key,
                Some(mutation::Op::Delete(delete)) => &delete.key,
                None => return Err(Error::InvalidArgument("a mutation is empty".into())),
            };
            self.check_txn_size(&txn, key)?;
        }
        buffer_mutations(&mut txn, &req.mutations)?;
        txn.ending = true;
        let committed = self.commit_state(&mut txn).await;
        self.transactions.remove(req.txn_id);
        Ok(CommitResponse {
            commit_ts: committed?,
        })
    }

    pub async fn txn_rollback(&self, req: RollbackRequest) -> Result<RollbackResponse> {
        self.admit()?;
        let (_, mut txn) = self.running(req.txn_id).await?;
        self.abort(&mut txn).await;
        Ok(RollbackResponse {})
    }

    /// Ends the transaction, releasing every lock it holds.
    pub(super) async fn abort(&self, txn: &mut TxnState) {
        txn.ending = true;
        let keys: Vec<Vec<u8>> = txn.locked.keys().cloned().collect();
        let primary = txn.primary.clone();
        self.transactions.remove(txn.id);
        self.roll_back_keys(txn.start_ts, keys, primary).await;
    }

    pub async fn txn_heartbeat(&self, req: HeartbeatRequest) -> Result<HeartbeatResponse> {
        self.admit()?;
        let (_, mut txn) = self.running(req.txn_id).await?;
        txn.touch();
        Ok(HeartbeatResponse {})
    }

    /// A whole serializable transaction: compare, then apply one branch.
    pub async fn atomic(&self, req: AtomicRequest) -> Result<AtomicResponse> {
        self.admit()?;
        for compare in &req.compare {
            validate::key(&self.limits, &compare.key)?;
        }
        for branch in [&req.success, &req.failure] {
            if !branch.is_empty() {
                validate::mutations(&self.limits, branch)?;
            }
        }
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0u32;
        loop {
            match self.atomic_once(&req, deadline).await {
                Err(err) if retryable(&err) && Instant::now() < deadline => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(2u64 << attempt.min(7))).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn atomic_once(&self, req: &AtomicRequest, deadline: Instant) -> Result<AtomicResponse> {
        // Without comparisons it is an atomic batch of blind writes: they
        // need no check against commits after its start.
        let isolation = if req.compare.is_empty() {
            Isolation::ReadCommitted
        } else {
            Isolation::Serializable
        };
        let options = TxnOptions {
            isolation,
            lock_wait_timeout: DEFAULT_LOCK_WAIT,
            lock_ttl: DEFAULT_LOCK_TTL,
            idle_timeout: DEFAULT_IDLE,
        };
        let start_ts = self.timestamps.now().await?;
        let mut txn = TxnState::new(start_ts, start_ts, options);
        let keys: Vec<Vec<u8>> = req.compare.iter().map(|c| c.key.clone()).collect();
        let mut current = std::collections::HashMap::new();
        if !keys.is_empty() {
            let read = BatchGetRequest {
                header: None,
                keys: keys.clone(),
                consistency: ReadConsistency::Linearizable as i32,
                read_ts: start_ts,
            };
            let response = self
                .batch_get(read, &mut CallContext::new(0, Some(deadline)))
                .await?;
            current.extend(response.pairs.into_iter().map(|kv| (kv.key, kv.value)));
            txn.reads.extend(keys);
        }
        let succeeded =
            req.compare.iter().all(
                |compare| match (current.get(&compare.key), compare.absent) {
                    (None, absent) => absent,
                    (Some(value), false) => *value == compare.value,
                    (Some(_), true) => false,
                },
            );
        let branch = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        buffer_mutations(&mut txn, branch)?;
        let commit_ts = self.commit_state(&mut txn).await?;
        Ok(AtomicResponse {
            succeeded,
            commit_ts,
        })
    }

    /// A batch of writes over several ranges, applied atomically as a
    /// transaction (blind writes: no conflict check, like a plain batch).
    pub(crate) async fn batch_write_as_txn(&self, mutations: &[Mutation]) -> Result<()> {
        let options = TxnOptions {
            isolation: Isolation::ReadCommitted,
            lock_wait_timeout: DEFAULT_LOCK_WAIT,
            lock_ttl: DEFAULT_LOCK_TTL,
            idle_timeout: DEFAULT_IDLE,
        };
        let deadline = Instant::now() + self.timeout;
        let mut attempt = 0u32;
        loop {
            let start_ts = self.timestamps.now().await?;
            let mut txn = TxnState::new(start_ts, start_ts, options);
            buffer_mutations(&mut txn, mutations)?;
            match self.commit_state(&mut txn).await {
                Err(err) if retryable(&err) && Instant::now() < deadline => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(2u64 << attempt.min(7))).await;
                }
                outcome => return outcome.map(|_| ()),
            }
        }
    }
}

fn buffer_mutations(txn: &mut TxnState, mutations: &[Mutation]) -> Result<()> {
    for mutation in mutations {
        match &mutation.op {
            Some(mutation::Op::Put(put)) => {
                if put.ttl_seconds != 0 {
                    return Err(Error::InvalidArgument(
                        "a transaction's writes do not take a time to live".into(),
                    ));
                }
                txn.writes.insert(put.key.clone(), Some(put.value.clone()))
            }
            Some(mutation::Op::Delete(delete)) => txn.writes.insert(delete.key.clone(), None),
            None => return Err(Error::InvalidArgument("a mutation is empty".into())),
        };
    }
    Ok(())
}
