//! One transaction, pinned to its coordinator: reads, buffered writes,
//! commit and rollback, and what each failure means for it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::transport::Transport;
use tonic::Status;
use zdb_proto::v1::error::Kind;
use zdb_proto::v1::txn_client::TxnClient;
use zdb_proto::v1::{self as pb, KeyValue, ReadLock};

use super::Isolation;
use crate::client::{timed, Attempts, Client, MAX_ATTEMPT};
use crate::error::{Error, Result};
use crate::retry::{classify, Next};

/// Transaction scans ask for at most this many keys per page, as
/// [`Client::scan`] does (nodes allow 10,000).
const SCAN_PAGE: usize = 1000;

/// A transaction begun with [`Client::begin`]. Every call goes to its
/// coordinator, the node that answered Begin: no other node knows it.
/// Nothing it writes is visible to others before [`Transaction::commit`].
///
/// Dropping a transaction that was neither committed nor rolled back sends
/// a rollback in the background (best effort), so its locks do not stay
/// until its coordinator's idle timeout.
pub struct Transaction {
    pub(super) client: Client,
    pub(super) rpc: TxnClient<Transport>,
    pub(super) coordinator: String,
    pub(super) id: u64,
    pub(super) start_ts: u64,
    pub(super) isolation: Isolation,
    /// Set once nothing more may be sent for the transaction (it committed,
    /// was rolled back, its commit's outcome is unknown, or the client gave
    /// up on it): why.
    pub(super) ended: Option<String>,
    /// Writes not yet sent to the coordinator (None: a delete): they go
    /// with the commit, or before a scan, which the coordinator merges.
    pub(super) pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// How a call of a transaction failed, before it is made an [`Error`]: the
/// caller decides what each means for the transaction.
enum Failure {
    /// A final answer from the coordinator.
    Final(Status),
    /// The reply was lost or timed out: the call may have been applied.
    Unknown(Status),
    /// The coordinator is stopping or cannot be reached: the transaction
    /// cannot go on anywhere else.
    Unreachable(Status),
    /// The deadline passed while the coordinator kept refusing the call.
    Deadline(Error),
}

/// Sends one call of a transaction to its coordinator until it succeeds or
/// fails for good within `attempts`. Refusals that applied nothing (busy, a
/// dropped proposal, a lock in the way) are sent again after a backoff; a
/// lost reply only when `resend_unknown` (the call changes nothing a second
/// time would not).
async fn send<R, F, Fut>(
    rpc: &TxnClient<Transport>,
    coordinator: &str,
    what: &str,
    resend_unknown: bool,
    attempts: &mut Attempts,
    mut attempt: F,
) -> std::result::Result<R, Failure>
where
    F: FnMut(TxnClient<Transport>, Duration) -> Fut,
    Fut: Future<Output = std::result::Result<tonic::Response<R>, Status>>,
{
    loop {
        // Pinned to one node, an attempt may use the whole deadline: there
        // is no other node to try once it hangs.
        let remaining = attempts.remaining().map_err(Failure::Deadline)?;
        attempts.count += 1;
        let status = match attempt(rpc.clone(), remaining).await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) => status,
        };
        attempts.last = format!(
            "{coordinator}: {what}: {}: {}",
            status.code(),
            status.message()
        );
        let kind = zdb_proto::decode_error_details(status.details()).and_then(|error| error.kind);
        match classify(&status) {
            Next::Fail => return Err(Failure::Final(status)),
            Next::Ambiguous if resend_unknown => {}
            Next::Ambiguous => return Err(Failure::Unknown(status)),
            // Without a kind, Retry means nothing could be sent: the
            // coordinator is down or unreachable, as it is when stopping.
            Next::Retry if matches!(kind, None | Some(Kind::ShuttingDown(_))) => {
                return Err(Failure::Unreachable(status))
            }
            // Redirects come from the coordinator's own routing to ranges,
            // which it follows itself: a passing state, as a refusal is.
            Next::Retry | Next::NotLeader { .. } | Next::Refresh(_) | Next::Relocate => {}
        }
        attempts.back_off().await;
    }
}

impl Transaction {
    /// The transaction's id at its coordinator.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The snapshot the transaction reads at, from the cluster's oracle.
    pub fn start_ts(&self) -> u64 {
        self.start_ts
    }

    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// `HOST:PORT` of the node coordinating the transaction.
    pub fn coordinator(&self) -> &str {
        &self.coordinator
    }

