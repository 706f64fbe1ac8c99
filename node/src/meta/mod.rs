//! The meta range (range 1) as the cluster's table: routing entries, the
//! node registry, id counters, the oracle's window, the GC safe point, and
//! the deadlock detector its leader runs.
//!
//! - [`table`]: the system keyspace's layout and the deterministic updates
//!   the meta range applies;
//! - [`client`]: reads and writes made through the meta range's leader,
//!   from any node;
//! - [`reporter`]: background tasks keeping the table and this node's view
//!   of it current;
//! - [`oracle`]: the timestamp oracle the meta range's leader serves;
//! - [`timestamps`]: this node's batched way to the oracle;
//! - [`gc`]: moving the GC safe point and collecting below it;
//! - [`deadlock`]: the cluster's wait-for graph of transactions' lock waits.

pub mod client;
pub mod deadlock;
pub mod gc;
pub mod oracle;
pub mod reporter;
pub mod table;
pub mod timestamps;

pub use client::MetaClient;
pub use table::META_RANGE_ID;
pub use timestamps::Timestamps;
