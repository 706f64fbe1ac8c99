//! Removing expired keys from disk. Expired keys are invisible to reads at
//! once; the leader later proposes their removal through Raft so that every
//! replica drops the same keys.

use std::time::{Duration, Instant};

use zdb_proto::v1::{command, Command, ExpireCommand, ExpiredKey, RangeDescriptor};

use crate::engine::{keys, Engine, ReadView, CF_TTL};
use crate::error::Result;
use crate::range::descriptor;

/// Keys removed by one command, to keep each log entry small.
const MAX_KEYS_PER_SWEEP: usize = 1000;

pub struct Sweeper {
    interval: Duration,
    last: Instant,
}

impl Sweeper {
    pub fn new(interval: Duration, now: Instant) -> Self {
        Sweeper {
            interval,
            last: now,
        }
    }

    pub fn due(&mut self, now: Instant) -> bool {
        if now.duration_since(self.last) < self.interval {
            return false;
        }
        self.last = now;
        true
    }
}

/// The expire command for keys of `range` whose TTL ran out by `now_ms`, if any.
pub fn expired_in_range(
    engine: &Engine,
    range: &RangeDescriptor,
    now_ms: u64,
) -> Result<Option<Command>> {
    let mut expired = Vec::new();
    engine.scan(CF_TTL, &[], &(now_ms + 1).to_be_bytes(), false, |key, _| {
        if let Some((expire_at_ms, user_key)) = keys::decode_ttl_key(key) {
            if descriptor::contains(range, user_key) {
                expired.push(ExpiredKey {
                    key: user_key.to_vec(),
                    expire_at_ms,
                });
            }
        }
        Ok(expired.len() < MAX_KEYS_PER_SWEEP)
    })?;
    if expired.is_empty() {
        return Ok(None);
    }
    Ok(Some(Command {
        now_ms,
        kind: Some(command::Kind::Expire(ExpireCommand { keys: expired })),
        ..Default::default()
    }))
}
