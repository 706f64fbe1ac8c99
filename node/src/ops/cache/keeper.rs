//! Keeping each cache prefix within its budget. Every node refreshes its
//! copy of the policies; the node leading the meta range (one node at a
//! time) measures every prefix range by range and asks each range over
//! its share to evict, or marks the prefix full when nothing may go.

use std::time::Duration;

use tokio::sync::watch;
use zdb_proto::v1::*;

use super::super::reads::{header_of, range_moved};
use super::super::{CallContext, Ops};
use crate::error::Result;
use crate::meta::table::META_RANGE_ID;
use crate::range::descriptor;

/// How often usage is measured and the policies read.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// One range's part of a prefix, and how much it holds.
struct Share {
    range: RangeDescriptor,
    span: (Vec<u8>, Vec<u8>),
    bytes: u64,
}

impl Ops {
    pub async fn keep_cache(self, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(err) = self.check_cache().await {
                tracing::debug!(error = %err, "cache check did not finish");
            }
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }

    async fn check_cache(&self) -> Result<()> {
        let settings = self.meta.cache_settings().await?;
        self.cache.install(settings.clone());
        if settings.policies.is_empty() || self.store.leader_term(META_RANGE_ID).await.is_err() {
            return Ok(());
        }
        for policy in settings
            .policies
            .iter()
            .filter(|policy| policy.max_bytes > 0)
        {
            self.keep_within_budget(policy).await?;
        }
        Ok(())
    }

    async fn keep_within_budget(&self, policy: &CachePolicy) -> Result<()> {
        let shares = self.measure(&policy.prefix).await?;
        let used: u64 = shares.iter().map(|share| share.bytes).sum();
        let mut full = used > policy.max_bytes;
        let evicts = policy.policy != EvictionPolicy::Noeviction as i32;
        if full && evicts {
            let excess = used - policy.max_bytes;
            let mut freed = 0;
            for share in shares.iter().filter(|share| share.bytes > 0) {
                // Each range frees its part of the excess, rounded up.
                let part = (excess as u128 * share.bytes as u128).div_ceil(used as u128) as u64;
                let request = EvictRangeRequest {
                    header: header_of(&share.range),
                    start_key: share.span.0.clone(),
                    end_key: share.span.1.clone(),
                    bytes: part,
                    policy: policy.policy,
                };
                match self
                    .evict_range(request, &mut CallContext::new(0, None).share())
                    .await
                {
                    Ok(evicted) => freed += evicted.bytes,
                    Err(err) if range_moved(&err) => return Ok(()),
                    Err(err) => return Err(err),
                }
            }
            // volatile-ttl without keys that expire frees nothing.
            full = freed < excess;
        }
        if full != policy.full {
            let mut marked = policy.clone();
            marked.full = full;
            self.meta
                .set_cache_policy(SetCachePolicyCommand {
                    policy: Some(marked),
                    remove: false,
                })
                .await?;
        }
        Ok(())
    }

    /// The prefix's bytes range by range, counted where each range is led.
    async fn measure(&self, prefix: &[u8]) -> Result<Vec<Share>> {
        let end = descriptor::prefix_end(prefix);
        let ctx = CallContext::new(0, None);
        let mut shares: Vec<Share> = Vec::new();
        let mut lower = prefix.to_vec();
        loop {
            let ranges = self.ranges_covering(&lower, &end, &ctx).await?;
            let Some(range) = ranges.first() else {
                return Ok(shares);
            };
            let span = descriptor::clip(range, &lower, &end);
            let count = CountRequest {
                header: header_of(range),
                start_key: span.0.clone(),
                end_key: span.1.clone(),
                ..Default::default()
            };
            let counted = Box::pin(self.count(count, &mut ctx.share())).await?;
            let next = span.1.clone();
            shares.push(Share {
                range: range.clone(),
                span,
                bytes: counted.bytes,
            });
            if next.is_empty() || (!end.is_empty() && next >= end) {
                return Ok(shares);
            }
            lower = next;
        }
    }

    /// The policies and, for each, the bytes and keys its prefix holds now.
    pub async fn cache_status(&self) -> Result<CacheStatusResponse> {
        let settings = self.meta.cache_settings().await?;
        let mut usage = Vec::with_capacity(settings.policies.len());
        for policy in &settings.policies {
            let count = CountRequest {
                start_key: policy.prefix.clone(),
                end_key: descriptor::prefix_end(&policy.prefix),
                ..Default::default()
            };
            let counted = self.count(count, &mut CallContext::new(0, None)).await?;
            usage.push(CacheUsage {
                prefix: policy.prefix.clone(),
                bytes: counted.bytes,
                keys: counted.count,
            });
        }
        Ok(CacheStatusResponse {
            policies: settings.policies,
            usage,
        })
    }

    pub async fn set_cache_policy(
        &self,
        req: SetCachePolicyRequest,
        ctx: &CallContext,
    ) -> Result<()> {
        let Some(mut policy) = req.policy else {
            return Err(crate::error::Error::InvalidArgument(
                "the request names no policy".into(),
            ));
        };
        EvictionPolicy::try_from(policy.policy).map_err(|_| {
            crate::error::Error::InvalidArgument(format!(
                "unknown eviction policy {}",
                policy.policy
            ))
        })?;
        crate::ops::validate::scan(&self.limits, &policy.prefix, b"", 0)?;
        // Only the cluster marks a prefix full.
        policy.full = false;
        self.meta_for(ctx)
            .set_cache_policy(SetCachePolicyCommand {
                policy: Some(policy),
                remove: req.remove,
            })
            .await
    }

    /// The cache policies here, for another node (node to node).
    pub async fn cache_settings_here(&self) -> Result<CacheSettings> {
        self.meta.local_only().cache_settings().await
    }
}
