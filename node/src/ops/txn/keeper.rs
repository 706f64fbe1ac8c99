//! Keeping transactions honest over time: the coordinator renews the
//! primary lock of every transaction it runs that holds locks, and rolls
//! back those whose client stopped calling (idle timeout). Every node also
//! settles the locks it stores whose time to live ran out, so a transaction
//! whose coordinator died is resolved without waiting for a reader.

use std::time::{Duration, Instant};

use zdb_proto::v1::KeepAliveRequest;

use super::super::{CallContext, Ops};
use crate::clock::wall_ms;
use crate::txn::locks;

/// How often the keeper renews primary locks and looks for idle
/// transactions: often enough for a lock time to live of a few hundred ms.
pub const KEEPER_TICK: Duration = Duration::from_millis(100);

/// How often it looks for expired locks stored here.
const EXPIRED_LOCKS_EVERY: u32 = 5;

/// Most expired locks settled per tick.
const MAX_RESOLVED_PER_TICK: usize = 256;

impl Ops {
    /// Runs until the node stops.
    pub async fn keep_transactions(self) {
        let mut tick = tokio::time::interval(KEEPER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut round = 0u32;
        loop {
            tick.tick().await;
            round = round.wrapping_add(1);
            self.renew_and_reap().await;
            if round % EXPIRED_LOCKS_EVERY != 0 {
                continue;
            }
            if let Err(err) = self.resolve_expired_locks().await {
                tracing::debug!(error = %err, "expired locks not resolved this round");
            }
        }
    }

    async fn renew_and_reap(&self) {
        let now = Instant::now();
        for shared in self.transactions.all() {
            // A transaction in a call is alive; its call renews it after.
            let Ok(mut txn) = shared.try_lock() else {
                continue;
            };
            if txn.ending {
                continue;
            }
            if txn.idle(now) {
                tracing::info!(txn = txn.id, "transaction idle too long: rolled back");
                self.abort(&mut txn).await;
                continue;
            }
            let Some(primary) = txn.primary.clone().filter(|_| !txn.locked.is_empty()) else {
                continue;
            };
            if now.duration_since(txn.kept_alive) < txn.options.lock_ttl / 3 {
                continue;
            }
            let request = KeepAliveRequest {
                primary,
                start_ts: txn.start_ts,
            };
            let deadline = Some(now + self.timeout);
            match self
                .keep_alive(request, &mut CallContext::new(0, deadline))
                .await
            {
                Ok(_) => txn.kept_alive = now,
                Err(err) => tracing::warn!(txn = txn.id, error = %err, "keep-alive failed"),
            }
        }
    }

    /// Settles the locks stored here whose time to live ran out: their
    /// primary's fate decides (a primary that ran out is rolled back).
    async fn resolve_expired_locks(&self) -> crate::error::Result<()> {
        let now_ms = wall_ms();
        let mut expired = Vec::new();
        locks::scan(&self.engine, b"", b"", |key, set| {
            for lock in set.holders {
                if locks::expired(&lock, now_ms) {
                    expired.push(zdb_proto::v1::LockInfo {
                        key: key.clone(),
                        ..lock
                    });
                }
            }
            Ok(expired.len() < MAX_RESOLVED_PER_TICK)
        })?;
        for lock in expired {
            // Any replica may see it; the leader of its range settles it.
            self.resolve_lock(&lock).await?;
        }
        Ok(())
    }
}
