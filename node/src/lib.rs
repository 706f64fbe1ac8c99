//! zdb storage node, layered top to bottom (each layer calls only the ones
//! below it):
//!
//! - [`service`]: thin protocol adapters: the gRPC KV, admin and health
//!   services, and the HTTP status port (metrics, `/livez`, `/readyz`);
//! - [`ops`]: the operations, free of protocol types: validate, route or
//!   pass on to the leader, propose or pass the read barrier, read from a
//!   snapshot; admin sequences (split, add and remove replicas, hand off
//!   leaderships);
//! - [`meta`]: the meta range as the cluster's table (routing, registry,
//!   GC safe point), read and written through its leader from any node,
//!   and the timestamp oracle its leader serves;
//! - [`store`]: the event loop driving every replica on the node: ticks,
//!   Readies, one write per pass, group commit by the WAL syncer;
//! - [`apply`]: one apply delegate per replica: checks each command's epoch
//!   at apply, applies data, system, split and membership commands, returns
//!   exec results;
//! - [`mvcc`]: versions of user keys by commit timestamp: key layout,
//!   reads as of a timestamp, garbage collection below the safe point;
//! - [`txn`]: what transactions keep beside versions: key and span locks,
//!   and each transaction's fate in its primary's range;
//! - [`range`], [`raftlog`], [`engine`]: replica state, Raft log storage,
//!   RocksDB column families and key layouts;
//! - [`transport`]: the one dialer for every outbound connection (TLS with
//!   this node's certificate), Raft streams and snapshots, calls on other
//!   nodes;
//! - [`auth`]: users, roles and permissions as the meta range stores them,
//!   what each request needs, the guard every call passes, the audit log
//!   (used by every layer above; depends on none);
//! - [`server`]: starting a node and stopping it gracefully; [`health`]:
//!   what the probes report; [`clock`], [`config`], [`error`], [`metrics`],
//!   [`logging`]; [`planted`]: deliberately wrong behaviour for testing the
//!   chaos checkers, compiled in only with the `planted-bugs` feature.

pub mod apply;
pub mod auth;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod health;
pub mod logging;
pub mod meta;
pub mod metrics;
pub mod mvcc;
pub mod ops;
pub mod planted;
pub mod raftlog;
pub mod range;
pub mod server;
pub mod service;
pub mod store;
pub mod transport;
pub mod txn;

pub use config::NodeConfig;
pub use error::{Error, Result};
pub use transport::PeerDirectory;
