//! The meta range's system keyspace as a table: the routing table (each
//! range's descriptor keyed by its end key, so locating a key is one seek),
//! the node registry, the id counters, the timestamp oracle's window and
//! the GC safe point, the security catalog and the cache policies. Only range 1 writes here, through
//! its Raft log; everything else reads it through the meta range's leader
//! (see `meta::client`) or, on a replica of range 1, from its own copy.

use std::collections::HashMap;

use prost::Message as _;
use zdb_proto::v1::{
    CacheSettings, NodeAddress, NodeState, RangeDescriptor, RangeEpoch, SecurityCatalog,
};

use crate::engine::{keys, Batch, Engine, OverlayBatch, ReadView, CF_SYSTEM};
use crate::error::{Error, Result};

/// The range that replicates the system keyspace.
pub const META_RANGE_ID: u64 = 1;

/// The batch's writes to the system keyspace, readable before the batch is
/// written: a command later in the same batch sees what an earlier one wrote.
pub struct SystemBatch<'a>(OverlayBatch<'a>);

impl<'a> SystemBatch<'a> {
    pub fn new(
        engine: &'a Engine,
        batch: &'a mut Batch,
        written: &'a mut HashMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Self {
        SystemBatch(OverlayBatch::new(engine, batch, CF_SYSTEM, written))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key)
    }

    fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        match value {
            Some(value) => self.0.put(&key, value),
            None => self.0.delete(&key),
        }
    }

    fn counter(&self, key: &[u8], first: u64) -> Result<u64> {
        Ok(self
            .get(key)?
            .and_then(|raw| raw.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(first))
    }
}

fn epoch_key(epoch: Option<&RangeEpoch>) -> (u64, u64) {
    epoch.map_or((0, 0), |epoch| (epoch.version, epoch.conf_ver))
}

/// True when `a` is strictly newer than `b` in either part of the epoch and
/// older in neither.
pub fn is_newer(a: &RangeDescriptor, b: &RangeDescriptor) -> bool {
    let (av, ac) = epoch_key(a.epoch.as_ref());
    let (bv, bc) = epoch_key(b.epoch.as_ref());
    av >= bv && ac >= bc && (av, ac) != (bv, bc)
}

/// Records the routing entry of `range` unless the table already holds that
/// range at the same or a newer epoch. Entries of other ranges that the new
/// span covers and that are older are removed, so the table never holds two
/// ranges for one key. Returns whether the entry was written.
pub fn upsert(system: &mut SystemBatch<'_>, range: &RangeDescriptor) -> Result<bool> {
    let id_key = keys::meta_range_id_key(range.range_id);
    if let Some(old_end) = system.get(&id_key)? {
        let old_route = keys::meta_route_key(&old_end);
        if let Some(raw) = system.get(&old_route)? {
            let old = RangeDescriptor::decode(raw.as_slice())?;
            if old.range_id == range.range_id {
                if !is_newer(range, &old) {
                    return Ok(false);
                }
                system.put(old_route, None);
            }
        }
    }
    // Whatever sits at the new end key belongs to an older view of the span
    // (a range that has since split): the newer descriptor replaces it.
    let route = keys::meta_route_key(&range.end_key);
    if let Some(raw) = system.get(&route)? {
        let existing = RangeDescriptor::decode(raw.as_slice())?;
        if existing.range_id != range.range_id && is_newer(&existing, range) {
            return Ok(false);
        }
    }
    system.put(route, Some(range.encode_to_vec()));
    system.put(id_key, Some(range.end_key.clone()));
    Ok(true)
}

/// How far behind the oracle's time the GC safe point trails, unless the
/// cluster sets another life time (TiKV's default too).
pub const DEFAULT_GC_LIFE_TIME_MS: u64 = 10 * 60 * 1000;

fn read_u64(view: &impl ReadView, key: &[u8]) -> Result<Option<u64>> {
    Ok(view
        .get(CF_SYSTEM, key)?
        .and_then(|raw| raw.try_into().ok().map(u64::from_be_bytes)))
}

/// Raises a stored timestamp to `value`; a lower value changes nothing.
fn raise(system: &mut SystemBatch<'_>, key: &[u8], value: u64) -> Result<u64> {
    let current = system.counter(key, 0)?;
    if value > current {
        system.put(key.to_vec(), Some(value.to_be_bytes().to_vec()));
    }
    Ok(current.max(value))
}

