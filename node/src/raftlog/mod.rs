//! Raft's durable state in RocksDB: the log, the hard state and the apply
//! state of every range, behind raft-rs's `Storage` trait.

mod apply_state;
mod entry_cache;
mod storage;

pub use apply_state::ApplyState;
pub use storage::{RangeStorage, RAFT_INIT_INDEX, RAFT_INIT_TERM};
