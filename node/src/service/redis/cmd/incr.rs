//! INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT: applied by the key's range
//! (no lost increments, no client retry loop); the expiry stays.

use zdb_proto::v1::{update_op, UpdateRefusal};

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;

fn refusal_reply(refusal: i32, float: bool) -> Option<Frame> {
    let text = match UpdateRefusal::try_from(refusal).ok()? {
        UpdateRefusal::None => return None,
        UpdateRefusal::NotAnInteger => "ERR value is not an integer or out of range",
        UpdateRefusal::NotANumber => "ERR value is not a valid float",
        UpdateRefusal::Overflow if float => "ERR increment would produce NaN or Infinity",
        UpdateRefusal::Overflow => "ERR increment or decrement would overflow",
        UpdateRefusal::TooLarge => "ERR string exceeds maximum allowed size",
    };
    Some(Frame::error(text))
}

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let by = match args.name.as_str() {
        "INCR" => 1,
        "DECR" => -1,
        "INCRBY" => match args.integer(1) {
            Ok(by) => by,
            Err(reply) => return reply,
        },
        _ => match args.integer(1) {
            Ok(i64::MIN) => return Frame::error("ERR decrement would overflow"),
            Ok(by) => -by,
            Err(reply) => return reply,
        },
    };
    reply(
        ks.update(args.key(0), update_op::Kind::Increment(by)).await,
        |done| {
            refusal_reply(done.refusal, false).unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&done.value);
                Frame::Integer(text.parse().unwrap_or_default())
            })
        },
    )
}

pub async fn by_float<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let by = match args.float(1) {
        Ok(by) => by,
        Err(reply) => return reply,
    };
    reply(
        ks.update(args.key(0), update_op::Kind::IncrementFloat(by))
            .await,
        |done| refusal_reply(done.refusal, true).unwrap_or_else(|| Frame::bulk(done.value)),
    )
}
