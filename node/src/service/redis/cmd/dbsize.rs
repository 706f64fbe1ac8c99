//! DBSIZE: the exact number of keys, counted range by range.

use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;

pub async fn run<K: Keyspace>(ks: &K) -> Frame {
    reply(ks.count_all().await, |count| Frame::Integer(count as i64))
}
