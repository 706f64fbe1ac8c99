//! zdb client library.
//!
//! - [`Client`]: the data API (get, put, delete, scan, batches,
//!   compare-and-swap) over a pool of gRPC channels, one per node. It routes
//!   each request to the leader of the range that owns the key (naming the
//!   range and epoch, so nodes answer with typed redirects rather than pass
//!   it on), follows `NotLeader` redirects, refreshes its range cache on
//!   `EpochNotMatch` / `KeyNotInRange`, and retries with backoff within a
//!   deadline; writes that may have applied are never retried unless they
//!   are idempotent. Nodes it learns of from the cluster join the
//!   configured endpoints as places to start from. Timestamps come from
//!   the cluster's oracle (`now`); reads may name one (`get_at`,
//!   `scan_at`, `batch_get_at`), and a scan or batch get that spans pages
//!   or ranges reads all of them at one.
//! - [`Transaction`]: transactions across ranges, serializable by default
//!   ([`Isolation`], [`TxnOptions`]). The node that answers `begin`
//!   coordinates one, so every call of it goes there; its writes wait in
//!   the client and go with the commit; `transaction` runs a
//!   closure in one and runs it again when it was aborted. `atomic` is a
//!   one-call transaction as etcd's Txn ([`Compare`]).
//! - `auth`: users, roles and their permissions; authentication on and
//!   off ([`AuthStatus`]).
//! - `admin`: splits, membership changes, node states and zones, node
//!   inspection, GC settings; calls about a range follow it to its leader.
//! - `transport`: one channel per node, over TLS when configured, with a
//!   password login's token on every call (renewed before it expires).
//! - `spans`: Exists, Count and DeleteRange, which any node coordinates
//!   over the ranges they touch.
//! - `routing`: the range cache (filled from the meta range by `Locate`).
//! - `retry`: how a failed attempt is classified: by the typed error kind
//!   the node sent, else by the gRPC code and whether anything was sent;
//!   never by message text.
//! - [`Error`]: what an application sees when a call fails.

mod admin;
mod auth;
mod client;
mod error;
mod retry;
mod routing;
mod spans;
mod transport;
mod txn;

pub use auth::AuthStatus;
pub use client::{CasOutcome, Client, ClientConfig, Consistency, Mutation};
pub use error::{Error, Result};
pub use transport::{Credentials, TlsConfig};
pub use txn::{Compare, Isolation, Transaction, TxnFuture, TxnOptions};
pub use zdb_proto::v1::{
    Access, KeyValue, NodeAddress, NodeState, NodeStatusResponse, Permission, RangeDescriptor,
    Role, UserInfo,
};
