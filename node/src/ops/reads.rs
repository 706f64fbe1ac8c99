//! Scans and multi-key reads. Each range's share is read from one RocksDB
//! snapshot taken after the read barrier, so it never sees half of an
//! atomic batch the store wrote meanwhile. For a client that does not route
//! itself, a request spanning several ranges is split here by range (each
//! share served where its range is led) and the answers joined; every share
//! reads at one timestamp (the request's, or one from the oracle), so the
//! whole is one snapshot.

use std::time::Instant;

use zdb_proto::v1::*;

use super::kv::local_only;
use super::time::ReadAt;
use super::txn::LockedRetries;
use super::{routed, validate, CallContext, Ops};
use crate::error::{Error, Result};
use crate::meta::client::MAX_LOCATE;
use crate::mvcc::Versions;
use crate::txn::{blocking_scan_lock, unlocked_for_read};

pub(super) fn header_of(range: &RangeDescriptor) -> Option<RequestHeader> {
    Some(RequestHeader {
        range_id: range.range_id,
        epoch: range.epoch,
    })
}

/// A range changed or moved its leader while a request spanning ranges
/// ran: locate again.
pub(super) fn range_moved(err: &Error) -> bool {
    use zdb_proto::v1::error::Kind;
    matches!(
        err,
        Error::EpochNotMatch { .. }
            | Error::KeyNotInRange { .. }
            | Error::RangeNotFound(_)
            | Error::NotLeader { .. }
    ) || matches!(
        err.remote_kind(),
        Some(
            Kind::EpochNotMatch(_)
                | Kind::KeyNotInRange(_)
                | Kind::RangeNotFound(_)
                | Kind::NotLeader(_)
        )
    )
}

