//! What the data commands read and write through: the node's operations
//! directly (each call authorized as the connection's user, as gRPC calls
//! are), or a transaction for the commands EXEC runs. A command is written
//! once against [`Keyspace`] and means the same in both.

use std::time::{Duration, Instant};

use zdb_proto::v1::*;

use crate::apply::update::{decide, Effect};
use crate::auth::{Caller, Protected};
use crate::clock::wall_ms;
use crate::error::{Error, Result};
use crate::ops::{CallContext, Ops};

/// A key's live value and when it expires (0: never).
pub type Entry = (Vec<u8>, u64);

#[allow(async_fn_in_trait)]
pub trait Keyspace {
    async fn get(&self, key: Vec<u8>) -> Result<Option<Entry>>;
    /// The values of the keys, in order, read at one point in time.
    async fn get_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>>;
    async fn update(&self, key: Vec<u8>, op: update_op::Kind) -> Result<UpdateResponse>;
    /// As [`Keyspace::update`] for a caller that needs only `applied`: a
    /// plain set is then written without reading the key.
    async fn update_blind(&self, key: Vec<u8>, op: update_op::Kind) -> Result<UpdateResponse> {
        self.update(key, op).await
    }
    /// Writes every pair, all or none.
    async fn put_many(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()>;
    /// Writes every pair if none of the keys exists, all or none.
    async fn put_many_if_absent(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<bool>;
    /// How many of the keys exist (duplicates counted).
    async fn exists(&self, keys: Vec<Vec<u8>>) -> Result<u64>;
    /// Up to `limit` keys of `[start, end)` in order, and whether more follow.
    async fn scan_keys(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: u32,
    ) -> Result<(Vec<Vec<u8>>, bool)>;
    async fn count_all(&self) -> Result<u64>;
    async fn delete_all(&self) -> Result<u64>;
}

/// How long a command is tried again after failures that applied nothing
/// (a leader change, a split, a node that could not be reached): Redis
/// clients do not retry, so the port does, as a routing client would.
const RETRY_FOR: Duration = Duration::from_secs(10);

/// Whether `err` says the request was certainly not applied, and a new
/// attempt may succeed.
fn not_applied(err: &Error) -> bool {
    use zdb_proto::v1::error::Kind;
    matches!(
        err,
        Error::NotApplied(_)
            | Error::NotLeader { .. }
            | Error::RangeNotFound(_)
            | Error::KeyNotInRange { .. }
            | Error::EpochNotMatch { .. }
            | Error::ServerBusy(_)
            | Error::KeyLocked(_)
            | Error::OracleUnavailable(_)
    ) || matches!(
        err.remote_kind(),
        Some(
            Kind::NotApplied(_)
                | Kind::NotLeader(_)
                | Kind::RangeNotFound(_)
                | Kind::KeyNotInRange(_)
                | Kind::EpochNotMatch(_)
                | Kind::ServerBusy(_)
                | Kind::KeyLocked(_)
                | Kind::ShuttingDown(_)
        )
    )
}

/// Whether `err` came from the connection to the node that served the
/// request (it failed or stopped answering): a read may simply be sent
/// again; a write may or may not have been applied.
fn connection_failed(err: &Error) -> bool {
    use tonic::Code;
    err.remote_kind().is_none()
        && matches!(
            err.remote_code(),
            Some(Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded)
        )
}

/// Waits before another attempt after `err`, if one may succeed in time.
struct Retry {
    deadline: Instant,
    wait: Duration,
    /// The request changes nothing: any failure may be retried.
    read: bool,
}

impl Retry {
    fn new(read: bool) -> Self {
        Retry {
            deadline: Instant::now() + RETRY_FOR,
            wait: Duration::from_millis(5),
            read,
        }
    }

    async fn again<T>(&mut self, result: &Result<T>) -> bool {
        let retryable = |err: &Error| not_applied(err) || (self.read && connection_failed(err));
        match result {
            Err(err) if retryable(err) && Instant::now() + self.wait < self.deadline => {
                tokio::time::sleep(self.wait).await;
                self.wait = (self.wait * 2).min(Duration::from_millis(200));
                true
            }
            _ => false,
        }
    }
}

/// Evaluates `attempt` (an expression that awaits) until it succeeds,
/// fails for good, or [`RETRY_FOR`] is up.
macro_rules! retrying {
    (read $attempt:expr) => {
        retrying!(@ true, $attempt)
    };
    ($attempt:expr) => {
        retrying!(@ false, $attempt)
    };
    (@ $read:expr, $attempt:expr) => {{
        let mut retry = Retry::new($read);
        loop {
            let result = $attempt;
            if !retry.again(&result).await {
                break result;
            }
        }
    }};
}

/// The node's operations, as `caller`, for the Redis command `command`.
pub struct Direct<'a> {
    pub ops: &'a Ops,
    pub caller: &'a Caller,
    pub command: &'a str,
}

impl Direct<'_> {
    /// The call's context once the caller may make `request`.
    async fn allowed(&self, request: &impl Protected) -> Result<CallContext> {
        let action = format!("redis {}", self.command);
        let principal = self
            .ops
            .authorize(self.caller, &action, &request.requirement())
            .await?;
        let mut ctx = CallContext::new(0, None);
        ctx.principal = principal;
        Ok(ctx)
    }

