//! Eviction on one range, decided by its leader: the keys of the span
//! ranked by the policy (exactly, not sampled: every key of the span is
//! ranked), the first ones until the bytes asked for are free, deleted by
//! one replicated command that spares a key written since it was ranked.

use zdb_proto::v1::*;

use super::super::{routed, CallContext, Ops};
use crate::apply::Outcome;
use crate::clock::wall_ms;
use crate::error::{Error, Result};
use crate::mvcc::{record, Record, Versions, LATEST};
use crate::store::msg::Target;

/// Keys deleted by one command, at most.
const MAX_KEYS_PER_COMMAND: usize = 1_000;

/// A key that may be evicted, with what the policies rank it by.
struct Candidate {
    key: Vec<u8>,
    bytes: u64,
    version_ts: u64,
    expire_at_ms: u64,
    last_ms: u64,
    hits: u32,
}

impl Ops {
    pub async fn evict_range(
        &self,
        req: EvictRangeRequest,
        ctx: &mut CallContext,
    ) -> Result<EvictRangeResponse> {
        self.admit()?;
        let err = match self.evict_here(&req).await {
            Ok(evicted) => return Ok(evicted),
            Err(err) => err,
        };
        let to = self
            .forward_to(err, routed(&req.header), &req.start_key, ctx)
            .await?;
        self.remote
            .evict_range(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    async fn evict_here(&self, req: &EvictRangeRequest) -> Result<EvictRangeResponse> {
        // Leading the range: the ranking reads the state the leader has
        // applied, and its access statistics.
        self.read_barrier(
            req.header,
            vec![req.start_key.clone()],
            Some(req.end_key.clone()),
            ReadConsistency::Linearizable as i32,
            0,
        )
        .await?;
        let chosen = self.choose_victims(req)?;
        let mut evicted = EvictRangeResponse::default();
        for victims in chosen.chunks(MAX_KEYS_PER_COMMAND) {
            let command = EvictCommand {
                keys: victims
                    .iter()
                    .map(|victim| EvictedKey {
                        key: victim.key.clone(),
                        version_ts: victim.version_ts,
                    })
                    .collect(),
            };
            let target = Target {
                header: req.header,
                keys: victims.iter().map(|victim| victim.key.clone()).collect(),
                span_end: None,
            };
            match self
                .write_span(target, command::Kind::Evict(command))
                .await?
            {
                Outcome::Deleted(keys) => evicted.keys += keys,
                other => return Err(Error::Transport(format!("eviction applied as {other:?}"))),
            }
            evicted.bytes += victims.iter().map(|victim| victim.bytes).sum::<u64>();
            for victim in victims {
                self.cache.access.forget(&victim.key);
            }
        }
        Ok(evicted)
    }

    /// The keys to evict, first to last, until `req.bytes` are covered.
    fn choose_victims(&self, req: &EvictRangeRequest) -> Result<Vec<Candidate>> {
        let now = wall_ms();
        let snapshot = self.engine.snapshot();
        let versions = Versions::new(&snapshot);
        let mut candidates = Vec::new();
        let mut keys = Vec::new();
        versions.scan(
            (&req.start_key, &req.end_key),
            LATEST,
            false,
            now,
            |key, value| {
                keys.push((key, value.len()));
                Ok(true)
            },
        )?;
        for (key, value_len) in keys {
            let Some((version_ts, raw)) = versions.version_at(&key, LATEST)? else {
                continue;
            };
            let expire_at_ms = match record::decode(&raw)? {
                Record::Put { expire_at_ms, .. } => expire_at_ms,
                Record::Tombstone => continue,
            };
            let access = self.cache.access.get(&key).unwrap_or_default();
            candidates.push(Candidate {
                bytes: (key.len() + value_len) as u64,
                last_ms: access
                    .last_ms
                    .max(zdb_proto::timestamp::physical_ms(version_ts)),
                hits: access.hits(now),
                key,
                version_ts,
                expire_at_ms,
            });
        }
        match EvictionPolicy::try_from(req.policy) {
            Ok(EvictionPolicy::AllkeysLru) => candidates.sort_by_key(|c| c.last_ms),
            Ok(EvictionPolicy::AllkeysLfu) => candidates.sort_by_key(|c| (c.hits, c.last_ms)),
            Ok(EvictionPolicy::VolatileTtl) => {
                candidates.retain(|c| c.expire_at_ms != 0);
                candidates.sort_by_key(|c| c.expire_at_ms);
            }
            _ => candidates.clear(),
        }
        let mut freed = 0;
        let chosen = candidates
            .into_iter()
            .take_while(|candidate| {
                let more = freed < req.bytes;
                freed += candidate.bytes;
                more
            })
            .collect();
        Ok(chosen)
    }
}
