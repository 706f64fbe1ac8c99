//! The first range of a new cluster.

use std::collections::{BTreeMap, HashMap};

use zdb_proto::v1::RangeDescriptor;

use crate::engine::Engine;
use crate::error::Result;
use crate::meta::table::{self as meta, SystemBatch};
use crate::raftlog::RangeStorage;
use crate::range::descriptor;

/// Every founding member writes the same initial state: the first range and,
/// in the meta range's keyspace, the cluster id, the node registry and the
/// routing table's first entry.
pub fn bootstrap(
    engine: &Engine,
    cluster_id: &str,
    members: &BTreeMap<u64, String>,
) -> Result<RangeDescriptor> {
    let node_ids: Vec<u64> = members.keys().copied().collect();
    let range = descriptor::initial(&node_ids);
    let mut batch = engine.batch();
    descriptor::save(&mut batch, &range);
    meta::write_cluster(&mut batch, cluster_id, members);
    let mut written = HashMap::new();
    meta::upsert(
        &mut SystemBatch::new(engine, &mut batch, &mut written),
        &range,
    )?;
    RangeStorage::write_bootstrap_state(
        engine,
        &mut batch,
        range.range_id,
        raft::eraftpb::ConfState::from((node_ids, vec![])),
    )?;
    engine.write(batch, true)?;
    Ok(range)
}