/// The highest timestamp the oracle may have handed out (0: none yet).
pub fn oracle_window_end(view: &impl ReadView) -> Result<u64> {
    Ok(read_u64(view, keys::ORACLE_WINDOW_END_KEY)?.unwrap_or(0))
}

pub fn extend_oracle_window(system: &mut SystemBatch<'_>, end: u64) -> Result<u64> {
    raise(system, keys::ORACLE_WINDOW_END_KEY, end)
}

pub fn gc_safe_point(view: &impl ReadView) -> Result<u64> {
    Ok(read_u64(view, keys::GC_SAFE_POINT_KEY)?.unwrap_or(0))
}

pub fn raise_gc_safe_point(system: &mut SystemBatch<'_>, safe_point: u64) -> Result<u64> {
    raise(system, keys::GC_SAFE_POINT_KEY, safe_point)
}

pub fn gc_life_time_ms(view: &impl ReadView) -> Result<u64> {
    Ok(read_u64(view, keys::GC_LIFE_TIME_KEY)?.unwrap_or(DEFAULT_GC_LIFE_TIME_MS))
}

pub fn set_gc_life_time(system: &mut SystemBatch<'_>, life_time_ms: u64) {
    system.put(
        keys::GC_LIFE_TIME_KEY.to_vec(),
        Some(life_time_ms.to_be_bytes().to_vec()),
    );
}

fn decode_catalog(raw: Option<Vec<u8>>) -> Result<SecurityCatalog> {
    match raw {
        None => Ok(SecurityCatalog::default()),
        Some(raw) => SecurityCatalog::decode(raw.as_slice()).map_err(|err| Error::Corruption {
            what: "security catalog",
            detail: err.to_string(),
        }),
    }
}

/// Users, roles and whether authentication is on (empty until set up).
pub fn security_catalog(view: &impl ReadView) -> Result<SecurityCatalog> {
    decode_catalog(view.get(CF_SYSTEM, keys::SECURITY_CATALOG_KEY)?)
}

/// Applies a change to the catalog, or returns why its state refuses it.
pub fn change_security(
    system: &mut SystemBatch<'_>,
    change: &zdb_proto::v1::SecurityCommand,
) -> Result<std::result::Result<(), String>> {
    let mut catalog = decode_catalog(system.get(keys::SECURITY_CATALOG_KEY)?)?;
    if let Err(reason) = crate::auth::catalog::apply(&mut catalog, change) {
        return Ok(Err(reason));
    }
    system.put(
        keys::SECURITY_CATALOG_KEY.to_vec(),
        Some(catalog.encode_to_vec()),
    );
    Ok(Ok(()))
}

/// The cache policies (none until one is set).
pub fn cache_settings(view: &impl ReadView) -> Result<CacheSettings> {
    decode_cache_settings(view.get(CF_SYSTEM, keys::CACHE_SETTINGS_KEY)?)
}

fn decode_cache_settings(raw: Option<Vec<u8>>) -> Result<CacheSettings> {
    match raw {
        None => Ok(CacheSettings::default()),
        Some(raw) => CacheSettings::decode(raw.as_slice()).map_err(|err| Error::Corruption {
            what: "cache settings",
            detail: err.to_string(),
        }),
    }
}

/// Adds, replaces (same prefix) or removes one cache policy.
pub fn set_cache_policy(
    system: &mut SystemBatch<'_>,
    change: &zdb_proto::v1::SetCachePolicyCommand,
) -> Result<()> {
    let mut settings = decode_cache_settings(system.get(keys::CACHE_SETTINGS_KEY)?)?;
    let Some(policy) = &change.policy else {
        return Ok(());
    };
    settings
        .policies
        .retain(|held| held.prefix != policy.prefix);
    if !change.remove {
        settings.policies.push(policy.clone());
        settings.policies.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    }
    system.put(
        keys::CACHE_SETTINGS_KEY.to_vec(),
        Some(settings.encode_to_vec()),
    );
    Ok(())
}

/// Takes the next range id (the counter starts at 2: range 1 is the meta range).
pub fn allocate_range_id(system: &mut SystemBatch<'_>) -> Result<u64> {
    let next = system.counter(keys::NEXT_RANGE_ID_KEY, META_RANGE_ID + 1)?;
    system.put(
        keys::NEXT_RANGE_ID_KEY.to_vec(),
        Some((next + 1).to_be_bytes().to_vec()),
    );
    Ok(next)
}