    async fn send_update(
        &self,
        key: Vec<u8>,
        op: update_op::Kind,
        blind: bool,
    ) -> Result<UpdateResponse> {
        let req = UpdateRequest {
            header: None,
            key,
            op: Some(UpdateOp { kind: Some(op) }),
            blind,
        };
        let ctx = self.allowed(&req).await?;
        retrying!(self.ops.update(req.clone(), &mut ctx.again()).await)
    }
}

fn put(key: Vec<u8>, value: Vec<u8>) -> Mutation {
    Mutation {
        op: Some(mutation::Op::Put(PutOp {
            key,
            value,
            ttl_seconds: 0,
        })),
    }
}

impl Keyspace for Direct<'_> {
    async fn get(&self, key: Vec<u8>) -> Result<Option<Entry>> {
        let req = GetRequest {
            key,
            ..Default::default()
        };
        let ctx = self.allowed(&req).await?;
        let got = retrying!(read self.ops.get(req.clone(), &mut ctx.again()).await)?;
        Ok(got.found.then_some((got.value, got.expire_at_ms)))
    }

    async fn get_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        let req = BatchGetRequest {
            keys: keys.clone(),
            ..Default::default()
        };
        let ctx = self.allowed(&req).await?;
        let found: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            retrying!(read self.ops.batch_get(req.clone(), &mut ctx.again()).await)?
                .pairs
                .into_iter()
                .map(|pair| (pair.key, pair.value))
                .collect();
        Ok(keys.iter().map(|key| found.get(key).cloned()).collect())
    }

    async fn update(&self, key: Vec<u8>, op: update_op::Kind) -> Result<UpdateResponse> {
        self.send_update(key, op, false).await
    }

    async fn update_blind(&self, key: Vec<u8>, op: update_op::Kind) -> Result<UpdateResponse> {
        self.send_update(key, op, true).await
    }

    async fn put_many(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let req = BatchWriteRequest {
            header: None,
            mutations: pairs.into_iter().map(|(k, v)| put(k, v)).collect(),
        };
        let ctx = self.allowed(&req).await?;
        retrying!(self.ops.batch_write(req.clone(), &mut ctx.again()).await)?;
        Ok(())
    }

    async fn put_many_if_absent(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<bool> {
        let req = AtomicRequest {
            compare: pairs
                .iter()
                .map(|(key, _)| Compare {
                    key: key.clone(),
                    absent: true,
                    ..Default::default()
                })
                .collect(),
            success: pairs.into_iter().map(|(k, v)| put(k, v)).collect(),
            failure: Vec::new(),
        };
        self.allowed(&req).await?;
        Ok(retrying!(self.ops.atomic(req.clone()).await)?.succeeded)
    }

    async fn exists(&self, keys: Vec<Vec<u8>>) -> Result<u64> {
        let req = ExistsRequest {
            keys,
            ..Default::default()
        };
        let ctx = self.allowed(&req).await?;
        Ok(retrying!(read self.ops.exists(req.clone(), &mut ctx.again()).await)?.count)
    }

    async fn scan_keys(
        &self,
        start: Vec<u8>,
        end: Vec<u8>,
        limit: u32,
    ) -> Result<(Vec<Vec<u8>>, bool)> {
        let req = ScanRequest {
            start_key: start,
            end_key: end,
            limit,
            ..Default::default()
        };
        let ctx = self.allowed(&req).await?;
        let page = retrying!(read self.ops.scan(req.clone(), &mut ctx.again()).await)?;
        Ok((
            page.pairs.into_iter().map(|pair| pair.key).collect(),
            page.more,
        ))
    }

    async fn count_all(&self) -> Result<u64> {
        let req = CountRequest::default();
        let ctx = self.allowed(&req).await?;
        Ok(retrying!(read self.ops.count(req.clone(), &mut ctx.again()).await)?.count)
    }

    async fn delete_all(&self) -> Result<u64> {
        let req = DeleteRangeRequest::default();
        let ctx = self.allowed(&req).await?;
        Ok(retrying!(self.ops.delete_range(req.clone(), &mut ctx.again()).await)?.deleted)
    }
}

