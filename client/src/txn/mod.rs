//! Transactions over `zdb.v1.Txn`. The node that answers Begin coordinates
//! the transaction (it buffers the writes, takes the locks, runs the
//! two-phase commit and keeps the locks alive), so the client has no commit
//! protocol of its own: it sends every call of a transaction to that one
//! node, and runs a whole transaction again when it was aborted
//! ([`Client::transaction`]). Single calls are never retried where a retry
//! could change what the transaction does.
//!
//! - [`options`]: isolation levels, timings, the conditions of `atomic`;
//! - [`transaction`]: one transaction on its coordinator.

mod options;
mod transaction;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use crate::transport::Transport;
use zdb_proto::v1 as pb;
use zdb_proto::v1::txn_client::TxnClient;

pub use options::{Compare, Isolation, TxnOptions};
pub use transaction::Transaction;

use crate::client::{timed, to_proto_mutation, Client, Mutation, MAX_ATTEMPT};
use crate::error::{Error, Result};
use crate::retry::{backoff, classify, Next};

/// What a transaction body passed to [`Client::transaction`] returns: its
/// future, boxed, so that it may borrow the transaction it is given.
/// Write the body as `|txn| Box::pin(async move { ... })`.
pub type TxnFuture<'t, T> = Pin<Box<dyn Future<Output = T> + Send + 't>>;

impl Client {
    fn txn_rpc(&self, endpoint: &str) -> Result<TxnClient<Transport>> {
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
                        pending: Default::default(),
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
mod tests;
