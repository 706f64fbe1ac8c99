//! KEYS pattern: every matching key, read page by page over the ranges
//! (only the span the pattern's literal prefix allows).

use super::super::args::Args;
use super::super::frame::Frame;
use super::super::glob;
use super::super::keyspace::Keyspace;
use super::super::reply::error_reply;
use crate::range::descriptor;

const PAGE: u32 = 10_000;

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let pattern = args.key(0);
    let prefix = glob::literal_prefix(&pattern);
    let end = descriptor::prefix_end(&prefix);
    let mut start = prefix;
    let mut found = Vec::new();
    loop {
        let (keys, more) = match ks.scan_keys(start.clone(), end.clone(), PAGE).await {
            Ok(page) => page,
            Err(err) => return error_reply(&err),
        };
        if let Some(last) = keys.last() {
            start = last.clone();
            start.push(0);
        }
        found.extend(
            keys.into_iter()
                .filter(|key| glob::matches(&pattern, key))
                .map(Frame::bulk),
        );
        if !more {
            return Frame::Array(found);
        }
    }
}
