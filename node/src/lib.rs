//! zdb storage node.
//!
//! - [`engine`]: the node's RocksDB and its column families (user data, Raft
//!   state, node metadata, TTL index) and their byte layouts.
//! - [`raftlog`]: raft-rs `Storage` over RocksDB: log, hard state, apply state.
//! - [`range`]: one replica of a range: its Raft group, command application,
//!   splits, snapshots, linearizable reads (ReadIndex and leader lease), and
//!   the meta range's routing table.
//! - [`store`]: every replica on the node, driven by one event loop that
//!   writes all of them once per pass, and the WAL syncer that makes those
//!   writes durable with one fsync per batch of passes (group commit).
//! - [`transport`]: peer-to-peer Raft streams and snapshot transfer.
//! - [`service`]: the gRPC KV and admin APIs, request validation, and the
//!   HTTP status port with Prometheus metrics.
//! - [`cluster`]: calls to the meta range's leader (routing table, range
//!   ids) and the reporter that keeps the routing table current.
//! - [`server`]: starting and stopping a node.
//! - [`planted`]: deliberately wrong behaviour for testing the chaos
//!   checkers, compiled in only with the `planted-bugs` feature.

pub mod cluster;
pub mod config;
pub mod engine;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod planted;
pub mod raftlog;
pub mod range;
pub mod server;
pub mod service;
pub mod store;
pub mod transport;

pub use config::NodeConfig;
pub use error::{Error, Result};
pub use transport::PeerDirectory;
