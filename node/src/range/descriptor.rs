//! Range descriptors: what span a range owns, at which epoch, on which nodes.

use prost::Message as _;
use zdb_proto::v1::{RangeDescriptor, RangeEpoch, ReplicaDescriptor, RequestHeader};

use crate::engine::{keys, Batch, ReadView, CF_META};
use crate::error::{Error, Result};

/// The range that owns the whole key space when a cluster is bootstrapped.
pub const FIRST_RANGE_ID: u64 = 1;

pub fn initial(node_ids: &[u64]) -> RangeDescriptor {
    RangeDescriptor {
        range_id: FIRST_RANGE_ID,
        start_key: Vec::new(),
        end_key: Vec::new(),
        epoch: Some(RangeEpoch {
            conf_ver: 1,
            version: 1,
        }),
        replicas: node_ids
            .iter()
            .map(|&node_id| ReplicaDescriptor {
                node_id,
                // One replica per node per range: the node id doubles as the
                // Raft peer id, so a message's `to` tells the node directly.
                replica_id: node_id,
                learner: false,
            })
            .collect(),
    }
}

pub fn contains(range: &RangeDescriptor, key: &[u8]) -> bool {
    key >= range.start_key.as_slice()
        && (range.end_key.is_empty() || key < range.end_key.as_slice())
}

/// Refuses a request that names another range or an older epoch, or touches
/// keys outside the span, so a client with a stale view refreshes it.
pub fn check_request<'k>(
    range: &RangeDescriptor,
    header: Option<&RequestHeader>,
    mut keys: impl Iterator<Item = &'k [u8]>,
) -> Result<()> {
    if let Some(header) = header {
        if header.range_id != 0 && header.range_id != range.range_id {
            return Err(Error::RangeNotFound(header.range_id));
        }
        if let Some(epoch) = &header.epoch {
            if Some(epoch) != range.epoch.as_ref() {
                return Err(Error::EpochNotMatch {
                    current: vec![range.clone()],
                });
            }
        }
    }
    if let Some(key) = keys.find(|key| !contains(range, key)) {
        return Err(Error::KeyNotInRange {
            key: key.to_vec(),
            range: Box::new(range.clone()),
        });
    }
    Ok(())
}

/// A scan ending at `end` (exclusive; empty: unbounded) stays inside the range.
pub fn check_span_end(range: &RangeDescriptor, end: &[u8]) -> Result<()> {
    if range.end_key.is_empty() || (!end.is_empty() && end <= range.end_key.as_slice()) {
        return Ok(());
    }
    Err(Error::KeyNotInRange {
        key: range.end_key.clone(),
        range: Box::new(range.clone()),
    })
}

/// The first key after every key that starts with `prefix` (empty: no
/// such key, the span is unbounded).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// The part of `[start, end)` (empty end: unbounded) inside the range.
pub fn clip(range: &RangeDescriptor, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let start = start.max(range.start_key.as_slice()).to_vec();
    let end = match (end.is_empty(), range.end_key.is_empty()) {
        (true, _) => range.end_key.clone(),
        (false, true) => end.to_vec(),
        (false, false) => end.min(range.end_key.as_slice()).to_vec(),
    };
    (start, end)
}

pub fn overlaps(a: &RangeDescriptor, b: &RangeDescriptor) -> bool {
    let a_starts_before_b_ends = b.end_key.is_empty() || a.start_key < b.end_key;
    let b_starts_before_a_ends = a.end_key.is_empty() || b.start_key < a.end_key;
    a_starts_before_b_ends && b_starts_before_a_ends
}

pub fn save(batch: &mut Batch, range: &RangeDescriptor) {
    batch.put(
        CF_META,
        keys::range_descriptor_key(range.range_id),
        range.encode_to_vec(),
    );
}

/// Removes every trace of a replica: Raft state, descriptor, data of its
/// span, and for the meta range this node's copy of the system keyspace.
pub fn destroy(batch: &mut Batch, range: &RangeDescriptor) {
    batch.delete_range(
        crate::engine::CF_RAFT,
        range.range_id.to_be_bytes(),
        (range.range_id + 1).to_be_bytes(),
    );
    batch.delete(CF_META, keys::range_descriptor_key(range.range_id));
    let (lower, upper) = crate::mvcc::keys::delete_bounds(&range.start_key, &range.end_key);
    for cf in crate::engine::keys::SPAN_FAMILIES {
        batch.delete_range(cf, &lower, &upper);
    }
    if range.range_id == crate::meta::table::META_RANGE_ID {
        crate::meta::table::forget(batch);
    }
}

/// Every range this node holds a replica of.
pub fn load_all(view: &impl ReadView) -> Result<Vec<RangeDescriptor>> {
    let prefix = keys::range_descriptor_prefix();
    let mut end = prefix.to_vec();
    *end.last_mut().expect("non-empty prefix") += 1;
    let mut ranges = Vec::new();
    view.scan(CF_META, prefix, &end, false, |_, raw| {
        ranges.push(RangeDescriptor::decode(raw)?);
        Ok(true)
    })?;
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: &[u8], end: &[u8]) -> RangeDescriptor {
        RangeDescriptor {
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..initial(&[1])
        }
    }

    #[test]
    fn span_is_half_open_and_empty_end_is_unbounded() {
        let range = span(b"b", b"d");
        assert!(!contains(&range, b"a"));
        assert!(contains(&range, b"b"));
        assert!(contains(&range, b"czzz"));
        assert!(!contains(&range, b"d"));
        assert!(contains(&span(b"", b""), b"\xff\xff"));
    }

    #[test]
    fn scan_ends_and_overlaps() {
        let range = span(b"b", b"d");
        assert!(check_span_end(&range, b"c").is_ok());
        assert!(check_span_end(&range, b"d").is_ok());
        assert!(check_span_end(&range, b"e").is_err());
        assert!(check_span_end(&range, b"").is_err());
        assert!(check_span_end(&span(b"b", b""), b"").is_ok());
        assert!(overlaps(&range, &span(b"c", b"")));
        assert!(!overlaps(&range, &span(b"d", b"")));
        assert!(!overlaps(&range, &span(b"", b"b")));
        assert!(overlaps(&span(b"", b""), &range));
    }

    #[test]
    fn stale_epoch_and_foreign_keys_are_refused() {
        let range = span(b"b", b"d");
        let stale = RequestHeader {
            range_id: 1,
            epoch: Some(RangeEpoch {
                conf_ver: 1,
                version: 0,
            }),
        };
        assert!(matches!(
            check_request(&range, Some(&stale), std::iter::empty()),
            Err(Error::EpochNotMatch { .. })
        ));
        assert!(matches!(
            check_request(&range, None, [&b"c"[..], &b"e"[..]].into_iter()),
            Err(Error::KeyNotInRange { key, .. }) if key == b"e"
        ));
        let other = RequestHeader {
            range_id: 7,
            epoch: None,
        };
        assert!(matches!(
            check_request(&range, Some(&other), std::iter::empty()),
            Err(Error::RangeNotFound(7))
        ));
        assert!(check_request(&range, None, [&b"b"[..]].into_iter()).is_ok());
    }
}
