//! One range replica: its Raft group and proposals (`replica`), its share
//! of a store pass (`ready`), its snapshots, its linearizable reads and its
//! load; descriptors and the checks requests pass against them.

pub mod descriptor;
pub mod load;
pub mod reads;
pub mod ready;
pub mod replica;
pub mod snapshot;

pub use replica::Replica;
