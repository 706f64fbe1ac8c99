//! Byte layout of everything the node keeps outside the user data column family.
//!
//! Raft state is keyed by range id first so that one range's log is contiguous
//! and can be dropped with one range delete.

pub const CF_DATA: &str = "data";
pub const CF_RAFT: &str = "raft";
pub const CF_META: &str = "meta";
pub const CF_TTL: &str = "ttl";
/// The cluster's system keyspace (routing table, id counters), replicated by
/// the meta range, range 1.
pub const CF_SYSTEM: &str = "system";
/// Transactions' locks on user keys, their span locks, and the record of
/// each transaction's fate (see `txn`).
pub const CF_LOCKS: &str = "locks";
pub const CF_SPAN_LOCKS: &str = "span_locks";
pub const CF_TXN: &str = "txns";

/// The column families keyed by escaped user key: a range owns the same
/// span of each.
pub const SPAN_FAMILIES: [&str; 4] = [CF_DATA, CF_LOCKS, CF_SPAN_LOCKS, CF_TXN];

/// Every column family, as the engine creates them.
pub const ALL_FAMILIES: [&str; 8] = [
    CF_DATA,
    CF_RAFT,
    CF_META,
    CF_TTL,
    CF_SYSTEM,
    CF_LOCKS,
    CF_SPAN_LOCKS,
    CF_TXN,
];

const RAFT_LOG_ENTRY: u8 = 0x01;
const RAFT_HARD_STATE: u8 = 0x02;
const RAFT_APPLY_STATE: u8 = 0x03;

pub const NODE_IDENTITY_KEY: &[u8] = b"node_identity";
/// How user data is laid out; a node refuses a directory of another layout.
pub const STORAGE_FORMAT_KEY: &[u8] = b"storage_format";
/// Present when the directory's values are sealed (encryption at rest).
pub const ENCRYPTION_MARKER_KEY: &[u8] = b"encryption_at_rest";
const RANGE_DESCRIPTOR_PREFIX: &[u8] = b"range/";
const PEER_STORE_PREFIX: &[u8] = b"peer_store/";

/// Range id and record kind: the part of a Raft key shared by one range's
/// log entries.
pub const RAFT_KEY_PREFIX_LEN: usize = 9;

fn range_prefixed(range_id: u64, kind: u8, extra: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(RAFT_KEY_PREFIX_LEN + extra);
    key.extend_from_slice(&range_id.to_be_bytes());
    key.push(kind);
    key
}

pub fn log_entry_key(range_id: u64, index: u64) -> Vec<u8> {
    let mut key = range_prefixed(range_id, RAFT_LOG_ENTRY, 8);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

pub fn hard_state_key(range_id: u64) -> Vec<u8> {
    range_prefixed(range_id, RAFT_HARD_STATE, 0)
}

pub fn apply_state_key(range_id: u64) -> Vec<u8> {
    range_prefixed(range_id, RAFT_APPLY_STATE, 0)
}

pub fn range_descriptor_key(range_id: u64) -> Vec<u8> {
    [RANGE_DESCRIPTOR_PREFIX, &range_id.to_be_bytes()].concat()
}

pub fn range_descriptor_prefix() -> &'static [u8] {
    RANGE_DESCRIPTOR_PREFIX
}

pub fn peer_store_key(node_id: u64) -> Vec<u8> {
    [PEER_STORE_PREFIX, &node_id.to_be_bytes()].concat()
}

/// TTL index entry: expiry time first, so that everything expired by `now`
/// is one prefix scan.
pub fn ttl_key(expire_at_ms: u64, user_key: &[u8]) -> Vec<u8> {
    [&expire_at_ms.to_be_bytes()[..], user_key].concat()
}

pub fn decode_ttl_key(key: &[u8]) -> Option<(u64, &[u8])> {
    let (time, user_key) = key.split_at_checked(8)?;
    Some((u64::from_be_bytes(time.try_into().ok()?), user_key))
}

const META_ROUTE_PREFIX: u8 = b'r';
const META_ID_PREFIX: u8 = b'i';
pub const NEXT_RANGE_ID_KEY: &[u8] = b"next_range_id";
pub const CLUSTER_ID_KEY: &[u8] = b"cluster_id";
pub const NEXT_NODE_ID_KEY: &[u8] = b"next_node_id";
/// The timestamp oracle's window end, the GC safe point and life time.
pub const ORACLE_WINDOW_END_KEY: &[u8] = b"oracle_window_end";
pub const GC_SAFE_POINT_KEY: &[u8] = b"gc_safe_point";
pub const GC_LIFE_TIME_KEY: &[u8] = b"gc_life_time_ms";
/// The security catalog: users, roles, whether authentication is on.
pub const SECURITY_CATALOG_KEY: &[u8] = b"security_catalog";
/// The cache policies (cache mode).
pub const CACHE_SETTINGS_KEY: &[u8] = b"cache_settings";
const NODE_PREFIX: u8 = b'n';
const NODE_STATE_PREFIX: u8 = b's';
const NODE_ZONE_PREFIX: u8 = b'z';