    /// The value of `key` as the transaction sees it (its own writes
    /// included).
    pub async fn get(&mut self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        self.read(key.into(), ReadLock::None).await
    }

    /// Locks `key` for writing until the transaction ends (SELECT ... FOR
    /// UPDATE) and returns its latest committed value; waits up to the lock
    /// wait timeout for another transaction's lock.
    pub async fn get_for_update(&mut self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        self.read(key.into(), ReadLock::Exclusive).await
    }

    /// Locks `key` against writers (readers may share the lock) until the
    /// transaction ends (SELECT ... FOR SHARE) and returns its latest
    /// committed value.
    pub async fn get_for_share(&mut self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        self.read(key.into(), ReadLock::Shared).await
    }

    async fn read(&mut self, key: Vec<u8>, lock: ReadLock) -> Result<Option<Vec<u8>>> {
        if let Some(written) = self.pending.get(&key) {
            if lock == ReadLock::None {
                return Ok(written.clone());
            }
        }
        let pending = self.pending.get(&key).cloned();
        let request = pb::TxnGetRequest {
            txn_id: self.id,
            key,
            lock: lock as i32,
        };
        // A read sent again, locking or not, takes nothing the first did not.
        let response = self
            .call("get", true, |mut rpc, timeout| {
                let request = timed(request.clone(), timeout);
                async move { rpc.get(request).await }
            })
            .await?;
        Ok(match pending {
            Some(written) => written,
            None => response.found.then_some(response.value),
        })
    }

