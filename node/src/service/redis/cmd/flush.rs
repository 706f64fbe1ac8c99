//! FLUSHDB [ASYNC|SYNC], FLUSHALL: a replicated delete-range per range
//! (always synchronous: the reply comes once every range is cleared).

use super::super::args::{syntax_error, Args};
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    match args.len() {
        0 => {}
        1 if matches!(args.word(0).as_str(), "ASYNC" | "SYNC") => {}
        _ => return syntax_error(),
    }
    reply(ks.delete_all().await, |_| Frame::ok())
}
