//! Calls over a whole span or a list of keys that any node coordinates
//! (it splits them by range): Exists, Count, DeleteRange. Each may be sent
//! again after any failure: reads change nothing, and clearing a span
//! twice clears it once.

use std::future::Future;

use tonic::{Response, Status};
use zdb_proto::v1::kv_client::KvClient;
use zdb_proto::v1::{self as pb};

use crate::client::{timed, Client, MAX_ATTEMPT};
use crate::error::{Error, Result};
use crate::retry::{classify, Next};
use crate::transport::Transport;

impl Client {
    /// How many of `keys` exist (a key named twice counts twice).
    pub async fn exists(&self, keys: Vec<Vec<u8>>) -> Result<u64> {
        let request = pb::ExistsRequest {
            keys,
            ..Default::default()
        };
        let response = self
            .at_any_node(
                "exists",
                request,
                |mut kv, r| async move { kv.exists(r).await },
            )
            .await?;
        Ok(response.count)
    }

    /// The exact number of keys in `[start, end)` (an empty end: no bound).
    pub async fn count(&self, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Result<u64> {
        let request = pb::CountRequest {
            start_key: start.into(),
            end_key: end.into(),
            ..Default::default()
        };
        let response = self
            .at_any_node(
                "count",
                request,
                |mut kv, r| async move { kv.count(r).await },
            )
            .await?;
        Ok(response.count)
    }

    /// Deletes every key in `[start, end)`; how many there were. Atomic
    /// within each range, not across ranges.
    pub async fn delete_range(
        &self,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
    ) -> Result<u64> {
        let request = pb::DeleteRangeRequest {
            start_key: start.into(),
            end_key: end.into(),
            ..Default::default()
        };
        let response = self
            .at_any_node("delete-range", request, |mut kv, r| async move {
                kv.delete_range(r).await
            })
            .await?;
        Ok(response.deleted)
    }

    /// Sends `request` to a node until one answers, retrying every
    /// failure that is not final (the calls here are all safe to repeat).
    async fn at_any_node<Req, Resp, F, Fut>(
        &self,
        what: &str,
        request: Req,
        call: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(KvClient<Transport>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<Resp>, Status>>,
    {
        let mut attempts = self.attempts();
        loop {
            let remaining = attempts.remaining()?;
            let endpoint = self.any_endpoint();
            attempts.count += 1;
            let timed_request = timed(request.clone(), remaining.min(MAX_ATTEMPT * 4));
            match call(self.kv(&endpoint)?, timed_request).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => {
                    attempts.last = format!(
                        "{endpoint}: {what}: {}: {}",
                        status.code(),
                        status.message()
                    );
                    if classify(&status) == Next::Fail {
                        return Err(Error::from_final_status(status));
                    }
                    attempts.back_off().await;
                }
            }
        }
    }
}
