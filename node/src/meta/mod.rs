//! The meta range (range 1) as the cluster's table: routing entries, the
//! node registry, id counters.
//!
//! - [`table`]: the system keyspace's layout and the deterministic updates
//!   the meta range applies;
//! - [`client`]: reads and writes made through the meta range's leader,
//!   from any node;
//! - [`reporter`]: background tasks keeping the table and this node's view
//!   of it current.

pub mod client;
pub mod reporter;
pub mod table;

pub use client::MetaClient;
pub use table::META_RANGE_ID;
