//! How one version is stored: a kind byte, then for a value its expiry
//! (ms since the Unix epoch, 0 for none, big-endian) and the value itself.
//! A delete is a tombstone version: the kind byte alone.

use crate::error::{Error, Result};

const PUT: u8 = 0x01;
const TOMBSTONE: u8 = 0x02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    Put { value: &'a [u8], expire_at_ms: u64 },
    Tombstone,
}

impl Record<'_> {
    /// The value a read at wall-clock time `now_ms` sees (None: deleted or expired).
    pub fn live_value(&self, now_ms: u64) -> Option<&[u8]> {
        match *self {
            Record::Put {
                value,
                expire_at_ms,
            } if expire_at_ms == 0 || expire_at_ms > now_ms => Some(value),
            _ => None,
        }
    }
}

pub fn encode_put(value: &[u8], expire_at_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + value.len());
    out.push(PUT);
    out.extend_from_slice(&expire_at_ms.to_be_bytes());
    out.extend_from_slice(value);
    out
}

pub fn encode_tombstone() -> Vec<u8> {
    vec![TOMBSTONE]
}

pub fn decode(raw: &[u8]) -> Result<Record<'_>> {
    let corrupt = |why: String| Error::corruption("stored version", why);
    match raw.split_first() {
        Some((&PUT, rest)) => {
            let (time, value) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| corrupt(format!("{} bytes, shorter than its header", raw.len())))?;
            let expire_at_ms = u64::from_be_bytes(*time);
            Ok(Record::Put {
                value,
                expire_at_ms,
            })
        }
        Some((&TOMBSTONE, [])) => Ok(Record::Tombstone),
        Some((kind, _)) => Err(corrupt(format!("unknown kind {kind:#x}"))),
        None => Err(corrupt("empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_expire() {
        let raw = encode_put(b"hello", 7);
        let record = decode(&raw).unwrap();
        assert_eq!(record.live_value(6), Some(&b"hello"[..]));
        assert_eq!(record.live_value(7), None);
        assert_eq!(
            decode(&encode_put(b"", 0)).unwrap().live_value(u64::MAX),
            Some(&b""[..])
        );
        assert_eq!(decode(&encode_tombstone()).unwrap(), Record::Tombstone);
        assert_eq!(Record::Tombstone.live_value(0), None);
    }

    #[test]
    fn damaged_records_are_corruption_not_panics() {
        for raw in [&b""[..], b"\x01abc", b"\x02x", b"\x09"] {
            assert!(
                matches!(decode(raw), Err(Error::Corruption { .. })),
                "{raw:?}"
            );
        }
    }
}
