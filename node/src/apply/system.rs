//! Commands on the meta range's system keyspace: routing table updates, id
//! allocation, the node registry, the oracle's window, the GC safe point, the security
//! catalog, the cache policies.

use zdb_proto::v1::command;

use super::{ExecResult, Outcome, Refusal};
use crate::error::Result;
use crate::meta::table::{self, SystemBatch};

/// Applies a system command; `kind` is one of the system kinds.
pub fn apply(system: &mut SystemBatch<'_>, kind: &command::Kind) -> Result<ExecResult> {
    let refused = |reason: String| Ok(ExecResult::Refused(Refusal::Precondition(reason)));
    Ok(ExecResult::Applied(match kind {
        command::Kind::MetaUpdate(update) => {
            for range in &update.ranges {
                table::upsert(system, range)?;
            }
            Outcome::Written
        }
        command::Kind::AllocateRangeId(_) => Outcome::RangeId(table::allocate_range_id(system)?),
        command::Kind::RegisterNode(register) if register.node_id == 0 => {
            let node_id = table::register_node(system, &register.address)?;
            if !register.zone.is_empty() {
                table::set_node_zone(system, node_id, &register.zone);
            }
            Outcome::NodeId(node_id)
        }
        command::Kind::RegisterNode(register) => {
            if !table::announce_node(system, register.node_id, &register.address)? {
                return refused(format!(
                    "node {} is not registered; join the cluster instead",
                    register.node_id
                ));
            }
            if !register.zone.is_empty() {
                table::set_node_zone(system, register.node_id, &register.zone);
            }
            Outcome::NodeId(register.node_id)
        }
        command::Kind::SetNodeZone(change) => {
            if !table::is_registered(system, change.node_id)? {
                return refused(format!("node {} is not in the registry", change.node_id));
            }
            table::set_node_zone(system, change.node_id, &change.zone);
            Outcome::Written
        }
        command::Kind::SetNodeState(change) => {
            if !table::is_registered(system, change.node_id)? {
                return refused(format!("node {} is not in the registry", change.node_id));
            }
            table::set_node_state(system, change.node_id, change.state);
            Outcome::Written
        }
        command::Kind::ExtendOracleWindow(extend) => {
            Outcome::Timestamp(table::extend_oracle_window(system, extend.end)?)
        }
        command::Kind::SetGcSafePoint(set) => {
            Outcome::Timestamp(table::raise_gc_safe_point(system, set.safe_point)?)
        }
        command::Kind::SetGcLifeTime(set) => {
            table::set_gc_life_time(system, set.life_time_ms);
            Outcome::Written
        }
        command::Kind::SetCachePolicy(change) => {
            table::set_cache_policy(system, change)?;
            Outcome::Written
        }
        command::Kind::Security(change) => match table::change_security(system, change)? {
            Ok(()) => Outcome::Written,
            Err(reason) => return refused(reason),
        },
        _ => return refused("not a system command".into()),
    }))
}
