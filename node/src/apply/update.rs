//! Read-modify-writes of one key (kv.proto `Update`): the range reads the
//! key's live value as the log has it at this entry and writes the result,
//! so concurrent increments never lose one another and no client retries.
//! Every decision reads replicated state and the command's own fields (its
//! `now_ms`, its proposer's value limit): replicas agree on the answer,
//! refusals included.

use zdb_proto::v1::{
    expiry, update_op, ExpireOp, ExpiryCondition, SetCondition, SetOp, StoredPut, UpdateCommand,
    UpdateOp, UpdateRefusal, UpdateResponse,
};

use super::data::DataBatch;
use super::Outcome;
use crate::error::Result;

/// A key's live value and its expiry (0: none).
#[derive(Debug, Clone)]
struct Live {
    value: Vec<u8>,
    expire_at_ms: u64,
}

/// What the update does to the key.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Write { value: Vec<u8>, expire_at_ms: u64 },
    Delete,
    Nothing,
}

pub fn update(data: &mut DataBatch<'_>, cmd: &UpdateCommand, now_ms: u64) -> Result<Outcome> {
    let blind = cmd.blind && writes_blind(cmd.op.as_ref());
    let live = match blind {
        true => None,
        false => data.live_record(&cmd.key, now_ms)?,
    };
    let (response, effect) = decide(live, cmd.op.as_ref(), now_ms, cmd.max_value_bytes);
    let effect = match effect {
        // An expiry already past deletes whatever the key holds.
        Effect::Nothing if blind && response.applied => Effect::Delete,
        effect => effect,
    };
    match effect {
        Effect::Write {
            value,
            expire_at_ms,
        } => data.put(&StoredPut {
            key: cmd.key.clone(),
            value,
            expire_at_ms,
        }),
        Effect::Delete => data.delete(&cmd.key),
        Effect::Nothing => {}
    }
    Ok(Outcome::Update(response))
}

/// Whether `op`'s effect is the same whatever the key holds (a set without
/// a condition or KEEPTTL): the range may then write it without reading
/// the key, when the caller does not want the previous value.
fn writes_blind(op: Option<&UpdateOp>) -> bool {
    let Some(update_op::Kind::Set(set)) = op.and_then(|op| op.kind.as_ref()) else {
        return false;
    };
    let keeps_expiry = matches!(
        set.expiry.as_ref().and_then(|expiry| expiry.kind.as_ref()),
        Some(expiry::Kind::Keep(_))
    );
    set.condition == SetCondition::Always as i32 && !keeps_expiry
}

/// The answer and the effect of `op` on a key holding `live` (its value
/// and expiry) at `now_ms`: the one definition of every update's
/// semantics, used by the range at apply and by transactions that buffer
/// their writes.
pub fn decide(
    live: Option<(Vec<u8>, u64)>,
    op: Option<&UpdateOp>,
    now_ms: u64,
    max_value_bytes: u64,
) -> (UpdateResponse, Effect) {
    let live = live.map(|(value, expire_at_ms)| Live {
        value,
        expire_at_ms,
    });
    let decided = match op.and_then(|op| op.kind.as_ref()) {
        Some(update_op::Kind::Increment(by)) => increment(live.as_ref(), *by),
        Some(update_op::Kind::IncrementFloat(by)) => increment_float(live.as_ref(), *by),
        Some(update_op::Kind::Append(tail)) => Ok(append(live.as_ref(), tail)),
        Some(update_op::Kind::Set(set)) => Ok(set_value(live.as_ref(), set, now_ms)),
        Some(update_op::Kind::Expire(expire)) => Ok(change_expiry(live.as_ref(), expire, now_ms)),
        Some(update_op::Kind::Take(_)) => Ok(match live {
            Some(_) => Effect::Delete,
            None => Effect::Nothing,
        }),
        // The proposer validated the request: an empty op changes nothing.
        None => Ok(Effect::Nothing),
    };
    let mut response = UpdateResponse {
        found: live.is_some(),
        previous_expire_at_ms: live.as_ref().map_or(0, |live| live.expire_at_ms),
        previous: live
            .as_ref()
            .map(|live| live.value.clone())
            .unwrap_or_default(),
        ..Default::default()
    };
    let effect = match decided {
        Ok(Effect::Write { value, .. }) if value.len() as u64 > max_value_bytes => {
            Err(UpdateRefusal::TooLarge)
        }
        other => other,
    };
    let effect = match effect {
        Err(refusal) => {
            response.refusal = refusal as i32;
            Effect::Nothing
        }
        Ok(Effect::Write { expire_at_ms, .. }) if expire_at_ms != 0 && expire_at_ms <= now_ms => {
            // Already past: as Redis does, the write deletes the key.
            response.applied = true;
            match live {
                Some(_) => Effect::Delete,
                None => Effect::Nothing,
            }
        }
        Ok(Effect::Write {
            value,
            expire_at_ms,
        }) => {
            response.applied = true;
            response.value = value.clone();
            response.expire_at_ms = expire_at_ms;
            Effect::Write {
                value,
                expire_at_ms,
            }
        }
        Ok(Effect::Delete) => {
            response.applied = true;
            Effect::Delete
        }
        Ok(Effect::Nothing) => Effect::Nothing,
    };
    if effect == Effect::Nothing && response.refusal == 0 && !response.applied {
        if let Some(live) = &live {
            response.value = live.value.clone();
            response.expire_at_ms = live.expire_at_ms;
        }
    }
    (response, effect)
}

