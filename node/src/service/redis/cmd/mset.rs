//! MSET key value [key value ...] and MSETNX: all the keys or none, across
//! ranges too (a transaction then).

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;

/// Keys and their values.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn pairs(args: &Args) -> Result<Pairs, Frame> {
    if !args.len().is_multiple_of(2) {
        return Err(args.wrong_arity());
    }
    // A key named twice: the last value wins, as in Redis.
    let mut pairs: Pairs = Vec::with_capacity(args.len() / 2);
    for i in (0..args.len()).step_by(2) {
        let key = args.key(i);
        pairs.retain(|(earlier, _)| *earlier != key);
        pairs.push((key, args.key(i + 1)));
    }
    Ok(pairs)
}

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    match pairs(args) {
        Ok(pairs) => reply(ks.put_many(pairs).await, |()| Frame::ok()),
        Err(reply) => reply,
    }
}

pub async fn msetnx<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    match pairs(args) {
        Ok(pairs) => reply(ks.put_many_if_absent(pairs).await, |set| {
            Frame::Integer(set as i64)
        }),
        Err(reply) => reply,
    }
}
