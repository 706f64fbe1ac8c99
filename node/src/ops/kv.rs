//! Requests on the keys of one range: validate, then propose through Raft
//! (with a commit timestamp from the oracle) or read once the read barrier
//! passed (the latest versions, or those as of the request's timestamp);
//! passed on to the leader when this node cannot serve them.

use std::time::Instant;

use zdb_proto::v1::*;

use super::time::ReadAt;
use super::txn::LockedRetries;
use super::{routed, validate, CallContext, Ops};
use crate::apply::Outcome;
use crate::clock::wall_ms;
use crate::error::{Error, Result};
use crate::mvcc::Versions;
use crate::store::msg::{ReadKind, Target};
use crate::txn::unlocked_for_read;

fn single(op: stored_mutation::Op) -> command::Kind {
    command::Kind::Write(WriteBatchCommand {
        mutations: vec![StoredMutation { op: Some(op) }],
    })
}

pub(super) fn read_kind(consistency: i32) -> Result<ReadKind> {
    match ReadConsistency::try_from(consistency) {
        Ok(ReadConsistency::Stale | ReadConsistency::LocalReplica) => Ok(ReadKind::Stale),
        Ok(ReadConsistency::Linearizable) => Ok(ReadKind::Linearizable),
        Err(_) => Err(Error::InvalidArgument(format!(
            "unknown read consistency {consistency}"
        ))),
    }
}

/// A read that must be answered from this node's own copy.
pub(super) fn local_only(consistency: i32) -> bool {
    consistency == ReadConsistency::LocalReplica as i32
}

fn stored_put(key: Vec<u8>, value: Vec<u8>, ttl_seconds: u64) -> Result<StoredPut> {
    Ok(StoredPut {
        key,
        value,
        expire_at_ms: validate::expiry(wall_ms(), ttl_seconds)?,
    })
}

impl Ops {
    /// Proposes a command on the keys `keys` of the range `header` names
    /// (or that holds them) and waits until it applied; a key a
    /// transaction holds is waited for (its lock resolved when stale).
    pub(super) async fn write(
        &self,
        header: Option<RequestHeader>,
        keys: Vec<Vec<u8>>,
        kind: command::Kind,
    ) -> Result<Outcome> {
        let mut retries = LockedRetries::new(self.timeout);
        loop {
            match self.write_once(header, keys.clone(), kind.clone()).await {
                Err(Error::KeyLocked(lock)) => self.settle_for_write(*lock, &mut retries).await?,
                written => return written,
            }
        }
    }

    async fn write_once(
        &self,
        header: Option<RequestHeader>,
        keys: Vec<Vec<u8>>,
        kind: command::Kind,
    ) -> Result<Outcome> {
        let target = Target {
            header,
            keys,
            span_end: None,
        };
        self.write_target_once(target, kind).await
    }

    /// Proposes a command on the span `target` names and waits until it
    /// applied, waiting for the transactions' locks it meets.
    pub(super) async fn write_span(&self, target: Target, kind: command::Kind) -> Result<Outcome> {
        let mut retries = LockedRetries::new(self.timeout);
        loop {
            match self.write_target_once(target.clone(), kind.clone()).await {
                Err(Error::KeyLocked(lock)) => self.settle_for_write(*lock, &mut retries).await?,
                written => return written,
            }
        }
    }

    async fn write_target_once(&self, target: Target, kind: command::Kind) -> Result<Outcome> {
        let ts_taken_at = Instant::now();
        let command = Command {
            kind: Some(kind),
            ts: self.timestamps.now().await?,
            ..Default::default()
        };
        self.store
            .propose_timestamped(target, command, Some(ts_taken_at), self.timeout)
            .await
    }

    /// Waits until the local engine may be read as `consistency` asks, at
    /// `read_ts` (0: the latest state).
    pub(super) async fn read_barrier(
        &self,
        header: Option<RequestHeader>,
        keys: Vec<Vec<u8>>,
        span_end: Option<Vec<u8>>,
        consistency: i32,
        read_ts: u64,
    ) -> Result<()> {
        let target = Target {
            header,
            keys,
            span_end,
        };
        self.store
            .read_barrier(target, read_kind(consistency)?, read_ts, self.timeout)
            .await
    }

