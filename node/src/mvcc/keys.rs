//! How versions are keyed in the data column family: the user key, escaped
//! so that no encoded key is a prefix of another (each 0x00 becomes
//! 0x00 0xFF, and 0x00 0x01 ends it), then the commit timestamp inverted,
//! big-endian. Keys keep their order, and a key's versions lie together,
//! newest first: the newest version at or below a timestamp is one seek.

use crate::error::{Error, Result};

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;
const TS_LEN: usize = 8;

/// The escaped user key with its terminator: every version of `key` starts
/// with it, and it sorts like `key` among other encoded keys.
pub fn encode_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + TS_LEN);
    for &byte in key {
        out.push(byte);
        if byte == ESCAPE {
            out.push(ESCAPED_ZERO);
        }
    }
    out.push(ESCAPE);
    out.push(TERMINATOR);
    out
}

/// The key of `key`'s version committed at `ts`.
pub fn version_key(key: &[u8], ts: u64) -> Vec<u8> {
    let mut out = encode_key(key);
    out.extend_from_slice(&(!ts).to_be_bytes());
    out
}

/// Where the versions of keys at or after `key` begin; an empty key (the
/// start of the key space) stays empty.
pub fn lower_bound(key: &[u8]) -> Vec<u8> {
    if key.is_empty() {
        Vec::new()
    } else {
        encode_key(key)
    }
}

/// Where the versions of keys before `end` end; an empty end (the end of
/// the key space) stays empty.
pub fn upper_bound(end: &[u8]) -> Vec<u8> {
    lower_bound(end)
}

/// The encoded bounds of `[start, end)` for a range delete, which needs an
/// explicit end: for the end of the key space, one above every encoded key
/// a key within the size limit can have.
pub fn delete_bounds(start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let upper = if end.is_empty() {
        vec![0xff; crate::config::MAX_KEY_BYTES_CEILING + 1]
    } else {
        upper_bound(end)
    };
    (lower_bound(start), upper)
}

/// Just past the last version of `key`.
pub fn versions_end(key: &[u8]) -> Vec<u8> {
    // The encoded key with its terminator's last byte raised by one.
    let mut out = encode_key(key);
    out.pop();
    out.push(TERMINATOR + 1);
    out
}

/// The user key and commit timestamp of a stored version key.
pub fn decode(raw: &[u8]) -> Result<(Vec<u8>, u64)> {
    let corrupt = |why: &str| Error::corruption("version key", format!("{why}: {raw:x?}"));
    let ts = commit_ts(raw)?;
    let body = key_part(raw)
        .strip_suffix(&[ESCAPE, TERMINATOR])
        .ok_or_else(|| corrupt("no terminator"))?;
    if !body.contains(&ESCAPE) {
        // Most keys hold no zero byte: nothing to unescape.
        return Ok((body.to_vec(), ts));
    }
    let mut key = Vec::with_capacity(body.len());
    let mut bytes = body.iter();
    while let Some(&byte) = bytes.next() {
        key.push(byte);
        if byte == ESCAPE && bytes.next() != Some(&ESCAPED_ZERO) {
            return Err(corrupt("bad escape"));
        }
    }
    Ok((key, ts))
}

/// The commit timestamp of a stored version key.
pub fn commit_ts(raw: &[u8]) -> Result<u64> {
    raw.len()
        .checked_sub(TS_LEN)
        .and_then(|at| <[u8; TS_LEN]>::try_from(&raw[at..]).ok())
        .map(|inverted| !u64::from_be_bytes(inverted))
        .ok_or_else(|| Error::corruption("version key", format!("no timestamp: {raw:x?}")))
}

/// The encoded-key part of a version key (everything but the timestamp),
/// to tell cheaply whether two versions belong to the same user key.
pub fn key_part(raw: &[u8]) -> &[u8] {
    &raw[..raw.len().saturating_sub(TS_LEN)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn versions_of_a_key_are_newest_first_and_round_trip() {
        assert!(version_key(b"a", 9) < version_key(b"a", 3));
        assert!(version_key(b"a", 0) < version_key(b"a\x00", u64::MAX));
        assert!(version_key(b"a", 0) < versions_end(b"a"));
        assert_eq!(
            decode(&version_key(b"a\x00b", 7)).unwrap(),
            (b"a\x00b".to_vec(), 7)
        );
        assert!(decode(b"a\x00").is_err());
        assert!(decode(b"a\x00\x01abc").is_err());
        assert!(decode(b"a\x00\x07xxxxxxxx").is_err());
        assert!(
            decode(b"a\x00b\x00\x01xxxxxxxx").is_err(),
            "a zero not escaped"
        );
        assert_eq!(commit_ts(&version_key(b"k", 42)).unwrap(), 42);
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        // Zeros and 0xFF often, where the escaping matters.
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(0xFF), Just(1), any::<u8>()],
            0..12,
        )
    }

    proptest! {
        #[test]
        fn encoded_versions_sort_by_key_then_newest_first(a in key(), b in key(), ta in any::<u64>(), tb in any::<u64>()) {
            let expected = a.cmp(&b).then(tb.cmp(&ta));
            prop_assert_eq!(version_key(&a, ta).cmp(&version_key(&b, tb)), expected);
        }

        #[test]
        fn decoding_inverts_encoding(a in key(), ts in any::<u64>()) {
            prop_assert_eq!(decode(&version_key(&a, ts)).unwrap(), (a, ts));
        }

        #[test]
        fn a_keys_versions_lie_in_its_prefix_and_nothing_else_does(a in key(), b in key(), ts in any::<u64>()) {
            let version = version_key(&b, ts);
            let inside = version.as_slice() >= encode_key(&a).as_slice()
                && version < versions_end(&a);
            prop_assert_eq!(inside, a == b);
            let encoded = encode_key(&b);
            prop_assert_eq!(key_part(&version), encoded.as_slice());
        }

        #[test]
        fn span_bounds_hold_exactly_the_keys_of_the_span(start in key(), end in key(), k in key(), ts in any::<u64>()) {
            let version = version_key(&k, ts);
            let above = version >= lower_bound(&start);
            let below = end.is_empty() || version < upper_bound(&end);
            prop_assert_eq!(above, k >= start);
            prop_assert_eq!(below, end.is_empty() || k < end);
        }
    }
}
