//! Counting keys: how many of a list exist (Exists) and how many live keys
//! a span holds (Count), without sending their values anywhere. A count
//! over several ranges reads each at one timestamp, like a scan.

use std::time::Instant;

use zdb_proto::v1::*;

use super::kv::local_only;
use super::reads::{header_of, range_moved};
use super::time::ReadAt;
use super::txn::LockedRetries;
use super::{routed, validate, CallContext, Ops};
use crate::error::{Error, Result};
use crate::mvcc::Versions;
use crate::txn::blocking_scan_lock;

impl Ops {
    /// How many of the keys exist, duplicates counted as often as named.
    pub async fn exists(
        &self,
        req: ExistsRequest,
        ctx: &mut CallContext,
    ) -> Result<ExistsResponse> {
        let mut distinct = req.keys.clone();
        distinct.sort();
        distinct.dedup();
        let read = BatchGetRequest {
            header: req.header,
            keys: distinct,
            consistency: req.consistency,
            read_ts: 0,
        };
        let found: std::collections::HashSet<Vec<u8>> = self
            .batch_get(read, ctx)
            .await?
            .pairs
            .into_iter()
            .map(|pair| pair.key)
            .collect();
        let count = req.keys.iter().filter(|key| found.contains(*key)).count();
        Ok(ExistsResponse {
            count: count as u64,
        })
    }

    pub async fn count(&self, req: CountRequest, ctx: &mut CallContext) -> Result<CountResponse> {
        self.admit()?;
        validate::scan(&self.limits, &req.start_key, &req.end_key, 0)?;
        let err = match self.count_here(&req).await {
            Ok(counted) => return Ok(counted),
            Err(err) if local_only(req.consistency) => return Err(err),
            Err(err) => err,
        };
        if !routed(&req.header)
            && matches!(err, Error::KeyNotInRange { .. } | Error::RangeNotFound(_))
        {
            return Box::pin(self.count_across(req, ctx)).await;
        }
        let to = self
            .forward_to(err, routed(&req.header), &req.start_key, ctx)
            .await?;
        self.remote
            .count(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    async fn count_here(&self, req: &CountRequest) -> Result<CountResponse> {
        let mut retries = LockedRetries::new(self.timeout);
        loop {
            match self.count_once(req, &retries.bypass).await {
                Err(Error::KeyLocked(lock)) => {
                    self.settle_for_read(*lock, req.read_ts, &mut retries)
                        .await?
                }
                counted => return counted,
            }
        }
    }

    async fn count_once(&self, req: &CountRequest, bypass: &[u64]) -> Result<CountResponse> {
        self.check_read_ts(req.read_ts).await?;
        self.read_barrier(
            req.header,
            vec![req.start_key.clone()],
            Some(req.end_key.clone()),
            req.consistency,
            req.read_ts,
        )
        .await?;
        let at = ReadAt::of(req.read_ts);
        let snapshot = self.engine.snapshot();
        self.check_safe_point(req.read_ts)?;
        let span = (req.start_key.as_slice(), req.end_key.as_slice());
        if let Some(lock) = blocking_scan_lock(&snapshot, span, at.ts, bypass)? {
            return Err(Error::KeyLocked(Box::new(lock)));
        }
        let mut counted = CountResponse::default();
        Versions::new(&snapshot).scan(span, at.ts, false, at.now_ms, |key, value| {
            counted.count += 1;
            counted.bytes += (key.len() + value.len()) as u64;
            Ok(true)
        })?;
        Ok(counted)
    }

    /// Range by range in key order, all at one timestamp.
    async fn count_across(
        &self,
        req: CountRequest,
        ctx: &mut CallContext,
    ) -> Result<CountResponse> {
        let read_ts = match req.read_ts {
            0 => self.timestamps.now().await?,
            ts => ts,
        };
        let deadline = Instant::now() + self.timeout;
        let mut total = CountResponse::default();
        let mut lower = req.start_key.clone();
        loop {
            let ranges = self.ranges_covering(&lower, &req.end_key, ctx).await?;
            let Some(range) = ranges.first() else {
                return Ok(total);
            };
            let (start, end) = crate::range::descriptor::clip(range, &lower, &req.end_key);
            let share = CountRequest {
                header: header_of(range),
                start_key: start,
                end_key: end.clone(),
                consistency: req.consistency,
                read_ts,
            };
            match Box::pin(self.count(share, &mut ctx.share())).await {
                Ok(counted) => {
                    total.count += counted.count;
                    total.bytes += counted.bytes;
                }
                Err(err) if range_moved(&err) && Instant::now() < deadline => continue,
                Err(err) => return Err(err),
            }
            let last_range = end.is_empty() || (!req.end_key.is_empty() && end >= req.end_key);
            if last_range {
                return Ok(total);
            }
            lower = end;
        }
    }
}
