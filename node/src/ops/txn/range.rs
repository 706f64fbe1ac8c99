//! The per-range transaction protocol on this node: each call is proposed
//! to the local replica that leads the keys' range, or passed on to the
//! node that does. Coordinators (this node's or another's) call these.

use std::time::Instant;

use zdb_proto::v1::*;

use super::super::{routed, validate, CallContext, Ops};
use crate::apply::Outcome;
use crate::clock::wall_ms;
use crate::error::{Error, Result};
use crate::store::msg::{ReadKind, Target};
use crate::txn::locks::{self, expired};
use crate::txn::records::{self, Fate};

fn status_of(fate: Option<Fate>) -> CheckStatusResponse {
    match fate {
        Some(Fate::Committed(commit_ts)) => CheckStatusResponse {
            state: TxnState::Committed as i32,
            commit_ts,
        },
        Some(Fate::RolledBack) => CheckStatusResponse {
            state: TxnState::RolledBack as i32,
            commit_ts: 0,
        },
        None => CheckStatusResponse {
            state: TxnState::Pending as i32,
            commit_ts: 0,
        },
    }
}

fn unexpected(what: &str, outcome: Outcome) -> Error {
    Error::Transport(format!("{what} applied as {outcome:?}"))
}

impl Ops {
    /// Proposes a transaction command on the range holding `keys`, with the
    /// commit timestamp `ts` (0: none; `one_phase`: one from the oracle).
    async fn propose_txn(
        &self,
        header: Option<RequestHeader>,
        keys: Vec<Vec<u8>>,
        kind: command::Kind,
        ts: TxnTs,
    ) -> Result<Outcome> {
        let target = Target {
            header,
            keys,
            span_end: None,
        };
        let (ts, taken_at) = match ts {
            TxnTs::None => (0, None),
            TxnTs::Fixed(ts) => (ts, None),
            TxnTs::FromOracle => {
                let taken_at = Instant::now();
                (self.timestamps.now().await?, Some(taken_at))
            }
        };
        let command = Command {
            kind: Some(kind),
            ts,
            ..Default::default()
        };
        self.store
            .propose_timestamped(target, command, taken_at, self.timeout)
            .await
    }