    pub async fn get(&self, req: GetRequest, ctx: &mut CallContext) -> Result<GetResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.key)?;
        let err = match self.get_here(&req).await {
            Ok(response) => {
                self.cache.touch(&req.key);
                return Ok(response);
            }
            Err(err) if local_only(req.consistency) => return Err(err),
            Err(err) => err,
        };
        let to = self
            .forward_to(err, routed(&req.header), &req.key, ctx)
            .await?;
        self.remote
            .get(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    /// Reads the key here, settling the transactions' locks it meets.
    async fn get_here(&self, req: &GetRequest) -> Result<GetResponse> {
        let mut retries = LockedRetries::new(self.timeout);
        loop {
            match self.get_once(req, &retries.bypass).await {
                Err(Error::KeyLocked(lock)) => {
                    self.settle_for_read(*lock, req.read_ts, &mut retries)
                        .await?
                }
                read => return read,
            }
        }
    }

    async fn get_once(&self, req: &GetRequest, bypass: &[u64]) -> Result<GetResponse> {
        self.check_read_ts(req.read_ts).await?;
        self.read_barrier(
            req.header,
            vec![req.key.clone()],
            None,
            req.consistency,
            req.read_ts,
        )
        .await?;
        let at = ReadAt::of(req.read_ts);
        let value = if req.read_ts == 0 {
            unlocked_for_read(&self.engine, &req.key, at.ts, bypass)?;
            Versions::new(&self.engine).get_expiring(&req.key, at.ts, at.now_ms)?
        } else {
            let snapshot = self.engine.snapshot();
            self.check_safe_point(req.read_ts)?;
            unlocked_for_read(&snapshot, &req.key, at.ts, bypass)?;
            Versions::new(&snapshot).get_expiring(&req.key, at.ts, at.now_ms)?
        };
        Ok(match value {
            Some((value, expire_at_ms)) => GetResponse {
                found: true,
                value,
                expire_at_ms,
            },
            None => GetResponse::default(),
        })
    }

    pub async fn put(&self, req: PutRequest, ctx: &mut CallContext) -> Result<PutResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.key)?;
        validate::value(&self.limits, &req.value)?;
        self.cache.check_room(&req.key)?;
        let put = stored_put(req.key.clone(), req.value.clone(), req.ttl_seconds)?;
        let written = self
            .write(
                req.header,
                vec![req.key.clone()],
                single(stored_mutation::Op::Put(put)),
            )
            .await;
        let err = match written {
            Ok(_) => {
                self.cache.touch(&req.key);
                return Ok(PutResponse {});
            }
            Err(err) => err,
        };
        let to = self
            .forward_to(err, routed(&req.header), &req.key, ctx)
            .await?;
        self.remote
            .put(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    pub async fn delete(
        &self,
        req: DeleteRequest,
        ctx: &mut CallContext,
    ) -> Result<DeleteResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.key)?;
        let written = self
            .write(
                req.header,
                vec![req.key.clone()],
                single(stored_mutation::Op::Delete(req.key.clone())),
            )
            .await;
        let err = match written {
            Ok(_) => return Ok(DeleteResponse {}),
            Err(err) => err,
        };
        let to = self
            .forward_to(err, routed(&req.header), &req.key, ctx)
            .await?;
        self.remote
            .delete(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    /// Applies puts and deletes atomically: in one command when one range
    /// holds every key, as a transaction otherwise.
    pub async fn batch_write(
        &self,
        req: BatchWriteRequest,
        ctx: &mut CallContext,
    ) -> Result<BatchWriteResponse> {
        self.admit()?;
        validate::mutations(&self.limits, &req.mutations)?;
        let mut keys = Vec::with_capacity(req.mutations.len());
        let mut stored = Vec::with_capacity(req.mutations.len());
        for mutation in &req.mutations {
            let op = match &mutation.op {
                Some(mutation::Op::Put(put)) => {
                    self.cache.check_room(&put.key)?;
                    keys.push(put.key.clone());
                    stored_mutation::Op::Put(stored_put(
                        put.key.clone(),
                        put.value.clone(),
                        put.ttl_seconds,
                    )?)
                }
                Some(mutation::Op::Delete(delete)) => {
                    keys.push(delete.key.clone());
                    stored_mutation::Op::Delete(delete.key.clone())
                }
                None => return Err(Error::InvalidArgument("a mutation is empty".into())),
            };
            stored.push(StoredMutation { op: Some(op) });
        }
        let first = keys[0].clone();
        let kind = command::Kind::Write(WriteBatchCommand { mutations: stored });
        let err = match self.write(req.header, keys, kind).await {
            Ok(_) => return Ok(BatchWriteResponse {}),
            Err(err) => err,
        };
        let routed = routed(&req.header);
        let to = match self.forward_to(err, routed, &first, ctx).await {
            Ok(to) => to,
            // Keys of several ranges: atomic as a transaction.
            Err(Error::KeyNotInRange { .. }) if !routed => {
                self.batch_write_as_txn(&req.mutations).await?;
                return Ok(BatchWriteResponse {});
            }
            Err(err) => return Err(err),
        };
        self.remote
            .batch_write(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }

    pub async fn compare_and_swap(
        &self,
        req: CompareAndSwapRequest,
        ctx: &mut CallContext,
    ) -> Result<CompareAndSwapResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.key)?;
        validate::value(&self.limits, &req.new_value)?;
        validate::value(&self.limits, &req.expected_value)?;
        self.cache.check_room(&req.key)?;
        if req.expect_absent && !req.expected_value.is_empty() {
            return Err(Error::InvalidArgument(
                "expect_absent and expected_value exclude each other; set one".into(),
            ));
        }
        let new_value = stored_put(req.key.clone(), req.new_value.clone(), req.ttl_seconds)?;
        let kind = command::Kind::Cas(CompareAndSwapCommand {
            key: req.key.clone(),
            expected_value: req.expected_value.clone(),
            expect_absent: req.expect_absent,
            new_value: Some(new_value),
        });
        let err = match self.write(req.header, vec![req.key.clone()], kind).await {
            Ok(Outcome::CompareAndSwap { succeeded, current }) => {
                return Ok(CompareAndSwapResponse {
                    succeeded,
                    found: current.is_some(),
                    current_value: current.unwrap_or_default(),
                })
            }
            Ok(other) => {
                return Err(Error::Transport(format!(
                    "compare-and-swap applied as {other:?}"
                )))
            }
            Err(err) => err,
        };
        let to = self
            .forward_to(err, routed(&req.header), &req.key, ctx)
            .await?;
        self.remote
            .compare_and_swap(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }
}
