//! TYPE key: every zdb value is a string.

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    reply(ks.get(args.key(0)).await, |entry| {
        Frame::Simple(if entry.is_some() { "string" } else { "none" }.into())
    })
}