/// The routing entries of the ranges holding `key` and the keys after it.
pub fn locate(view: &impl ReadView, key: &[u8], limit: usize) -> Result<Vec<RangeDescriptor>> {
    let mut ranges = Vec::new();
    view.scan(
        CF_SYSTEM,
        &keys::meta_route_seek_key(key),
        &keys::meta_route_end(),
        false,
        |_, raw| {
            ranges.push(RangeDescriptor::decode(raw)?);
            Ok(ranges.len() < limit.max(1))
        },
    )?;
    Ok(ranges)
}

/// The routing entry of range `range_id`, if the table has it.
pub fn descriptor_of(view: &impl ReadView, range_id: u64) -> Result<Option<RangeDescriptor>> {
    let Some(end_key) = view.get(CF_SYSTEM, &keys::meta_range_id_key(range_id))? else {
        return Ok(None);
    };
    let Some(raw) = view.get(CF_SYSTEM, &keys::meta_route_key(&end_key))? else {
        return Ok(None);
    };
    let range = RangeDescriptor::decode(raw.as_slice())?;
    Ok((range.range_id == range_id).then_some(range))
}

/// The cluster id and the founding members' addresses.
pub fn write_cluster(
    batch: &mut Batch,
    cluster_id: &str,
    members: &std::collections::BTreeMap<u64, String>,
) {
    batch.put(CF_SYSTEM, keys::CLUSTER_ID_KEY, cluster_id.as_bytes());
    for (&node_id, address) in members {
        batch.put(CF_SYSTEM, keys::meta_node_key(node_id), address.as_bytes());
    }
    let next = members.keys().max().copied().unwrap_or(0) + 1;
    batch.put(CF_SYSTEM, keys::NEXT_NODE_ID_KEY, next.to_be_bytes());
}

/// Gives a joining node the next node id (never reused: a wiped node comes
/// back as a new one) and records its address.
pub fn register_node(system: &mut SystemBatch<'_>, address: &str) -> Result<u64> {
    let node_id = system.counter(keys::NEXT_NODE_ID_KEY, 1)?;
    system.put(
        keys::NEXT_NODE_ID_KEY.to_vec(),
        Some((node_id + 1).to_be_bytes().to_vec()),
    );
    system.put(
        keys::meta_node_key(node_id),
        Some(address.as_bytes().to_vec()),
    );
    Ok(node_id)
}

/// Records where a registered node serves, as the node itself announces it.
/// Returns false (and writes nothing) for a node id never registered.
pub fn announce_node(system: &mut SystemBatch<'_>, node_id: u64, address: &str) -> Result<bool> {
    let key = keys::meta_node_key(node_id);
    if system.get(&key)?.is_none() {
        return Ok(false);
    }
    system.put(key, Some(address.as_bytes().to_vec()));
    Ok(true)
}

/// Records the zone a node runs in; an empty zone forgets it.
pub fn set_node_zone(system: &mut SystemBatch<'_>, node_id: u64, zone: &str) {
    let value = (!zone.is_empty()).then(|| zone.as_bytes().to_vec());
    system.put(keys::meta_node_zone_key(node_id), value);
}

/// Records a node's state.
pub fn set_node_state(system: &mut SystemBatch<'_>, node_id: u64, state: i32) {
    system.put(
        keys::meta_node_state_key(node_id),
        Some(state.to_be_bytes().to_vec()),
    );
}

/// Whether `node_id` is in the registry.
pub fn is_registered(system: &SystemBatch<'_>, node_id: u64) -> Result<bool> {
    Ok(system.get(&keys::meta_node_key(node_id))?.is_some())
}

/// The node registry with each node's state.
pub fn registry(view: &impl ReadView) -> Result<Vec<NodeAddress>> {
    let mut nodes = Vec::new();
    for (node_id, address) in self::nodes(view)? {
        let state = view
            .get(CF_SYSTEM, &keys::meta_node_state_key(node_id))?
            .and_then(|raw| raw.try_into().ok().map(i32::from_be_bytes))
            .unwrap_or(NodeState::Active as i32);
        let zone = view
            .get(CF_SYSTEM, &keys::meta_node_zone_key(node_id))?
            .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            .unwrap_or_default();
        nodes.push(NodeAddress {
            node_id,
            address,
            state,
            zone,
        });
    }
    Ok(nodes)
}

/// The node registry: node id and gRPC address of every member.
pub fn nodes(view: &impl ReadView) -> Result<Vec<(u64, String)>> {
    let mut nodes = Vec::new();
    view.scan(
        CF_SYSTEM,
        &keys::meta_node_key(0),
        &keys::meta_node_prefix_end(),
        false,
        |key, value| {
            if let Some(node_id) = keys::decode_meta_node_key(key) {
                nodes.push((node_id, String::from_utf8_lossy(value).into_owned()));
            }
            Ok(true)
        },
    )?;
    Ok(nodes)
}