/// A running transaction of the node's, for the commands one EXEC runs:
/// reads see its own writes, writes are buffered until it commits.
pub struct InTxn<'a> {
    pub ops: &'a Ops,
    pub caller: &'a Caller,
    pub txn_id: u64,
}

fn not_in_multi(what: &str) -> Error {
    Error::InvalidArgument(format!("{what} cannot run inside MULTI; run it on its own"))
}

impl InTxn<'_> {
    async fn allowed(&self, request: &impl Protected) -> Result<CallContext> {
        let principal = self
            .ops
            .authorize(self.caller, "redis EXEC", &request.requirement())
            .await?;
        let mut ctx = CallContext::new(0, None);
        ctx.principal = principal;
        Ok(ctx)
    }

    async fn put_entry(&self, key: Vec<u8>, value: Vec<u8>, expire_at_ms: u64) -> Result<()> {
        let req = TxnPutRequest {
            txn_id: self.txn_id,
            key,
            value,
            expire_at_ms,
        };
        self.allowed(&req).await?;
        self.ops.txn_put(req).await?;
        Ok(())
    }

    async fn delete(&self, key: Vec<u8>) -> Result<()> {
        let req = TxnDeleteRequest {
            txn_id: self.txn_id,
            key,
        };
        self.allowed(&req).await?;
        self.ops.txn_delete(req).await?;
        Ok(())
    }
}

impl Keyspace for InTxn<'_> {
    async fn get(&self, key: Vec<u8>) -> Result<Option<Entry>> {
        let req = TxnGetRequest {
            txn_id: self.txn_id,
            key,
            lock: ReadLock::None as i32,
        };
        let ctx = self.allowed(&req).await?;
        let got = self.ops.txn_get(req, &ctx).await?;
        Ok(got.found.then_some((got.value, got.expire_at_ms)))
    }

    async fn get_many(&self, keys: Vec<Vec<u8>>) -> Result<Vec<Option<Vec<u8>>>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?.map(|(value, _)| value));
        }
        Ok(values)
    }

    async fn update(&self, key: Vec<u8>, op: update_op::Kind) -> Result<UpdateResponse> {
        let live = self.get(key.clone()).await?;
        let max = self.ops.limits().max_value_bytes as u64;
        let op = UpdateOp { kind: Some(op) };
        let (response, effect) = decide(live, Some(&op), wall_ms(), max);
        match effect {
            Effect::Write {
                value,
                expire_at_ms,
            } => self.put_entry(key, value, expire_at_ms).await?,
            Effect::Delete => self.delete(key).await?,
            Effect::Nothing => {}
        }
        Ok(response)
    }

    async fn put_many(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        for (key, value) in pairs {
            self.put_entry(key, value, 0).await?;
        }
        Ok(())
    }

    async fn put_many_if_absent(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<bool> {
        for (key, _) in &pairs {
            if self.get(key.clone()).await?.is_some() {
                return Ok(false);
            }
        }
        self.put_many(pairs).await?;
        Ok(true)
    }

    async fn exists(&self, keys: Vec<Vec<u8>>) -> Result<u64> {
        let mut count = 0;
        for key in keys {
            count += self.get(key).await?.is_some() as u64;
        }
        Ok(count)
    }

    async fn scan_keys(&self, _: Vec<u8>, _: Vec<u8>, _: u32) -> Result<(Vec<Vec<u8>>, bool)> {
        Err(not_in_multi("KEYS and SCAN"))
    }

    async fn count_all(&self) -> Result<u64> {
        Err(not_in_multi("DBSIZE"))
    }

    async fn delete_all(&self) -> Result<u64> {
        Err(not_in_multi("FLUSHDB and FLUSHALL"))
    }
}
