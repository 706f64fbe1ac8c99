//! EXISTS key [key ...]: a key named twice counts twice.

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let keys = (0..args.len()).map(|i| args.key(i)).collect();
    reply(ks.exists(keys).await, |count| Frame::Integer(count as i64))
}
