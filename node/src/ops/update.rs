//! Read-modify-writes of one key (kv.proto `Update`): validated here,
//! decided by the key's range when the command applies (`apply::update`).

use zdb_proto::v1::*;

use super::{routed, validate, CallContext, Ops};
use crate::apply::Outcome;
use crate::error::{Error, Result};

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

fn check_expiry(expiry: Option<&Expiry>) -> Result<()> {
    match expiry.and_then(|expiry| expiry.kind.as_ref()) {
        Some(expiry::Kind::TtlMs(0)) => Err(invalid("ttl_ms must be above 0")),
        Some(expiry::Kind::AtMs(0)) => Err(invalid("at_ms must be above 0")),
        // Far beyond any clock, but not so far that adding now overflows.
        Some(expiry::Kind::TtlMs(ms) | expiry::Kind::AtMs(ms)) if *ms > u64::MAX / 4 => {
            Err(invalid(format!("expiry {ms} ms is too large")))
        }
        _ => Ok(()),
    }
}

/// Checks what can be checked before the key's value is known.
fn check_op(limits: &crate::config::Limits, op: Option<&UpdateOp>) -> Result<()> {
    match op.and_then(|op| op.kind.as_ref()) {
        None => Err(invalid("the update names no operation")),
        Some(update_op::Kind::IncrementFloat(by)) if !by.is_finite() => {
            Err(invalid("increment_float must be a finite number"))
        }
        Some(update_op::Kind::Append(tail)) => validate::value(limits, tail),
        Some(update_op::Kind::Set(set)) => {
            validate::value(limits, &set.value)?;
            SetCondition::try_from(set.condition)
                .map_err(|_| invalid(format!("unknown set condition {}", set.condition)))?;
            check_expiry(set.expiry.as_ref())
        }
        Some(update_op::Kind::Expire(expire)) => {
            ExpiryCondition::try_from(expire.condition)
                .map_err(|_| invalid(format!("unknown expiry condition {}", expire.condition)))?;
            if matches!(
                expire.expiry.as_ref().and_then(|e| e.kind.as_ref()),
                Some(expiry::Kind::Keep(_))
            ) {
                return Err(invalid(
                    "an expire operation cannot keep the expiry it changes",
                ));
            }
            check_expiry(expire.expiry.as_ref())
        }
        Some(_) => Ok(()),
    }
}

/// Whether the operation may make the key's value larger (refused under a
/// full cache prefix; deleting and changing expiries never are).
fn adds_data(op: Option<&UpdateOp>) -> bool {
    !matches!(
        op.and_then(|op| op.kind.as_ref()),
        Some(update_op::Kind::Take(_) | update_op::Kind::Expire(_))
    )
}

impl Ops {
    pub async fn update(
        &self,
        req: UpdateRequest,
        ctx: &mut CallContext,
    ) -> Result<UpdateResponse> {
        self.admit()?;
        validate::key(&self.limits, &req.key)?;
        check_op(&self.limits, req.op.as_ref())?;
        if adds_data(req.op.as_ref()) {
            self.cache.check_room(&req.key)?;
        }
        let kind = command::Kind::Update(UpdateCommand {
            key: req.key.clone(),
            op: req.op.clone(),
            max_value_bytes: self.limits.max_value_bytes as u64,
            blind: req.blind,
        });
        let err = match self.write(req.header, vec![req.key.clone()], kind).await {
            Ok(Outcome::Update(response)) => {
                self.cache.touch(&req.key);
                return Ok(response);
            }
            Ok(other) => return Err(Error::Transport(format!("update applied as {other:?}"))),
            Err(err) => err,
        };
        let to = self
            .forward_to(err, routed(&req.header), &req.key, ctx)
            .await?;
        self.remote
            .update(&to, ctx.hops + 1, ctx.budget(self.timeout), req)
            .await
    }
}
