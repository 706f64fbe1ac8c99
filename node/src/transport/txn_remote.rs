//! Calls on another node's per-range transaction protocol (`TxnRange`):
//! what a coordinator sends to the ranges its transaction touches when this
//! node does not lead them. Typed transaction errors come back as the local
//! variants, so the coordinator decides on them alike wherever they arose.

use std::future::Future;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::Status;
use zdb_proto::v1::error::Kind;
use zdb_proto::v1::txn_range_client::TxnRangeClient;
use zdb_proto::v1::*;

use super::remote::{from_status, Remote};
use crate::error::{Error, Result};

/// A remote node's typed transaction error as the local variant.
pub fn localized(err: Error) -> Error {
    match err.remote_kind() {
        Some(Kind::KeyLocked(KeyLocked { lock: Some(lock) })) => Error::KeyLocked(Box::new(lock)),
        Some(Kind::WriteConflict(conflict)) => Error::WriteConflict {
            key: conflict.key,
            start_ts: conflict.start_ts,
            conflict_ts: conflict.conflict_ts,
        },
        Some(Kind::SerializationFailure(failure)) => Error::SerializationFailure {
            key: failure.key,
            start_ts: failure.start_ts,
        },
        Some(Kind::TxnAborted(aborted)) => Error::TxnAborted {
            start_ts: aborted.start_ts,
            reason: aborted.reason,
        },
        Some(Kind::LockWaitTimeout(timeout)) => Error::LockWaitTimeout {
            key: timeout.key,
            holder: timeout.holder,
        },
        Some(Kind::Deadlock(deadlock)) => Error::Deadlock {
            cycle: deadlock.cycle,
            key: deadlock.key,
        },
        _ => err,
    }
}

impl Remote {
    async fn txn_range<Req, Resp, F, Fut>(
        &self,
        address: &str,
        hops: u32,
        timeout: Duration,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        F: FnOnce(TxnRangeClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, Status>>,
    {
        let client = TxnRangeClient::new(self.dialer.channel(address)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        call(client, Self::request(message, hops, timeout))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| localized(from_status(address, status)))
    }

    pub async fn prewrite(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: PrewriteRequest,
    ) -> Result<PrewriteResponse> {
        self.txn_range(to, hops, timeout, req, |mut c, r| async move {
            c.prewrite(r).await
        })
        .await
    }

    pub async fn acquire_locks(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: AcquireLocksRequest,
    ) -> Result<AcquireLocksResponse> {
        self.txn_range(to, hops, timeout, req, |mut c, r| async move {
            c.acquire_locks(r).await
        })
        .await
    }

    pub async fn commit_keys(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: CommitKeysRequest,
    ) -> Result<CommitKeysResponse> {
        self.txn_range(to, hops, timeout, req, |mut c, r| async move {
            c.commit_keys(r).await
        })
        .await
    }

    pub async fn rollback_keys(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: RollbackKeysRequest,
    ) -> Result<RollbackKeysResponse> {
        self.txn_range(to, hops, timeout, req, |mut c, r| async move {
            c.rollback_keys(r).await
        })
        .await
    }

    pub async fn check_status(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: CheckStatusRequest,
    ) -> Result<CheckStatusResponse> {
        self.txn_range(to, hops, timeout, req, |mut c, r| async move {
            c.check_status(r).await
        })
        .await
    }

    pub async fn keep_alive(
        &self,
        to: &str,
        hops: u32,
        timeout: Duration,
        req: KeepAliveRequest,
    ) -> Result<KeepAliveResponse> {
        self.txn_range(to, hops, timeout, req, |mut c, r| async move {
            c.keep_alive(r).await
        })
        .await
    }

    pub async fn wait_for(
        &self,
        to: &str,
        timeout: Duration,
        req: WaitForRequest,
    ) -> Result<WaitForResponse> {
        self.txn_range(to, 1, timeout, req, |mut c, r| async move {
            c.wait_for(r).await
        })
        .await
    }
}
