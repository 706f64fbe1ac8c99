//! EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time [NX | XX | GT | LT], and
//! PERSIST key: 1 when the expiry changed, 0 otherwise. A time in the past
//! deletes the key, as in Redis.

use zdb_proto::v1::{expiry, update_op, ExpireOp, Expiry, ExpiryCondition};

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;
use crate::clock::wall_ms;

fn condition(args: &Args) -> Result<ExpiryCondition, Frame> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for i in 2..args.len() {
        match args.word(i).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => {
                let option = String::from_utf8_lossy(args.bytes(i)).into_owned();
                return Err(Frame::error(format!("ERR Unsupported option {option}")));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Frame::error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Frame::error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(match (nx, xx, gt, lt) {
        (true, ..) => ExpiryCondition::IfNone,
        // A key without expiry is infinitely late: GT never holds for it.
        (_, _, true, _) => ExpiryCondition::IfLater,
        (_, true, _, true) => ExpiryCondition::IfSomeAndEarlier,
        (_, _, _, true) => ExpiryCondition::IfEarlier,
        (_, true, ..) => ExpiryCondition::IfSome,
        _ => ExpiryCondition::Always,
    })
}

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let amount = match args.integer(1) {
        Ok(amount) => amount,
        Err(reply) => return reply,
    };
    let condition = match condition(args) {
        Ok(condition) => condition,
        Err(reply) => return reply,
    };
    let scale: i64 = if args.name.starts_with('P') { 1 } else { 1000 };
    let invalid = || {
        Frame::error(format!(
            "ERR invalid expire time in '{}' command",
            args.lower_name()
        ))
    };
    let Some(ms) = amount.checked_mul(scale) else {
        return invalid();
    };
    let at = if args.name.ends_with("AT") {
        ms
    } else {
        match ms.checked_add(wall_ms() as i64) {
            Some(at) => at,
            None => return invalid(),
        }
    };
    if at > i64::MAX / 4 {
        return invalid();
    }
    let op = ExpireOp {
        // A time at or before now deletes the key; 1 ms is long past.
        expiry: Some(Expiry {
            kind: Some(expiry::Kind::AtMs(at.max(1) as u64)),
        }),
        condition: condition as i32,
    };
    reply(
        ks.update(args.key(0), update_op::Kind::Expire(op)).await,
        |done| Frame::Integer(done.applied as i64),
    )
}

pub async fn persist<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let op = ExpireOp::default();
    reply(
        ks.update(args.key(0), update_op::Kind::Expire(op)).await,
        |done| Frame::Integer(done.applied as i64),
    )
}
