//! One range replica: its Raft group, how its commands apply to the data,
//! its snapshots, and the requests waiting on it.

pub mod apply;
pub mod descriptor;
pub mod load;
pub mod meta;
pub mod reads;
pub mod replica;
pub mod snapshot;

pub use replica::Replica;