/// A value as Redis reads an integer: optional '-', digits without a
/// leading zero (but "0" itself), at most 20 characters, in i64's range.
pub fn parse_integer(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = match digits.as_bytes() {
        [b'0'] => text.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical || text.len() > 20 {
        return None;
    }
    text.parse().ok()
}

/// A value as Redis reads a float: a finite decimal number, no spaces.
pub fn parse_float(value: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(value).ok()?;
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !plain || text.is_empty() {
        return None;
    }
    text.parse::<f64>().ok().filter(|number| number.is_finite())
}

/// A float written as Redis writes INCRBYFLOAT's result: plain decimal
/// notation, no exponent, no trailing zeros ("10.5", "3").
pub fn format_float(number: f64) -> String {
    // Rust's Display is the shortest text that reads back as the same f64,
    // and never uses an exponent.
    let text = format!("{number}");
    if text == "-0" {
        "0".into()
    } else {
        text
    }
}

fn increment(live: Option<&Live>, by: i64) -> Result<Effect, UpdateRefusal> {
    let (current, expire_at_ms) = match live {
        Some(live) => (
            parse_integer(&live.value).ok_or(UpdateRefusal::NotAnInteger)?,
            live.expire_at_ms,
        ),
        None => (0, 0),
    };
    let sum = current.checked_add(by).ok_or(UpdateRefusal::Overflow)?;
    Ok(Effect::Write {
        value: sum.to_string().into_bytes(),
        expire_at_ms,
    })
}

fn increment_float(live: Option<&Live>, by: f64) -> Result<Effect, UpdateRefusal> {
    let (current, expire_at_ms) = match live {
        Some(live) => (
            parse_float(&live.value).ok_or(UpdateRefusal::NotANumber)?,
            live.expire_at_ms,
        ),
        None => (0.0, 0),
    };
    let sum = current + by;
    if !sum.is_finite() {
        return Err(UpdateRefusal::Overflow);
    }
    Ok(Effect::Write {
        value: format_float(sum).into_bytes(),
        expire_at_ms,
    })
}

fn append(live: Option<&Live>, tail: &[u8]) -> Effect {
    let (mut value, expire_at_ms) = match live {
        Some(live) => (live.value.clone(), live.expire_at_ms),
        None => (Vec::new(), 0),
    };
    value.extend_from_slice(tail);
    Effect::Write {
        value,
        expire_at_ms,
    }
}

/// The expiry an `Expiry` names at `now_ms` (0: none); `current` for keep.
fn expiry_at(expiry: Option<&expiry::Kind>, current: u64, now_ms: u64) -> u64 {
    match expiry {
        None => 0,
        Some(expiry::Kind::AtMs(at)) => (*at).max(1),
        Some(expiry::Kind::TtlMs(ttl)) => now_ms.saturating_add(*ttl).max(1),
        Some(expiry::Kind::Keep(_)) => current,
    }
}

fn set_value(live: Option<&Live>, set: &SetOp, now_ms: u64) -> Effect {
    let holds = match SetCondition::try_from(set.condition) {
        Ok(SetCondition::IfAbsent) => live.is_none(),
        Ok(SetCondition::IfPresent) => live.is_some(),
        _ => true,
    };
    if !holds {
        return Effect::Nothing;
    }
    let kind = set.expiry.as_ref().and_then(|expiry| expiry.kind.as_ref());
    let current = live.map_or(0, |live| live.expire_at_ms);
    Effect::Write {
        value: set.value.clone(),
        expire_at_ms: expiry_at(kind, current, now_ms),
    }
}

fn change_expiry(live: Option<&Live>, expire: &ExpireOp, now_ms: u64) -> Effect {
    let Some(live) = live else {
        return Effect::Nothing;
    };
    let kind = expire
        .expiry
        .as_ref()
        .and_then(|expiry| expiry.kind.as_ref());
    let new = expiry_at(kind, live.expire_at_ms, now_ms);
    let current = live.expire_at_ms;
    // No expiry counts as infinitely late.
    let later = |a: u64, b: u64| b != 0 && (a == 0 || a > b);
    let holds = match ExpiryCondition::try_from(expire.condition) {
        Ok(ExpiryCondition::IfNone) => current == 0,
        Ok(ExpiryCondition::IfSome) => current != 0,
        Ok(ExpiryCondition::IfLater) => later(new, current),
        Ok(ExpiryCondition::IfEarlier) => later(current, new),
        Ok(ExpiryCondition::IfSomeAndEarlier) => current != 0 && later(current, new),
        _ => true,
    };
    // Removing an expiry the key does not have changes nothing (PERSIST 0).
    if !holds || (new == 0 && current == 0) {
        return Effect::Nothing;
    }
    Effect::Write {
        value: live.value.clone(),
        expire_at_ms: new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_redis_reads_them() {
        assert_eq!(parse_integer(b"0"), Some(0));
        assert_eq!(parse_integer(b"-12"), Some(-12));
        assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"01"[..],
            b"-0",
            b"+1",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"1.0",
            b"9223372036854775808",
        ] {
            assert_eq!(
                parse_integer(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn floats_parse_and_print_as_redis_does() {
        assert_eq!(parse_float(b"10.50"), Some(10.5));
        assert_eq!(parse_float(b"5.0e3"), Some(5000.0));
        for bad in [&b"nan"[..], b"inf", b"1.5 ", b"", b"abc"] {
            assert_eq!(parse_float(bad), None);
        }
        assert_eq!(format_float(10.5 + 0.1), "10.6");
        assert_eq!(format_float(3.0), "3");
        assert_eq!(format_float(5000.0), "5000");
        assert_eq!(format_float(-0.0), "0");
    }

    fn live(value: &str, expire_at_ms: u64) -> Live {
        Live {
            value: value.as_bytes().to_vec(),
            expire_at_ms,
        }
    }

    fn written(effect: Effect) -> (String, u64) {
        match effect {
            Effect::Write {
                value,
                expire_at_ms,
            } => (String::from_utf8(value).unwrap(), expire_at_ms),
            _ => panic!("expected a write"),
        }
    }

    #[test]
    fn increments_keep_the_expiry_and_refuse_what_is_not_a_number() {
        assert_eq!(
            written(increment(Some(&live("41", 900)), 1).unwrap()),
            ("42".into(), 900)
        );
        assert_eq!(written(increment(None, -3).unwrap()), ("-3".into(), 0));
        assert!(matches!(
            increment(Some(&live("x", 0)), 1),
            Err(UpdateRefusal::NotAnInteger)
        ));
        assert!(matches!(
            increment(Some(&live("9223372036854775807", 0)), 1),
            Err(UpdateRefusal::Overflow)
        ));
        assert_eq!(
            written(increment_float(Some(&live("10.50", 0)), 0.1).unwrap()),
            ("10.6".into(), 0)
        );
        assert!(matches!(
            increment_float(Some(&live("1e308", 0)), 1e308),
            Err(UpdateRefusal::Overflow)
        ));
    }

    #[test]
    fn expiry_conditions_follow_redis() {
        let at = |ms| ExpireOp {
            expiry: Some(zdb_proto::v1::Expiry {
                kind: Some(expiry::Kind::AtMs(ms)),
            }),
            condition: 0,
        };
        let with = |op: ExpireOp, condition: ExpiryCondition| ExpireOp {
            condition: condition as i32,
            ..op
        };
        let persistent = live("v", 0);
        let volatile = live("v", 5_000);
        // GT: a key without expiry is infinitely late already.
        assert!(matches!(
            change_expiry(
                Some(&persistent),
                &with(at(9_000), ExpiryCondition::IfLater),
                1
            ),
            Effect::Nothing
        ));
        assert_eq!(
            written(change_expiry(
                Some(&persistent),
                &with(at(9_000), ExpiryCondition::IfEarlier),
                1
            )),
            ("v".into(), 9_000)
        );
        assert_eq!(
            written(change_expiry(
                Some(&volatile),
                &with(at(9_000), ExpiryCondition::IfLater),
                1
            )),
            ("v".into(), 9_000)
        );
        assert!(matches!(
            change_expiry(
                Some(&volatile),
                &with(at(9_000), ExpiryCondition::IfNone),
                1
            ),
            Effect::Nothing
        ));
        // PERSIST: only a key with an expiry changes.
        let persist = ExpireOp::default();
        assert!(matches!(
            change_expiry(Some(&persistent), &persist, 1),
            Effect::Nothing
        ));
        assert_eq!(
            written(change_expiry(Some(&volatile), &persist, 1)),
            ("v".into(), 0)
        );
        assert!(matches!(
            change_expiry(None, &at(9_000), 1),
            Effect::Nothing
        ));
    }
}