/// Every system key and value, for the meta range's snapshots.
pub fn dump(view: &impl ReadView) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut pairs = Vec::new();
    view.scan(CF_SYSTEM, &[], &[], false, |key, value| {
        pairs.push((key.to_vec(), value.to_vec()));
        Ok(true)
    })?;
    Ok(pairs)
}

/// Removes this node's copy of the system keyspace (its replica of the meta
/// range is gone): a copy nobody updates must not answer anything.
pub fn forget(batch: &mut Batch) {
    batch.delete_range(CF_SYSTEM, Vec::new(), vec![0xff; 64]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(id: u64, start: &str, end: &str, version: u64) -> RangeDescriptor {
        RangeDescriptor {
            range_id: id,
            start_key: start.into(),
            end_key: end.into(),
            epoch: Some(RangeEpoch {
                conf_ver: 1,
                version,
            }),
            replicas: vec![],
        }
    }

    fn apply(engine: &Engine, ranges: &[RangeDescriptor]) -> Vec<bool> {
        let mut batch = engine.batch();
        let mut written = HashMap::new();
        let mut system = SystemBatch::new(engine, &mut batch, &mut written);
        let applied = ranges
            .iter()
            .map(|r| upsert(&mut system, r).unwrap())
            .collect();
        engine.write(batch, false).unwrap();
        applied
    }

    #[test]
    fn split_replaces_entries_and_older_epochs_never_win() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        apply(&engine, &[range(1, "", "", 1)]);
        assert_eq!(
            locate(&engine, b"zzz", 1).unwrap(),
            vec![range(1, "", "", 1)]
        );

        // Split at "m": left keeps id 1 and ends at "m", right is range 2.
        assert_eq!(
            apply(&engine, &[range(1, "", "m", 2), range(2, "m", "", 2)]),
            vec![true, true]
        );
        assert_eq!(
            locate(&engine, b"a", 1).unwrap(),
            vec![range(1, "", "m", 2)]
        );
        assert_eq!(
            locate(&engine, b"m", 1).unwrap(),
            vec![range(2, "m", "", 2)]
        );
        assert_eq!(locate(&engine, b"", 5).unwrap().len(), 2);

        // A late report of the pre-split range changes nothing.
        assert_eq!(apply(&engine, &[range(1, "", "", 1)]), vec![false]);
        assert_eq!(
            locate(&engine, b"x", 1).unwrap(),
            vec![range(2, "m", "", 2)]
        );
        assert_eq!(
            locate(&engine, b"a", 1).unwrap(),
            vec![range(1, "", "m", 2)]
        );
    }

    #[test]
    fn range_ids_are_never_handed_out_twice() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut batch = engine.batch();
        let mut written = HashMap::new();
        let mut system = SystemBatch::new(&engine, &mut batch, &mut written);
        let a = allocate_range_id(&mut system).unwrap();
        let b = allocate_range_id(&mut system).unwrap();
        engine.write(batch, false).unwrap();
        let (mut batch, mut written) = (engine.batch(), HashMap::new());
        let c =
            allocate_range_id(&mut SystemBatch::new(&engine, &mut batch, &mut written)).unwrap();
        assert_eq!((a, b, c), (2, 3, 4));
    }

    #[test]
    fn members_announce_their_own_address_and_strangers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut batch = engine.batch();
        let mut written = HashMap::new();
        // Founding member 2 as node 1's --peers named it: through a proxy.
        let founders = std::collections::BTreeMap::from([
            (1, "10.0.0.1:7700".to_owned()),
            (2, "proxy:9".to_owned()),
        ]);
        write_cluster(&mut batch, "c", &founders);
        engine.write(batch, false).unwrap();
        let mut batch = engine.batch();
        let mut system = SystemBatch::new(&engine, &mut batch, &mut written);
        assert!(announce_node(&mut system, 2, "10.0.0.2:7700").unwrap());
        assert!(!announce_node(&mut system, 9, "10.0.0.9:7700").unwrap());
        engine.write(batch, false).unwrap();
        assert_eq!(
            nodes(&engine).unwrap(),
            vec![
                (1, "10.0.0.1:7700".to_owned()),
                (2, "10.0.0.2:7700".to_owned())
            ]
        );
    }
}
