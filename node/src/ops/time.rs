//! Time in the operations: timestamps from the oracle (`Now`), checks on
//! the timestamp a read names, and the GC settings.

use zdb_proto::timestamp::physical_ms;
use zdb_proto::v1::{GcStatusResponse, NowRequest, NowResponse};

use super::{routed, CallContext, Ops};
use crate::clock::wall_ms;
use crate::error::{Error, Result};
use crate::meta::META_RANGE_ID;
use crate::mvcc::LATEST;

/// The timestamp a read sees the versions at, and the wall-clock time its
/// expiry checks use: a read at a timestamp judges a time to live by that
/// timestamp's own time, so it sees the same whenever it runs.
pub(super) struct ReadAt {
    pub ts: u64,
    pub now_ms: u64,
}

impl ReadAt {
    /// For a request's `read_ts` (0: the latest state, now).
    pub fn of(read_ts: u64) -> Self {
        match read_ts {
            0 => ReadAt {
                ts: LATEST,
                now_ms: wall_ms(),
            },
            ts => ReadAt {
                ts,
                now_ms: physical_ms(ts),
            },
        }
    }
}

/// Most timestamps one Now call takes.
const MAX_NOW_COUNT: u32 = 10_000;

impl Ops {
    pub async fn now(&self, req: NowRequest, ctx: &mut CallContext) -> Result<NowResponse> {
        self.admit()?;
        let count = req.count.max(1);
        if count > MAX_NOW_COUNT {
            return Err(Error::InvalidArgument(format!(
                "count {count} is over the limit of {MAX_NOW_COUNT} timestamps per call"
            )));
        }
        let here = routed(&req.header) || ctx.hops > 0;
        if here && req.header.is_some_and(|h| h.range_id != META_RANGE_ID) {
            return Err(Error::InvalidArgument(
                "Now is served by the meta range (range 1); send no header, or name range 1".into(),
            ));
        }
        let timestamp = if here {
            let first = self.meta.timestamps_here(count).await?;
            self.horizon.observe_oracle(first + u64::from(count) - 1);
            first
        } else {
            self.timestamps.take(count).await?
        };
        Ok(NowResponse { timestamp, count })
    }

    /// A read may name a timestamp the oracle handed out already; one above
    /// could see writes that commit later below it.
    pub(super) async fn check_read_ts(&self, read_ts: u64) -> Result<()> {
        if read_ts == 0 || read_ts <= self.horizon.oracle_seen() {
            return Ok(());
        }
        let now = self.timestamps.now().await?;
        if read_ts > now {
            return Err(Error::InvalidArgument(format!(
                "read timestamp {read_ts} is ahead of the oracle's time {now}; \
                 take read timestamps from Now"
            )));
        }
        Ok(())
    }

    /// Checked once the snapshot to read is taken: versions collected after
    /// that are still in it, and collection never passes the safe point
    /// this node knows.
    pub(super) fn check_safe_point(&self, read_ts: u64) -> Result<()> {
        let safe_point = self.horizon.safe_point();
        if read_ts != 0 && read_ts < safe_point {
            return Err(Error::TimestampTooOld {
                read_ts,
                safe_point,
            });
        }
        Ok(())
    }

    /// The GC settings from the meta range and what this node collected.
    pub async fn gc_status(&self, ctx: &CallContext) -> Result<GcStatusResponse> {
        let (safe_point, life_time_ms) = self.meta_for(ctx).gc_settings().await?;
        Ok(GcStatusResponse {
            safe_point,
            life_time_ms,
            versions_collected: self.horizon.collected(),
            oracle_seen: self.horizon.oracle_seen(),
        })
    }

    pub async fn set_gc_life_time(&self, life_time_ms: u64, ctx: &CallContext) -> Result<()> {
        const MIN_MS: u64 = 1_000;
        if life_time_ms < MIN_MS {
            return Err(Error::InvalidArgument(format!(
                "a GC life time of {life_time_ms} ms is too short: at least {MIN_MS} ms"
            )));
        }
        self.meta_for(ctx).set_gc_life_time(life_time_ms).await
    }
}
