//! Deleting every key of a span (FLUSHDB, `zdbctl clear PREFIX`): one
//! replicated command per range, each atomic on its range; a span over
//! several ranges is cleared range by range in key order.

use std::time::Instant;

use zdb_proto::v1::*;

use super::reads::{header_of, range_moved};
use super::{routed, validate, CallContext, Ops};
use crate::apply::Outcome;
use crate::error::{Error, Result};
use crate::store::msg::Target;

impl Ops {
    pub async fn delete_range(
        &self,
        req: DeleteRangeRequest,
        ctx: &mut CallContext,
    ) -> Result<DeleteRangeResponse> {
        self.admit()?;
        validate::scan(&self.limits, &req.start_key, &req.end_key, 0)?;
        let err = match self.delete_range_here(&req).await {
            Ok(deleted) => return Ok(deleted),
            Err(err) => err,
        };
        if !routed(&req.header)
            && matches!(err, Error::KeyNotInRange { .. } | Error::RangeNotFound(_))
        {
            return Box::pin(self.delete_range_across(req, ctx)).await;
        }
        let to = self
            .forward_to(err, routed(&req.header), &req.start_key, ctx)
            .await?;
        self.remote
            .delete_range(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    async fn delete_range_here(&self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let target = Target {
            header: req.header,
            keys: vec![req.start_key.clone()],
            span_end: Some(req.end_key.clone()),
        };
        let kind = command::Kind::DeleteRange(DeleteRangeCommand {
            start_key: req.start_key.clone(),
            end_key: req.end_key.clone(),
        });
        match self.write_span(target, kind).await? {
            Outcome::Deleted(deleted) => Ok(DeleteRangeResponse { deleted }),
            other => Err(Error::Transport(format!(
                "delete-range applied as {other:?}"
            ))),
        }
    }

    async fn delete_range_across(
        &self,
        req: DeleteRangeRequest,
        ctx: &mut CallContext,
    ) -> Result<DeleteRangeResponse> {
        let deadline = Instant::now() + self.timeout;
        let mut deleted = 0;
        let mut lower = req.start_key.clone();
        loop {
            let ranges = self.ranges_covering(&lower, &req.end_key, ctx).await?;
            let Some(range) = ranges.first() else {
                return Ok(DeleteRangeResponse { deleted });
            };
            let (start, end) = crate::range::descriptor::clip(range, &lower, &req.end_key);
            let share = DeleteRangeRequest {
                header: header_of(range),
                start_key: start,
                end_key: end.clone(),
            };
            match Box::pin(self.delete_range(share, &mut ctx.share())).await {
                Ok(done) => deleted += done.deleted,
                Err(err) if range_moved(&err) && Instant::now() < deadline => continue,
                Err(err) => return Err(err),
            }
            if end.is_empty() || (!req.end_key.is_empty() && end >= req.end_key) {
                return Ok(DeleteRangeResponse { deleted });
            }
            lower = end;
        }
    }
}
