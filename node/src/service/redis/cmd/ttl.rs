//! TTL key, PTTL key: -2 for a missing key, -1 for one without expiry.

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;
use crate::clock::wall_ms;

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let in_ms = args.name == "PTTL";
    reply(ks.get(args.key(0)).await, |entry| {
        Frame::Integer(match entry {
            None => -2,
            Some((_, 0)) => -1,
            Some((_, expire_at_ms)) => {
                let left = expire_at_ms.saturating_sub(wall_ms()) as i64;
                // As Redis rounds: to the nearest second.
                if in_ms {
                    left
                } else {
                    (left + 500) / 1000
                }
            }
        })
    })
}
