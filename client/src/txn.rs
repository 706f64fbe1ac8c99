//! Transactions over `zdb.v1.Txn`. The node that answers Begin coordinates
//! the transaction (it buffers the writes, takes the locks, runs the
//! two-phase commit and keeps the locks alive), so the client has no commit
//! protocol of its own: it sends every call of a transaction to that one
//! node, and runs a whole transaction again when it was aborted
//! ([`Client::transaction`]). Single calls are never retried where a retry
//! could change what the transaction does.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic::Status;
use zdb_proto::v1::error::Kind;
use zdb_proto::v1::txn_client::TxnClient;
use zdb_proto::v1::{self as pb, KeyValue, ReadLock};

use crate::client::{timed, to_proto_mutation, Attempts, Client, Mutation, MAX_ATTEMPT};
use crate::error::{Error, Result};
use crate::retry::{backoff, classify, Next};

/// Transaction scans ask for at most this many keys per page, as
/// [`Client::scan`] does (nodes allow 10,000).
const SCAN_PAGE: usize = 1000;

/// What a transaction body passed to [`Client::transaction`] returns: its
/// future, boxed, so that it may borrow the transaction it is given.
/// Write the body as `|txn| Box::pin(async move { ... })`.
pub type TxnFuture<'t, T> = Pin<Box<dyn Future<Output = T> + Send + 't>>;

/// What a transaction may observe of others running at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// As if every committed transaction ran alone, in commit order: no
    /// write skew, no phantoms. What it read is checked and locked at commit.
    #[default]
    Serializable,
    /// Reads one snapshot; the first committer wins a write-write conflict.
    /// Write skew is possible.
    Snapshot,
    /// Every read sees what was committed when it ran; lost updates are
    /// possible, dirty reads and writes are not.
    ReadCommitted,
}

impl Isolation {
    fn to_proto(self) -> i32 {
        match self {
            Isolation::Serializable => pb::Isolation::Serializable as i32,
            Isolation::Snapshot => pb::Isolation::Snapshot as i32,
            Isolation::ReadCommitted => pb::Isolation::ReadCommitted as i32,
        }
    }
}

/// How a transaction behaves; a zero duration leaves the choice to the node
/// (3 s lock wait, 3 s lock time to live, 30 s idle timeout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnOptions {
    pub isolation: Isolation,
    /// How long a locking read waits for a lock another transaction holds
    /// before it fails with [`Error::LockWaitTimeout`].
    pub lock_wait_timeout: Duration,
    /// How long the transaction's locks outlive its coordinator.
    pub lock_ttl: Duration,
    /// The coordinator rolls the transaction back after this long without a
    /// call ([`Transaction::heartbeat`] counts).
    pub idle_timeout: Duration,
}

impl TxnOptions {
    pub fn new(isolation: Isolation) -> Self {
        TxnOptions {
            isolation,
            ..Default::default()
        }
    }

    fn to_proto(&self) -> pb::BeginRequest {
        pb::BeginRequest {
            isolation: self.isolation.to_proto(),
            lock_wait_timeout_ms: millis(self.lock_wait_timeout),
            lock_ttl_ms: millis(self.lock_ttl),
            idle_timeout_ms: millis(self.idle_timeout),
        }
    }
}

/// Whole milliseconds, rounded up: 0 means "the node's default" on the
/// wire, so a sub-millisecond duration must not become one.
fn millis(duration: Duration) -> u64 {
    if duration.is_zero() {
        return 0;
    }
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// One condition of [`Client::atomic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key holds exactly this value: `Equals(key, value)`.
    Equals(Vec<u8>, Vec<u8>),
    /// The key holds nothing.
    Absent(Vec<u8>),
}

impl Compare {
    pub fn equals(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Compare::Equals(key.into(), value.into())
    }

    pub fn absent(key: impl Into<Vec<u8>>) -> Self {
        Compare::Absent(key.into())
    }

    fn into_proto(self) -> pb::Compare {
        match self {
            Compare::Equals(key, value) => pb::Compare {
                key,
                value,
                absent: false,
            },
            Compare::Absent(key) => pb::Compare {
                key,
                value: Vec::new(),
                absent: true,
            },
        }
    }
}


