//! zdb client library.
//!
//! - [`Client`]: the data API (get, put, delete, scan, batches,
//!   compare-and-swap) over a pool of gRPC channels, one per node. It finds
//!   the leader, follows `NotLeader` redirects, and retries with backoff
//!   within a deadline; writes that may have applied are never retried
//!   unless they are idempotent.
//! - [`Error`]: what an application sees when a call fails.

mod client;
mod error;
mod retry;

pub use client::{CasOutcome, Client, ClientConfig, Consistency, Mutation};
pub use error::{Error, Result};
pub use zdb_proto::v1::{KeyValue, NodeStatusResponse};