impl Ops {
    pub async fn scan(&self, req: ScanRequest, ctx: &mut CallContext) -> Result<ScanResponse> {
        self.admit()?;
        validate::scan(&self.limits, &req.start_key, &req.end_key, req.limit)?;
        let err = match self.scan_here(&req).await {
            Ok(page) => return Ok(page),
            Err(err) if local_only(req.consistency) => return Err(err),
            Err(err) => err,
        };
        if !routed(&req.header)
            && matches!(err, Error::KeyNotInRange { .. } | Error::RangeNotFound(_))
        {
            return Box::pin(self.scan_across(req, ctx)).await;
        }
        let to = self
            .forward_to(err, routed(&req.header), &req.start_key, ctx)
            .await?;
        self.remote
            .scan(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    /// Scans here, settling the transactions' locks the span holds.
    async fn scan_here(&self, req: &ScanRequest) -> Result<ScanResponse> {
        let mut retries = LockedRetries::new(self.timeout);
        loop {
            match self.scan_once(req, &retries.bypass).await {
                Err(Error::KeyLocked(lock)) => {
                    self.settle_for_read(*lock, req.read_ts, &mut retries)
                        .await?
                }
                page => return page,
            }
        }
    }

    async fn scan_once(&self, req: &ScanRequest, bypass: &[u64]) -> Result<ScanResponse> {
        self.check_read_ts(req.read_ts).await?;
        self.read_barrier(
            req.header,
            vec![req.start_key.clone()],
            Some(req.end_key.clone()),
            req.consistency,
            req.read_ts,
        )
        .await?;
        let limit = match req.limit {
            0 => self.limits.max_scan_limit,
            limit => limit,
        } as usize;
        let at = ReadAt::of(req.read_ts);
        let mut page = ScanResponse {
            read_ts: req.read_ts,
            ..ScanResponse::default()
        };
        let snapshot = self.engine.snapshot();
        self.check_safe_point(req.read_ts)?;
        let span = (req.start_key.as_slice(), req.end_key.as_slice());
        if let Some(lock) = blocking_scan_lock(&snapshot, span, at.ts, bypass)? {
            return Err(Error::KeyLocked(Box::new(lock)));
        }
        Versions::new(&snapshot).scan(
            (&req.start_key, &req.end_key),
            at.ts,
            req.reverse,
            at.now_ms,
            |key, value| {
                if page.pairs.len() == limit {
                    page.more = true;
                    return Ok(false);
                }
                page.pairs.push(KeyValue { key, value });
                Ok(true)
            },
        )?;
        Ok(page)
    }

    /// A scan over several ranges, range by range in key order (or reverse
    /// order), until the limit is reached, all at one timestamp.
    async fn scan_across(&self, req: ScanRequest, ctx: &mut CallContext) -> Result<ScanResponse> {
        let read_ts = match req.read_ts {
            0 => self.timestamps.now().await?,
            ts => ts,
        };
        let limit = match req.limit {
            0 => self.limits.max_scan_limit,
            limit => limit,
        } as usize;
        let deadline = Instant::now() + self.timeout;
        let mut pairs: Vec<KeyValue> = Vec::new();
        // What is left to read: [lower, upper).
        let (mut lower, mut upper) = (req.start_key.clone(), req.end_key.clone());
        loop {
            let ranges = self.ranges_covering(&lower, &upper, ctx).await?;
            let Some(range) = (if req.reverse {
                ranges.last()
            } else {
                ranges.first()
            }) else {
                return Ok(ScanResponse {
                    pairs,
                    more: false,
                    read_ts,
                });
            };
            let start = lower.clone().max(range.start_key.clone());
            let end = match (upper.is_empty(), range.end_key.is_empty()) {
                (true, _) => range.end_key.clone(),
                (false, true) => upper.clone(),
                (false, false) => upper.clone().min(range.end_key.clone()),
            };
            let share = ScanRequest {
                header: header_of(range),
                start_key: start.clone(),
                end_key: end.clone(),
                limit: (limit - pairs.len()) as u32,
                reverse: req.reverse,
                consistency: req.consistency,
                read_ts,
            };
            let page = match Box::pin(self.scan(share, &mut ctx.share())).await {
                Ok(page) => page,
                Err(err) if range_moved(&err) && Instant::now() < deadline => continue,
                Err(err) => return Err(err),
            };
            let more_here = page.more;
            pairs.extend(page.pairs);
            let last_range = if req.reverse {
                range.start_key.is_empty() || range.start_key <= lower
            } else {
                end.is_empty() || (!upper.is_empty() && end >= upper)
            };
            if pairs.len() >= limit {
                pairs.truncate(limit);
                return Ok(ScanResponse {
                    pairs,
                    more: more_here || !last_range,
                    read_ts,
                });
            }
            if last_range {
                return Ok(ScanResponse {
                    pairs,
                    more: false,
                    read_ts,
                });
            }
            if req.reverse {
                upper = range.start_key.clone();
            } else {
                lower = end;
            }
        }
    }

    /// The ranges of the routing table covering `[start, end)`, in order.
    pub(super) async fn ranges_covering(
        &self,
        start: &[u8],
        end: &[u8],
        ctx: &CallContext,
    ) -> Result<Vec<RangeDescriptor>> {
        let located = self.meta_for(ctx).locate(start, MAX_LOCATE).await?;
        Ok(located
            .ranges
            .into_iter()
            .filter_map(|location| location.range)
            .take_while(|range| end.is_empty() || range.start_key.as_slice() < end)
            .collect())
    }

    pub async fn batch_get(
        &self,
        req: BatchGetRequest,
        ctx: &mut CallContext,
    ) -> Result<BatchGetResponse> {
        self.admit()?;
        validate::batch_len(&self.limits, "key list", req.keys.len())?;
        for key in &req.keys {
            validate::key(&self.limits, key)?;
        }
        let err = match self.batch_get_here(&req).await {
            Ok(response) => {
                for key in &req.keys {
                    self.cache.touch(key);
                }
                return Ok(response);
            }
            Err(err) if local_only(req.consistency) => return Err(err),
            Err(err) => err,
        };
        if !routed(&req.header)
            && matches!(err, Error::KeyNotInRange { .. } | Error::RangeNotFound(_))
        {
            return Box::pin(self.batch_get_across(req, ctx)).await;
        }
        let to = self
            .forward_to(err, routed(&req.header), &req.keys[0], ctx)
            .await?;
        self.remote
            .batch_get(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    /// Reads the keys here, settling the transactions' locks they hold.
    async fn batch_get_here(&self, req: &BatchGetRequest) -> Result<BatchGetResponse> {
        let mut retries = LockedRetries::new(self.timeout);
        loop {
            match self.batch_get_once(req, &retries.bypass).await {
                Err(Error::KeyLocked(lock)) => {
                    self.settle_for_read(*lock, req.read_ts, &mut retries)
                        .await?
                }
                read => return read,
            }
        }
    }

    async fn batch_get_once(
        &self,
        req: &BatchGetRequest,
        bypass: &[u64],
    ) -> Result<BatchGetResponse> {
        self.check_read_ts(req.read_ts).await?;
        self.read_barrier(
            req.header,
            req.keys.clone(),
            None,
            req.consistency,
            req.read_ts,
        )
        .await?;
        let at = ReadAt::of(req.read_ts);
        let snapshot = self.engine.snapshot();
        self.check_safe_point(req.read_ts)?;
        for key in &req.keys {
            unlocked_for_read(&snapshot, key, at.ts, bypass)?;
        }
        let versions = Versions::new(&snapshot);
        let mut pairs = Vec::new();
        for key in &req.keys {
            if let Some(value) = versions.get(key, at.ts, at.now_ms)? {
                pairs.push(KeyValue {
                    key: key.clone(),
                    value,
                });
            }
        }
        Ok(BatchGetResponse {
            pairs,
            read_ts: req.read_ts,
        })
    }

    /// Keys of several ranges: one read per range, all at one timestamp,
    /// answers in request order.
    async fn batch_get_across(
        &self,
        req: BatchGetRequest,
        ctx: &mut CallContext,
    ) -> Result<BatchGetResponse> {
        let read_ts = match req.read_ts {
            0 => self.timestamps.now().await?,
            ts => ts,
        };
        let deadline = Instant::now() + self.timeout;
        let mut found = std::collections::HashMap::new();
        let mut pending: Vec<Vec<u8>> = req.keys.clone();
        while !pending.is_empty() {
            let lowest = pending.iter().min().cloned().unwrap_or_default();
            let ranges = self.ranges_covering(&lowest, &[], ctx).await?;
            let mut unrouted = Vec::new();
            let mut groups: Vec<(RangeDescriptor, Vec<Vec<u8>>)> = Vec::new();
            for key in std::mem::take(&mut pending) {
                let Some(range) = ranges
                    .iter()
                    .find(|range| crate::range::descriptor::contains(range, &key))
                else {
                    unrouted.push(key);
                    continue;
                };
                match groups
                    .iter_mut()
                    .find(|(r, _)| r.range_id == range.range_id)
                {
                    Some((_, keys)) => keys.push(key),
                    None => groups.push((range.clone(), vec![key])),
                }
            }
            for (range, keys) in groups {
                let share = BatchGetRequest {
                    header: header_of(&range),
                    keys: keys.clone(),
                    consistency: req.consistency,
                    read_ts,
                };
                match Box::pin(self.batch_get(share, &mut ctx.share())).await {
                    Ok(response) => {
                        found.extend(response.pairs.into_iter().map(|kv| (kv.key, kv.value)))
                    }
                    Err(err) if range_moved(&err) && Instant::now() < deadline => {
                        pending.extend(keys)
                    }
                    Err(err) => return Err(err),
                }
            }
            pending.extend(unrouted);
            if !pending.is_empty() && Instant::now() >= deadline {
                return Err(Error::Timeout("the ranges of the keys kept moving"));
            }
        }
        let pairs = req
            .keys
            .into_iter()
            .filter_map(|key| {
                found
                    .get(&key)
                    .cloned()
                    .map(|value| KeyValue { key, value })
            })
            .collect();
        Ok(BatchGetResponse { pairs, read_ts })
    }
}
