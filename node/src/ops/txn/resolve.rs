//! Settling a lock a request met: the fate of its transaction is asked of
//! the transaction's primary, then the key is rolled forward (committed) or
//! back. A transaction still running keeps its lock: a read at the latest
//! state reads around it (it has not committed, so its writes come after
//! the read), a read at a timestamp or a write waits for it.

use std::time::{Duration, Instant};

use zdb_proto::v1::{
    CheckStatusRequest, CommitKeysRequest, LockInfo, RollbackKeysRequest, TxnState,
};

use super::super::{CallContext, Ops};
use crate::clock::wall_ms;
use crate::error::{Error, Result};
use crate::txn::locks::expired;

/// What became of a lock after [`Ops::resolve_lock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Rolled forward or back: retry.
    Resolved,
    /// Its transaction is running and its time to live lasts.
    Alive,
}

/// A request that keeps meeting locks, across its retries.
pub struct LockedRetries {
    /// Transactions a latest-state read reads around.
    pub bypass: Vec<u64>,
    deadline: Instant,
    attempts: u32,
}

impl LockedRetries {
    pub fn new(budget: Duration) -> Self {
        LockedRetries {
            bypass: Vec::new(),
            deadline: Instant::now() + budget,
            attempts: 0,
        }
    }

    /// Waits a little before the next attempt, or gives up with `lock`.
    pub async fn wait(&mut self, lock: LockInfo) -> Result<()> {
        self.attempts += 1;
        let pause = Duration::from_millis(5u64 << self.attempts.min(6));
        if Instant::now() + pause >= self.deadline {
            return Err(Error::KeyLocked(Box::new(lock)));
        }
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

impl Ops {
    /// Asks the lock's primary for its transaction's fate and rolls the
    /// locked key forward or back accordingly.
    pub(crate) async fn resolve_lock(&self, lock: &LockInfo) -> Result<Resolution> {
        let mut ctx = CallContext::new(0, Some(Instant::now() + self.timeout));
        let status = self
            .check_status(
                CheckStatusRequest {
                    primary: lock.primary.clone(),
                    start_ts: lock.start_ts,
                    caller_lock_expired: expired(lock, wall_ms()),
                },
                &mut ctx,
            )
            .await?;
        match TxnState::try_from(status.state) {
            Ok(TxnState::Committed) => {
                let commit = CommitKeysRequest {
                    header: None,
                    start_ts: lock.start_ts,
                    commit_ts: status.commit_ts,
                    keys: vec![lock.key.clone()],
                    primary: Vec::new(),
                };
                self.commit_keys(commit, &mut ctx).await?;
                Ok(Resolution::Resolved)
            }
            Ok(TxnState::RolledBack) => {
                let rollback = RollbackKeysRequest {
                    header: None,
                    start_ts: lock.start_ts,
                    keys: vec![lock.key.clone()],
                    primary: Vec::new(),
                };
                self.rollback_keys(rollback, &mut ctx).await?;
                Ok(Resolution::Resolved)
            }
            Ok(TxnState::Pending) | Err(_) => Ok(Resolution::Alive),
        }
    }

    /// Settles a lock a read at `read_ts` (0: the latest state) met.
    pub(crate) async fn settle_for_read(
        &self,
        lock: LockInfo,
        read_ts: u64,
        retries: &mut LockedRetries,
    ) -> Result<()> {
        match self.resolve_lock(&lock).await? {
            Resolution::Resolved => Ok(()),
            Resolution::Alive if read_ts == 0 => {
                retries.bypass.push(lock.start_ts);
                Ok(())
            }
            Resolution::Alive => retries.wait(lock).await,
        }
    }

    /// Settles a lock a write met: it waits for a running transaction.
    pub(crate) async fn settle_for_write(
        &self,
        lock: LockInfo,
        retries: &mut LockedRetries,
    ) -> Result<()> {
        match self.resolve_lock(&lock).await? {
            Resolution::Resolved => Ok(()),
            Resolution::Alive => retries.wait(lock).await,
        }
    }
}