    /// The keys that exist among `keys`, in request order, as the
    /// transaction sees them.
    pub async fn batch_get(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<KeyValue>> {
        let unwritten: Vec<Vec<u8>> = keys
            .iter()
            .filter(|key| !self.pending.contains_key(*key))
            .cloned()
            .collect();
        let mut fetched = std::collections::HashMap::new();
        if !unwritten.is_empty() {
            let request = pb::TxnBatchGetRequest {
                txn_id: self.id,
                keys: unwritten,
            };
            let response = self
                .call("batch get", true, |mut rpc, timeout| {
                    let request = timed(request.clone(), timeout);
                    async move { rpc.batch_get(request).await }
                })
                .await?;
            fetched.extend(response.pairs.into_iter().map(|kv| (kv.key, kv.value)));
        }
        Ok(keys
            .into_iter()
            .filter_map(|key| {
                let value = match self.pending.get(&key) {
                    Some(written) => written.clone(),
                    None => fetched.remove(&key),
                };
                value.map(|value| KeyValue { key, value })
            })
            .collect())
    }

    /// Keys in `[start, end)` (empty `end`: no bound) as the transaction
    /// sees them, in order, at most `limit` (0: all), across ranges and
    /// pages.
    pub async fn scan(
        &mut self,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<KeyValue>> {
        let (mut start, end) = (start.into(), end.into());
        self.flush().await?;
        let mut pairs: Vec<KeyValue> = Vec::new();
        loop {
            // Past one page, ask for the node's largest page (0) and go on
            // from where it ended.
            let want = match limit.saturating_sub(pairs.len()) {
                _ if limit == 0 => 0,
                left if left > SCAN_PAGE => 0,
                left => left as u32,
            };
            let request = pb::TxnScanRequest {
                txn_id: self.id,
                start_key: start.clone(),
                end_key: end.clone(),
                limit: want,
            };
            let page = self
                .call("scan", true, |mut rpc, timeout| {
                    let request = timed(request.clone(), timeout);
                    async move { rpc.scan(request).await }
                })
                .await?;
            // The smallest key after the page's last one.
            let next = page
                .pairs
                .last()
                .map(|kv| [kv.key.as_slice(), &[0]].concat());
            pairs.extend(page.pairs);
            if limit != 0 && pairs.len() >= limit {
                pairs.truncate(limit);
                return Ok(pairs);
            }
            match next {
                Some(next) if page.more => start = next,
                _ => return Ok(pairs),
            }
        }
    }

    /// Buffers a write; it becomes visible at commit.
    pub async fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<()> {
        self.usable()?;
        self.pending.insert(key.into(), Some(value.into()));
        Ok(())
    }

    /// Buffers the removal of `key`; removing an absent key succeeds.
    pub async fn delete(&mut self, key: impl Into<Vec<u8>>) -> Result<()> {
        self.usable()?;
        self.pending.insert(key.into(), None);
        Ok(())
    }

    /// Sends the buffered writes to the coordinator (before a scan, which
    /// it answers with them merged in).
    async fn flush(&mut self) -> Result<()> {
        for (key, value) in std::mem::take(&mut self.pending) {
            // Not sent again after a lost reply: the first attempt could
            // still land after a later write of the same key and undo it.
            match value {
                Some(value) => {
                    let request = pb::TxnPutRequest {
                        txn_id: self.id,
                        key,
                        value,
                        expire_at_ms: 0,
                    };
                    self.call("put", false, |mut rpc, timeout| {
                        let request = timed(request.clone(), timeout);
                        async move { rpc.put(request).await }
                    })
                    .await?;
                }
                None => {
                    let request = pb::TxnDeleteRequest {
                        txn_id: self.id,
                        key,
                    };
                    self.call("delete", false, |mut rpc, timeout| {
                        let request = timed(request.clone(), timeout);
                        async move { rpc.delete(request).await }
                    })
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Makes every write visible at one commit timestamp (returned; 0 for a
    /// transaction that wrote nothing), or none of them. An aborted commit
    /// fails with the typed reason ([`Error::is_retryable_txn_error`]);
    /// [`Error::OutcomeUnknown`] means the commit point may or may not have
    /// been reached: read to find out.
    pub async fn commit(mut self) -> Result<u64> {
        self.usable()?;
        let mut attempts = self.client.attempts();
        let txn_id = self.id;
        let mutations: Vec<pb::Mutation> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(key, value)| {
                let op = match value {
                    Some(value) => pb::mutation::Op::Put(pb::PutOp {
                        key,
                        value,
                        ttl_seconds: 0,
                    }),
                    None => pb::mutation::Op::Delete(pb::DeleteOp { key }),
                };
                pb::Mutation { op: Some(op) }
            })
            .collect();
        let outcome = send(
            &self.rpc,
            &self.coordinator,
            "commit",
            false,
            &mut attempts,
            |mut rpc, timeout| {
                let request = timed(
                    pb::CommitRequest {
                        txn_id,
                        mutations: mutations.clone(),
                    },
                    timeout,
                );
                async move { rpc.commit(request).await }
            },
        )
        .await;
        match outcome {
            Ok(response) => {
                self.ended = Some("committed".into());
                Ok(response.commit_ts)
            }
            Err(Failure::Unknown(_)) => {
                // A rollback now could race the commit: leave the outcome
                // to the coordinator.
                self.ended = Some("its commit's outcome is unknown".into());
                Err(Error::OutcomeUnknown(format!(
                    "commit of transaction {txn_id}: {}",
                    attempts.last
                )))
            }
            Err(Failure::Unreachable(_)) => Err(self
                .abandon(format!("its commit could not be sent ({})", attempts.last))
                .await),
            Err(Failure::Final(status)) => {
                let error = Error::from_final_status(status);
                // An abort says the transaction is gone; after any other
                // refusal it may still hold locks.
                if ends_transaction(&error) {
                    self.ended = Some("aborted".into());
                } else {
                    self.rollback_quietly().await;
                }
                Err(error)
            }
            Err(Failure::Deadline(error)) => {
                self.rollback_quietly().await;
                Err(error)
            }
        }
    }

    /// Discards the transaction and releases its locks. Rolling back one its
    /// coordinator no longer knows (or already rolled back) succeeds.
    pub async fn rollback(mut self) -> Result<()> {
        self.rollback_now().await
    }

    /// Keeps an idle transaction from being rolled back by its coordinator's
    /// idle timeout.
    pub async fn heartbeat(&self) -> Result<()> {
        self.usable()?;
        let mut attempts = self.client.attempts();
        let txn_id = self.id;
        let outcome = send(
            &self.rpc,
            &self.coordinator,
            "heartbeat",
            true,
            &mut attempts,
            |mut rpc, timeout| {
                let request = timed(pb::HeartbeatRequest { txn_id }, timeout);
                async move { rpc.heartbeat(request).await }
            },
        )
        .await;
        match outcome {
            Ok(_) => Ok(()),
            Err(
                Failure::Final(status) | Failure::Unknown(status) | Failure::Unreachable(status),
            ) => Err(Error::from_final_status(status)),
            Err(Failure::Deadline(error)) => Err(error),
        }
    }

    /// One data call; a call that cannot be known to have done exactly what
    /// was asked (a lost reply to a write, an unreachable coordinator) ends
    /// the transaction on the client's side: it is never committed.
    async fn call<R, F, Fut>(&mut self, what: &str, resend_unknown: bool, attempt: F) -> Result<R>
    where
        F: FnMut(TxnClient<Transport>, Duration) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<R>, Status>>,
    {
        self.usable()?;
        let mut attempts = self.client.attempts();
        let outcome = send(
            &self.rpc,
            &self.coordinator,
            what,
            resend_unknown,
            &mut attempts,
            attempt,
        )
        .await;
        match outcome {
            Ok(response) => Ok(response),
            Err(Failure::Final(status)) => Err(Error::from_final_status(status)),
            Err(Failure::Deadline(error)) => Err(error),
            Err(Failure::Unknown(_)) => Err(self
                .abandon(format!(
                    "the outcome of a {what} is unknown ({})",
                    attempts.last
                ))
                .await),
            Err(Failure::Unreachable(_)) => Err(self
                .abandon(format!(
                    "its coordinator cannot go on with it ({})",
                    attempts.last
                ))
                .await),
        }
    }

    /// Fails once the client gave up on the transaction: nothing more is
    /// sent for it, above all no commit.
    fn usable(&self) -> Result<()> {
        match &self.ended {
            None => Ok(()),
            Some(reason) => Err(Error::TxnAborted {
                start_ts: self.start_ts,
                reason: reason.clone(),
            }),
        }
    }

    /// Gives up on the transaction: it is never committed, so nothing of it
    /// becomes visible, and a rollback is sent (best effort) to release its
    /// locks before they expire. Running it again is safe.
    async fn abandon(&mut self, why: String) -> Error {
        self.rollback_quietly().await;
        let reason = format!("the client gave up on it: {why}");
        self.ended = Some(reason.clone());
        Error::TxnAborted {
            start_ts: self.start_ts,
            reason,
        }
    }

    /// A rollback for cleanup after a failure: bounded, errors ignored.
    pub(super) async fn rollback_quietly(&mut self) {
        let _ = tokio::time::timeout(MAX_ATTEMPT, self.rollback_now()).await;
    }

    async fn rollback_now(&mut self) -> Result<()> {
        if self.ended.is_some() {
            return Ok(());
        }
        let mut attempts = self.client.attempts();
        let txn_id = self.id;
        let outcome = send(
            &self.rpc,
            &self.coordinator,
            "rollback",
            true,
            &mut attempts,
            |mut rpc, timeout| {
                let request = timed(pb::RollbackRequest { txn_id }, timeout);
                async move { rpc.rollback(request).await }
            },
        )
        .await;
        let result = match outcome {
            Ok(_) => Ok(()),
            Err(Failure::Final(status)) => match Error::from_final_status(status) {
                // Gone already: nothing of it is left.
                Error::TxnNotFound(_) | Error::TxnAborted { .. } => Ok(()),
                error => Err(error),
            },
            Err(Failure::Unknown(status) | Failure::Unreachable(status)) => {
                Err(Error::from_final_status(status))
            }
            Err(Failure::Deadline(error)) => Err(error),
        };
        if result.is_ok() {
            self.ended = Some("rolled back".into());
        }
        result
    }
}

/// The node says the transaction is over: it left nothing behind.
fn ends_transaction(error: &Error) -> bool {
    matches!(
        error,
        Error::WriteConflict { .. }
            | Error::SerializationFailure { .. }
            | Error::Deadlock { .. }
            | Error::LockWaitTimeout { .. }
            | Error::TxnAborted { .. }
            | Error::TxnNotFound(_)
    )
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.ended.is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rpc = self.rpc.clone();
        let request = timed(pb::RollbackRequest { txn_id: self.id }, MAX_ATTEMPT);
        runtime.spawn(async move {
            let _ = rpc.rollback(request).await;
        });
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.id)
            .field("start_ts", &self.start_ts)
            .field("isolation", &self.isolation)
            .field("coordinator", &self.coordinator)
            .field("ended", &self.ended)
            .finish()
    }
}
