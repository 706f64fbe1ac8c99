//! How a user value is stored: an 8-byte big-endian expiry (ms since the Unix
//! epoch, 0 for none) followed by the value itself.

use crate::error::{Error, Result};

pub fn encode(value: &[u8], expire_at_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&expire_at_ms.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// A stored value as read back from the data column family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue<'a> {
    pub expire_at_ms: u64,
    pub value: &'a [u8],
}

impl StoredValue<'_> {
    pub fn is_live_at(&self, now_ms: u64) -> bool {
        self.expire_at_ms == 0 || self.expire_at_ms > now_ms
    }
}

pub fn decode(raw: &[u8]) -> Result<StoredValue<'_>> {
    let (time, value) = raw.split_at_checked(8).ok_or_else(|| {
        Error::corruption(
            "stored value",
            format!("{} bytes, shorter than its header", raw.len()),
        )
    })?;
    let expire_at_ms = u64::from_be_bytes(time.try_into().expect("split at 8"));
    Ok(StoredValue {
        expire_at_ms,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let raw = encode(b"hello", 7);
        let stored = decode(&raw).unwrap();
        assert_eq!(stored.value, b"hello");
        assert_eq!(stored.expire_at_ms, 7);
        assert!(stored.is_live_at(6));
        assert!(!stored.is_live_at(7));
        assert!(decode(&encode(b"", 0)).unwrap().is_live_at(u64::MAX));
    }

    #[test]
    fn short_value_is_corruption_not_panic() {
        assert!(matches!(decode(b"abc"), Err(Error::Corruption { .. })));
    }
}
