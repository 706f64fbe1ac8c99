//! MGET key [key ...]: every value read at one point in time.

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;
use super::{bulk_or_null, count_read};

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let keys = (0..args.len()).map(|i| args.key(i)).collect();
    reply(ks.get_many(keys).await, |values| {
        Frame::Array(
            values
                .into_iter()
                .map(|value| {
                    count_read(value.is_some());
                    bulk_or_null(value)
                })
                .collect(),
        )
    })
}
