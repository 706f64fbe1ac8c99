//! zdb client library.
//!
//! - [`Client`]: the data API (get, put, delete, scan, batches,
//!   compare-and-swap) over a pool of gRPC channels, one per node. It routes
//!   each request to the leader of the range that owns the key, follows
//!   `NotLeader` redirects, refreshes its range cache on `EpochNotMatch` /
//!   `KeyNotInRange`, and retries with backoff within a deadline; writes
//!   that may have applied are never retried unless they are idempotent.
//! - `admin`: splits, membership changes, node states, node inspection.
//! - `routing`: the range cache (filled from the meta range by `Locate`).
//! - `retry`: how a failed attempt is classified.
//! - [`Error`]: what an application sees when a call fails.

mod admin;
mod client;
mod error;
mod retry;
mod routing;

pub use client::{CasOutcome, Client, ClientConfig, Consistency, Mutation};
pub use error::{Error, Result};
pub use zdb_proto::v1::{KeyValue, NodeAddress, NodeState, NodeStatusResponse, RangeDescriptor};
