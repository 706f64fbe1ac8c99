//! SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL],
//! and SETNX, SETEX, PSETEX: one conditional write the key's range decides.

use zdb_proto::v1::{expiry, update_op, Expiry, SetCondition, SetOp};

use super::super::args::{not_an_integer, syntax_error, Args, Parsed};
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;
use super::bulk_or_null;

/// What the options of a SET asked for.
#[derive(Default)]
struct Options {
    condition: Option<SetCondition>,
    get: bool,
    expiry: Option<expiry::Kind>,
}

fn invalid_expire(command: &str) -> Frame {
    Frame::error(format!("ERR invalid expire time in '{command}' command"))
}

/// A positive time, scaled to milliseconds without overflowing.
fn positive_ms(amount: i64, scale: i64, command: &str) -> Parsed<u64> {
    match amount.checked_mul(scale) {
        Some(ms) if amount > 0 && ms < i64::MAX / 4 => Ok(ms as u64),
        _ => Err(invalid_expire(command)),
    }
}

fn parse_options(args: &Args) -> Parsed<Options> {
    let mut options = Options::default();
    let mut i = 2;
    while i < args.len() {
        let word = args.word(i);
        let has_value = i + 1 < args.len();
        match word.as_str() {
            "NX" | "XX" if options.condition.is_none() => {
                options.condition = Some(if word == "NX" {
                    SetCondition::IfAbsent
                } else {
                    SetCondition::IfPresent
                })
            }
            "GET" if !options.get => options.get = true,
            "KEEPTTL" if options.expiry.is_none() => {
                options.expiry = Some(expiry::Kind::Keep(true))
            }
            "EX" | "PX" | "EXAT" | "PXAT" if options.expiry.is_none() && has_value => {
                i += 1;
                let amount = args.integer(i).map_err(|_| not_an_integer())?;
                let scale = if word.starts_with("EX") { 1000 } else { 1 };
                let ms = positive_ms(amount, scale, "set")?;
                options.expiry = Some(if word.ends_with("AT") {
                    expiry::Kind::AtMs(ms)
                } else {
                    expiry::Kind::TtlMs(ms)
                });
            }
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    Ok(options)
}

async fn set<K: Keyspace>(ks: &K, key: Vec<u8>, value: Vec<u8>, options: Options) -> Frame {
    let op = SetOp {
        value,
        condition: options.condition.unwrap_or(SetCondition::Always) as i32,
        expiry: options.expiry.map(|kind| Expiry { kind: Some(kind) }),
    };
    let op = update_op::Kind::Set(op);
    let done = match options.get {
        true => ks.update(key, op).await,
        false => ks.update_blind(key, op).await,
    };
    reply(done, |done| {
        if options.get {
            bulk_or_null(done.found.then_some(done.previous))
        } else if done.applied {
            Frame::ok()
        } else {
            Frame::Null
        }
    })
}

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    match parse_options(args) {
        Ok(options) => set(ks, args.key(0), args.key(1), options).await,
        Err(reply) => reply,
    }
}

pub async fn setnx<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let op = SetOp {
        value: args.key(1),
        condition: SetCondition::IfAbsent as i32,
        expiry: None,
    };
    reply(
        ks.update(args.key(0), update_op::Kind::Set(op)).await,
        |done| Frame::Integer(done.applied as i64),
    )
}

/// SETEX key seconds value, PSETEX key milliseconds value.
pub async fn setex<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let scale = if args.name == "SETEX" { 1000 } else { 1 };
    let ms = match args
        .integer(1)
        .and_then(|amount| positive_ms(amount, scale, &args.lower_name()))
    {
        Ok(ms) => ms,
        Err(reply) => return reply,
    };
    let options = Options {
        expiry: Some(expiry::Kind::TtlMs(ms)),
        ..Default::default()
    };
    set(ks, args.key(0), args.key(2), options).await
}