    pub async fn prewrite(
        &self,
        req: PrewriteRequest,
        ctx: &mut CallContext,
    ) -> Result<PrewriteResponse> {
        self.admit()?;
        validate::txn_locks(&self.limits, &req.locks, &req.spans)?;
        let mut keys: Vec<Vec<u8>> = req.locks.iter().map(|lock| lock.key.clone()).collect();
        keys.extend(req.spans.iter().map(|span| span.start_key.clone()));
        let first = keys[0].clone();
        let kind = command::Kind::TxnPrewrite(TxnPrewriteCommand {
            primary: req.primary.clone(),
            start_ts: req.start_ts,
            locks: req
                .locks
                .iter()
                .map(|lock| LockInfo {
                    ttl_ms: req.ttl_ms,
                    ..lock.clone()
                })
                .collect(),
            check_conflicts: req.check_conflicts,
            one_phase: req.one_phase,
            spans: req
                .spans
                .iter()
                .map(|span| SpanLockInfo {
                    ttl_ms: req.ttl_ms,
                    ..span.clone()
                })
                .collect(),
        });
        let ts = if req.one_phase {
            TxnTs::FromOracle
        } else {
            TxnTs::None
        };
        let err = match self.propose_txn(req.header, keys, kind, ts).await {
            Ok(Outcome::Timestamp(commit_ts)) => return Ok(PrewriteResponse { commit_ts }),
            Ok(Outcome::Written) => return Ok(PrewriteResponse::default()),
            Ok(other) => return Err(unexpected("a prewrite", other)),
            Err(err) => err,
        };
        let to = self
            .forward_to(err, routed(&req.header), &first, ctx)
            .await?;
        self.remote
            .prewrite(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    /// Takes the locks on the range this node leads, once (no waiting:
    /// the caller waits and retries); NotLeader or RangeNotFound when the
    /// range is led elsewhere.
    pub(super) async fn lock_here(
        &self,
        req: &AcquireLocksRequest,
    ) -> Result<AcquireLocksResponse> {
        let keys: Vec<Vec<u8>> = req.locks.iter().map(|lock| lock.key.clone()).collect();
        let kind = command::Kind::TxnLock(TxnLockCommand {
            primary: req.primary.clone(),
            start_ts: req.start_ts,
            locks: req
                .locks
                .iter()
                .map(|lock| LockInfo {
                    ttl_ms: req.ttl_ms,
                    ..lock.clone()
                })
                .collect(),
        });
        self.propose_txn(req.header, keys.clone(), kind, TxnTs::None)
            .await?;
        self.latest_values(&keys)
    }

    /// The latest committed values of keys this node's replica just locked
    /// as leader: nothing can commit over them while the locks are held.
    fn latest_values(&self, keys: &[Vec<u8>]) -> Result<AcquireLocksResponse> {
        let versions = crate::mvcc::Versions::new(&self.engine);
        let now_ms = wall_ms();
        let mut values = Vec::new();
        for key in keys {
            if let Some(value) = versions.get(key, crate::mvcc::LATEST, now_ms)? {
                values.push(KeyValue {
                    key: key.clone(),
                    value,
                });
            }
        }
        Ok(AcquireLocksResponse { values })
    }

    pub async fn commit_keys(
        &self,
        req: CommitKeysRequest,
        ctx: &mut CallContext,
    ) -> Result<CommitKeysResponse> {
        self.admit()?;
        validate::txn_keys(&self.limits, &req.keys)?;
        if req.commit_ts <= req.start_ts {
            return Err(Error::InvalidArgument(format!(
                "commit_ts {} must be above start_ts {}",
                req.commit_ts, req.start_ts
            )));
        }
        let kind = command::Kind::TxnCommit(TxnCommitCommand {
            start_ts: req.start_ts,
            keys: req.keys.clone(),
            primary: req.primary.clone(),
        });
        let ts = TxnTs::Fixed(req.commit_ts);
        let err = match self
            .propose_txn(req.header, req.keys.clone(), kind, ts)
            .await
        {
            Ok(_) => return Ok(CommitKeysResponse {}),
            Err(err) => err,
        };
        let to = self
            .forward_to(err, routed(&req.header), &req.keys[0], ctx)
            .await?;
        self.remote
            .commit_keys(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    pub async fn rollback_keys(
        &self,
        req: RollbackKeysRequest,
        ctx: &mut CallContext,
    ) -> Result<RollbackKeysResponse> {
        self.admit()?;
        validate::txn_keys(&self.limits, &req.keys)?;
        let kind = command::Kind::TxnRollback(TxnRollbackCommand {
            start_ts: req.start_ts,
            keys: req.keys.clone(),
            primary: req.primary.clone(),
            only_if_expired: false,
        });
        let err = match self
            .propose_txn(req.header, req.keys.clone(), kind, TxnTs::None)
            .await
        {
            Ok(Outcome::TxnFate(Some(Fate::Committed(commit_ts)))) => {
                return Err(Error::FailedPrecondition(format!(
                    "transaction {} committed at {commit_ts}; it cannot be rolled back",
                    req.start_ts
                )))
            }
            Ok(_) => return Ok(RollbackKeysResponse {}),
            Err(err) => err,
        };
        let to = self
            .forward_to(err, routed(&req.header), &req.keys[0], ctx)
            .await?;
        self.remote
            .rollback_keys(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    pub async fn check_status(
        &self,
        req: CheckStatusRequest,
        ctx: &mut CallContext,
    ) -> Result<CheckStatusResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.primary)?;
        let err = match self.check_status_here(&req).await {
            Ok(status) => return Ok(status),
            Err(err) => err,
        };
        let to = self.forward_to(err, false, &req.primary, ctx).await?;
        self.remote
            .check_status(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    /// The transaction's fate from its primary's range, led here. A
    /// primary lock whose time to live ran out (or none at all, when the
    /// caller's lock expired) is rolled back now, so the answer is final.
    async fn check_status_here(&self, req: &CheckStatusRequest) -> Result<CheckStatusResponse> {
        let target = Target {
            header: None,
            keys: vec![req.primary.clone()],
            span_end: None,
        };
        self.store
            .read_barrier(target, ReadKind::Linearizable, 0, self.timeout)
            .await?;
        if let Some(fate) = records::read(&self.engine, &req.primary, req.start_ts)? {
            return Ok(status_of(Some(fate)));
        }
        let lock = locks::read(&self.engine, &req.primary)?
            .and_then(|set| set.held_by(req.start_ts).cloned());
        let roll_back = match &lock {
            Some(lock) => expired(lock, wall_ms()),
            None => req.caller_lock_expired,
        };
        if !roll_back {
            return Ok(status_of(None));
        }
        let kind = command::Kind::TxnRollback(TxnRollbackCommand {
            start_ts: req.start_ts,
            keys: vec![req.primary.clone()],
            primary: req.primary.clone(),
            only_if_expired: lock.is_some(),
        });
        match self
            .propose_txn(None, vec![req.primary.clone()], kind, TxnTs::None)
            .await?
        {
            Outcome::TxnFate(fate) => Ok(status_of(fate)),
            other => Err(unexpected("a rollback", other)),
        }
    }

    pub async fn keep_alive(
        &self,
        req: KeepAliveRequest,
        ctx: &mut CallContext,
    ) -> Result<KeepAliveResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.primary)?;
        let kind = command::Kind::TxnKeepAlive(TxnKeepAliveCommand {
            primary: req.primary.clone(),
            start_ts: req.start_ts,
        });
        let err = match self
            .propose_txn(None, vec![req.primary.clone()], kind, TxnTs::None)
            .await
        {
            Ok(_) => return Ok(KeepAliveResponse {}),
            Err(err) => err,
        };
        let to = self.forward_to(err, false, &req.primary, ctx).await?;
        self.remote
            .keep_alive(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }
}

/// The commit timestamp a transaction command carries.
enum TxnTs {
    None,
    Fixed(u64),
    /// A one-phase commit: from the oracle, raised by the leader like a write's.
    FromOracle,
}
