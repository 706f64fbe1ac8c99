//! STRLEN key

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;
use super::count_read;

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    reply(ks.get(args.key(0)).await, |entry| {
        count_read(entry.is_some());
        Frame::Integer(entry.map_or(0, |(value, _)| value.len() as i64))
    })
}