/// Node registry: node id -> state (absent: active).
pub fn meta_node_state_key(node_id: u64) -> Vec<u8> {
    [&[NODE_STATE_PREFIX][..], &node_id.to_be_bytes()].concat()
}

/// Node registry: node id -> zone (absent: unknown).
pub fn meta_node_zone_key(node_id: u64) -> Vec<u8> {
    [&[NODE_ZONE_PREFIX][..], &node_id.to_be_bytes()].concat()
}

/// Node registry entry: node id -> gRPC address.
pub fn meta_node_key(node_id: u64) -> Vec<u8> {
    [&[NODE_PREFIX][..], &node_id.to_be_bytes()].concat()
}

pub fn meta_node_prefix_end() -> Vec<u8> {
    vec![NODE_PREFIX + 1]
}

pub fn decode_meta_node_key(key: &[u8]) -> Option<u64> {
    match key {
        [NODE_PREFIX, id @ ..] => Some(u64::from_be_bytes(id.try_into().ok()?)),
        _ => None,
    }
}

/// Routing-table key of the range ending at `end_key`: finite ends sort in
/// key order, the unbounded end (empty) after all of them.
pub fn meta_route_key(end_key: &[u8]) -> Vec<u8> {
    if end_key.is_empty() {
        vec![META_ROUTE_PREFIX, 0x02]
    } else {
        [&[META_ROUTE_PREFIX, 0x01][..], end_key].concat()
    }
}

/// The first routing key whose range may hold `key`: ends strictly above it.
pub fn meta_route_seek_key(key: &[u8]) -> Vec<u8> {
    [&[META_ROUTE_PREFIX, 0x01][..], key, &[0x00]].concat()
}

pub fn meta_route_end() -> Vec<u8> {
    vec![META_ROUTE_PREFIX + 1]
}

pub fn meta_range_id_key(range_id: u64) -> Vec<u8> {
    [&[META_ID_PREFIX][..], &range_id.to_be_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_sort_by_range_then_index() {
        assert!(log_entry_key(1, 255) < log_entry_key(1, 256));
        assert!(log_entry_key(1, u64::MAX) < hard_state_key(1));
        assert!(apply_state_key(1) < log_entry_key(2, 0));
    }

    #[test]
    fn route_keys_order_by_end_with_unbounded_last() {
        assert!(meta_route_key(b"a") < meta_route_key(b"ab"));
        assert!(meta_route_key(b"\xff\xff") < meta_route_key(b""));
        // A range ending at "b" does not hold "b"; one ending at "b\0" does.
        assert!(meta_route_seek_key(b"b") > meta_route_key(b"b"));
        assert!(meta_route_seek_key(b"b") <= meta_route_key(b"b\0"));
        assert!(meta_route_seek_key(b"\xff") < meta_route_key(b""));
        assert!(meta_route_key(b"") < meta_route_end());
    }

    #[test]
    fn ttl_keys_round_trip_and_sort_by_time() {
        let key = ttl_key(42, b"k");
        assert_eq!(decode_ttl_key(&key), Some((42, &b"k"[..])));
        assert!(ttl_key(1, b"zzz") < ttl_key(2, b"a"));
        assert_eq!(decode_ttl_key(b"short"), None);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn route_keys_preserve_end_key_order(a in proptest::collection::vec(any::<u8>(), 1..16),
                                                b in proptest::collection::vec(any::<u8>(), 1..16)) {
                prop_assert_eq!(a.cmp(&b), meta_route_key(&a).cmp(&meta_route_key(&b)));
                prop_assert!(meta_route_key(&a) < meta_route_key(b""));
            }

            #[test]
            fn seeking_a_key_finds_exactly_the_ends_above_it(key in proptest::collection::vec(any::<u8>(), 0..16),
                                                            end in proptest::collection::vec(any::<u8>(), 1..16)) {
                // A range ending at `end` holds `key` iff key < end: its route key is at or after the seek key.
                let holds = key < end;
                prop_assert_eq!(meta_route_key(&end) >= meta_route_seek_key(&key), holds);
                prop_assert!(meta_route_key(b"") >= meta_route_seek_key(&key));
            }

            #[test]
            fn log_keys_sort_like_their_indexes(range in any::<u64>(), i in any::<u64>(), j in any::<u64>()) {
                prop_assert_eq!(i.cmp(&j), log_entry_key(range, i).cmp(&log_entry_key(range, j)));
            }
        }
    }
}
