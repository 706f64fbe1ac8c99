//! Pessimistic locks: a locking read takes the key's lock at once (shared
//! or exclusive), waiting while another transaction holds it, up to the
//! transaction's lock wait timeout. Waiters for a key on this node queue in
//! arrival order: only the first of them tries to take the lock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zdb_proto::v1::{AcquireLocksRequest, LockInfo, LockKind, WaitForRequest, WaitForResponse};

use super::super::{CallContext, Ops};
use super::table::TxnState;
use super::Resolution;
use crate::error::{Error, Result};

/// A waiter tells the detector again this often (a new meta leader starts
/// with an empty graph).
const REPORT_AGAIN: Duration = Duration::from_secs(1);

/// Transactions waiting for each key's lock, first come first served.
#[derive(Clone, Default)]
pub struct WaitQueues {
    queues: Arc<Mutex<HashMap<Vec<u8>, VecDeque<u64>>>>,
}

impl WaitQueues {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, VecDeque<u64>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn join(&self, key: &[u8], txn: u64) {
        let mut queues = self.lock();
        let queue = queues.entry(key.to_vec()).or_default();
        if !queue.contains(&txn) {
            queue.push_back(txn);
        }
    }

    fn is_first(&self, key: &[u8], txn: u64) -> bool {
        self.lock()
            .get(key)
            .and_then(|queue| queue.front())
            .is_none_or(|first| *first == txn)
    }

    fn leave(&self, key: &[u8], txn: u64) {
        let mut queues = self.lock();
        if let Some(queue) = queues.get_mut(key) {
            queue.retain(|waiting| *waiting != txn);
            if queue.is_empty() {
                queues.remove(key);
            }
        }
    }
}

impl Ops {
    /// Locks `key` for the transaction and returns its latest committed
    /// value (or the transaction's own write).
    pub(super) async fn lock_for_read(
        &self,
        txn: &mut TxnState,
        key: &[u8],
        kind: LockKind,
    ) -> Result<Option<Vec<u8>>> {
        let stronger_held = txn
            .locked
            .get(key)
            .is_some_and(|(held, _)| *held == LockKind::Exclusive || *held == kind);
        if !stronger_held {
            let primary = txn.primary.clone().unwrap_or_else(|| key.to_vec());
            let request = AcquireLocksRequest {
                header: None,
                primary: primary.clone(),
                start_ts: txn.start_ts,
                ttl_ms: txn.options.lock_ttl.as_millis() as u64,
                locks: vec![LockInfo {
                    key: key.to_vec(),
                    kind: kind as i32,
                    ..Default::default()
                }],
                wait_timeout_ms: txn.options.lock_wait_timeout.as_millis() as u64,
            };
            txn.primary = Some(primary);
            let response = self
                .acquire_locks(request, &mut CallContext::new(0, None))
                .await?;
            let value = response.values.into_iter().next().map(|kv| kv.value);
            txn.locked.insert(key.to_vec(), (kind, value));
            txn.kept_alive = Instant::now();
        }
        if let Some(written) = txn.writes.get(key) {
            return Ok(written.clone());
        }
        Ok(txn.locked.get(key).and_then(|(_, value)| value.clone()))
    }

    /// Takes the locks, waiting up to `wait_timeout_ms` for other
    /// transactions' locks (settling stale ones at once).
    pub async fn acquire_locks(
        &self,
        req: AcquireLocksRequest,
        ctx: &mut CallContext,
    ) -> Result<zdb_proto::v1::AcquireLocksResponse> {
        self.admit()?;
        super::super::validate::txn_locks(&self.limits, &req.locks, &[])?;
        let wait = Duration::from_millis(req.wait_timeout_ms);
        let deadline = Instant::now() + wait;
        let key = req.locks[0].key.clone();
        let mut attempt = 0u32;
        let mut waiting_for = None;
        let mut last_reported = Instant::now();
        let result = loop {
            if !self.lock_waits.is_first(&key, req.start_ts) {
                if Instant::now() >= deadline {
                    break Err(Error::LockWaitTimeout {
                        key: key.clone(),
                        holder: 0,
                    });
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let err = match self.lock_here(&req).await {
                Ok(response) => break Ok(response),
                Err(err) => err,
            };
            let lock = match err {
                Error::KeyLocked(lock) => lock,
                // Led elsewhere: the leader queues the wait.
                Error::NotLeader { .. } | Error::RangeNotFound(_) => {
                    self.lock_waits.leave(&key, req.start_ts);
                    let to = self
                        .forward_to(err, super::super::routed(&req.header), &key, ctx)
                        .await?;
                    let left = deadline.saturating_duration_since(Instant::now());
                    let rest = AcquireLocksRequest {
                        wait_timeout_ms: left.as_millis() as u64,
                        ..req.clone()
                    };
                    let budget = ctx.budget(self.timeout.max(left + self.timeout));
                    return self
                        .remote
                        .acquire_locks(&to, ctx.hops + 1, budget, rest)
                        .await;
                }
                err => break Err(err),
            };
            if self.resolve_lock(&lock).await? == Resolution::Resolved {
                continue;
            }
            if Instant::now() >= deadline {
                break Err(Error::LockWaitTimeout {
                    key: lock.key.clone(),
                    holder: lock.start_ts,
                });
            }
            if waiting_for != Some(lock.start_ts) || last_reported.elapsed() > REPORT_AGAIN {
                let cycle = self.report_wait(req.start_ts, &lock, false).await?;
                if !cycle.is_empty() {
                    break Err(Error::Deadlock {
                        cycle,
                        key: lock.key.clone(),
                    });
                }
                waiting_for = Some(lock.start_ts);
                last_reported = Instant::now();
            }
            self.lock_waits.join(&key, req.start_ts);
            attempt += 1;
            let pause = Duration::from_millis(2u64 << attempt.min(5));
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        };
        self.lock_waits.leave(&key, req.start_ts);
        if waiting_for.is_some() {
            let _ = self.report_wait(req.start_ts, &req.locks[0], true).await;
        }
        result
    }

    /// Tells the deadlock detector that `waiter` waits for `lock`'s holder
    /// (or, `done`, no longer waits): the cycle that wait closes, if any.
    async fn report_wait(&self, waiter: u64, lock: &LockInfo, done: bool) -> Result<Vec<u64>> {
        let request = WaitForRequest {
            header: None,
            waiter,
            holder: lock.start_ts,
            key: lock.key.clone(),
            done,
        };
        match self.meta.wait_for(request).await {
            Ok(cycle) => Ok(cycle),
            // Without the detector a deadlock still ends at the lock wait timeout.
            Err(err) => {
                tracing::warn!(error = %err, "deadlock detector unreachable");
                Ok(Vec::new())
            }
        }
    }

    /// Serves the wait-for graph (TxnRange.WaitFor).
    pub async fn wait_for(
        &self,
        req: WaitForRequest,
        ctx: &CallContext,
    ) -> Result<WaitForResponse> {
        self.admit()?;
        let cycle = if super::super::routed(&req.header) || ctx.hops > 0 {
            self.meta.wait_for_here(&req).await?
        } else {
            self.meta.wait_for(req).await?
        };
        Ok(WaitForResponse { cycle })
    }
}
