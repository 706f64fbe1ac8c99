//! GET key

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;
use super::{bulk_or_null, count_read};

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    reply(ks.get(args.key(0)).await, |entry| {
        count_read(entry.is_some());
        bulk_or_null(entry.map(|(value, _)| value))
    })
}
