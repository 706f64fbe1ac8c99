//! CONFIG GET parameter [parameter ...], CONFIG SET parameter value
//! [parameter value ...], CONFIG RESETSTAT: maxmemory and
//! maxmemory-policy are the cluster's cache policy for the whole keyspace
//! (prefix ""; `zdbctl cache` sets policies for narrower prefixes);
//! persistence is always on (every write is in the Raft log, fsynced).

use zdb_proto::v1::{CachePolicy, CacheStatusRequest, EvictionPolicy, SetCachePolicyRequest};

use super::super::args::Args;
use super::super::frame::Frame;
use super::super::glob;
use super::super::reply::error_reply;
use super::super::session::{Session, Shared};
use crate::auth::Protected;
use crate::ops::cache::policy_name;
use crate::ops::CallContext;

/// Parameters with fixed answers: zdb always persists through Raft.
const FIXED: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "yes"),
    ("appendfsync", "always"),
    ("databases", "1"),
];

pub async fn run(session: &mut Session, shared: &Shared, args: &Args) -> Frame {
    match args.word(0).as_str() {
        "GET" if args.len() >= 2 => get(session, shared, args).await,
        "SET" if args.len() >= 3 && args.len() % 2 == 1 => set(session, shared, args).await,
        "RESETSTAT" => Frame::ok(),
        "GET" | "SET" => Frame::error(format!(
            "ERR wrong number of arguments for 'config|{}' command",
            args.word(0).to_ascii_lowercase()
        )),
        _ => Frame::error(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(args.bytes(0))
        )),
    }
}

/// The cluster's policy for the whole keyspace, if it has one.
async fn whole_keyspace_policy(
    session: &Session,
    shared: &Shared,
) -> crate::Result<Option<CachePolicy>> {
    let request = CacheStatusRequest {};
    shared
        .ops
        .authorize(&session.caller, "redis CONFIG", &request.requirement())
        .await?;
    let status = shared.ops.cache_status().await?;
    Ok(status
        .policies
        .into_iter()
        .find(|policy| policy.prefix.is_empty()))
}

async fn get(session: &Session, shared: &Shared, args: &Args) -> Frame {
    let policy = match whole_keyspace_policy(session, shared).await {
        Ok(policy) => policy.unwrap_or_default(),
        Err(err) => return error_reply(&err),
    };
    let max_bytes = policy.max_bytes.to_string();
    let mut known: Vec<(&str, &str)> = FIXED.to_vec();
    known.push(("maxmemory", &max_bytes));
    known.push(("maxmemory-policy", policy_name(policy.policy)));
    let mut found = Vec::new();
    for i in 1..args.len() {
        let pattern = args.bytes(i).to_ascii_lowercase();
        for (name, value) in &known {
            let listed = found
                .iter()
                .any(|(listed, _): &(Frame, Frame)| *listed == Frame::bulk(name.to_string()));
            if glob::matches(&pattern, name.as_bytes()) && !listed {
                found.push((
                    Frame::bulk(name.to_string()),
                    Frame::bulk(value.to_string()),
                ));
            }
        }
    }
    Frame::Map(found)
}

async fn set(session: &Session, shared: &Shared, args: &Args) -> Frame {
    let mut policy = match whole_keyspace_policy(session, shared).await {
        Ok(policy) => policy.unwrap_or_default(),
        Err(err) => return error_reply(&err),
    };
    for i in (1..args.len()).step_by(2) {
        let value = String::from_utf8_lossy(args.bytes(i + 1)).into_owned();
        match args.word(i).to_ascii_lowercase().as_str() {
            "maxmemory" => match parse_memory(&value) {
                Some(bytes) => policy.max_bytes = bytes,
                None => {
                    return Frame::error(
                        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument couldn't be parsed into an integer",
                    )
                }
            },
            "maxmemory-policy" => match EvictionPolicy::from_redis_name(&value) {
                Some(named) => policy.policy = named as i32,
                None => {
                    return Frame::error(
                        "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: noeviction, allkeys-lru, allkeys-lfu, volatile-ttl",
                    )
                }
            },
            other => {
                return Frame::error(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{other}'"
                ))
            }
        }
    }
    // maxmemory 0 means no budget, as in Redis.
    let request = SetCachePolicyRequest {
        remove: policy.max_bytes == 0 && policy.policy == EvictionPolicy::Noeviction as i32,
        policy: Some(policy),
    };
    if let Err(err) = shared
        .ops
        .authorize(&session.caller, "redis CONFIG", &request.requirement())
        .await
    {
        return error_reply(&err);
    }
    match shared
        .ops
        .set_cache_policy(request, &CallContext::new(0, None))
        .await
    {
        Ok(()) => Frame::ok(),
        Err(err) => error_reply(&err),
    }
}

/// A size as Redis writes it: bytes, or with k / kb / m / mb / g / gb.
fn parse_memory(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    number.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::parse_memory;

    #[test]
    fn sizes_parse_as_redis_writes_them() {
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("1kb"), Some(1024));
        assert_eq!(parse_memory("2MB"), Some(2 << 20));
        assert_eq!(parse_memory("1g"), Some(1_000_000_000));
        assert_eq!(parse_memory("12x"), None);
        assert_eq!(parse_memory(""), None);
    }
}