/// A transaction begun with [`Client::begin`]. Every call goes to its
/// coordinator, the node that answered Begin: no other node knows it.
/// Nothing it writes is visible to others before [`Transaction::commit`].
///
/// Dropping a transaction that was neither committed nor rolled back sends
/// a rollback in the background (best effort), so its locks do not stay
/// until its coordinator's idle timeout.
pub struct Transaction {
    client: Client,
    rpc: TxnClient<Channel>,
    coordinator: String,
    id: u64,
    start_ts: u64,
    isolation: Isolation,
    /// Set once nothing more may be sent for the transaction (it committed,
    /// was rolled back, its commit's outcome is unknown, or the client gave
    /// up on it): why.
    ended: Option<String>,
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
    rpc: &TxnClient<Channel>,
    coordinator: &str,
    what: &str,
    resend_unknown: bool,
    attempts: &mut Attempts,
    mut attempt: F,
) -> std::result::Result<R, Failure>
where
    F: FnMut(TxnClient<Channel>, Duration) -> Fut,
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
        Ok(response.found.then_some(response.value))
    }

    /// The keys that exist among `keys`, in request order, as the
    /// transaction sees them.
    pub async fn batch_get(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<KeyValue>> {
        let request = pb::TxnBatchGetRequest {
            txn_id: self.id,
            keys,
        };
        let response = self
            .call("batch get", true, |mut rpc, timeout| {
                let request = timed(request.clone(), timeout);
                async move { rpc.batch_get(request).await }
            })
            .await?;
        Ok(response.pairs)
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

    /// Buffers a write at the coordinator; it becomes visible at commit.
    pub async fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<()> {
        let request = pb::TxnPutRequest {
            txn_id: self.id,
            key: key.into(),
            value: value.into(),
        };
        // Not sent again after a lost reply: the first attempt could still
        // land after a later write of the same key and undo it.
        self.call("put", false, |mut rpc, timeout| {
            let request = timed(request.clone(), timeout);
            async move { rpc.put(request).await }
        })
        .await?;
        Ok(())
    }

    /// Buffers the removal of `key`; removing an absent key succeeds.
    pub async fn delete(&mut self, key: impl Into<Vec<u8>>) -> Result<()> {
        let request = pb::TxnDeleteRequest {
            txn_id: self.id,
            key: key.into(),
        };
        self.call("delete", false, |mut rpc, timeout| {
            let request = timed(request.clone(), timeout);
            async move { rpc.delete(request).await }
        })
        .await?;
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
        let outcome = send(
            &self.rpc,
            &self.coordinator,
            "commit",
            false,
            &mut attempts,
            |mut rpc, timeout| {
                let request = timed(pb::CommitRequest { txn_id }, timeout);
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
        F: FnMut(TxnClient<Channel>, Duration) -> Fut,
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
    async fn rollback_quietly(&mut self) {
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

impl Client {
    fn txn_rpc(&self, endpoint: &str) -> Result<TxnClient<Channel>> {
        Ok(TxnClient::new(self.channel(endpoint)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    /// Starts a transaction on the next node in turn (any node can
    /// coordinate one); its snapshot is taken now. A node that cannot be
    /// reached or refuses is passed over for the next one, within the
    /// client's deadline.
    pub async fn begin(&self, options: TxnOptions) -> Result<Transaction> {
        let request = options.to_proto();
        let mut attempts = self.attempts();
        loop {
            let remaining = attempts.remaining()?;
            let endpoint = self.any_endpoint();
            attempts.count += 1;
            let mut rpc = self.txn_rpc(&endpoint)?;
            match rpc.begin(timed(request, remaining.min(MAX_ATTEMPT))).await {
                Ok(response) => {
                    let response = response.into_inner();
                    return Ok(Transaction {
                        client: self.clone(),
                        rpc,
                        coordinator: endpoint,
                        id: response.txn_id,
                        start_ts: response.start_ts,
                        isolation: options.isolation,
                        ended: None,
                    });
                }
                Err(status) => {
                    attempts.last =
                        format!("{endpoint}: begin: {}: {}", status.code(), status.message());
                    // A Begin whose reply was lost leaves at most an idle
                    // transaction behind, which its coordinator rolls back.
                    if classify(&status) == Next::Fail {
                        return Err(Error::from_final_status(status));
                    }
                    attempts.back_off().await;
                }
            }
        }
    }

    /// Runs `body` in a transaction of `isolation` and commits it; see
    /// [`Client::transaction_with`].
    pub async fn transaction<T, F>(&self, isolation: Isolation, body: F) -> Result<T>
    where
        F: for<'t> FnMut(&'t mut Transaction) -> TxnFuture<'t, Result<T>>,
    {
        self.transaction_with(TxnOptions::new(isolation), body)
            .await
    }

    /// Begins a transaction, runs `body` in it and commits it, returning
    /// what `body` returned. When the transaction is aborted (a conflict, a
    /// deadlock, a lock wait timeout, a coordinator that lost it) or a call
    /// is refused before it applied, it is rolled back and run again, with
    /// a backoff, until the client's timeout has passed; then, and on any
    /// other error, the last error is returned. `body` may therefore run
    /// several times: effects outside the transaction belong after it.
    /// A commit whose outcome is unknown is not run again
    /// ([`Error::OutcomeUnknown`]).
    ///
    /// ```no_run
    /// # async fn f(client: zdb_client::Client) -> zdb_client::Result<()> {
    /// use zdb_client::Isolation;
    /// let balance = client
    ///     .transaction(Isolation::Serializable, |txn| {
    ///         Box::pin(async move {
    ///             let balance = txn.get_for_update("balance").await?.unwrap_or_default();
    ///             txn.put("balance", [balance.as_slice(), b"!"].concat()).await?;
    ///             Ok(balance)
    ///         })
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction_with<T, F>(&self, options: TxnOptions, mut body: F) -> Result<T>
    where
        F: for<'t> FnMut(&'t mut Transaction) -> TxnFuture<'t, Result<T>>,
    {
        let deadline = Instant::now() + self.timeout();
        let mut reruns = 0u32;
        loop {
            let error = match self.run_transaction(&options, &mut body).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if !error.is_retryable_txn_error() || left.is_zero() {
                return Err(error);
            }
            tracing::debug!(%error, reruns, "transaction aborted; running it again");
            tokio::time::sleep(backoff(reruns).min(left)).await;
            reruns += 1;
        }
    }

    async fn run_transaction<T, F>(&self, options: &TxnOptions, body: &mut F) -> Result<T>
    where
        F: for<'t> FnMut(&'t mut Transaction) -> TxnFuture<'t, Result<T>>,
    {
        let mut txn = self.begin(options.clone()).await?;
        let outcome = body(&mut txn).await;
        match outcome {
            Ok(value) => {
                txn.commit().await?;
                Ok(value)
            }
            Err(error) => {
                txn.rollback_quietly().await;
                Err(error)
            }
        }
    }

    /// One transaction in one call, as etcd's Txn: if every comparison
    /// holds, `success` is applied, otherwise `failure`; keys may be in any
    /// ranges. Returns whether the comparisons held and the commit
    /// timestamp. Aborts and refusals that applied nothing are retried on
    /// the next node within the client's deadline; a lost reply is
    /// [`Error::OutcomeUnknown`].
    pub async fn atomic(
        &self,
        compare: Vec<Compare>,
        success: Vec<Mutation>,
        failure: Vec<Mutation>,
    ) -> Result<(bool, u64)> {
        let request = pb::AtomicRequest {
            compare: compare.into_iter().map(Compare::into_proto).collect(),
            success: success.into_iter().map(to_proto_mutation).collect(),
            failure: failure.into_iter().map(to_proto_mutation).collect(),
        };
        let mut attempts = self.attempts();
        loop {
            let remaining = attempts.remaining()?;
            let endpoint = self.any_endpoint();
            attempts.count += 1;
            // The whole deadline: an attempt that times out is not sent
            // again anyway, it is an unknown outcome.
            let status = match self
                .txn_rpc(&endpoint)?
                .atomic(timed(request.clone(), remaining))
                .await
            {
                Ok(response) => {
                    let response = response.into_inner();
                    return Ok((response.succeeded, response.commit_ts));
                }
                Err(status) => status,
            };
            attempts.last = format!(
                "{endpoint}: atomic: {}: {}",
                status.code(),
                status.message()
            );
            match classify(&status) {
                Next::Ambiguous => return Err(Error::OutcomeUnknown(attempts.last)),
                Next::Fail => {
                    let error = Error::from_final_status(status);
                    if !error.is_retryable_txn_error() {
                        return Err(error);
                    }
                }
                _ => {}
            }
            attempts.back_off().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, VecDeque};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::{Code, Request, Response};
    use zdb_proto::v1::txn_server::{Txn, TxnServer};

    use super::*;
    use crate::client::ClientConfig;

    #[test]
    fn options_go_on_the_wire_in_whole_milliseconds() {
        assert_eq!(
            TxnOptions::default().to_proto(),
            pb::BeginRequest {
                isolation: pb::Isolation::Serializable as i32,
                lock_wait_timeout_ms: 0,
                lock_ttl_ms: 0,
                idle_timeout_ms: 0,
            }
        );
        let options = TxnOptions {
            isolation: Isolation::ReadCommitted,
            lock_wait_timeout: Duration::from_micros(10),
            lock_ttl: Duration::from_millis(1500),
            idle_timeout: Duration::from_secs(60),
        };
        let request = options.to_proto();
        assert_eq!(request.isolation, pb::Isolation::ReadCommitted as i32);
        // Under a millisecond must not turn into "the node's default".
        assert_eq!(request.lock_wait_timeout_ms, 1);
        assert_eq!(request.lock_ttl_ms, 1500);
        assert_eq!(request.idle_timeout_ms, 60_000);
        assert_eq!(
            Isolation::Snapshot.to_proto(),
            pb::Isolation::Snapshot as i32
        );
    }

    #[test]
    fn comparisons_and_mutations_convert() {
        assert_eq!(
            Compare::equals("k", "v").into_proto(),
            pb::Compare {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                absent: false
            }
        );
        // An empty value is a value, not absence.
        assert!(!Compare::equals("k", "").into_proto().absent);
        assert!(Compare::absent("k").into_proto().absent);
        let put = to_proto_mutation(Mutation::Put {
            key: b"a".to_vec(),
            value: b"1".to_vec(),
            ttl_seconds: 5,
        });
        assert_eq!(
            put.op,
            Some(pb::mutation::Op::Put(pb::PutOp {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
                ttl_seconds: 5
            }))
        );
        let delete = to_proto_mutation(Mutation::Delete { key: b"b".to_vec() });
        assert_eq!(
            delete.op,
            Some(pb::mutation::Op::Delete(pb::DeleteOp { key: b"b".to_vec() }))
        );
    }

    fn typed(code: Code, kind: Kind) -> Status {
        let detail = pb::Error { kind: Some(kind) };
        let bytes = zdb_proto::encode_error_details(code as i32, "scripted", &detail);
        Status::with_details(code, "scripted", bytes.into())
    }

    fn conflict() -> Status {
        typed(
            Code::Aborted,
            Kind::WriteConflict(pb::WriteConflict {
                key: b"k".to_vec(),
                start_ts: 1,
                conflict_ts: 2,
            }),
        )
    }

    /// A coordinator that keeps committed data and each transaction's
    /// buffered writes, logs every call, and fails calls as scripted.
    #[derive(Clone, Default)]
    struct FakeCoordinator(Arc<Mutex<State>>);

    /// A transaction's buffered puts (Some) and deletes (None), in order.
    type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    #[derive(Default)]
    struct State {
        next_id: u64,
        /// (method, txn_id) of every call, in order.
        calls: Vec<(&'static str, u64)>,
        scan_starts: Vec<Vec<u8>>,
        data: BTreeMap<Vec<u8>, Vec<u8>>,
        writes: HashMap<u64, Writes>,
        /// Most keys a scan page holds.
        page: usize,
        fail_put: VecDeque<Status>,
        fail_commit: VecDeque<Status>,
        fail_atomic: VecDeque<Status>,
    }

    impl FakeCoordinator {
        /// Transaction ids of this node start at `first_id`.
        fn new(first_id: u64) -> Self {
            let fake = FakeCoordinator::default();
            fake.0.lock().unwrap().next_id = first_id;
            fake.0.lock().unwrap().page = 2;
            fake
        }

        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.0.lock().unwrap()
        }

        fn log(&self, method: &'static str, txn_id: u64) {
            self.state().calls.push((method, txn_id));
        }

        fn methods(&self) -> Vec<&'static str> {
            self.state()
                .calls
                .iter()
                .map(|(method, _)| *method)
                .collect()
        }

        fn live(&self, txn_id: u64) -> Result<(), Status> {
            if self.state().writes.contains_key(&txn_id) {
                Ok(())
            } else {
                Err(typed(
                    Code::NotFound,
                    Kind::TxnNotFound(pb::TxnNotFound { txn_id }),
                ))
            }
        }
    }

    #[tonic::async_trait]
    impl Txn for FakeCoordinator {
        async fn begin(
            &self,
            _: Request<pb::BeginRequest>,
        ) -> Result<Response<pb::BeginResponse>, Status> {
            let mut state = self.state();
            state.next_id += 1;
            let txn_id = state.next_id;
            state.writes.insert(txn_id, Vec::new());
            state.calls.push(("begin", txn_id));
            Ok(Response::new(pb::BeginResponse {
                txn_id,
                start_ts: txn_id * 10,
            }))
        }

        async fn get(
            &self,
            request: Request<pb::TxnGetRequest>,
        ) -> Result<Response<pb::TxnGetResponse>, Status> {
            let request = request.into_inner();
            self.log("get", request.txn_id);
            self.live(request.txn_id)?;
            let value = self.state().data.get(&request.key).cloned();
            Ok(Response::new(pb::TxnGetResponse {
                found: value.is_some(),
                value: value.unwrap_or_default(),
            }))
        }

        async fn batch_get(
            &self,
            request: Request<pb::TxnBatchGetRequest>,
        ) -> Result<Response<pb::TxnBatchGetResponse>, Status> {
            let request = request.into_inner();
            self.log("batch_get", request.txn_id);
            self.live(request.txn_id)?;
            let state = self.state();
            let pairs = request
                .keys
                .into_iter()
                .filter_map(|key| {
                    let value = state.data.get(&key)?.clone();
                    Some(KeyValue { key, value })
                })
                .collect();
            Ok(Response::new(pb::TxnBatchGetResponse { pairs }))
        }

        async fn scan(
            &self,
            request: Request<pb::TxnScanRequest>,
        ) -> Result<Response<pb::TxnScanResponse>, Status> {
            let request = request.into_inner();
            self.log("scan", request.txn_id);
            self.live(request.txn_id)?;
            let mut state = self.state();
            state.scan_starts.push(request.start_key.clone());
            let most = match request.limit as usize {
                0 => state.page,
                limit => limit.min(state.page),
            };
            let mut pairs: Vec<KeyValue> = state
                .data
                .range(request.start_key..)
                .filter(|(key, _)| request.end_key.is_empty() || **key < request.end_key)
                .map(|(key, value)| KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                })
                .take(most + 1)
                .collect();
            let more = pairs.len() > most;
            pairs.truncate(most);
            Ok(Response::new(pb::TxnScanResponse { pairs, more }))
        }

        async fn put(
            &self,
            request: Request<pb::TxnPutRequest>,
        ) -> Result<Response<pb::TxnPutResponse>, Status> {
            let request = request.into_inner();
            self.log("put", request.txn_id);
            self.live(request.txn_id)?;
            let mut state = self.state();
            if let Some(status) = state.fail_put.pop_front() {
                return Err(status);
            }
            let writes = state.writes.get_mut(&request.txn_id).expect("live");
            writes.push((request.key, Some(request.value)));
            Ok(Response::new(pb::TxnPutResponse {}))
        }

        async fn delete(
            &self,
            request: Request<pb::TxnDeleteRequest>,
        ) -> Result<Response<pb::TxnDeleteResponse>, Status> {
            let request = request.into_inner();
            self.log("delete", request.txn_id);
            self.live(request.txn_id)?;
            let mut state = self.state();
            let writes = state.writes.get_mut(&request.txn_id).expect("live");
            writes.push((request.key, None));
            Ok(Response::new(pb::TxnDeleteResponse {}))
        }

        async fn commit(
            &self,
            request: Request<pb::CommitRequest>,
        ) -> Result<Response<pb::CommitResponse>, Status> {
            let txn_id = request.into_inner().txn_id;
            self.log("commit", txn_id);
            self.live(txn_id)?;
            let mut state = self.state();
            if let Some(status) = state.fail_commit.pop_front() {
                // Aborted or unknown: the fake forgets it either way.
                state.writes.remove(&txn_id);
                return Err(status);
            }
            let writes = state.writes.remove(&txn_id).unwrap_or_default();
            for (key, value) in writes {
                match value {
                    Some(value) => state.data.insert(key, value),
                    None => state.data.remove(&key),
                };
            }
            Ok(Response::new(pb::CommitResponse {
                commit_ts: txn_id * 10 + 1,
            }))
        }

        async fn rollback(
            &self,
            request: Request<pb::RollbackRequest>,
        ) -> Result<Response<pb::RollbackResponse>, Status> {
            let txn_id = request.into_inner().txn_id;
            self.log("rollback", txn_id);
            self.live(txn_id)?;
            self.state().writes.remove(&txn_id);
            Ok(Response::new(pb::RollbackResponse {}))
        }

        async fn heartbeat(
            &self,
            request: Request<pb::HeartbeatRequest>,
        ) -> Result<Response<pb::HeartbeatResponse>, Status> {
            let txn_id = request.into_inner().txn_id;
            self.log("heartbeat", txn_id);
            self.live(txn_id)?;
            Ok(Response::new(pb::HeartbeatResponse {}))
        }

        async fn atomic(
            &self,
            request: Request<pb::AtomicRequest>,
        ) -> Result<Response<pb::AtomicResponse>, Status> {
            let request = request.into_inner();
            self.log("atomic", 0);
            let mut state = self.state();
            if let Some(status) = state.fail_atomic.pop_front() {
                return Err(status);
            }
            let holds = request.compare.iter().all(|compare| {
                match (state.data.get(&compare.key), compare.absent) {
                    (None, true) => true,
                    (Some(value), false) => *value == compare.value,
                    _ => false,
                }
            });
            let mutations = if holds {
                request.success
            } else {
                request.failure
            };
            for mutation in mutations {
                match mutation.op {
                    Some(pb::mutation::Op::Put(put)) => {
                        state.data.insert(put.key, put.value);
                    }
                    Some(pb::mutation::Op::Delete(delete)) => {
                        state.data.remove(&delete.key);
                    }
                    None => {}
                }
            }
            Ok(Response::new(pb::AtomicResponse {
                succeeded: holds,
                commit_ts: 77,
            }))
        }
    }

    async fn serve(fake: &FakeCoordinator) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TxnServer::new(fake.clone()))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        address
    }

    fn client(endpoints: &[String]) -> Client {
        let mut config = ClientConfig::new(endpoints.iter().cloned());
        config.timeout = Duration::from_secs(3);
        Client::new(config).unwrap()
    }

    async fn one_node() -> (FakeCoordinator, Client) {
        let fake = FakeCoordinator::new(0);
        let address = serve(&fake).await;
        (fake, client(&[address]))
    }

    #[tokio::test]
    async fn calls_carry_the_transaction_and_commit_applies_its_writes() {
        let (fake, client) = one_node().await;
        let mut txn = client.begin(TxnOptions::default()).await.unwrap();
        assert_eq!((txn.id(), txn.start_ts()), (1, 10));
        assert_eq!(txn.get("k").await.unwrap(), None);
        txn.put("k", "v").await.unwrap();
        txn.put("gone", "x").await.unwrap();
        txn.delete("gone").await.unwrap();
        txn.heartbeat().await.unwrap();
        assert_eq!(txn.commit().await.unwrap(), 11);
        assert_eq!(fake.state().data.get(b"k".as_slice()), Some(&b"v".to_vec()));
        assert!(!fake.state().data.contains_key(b"gone".as_slice()));
        assert!(fake.state().calls.iter().all(|(_, txn_id)| *txn_id == 1));

        let mut txn = client.begin(TxnOptions::default()).await.unwrap();
        assert_eq!(txn.get_for_update("k").await.unwrap(), Some(b"v".to_vec()));
        assert_eq!(txn.get_for_share("k").await.unwrap(), Some(b"v".to_vec()));
        let found = txn.batch_get(vec![b"x".to_vec(), b"k".to_vec()]).await;
        assert_eq!(found.unwrap().len(), 1);
        txn.rollback().await.unwrap();
        assert_eq!(fake.methods().last(), Some(&"rollback"));
    }

    #[tokio::test]
    async fn scan_follows_more_from_just_after_the_last_key() {
        let (fake, client) = one_node().await;
        for key in ["a", "b", "c", "d", "e"] {
            fake.state().data.insert(key.into(), b"v".to_vec());
        }
        let mut txn = client.begin(TxnOptions::default()).await.unwrap();
        let all = txn.scan("", "", 0).await.unwrap();
        let keys: Vec<&[u8]> = all.iter().map(|kv| kv.key.as_slice()).collect();
        assert_eq!(keys, [b"a", b"b", b"c", b"d", b"e"]);
        assert_eq!(
            fake.state().scan_starts,
            [b"".to_vec(), b"b\0".to_vec(), b"d\0".to_vec()]
        );
        let three = txn.scan("b", "", 3).await.unwrap();
        assert_eq!(three.len(), 3);
        assert_eq!(three[0].key, b"b");
        let bounded = txn.scan("a", "c", 0).await.unwrap();
        assert_eq!(bounded.len(), 2);
    }

    #[tokio::test]
    async fn every_call_of_a_transaction_goes_to_the_node_that_began_it() {
        let (first, second) = (FakeCoordinator::new(100), FakeCoordinator::new(200));
        let endpoints = [serve(&first).await, serve(&second).await];
        let client = client(&endpoints);
        for _ in 0..4 {
            let mut txn = client.begin(TxnOptions::default()).await.unwrap();
            txn.get("k").await.unwrap();
            txn.put("k", "v").await.unwrap();
            txn.scan("", "", 0).await.unwrap();
            txn.commit().await.unwrap();
        }
        for (fake, ids) in [(&first, 100..200), (&second, 200..300)] {
            let calls = fake.state().calls.clone();
            // Begin went round the nodes: each began two.
            assert_eq!(calls.iter().filter(|(m, _)| *m == "begin").count(), 2);
            assert!(calls.iter().all(|(_, id)| ids.contains(id)), "{calls:?}");
        }
    }

    #[tokio::test]
    async fn an_aborted_commit_runs_the_transaction_again() {
        let (fake, client) = one_node().await;
        fake.state().fail_commit.push_back(conflict());
        let runs = Arc::new(AtomicU32::new(0));
        let value = client
            .transaction(Isolation::Serializable, |txn| {
                let runs = runs.clone();
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    let before = txn.get("k").await?;
                    txn.put("k", "v").await?;
                    Ok(before)
                })
            })
            .await
            .unwrap();
        assert_eq!(value, None);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(fake.state().data.get(b"k".as_slice()), Some(&b"v".to_vec()));
        // The conflict ended the first transaction: no rollback was needed.
        assert_eq!(
            fake.methods(),
            ["begin", "get", "put", "commit", "begin", "get", "put", "commit"]
        );
    }

    #[tokio::test]
    async fn a_commit_with_an_unknown_outcome_is_not_run_again() {
        let (fake, client) = one_node().await;
        fake.state().fail_commit.push_back(typed(
            Code::DeadlineExceeded,
            Kind::OutcomeUnknown(pb::OutcomeUnknown {}),
        ));
        let runs = Arc::new(AtomicU32::new(0));
        let result = client
            .transaction(Isolation::Snapshot, |txn| {
                let runs = runs.clone();
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    txn.put("k", "v").await
                })
            })
            .await;
        assert!(
            matches!(result, Err(Error::OutcomeUnknown(_))),
            "{result:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(fake.methods(), ["begin", "put", "commit"]);
    }

    #[tokio::test]
    async fn a_final_error_of_the_body_rolls_back_and_is_returned_at_once() {
        let (fake, client) = one_node().await;
        let runs = Arc::new(AtomicU32::new(0));
        let result: Result<()> = client
            .transaction(Isolation::Serializable, |txn| {
                let runs = runs.clone();
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    txn.put("k", "v").await?;
                    Err(Error::InvalidArgument("the application says no".into()))
                })
            })
            .await;
        assert!(matches!(result, Err(Error::InvalidArgument(_))));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(fake.methods(), ["begin", "put", "rollback"]);
        assert!(fake.state().data.is_empty());
    }

    #[tokio::test]
    async fn a_write_whose_reply_was_lost_abandons_the_transaction() {
        let (fake, client) = one_node().await;
        // No kind: the write may have reached the coordinator.
        fake.state()
            .fail_put
            .push_back(Status::unavailable("connection reset"));
        let mut txn = client.begin(TxnOptions::default()).await.unwrap();
        let error = txn.put("k", "v").await.unwrap_err();
        assert!(
            matches!(error, Error::TxnAborted { start_ts: 10, .. }),
            "{error:?}"
        );
        assert!(error.is_retryable_txn_error());
        // Rolled back, and nothing more is sent for it, above all no commit.
        assert_eq!(fake.methods(), ["begin", "put", "rollback"]);
        assert!(matches!(txn.get("k").await, Err(Error::TxnAborted { .. })));
        assert!(matches!(txn.commit().await, Err(Error::TxnAborted { .. })));
        assert_eq!(fake.methods().len(), 3);

        // The closure API runs such a transaction again.
        fake.state()
            .fail_put
            .push_back(Status::unavailable("connection reset"));
        let runs = Arc::new(AtomicU32::new(0));
        client
            .transaction(Isolation::Serializable, |txn| {
                let runs = runs.clone();
                Box::pin(async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    txn.put("k", "v").await
                })
            })
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(fake.state().data.get(b"k".as_slice()), Some(&b"v".to_vec()));
    }

    #[tokio::test]
    async fn refusals_that_applied_nothing_are_sent_again_to_the_coordinator() {
        let (fake, client) = one_node().await;
        fake.state().fail_put.push_back(typed(
            Code::ResourceExhausted,
            Kind::ServerBusy(pb::ServerBusy {}),
        ));
        fake.state().fail_put.push_back(typed(
            Code::Unavailable,
            Kind::KeyLocked(pb::KeyLocked { lock: None }),
        ));
        let mut txn = client.begin(TxnOptions::default()).await.unwrap();
        txn.put("k", "v").await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(fake.methods(), ["begin", "put", "put", "put", "commit"]);
    }

    /// Applications run transactions on spawned tasks.
    #[tokio::test]
    async fn the_closure_api_runs_on_any_task() {
        let (fake, client) = one_node().await;
        let task = tokio::spawn(async move {
            client
                .transaction(Isolation::Serializable, |txn| {
                    Box::pin(async move {
                        txn.put("k", "v").await?;
                        txn.get("k").await
                    })
                })
                .await
        });
        task.await.unwrap().unwrap();
        assert_eq!(fake.methods(), ["begin", "put", "get", "commit"]);
    }

    #[tokio::test]
    async fn a_dropped_transaction_is_rolled_back() {
        let (fake, client) = one_node().await;
        let txn = client.begin(TxnOptions::default()).await.unwrap();
        drop(txn);
        for _ in 0..100 {
            if fake.methods().last() == Some(&"rollback") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no rollback: {:?}", fake.methods());
    }

    #[tokio::test]
    async fn atomic_retries_aborts_and_refusals_but_not_final_errors() {
        let (fake, client) = one_node().await;
        fake.state().fail_atomic.push_back(typed(
            Code::Unavailable,
            Kind::NotApplied(pb::NotApplied {}),
        ));
        fake.state().fail_atomic.push_back(conflict());
        let put = Mutation::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ttl_seconds: 0,
        };
        let outcome = client
            .atomic(vec![Compare::absent("k")], vec![put.clone()], vec![])
            .await
            .unwrap();
        assert_eq!(outcome, (true, 77));
        assert_eq!(fake.methods(), ["atomic", "atomic", "atomic"]);
        let outcome = client
            .atomic(vec![Compare::absent("k")], vec![put.clone()], vec![])
            .await
            .unwrap();
        assert!(!outcome.0);

        fake.state()
            .fail_atomic
            .push_back(Status::invalid_argument("too many mutations"));
        let result = client.atomic(vec![], vec![put.clone()], vec![]).await;
        assert!(matches!(result, Err(Error::InvalidArgument(_))));
        fake.state().fail_atomic.push_back(typed(
            Code::DeadlineExceeded,
            Kind::OutcomeUnknown(pb::OutcomeUnknown {}),
        ));
        let result = client.atomic(vec![], vec![put], vec![]).await;
        assert!(matches!(result, Err(Error::OutcomeUnknown(_))));
    }
}
