//! SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: pages in key
//! order. A cursor stands for the key the last page ended at, so it
//! survives splits and leader changes (every key present for the whole
//! scan is returned at least once); it is kept by the node that issued it.

use super::super::args::{not_an_integer, syntax_error, Args};
use super::super::frame::Frame;
use super::super::glob;
use super::super::keyspace::Keyspace;
use super::super::reply::error_reply;
use super::super::state::RedisState;
use crate::range::descriptor;

const DEFAULT_COUNT: i64 = 10;
const MAX_COUNT: i64 = 10_000;

pub async fn run<K: Keyspace>(ks: &K, args: &Args, state: &RedisState) -> Frame {
    let Ok(cursor) = std::str::from_utf8(args.bytes(0))
        .unwrap_or("")
        .parse::<u64>()
    else {
        return Frame::error("ERR invalid cursor");
    };
    let mut pattern = None;
    let mut count = DEFAULT_COUNT;
    let mut strings_only = true;
    let mut i = 1;
    while i < args.len() {
        if i + 1 >= args.len() {
            return syntax_error();
        }
        match args.word(i).as_str() {
            "MATCH" => pattern = Some(args.key(i + 1)),
            "COUNT" => match args.integer(i + 1) {
                Ok(n) if n >= 1 => count = n.min(MAX_COUNT),
                Ok(_) => return syntax_error(),
                Err(_) => return not_an_integer(),
            },
            "TYPE" => strings_only = args.word(i + 1) == "STRING",
            _ => return syntax_error(),
        }
        i += 2;
    }
    let prefix = pattern
        .as_deref()
        .map(glob::literal_prefix)
        .unwrap_or_default();
    let end = descriptor::prefix_end(&prefix);
    let start = match cursor {
        0 => prefix,
        id => match state.cursor(id) {
            Some(mut after) => {
                after.push(0);
                after
            }
            None => return Frame::error("ERR invalid cursor (unknown on this node, or unused for 10 minutes); start again from 0"),
        },
    };
    let (keys, more) = match ks.scan_keys(start, end, count as u32).await {
        Ok(page) => page,
        Err(err) => return error_reply(&err),
    };
    let next = match (more, keys.last()) {
        (true, Some(last)) => state.save_cursor(last.clone()),
        _ => 0,
    };
    let matching = keys
        .into_iter()
        .filter(|key| strings_only && pattern.as_deref().is_none_or(|p| glob::matches(p, key)))
        .map(Frame::bulk)
        .collect();
    Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(matching)])
}
