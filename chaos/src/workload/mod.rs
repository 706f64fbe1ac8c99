//! Client workers. Each worker runs one operation at a time with its own
//! client, and records each operation in the [`History`](crate::history::History)
//! with its invocation and completion time and outcome.
//!
//! - [`register`]: get / put / delete / compare-and-swap on a few keys, with
//!   unique values, for the linearizability checker;
//! - [`set`]: adds of unique elements (one key each) and full reads, for the
//!   lost-write checker;
//! - [`bank`]: serializable transfers between accounts in 16 ranges and
//!   snapshot reads of them all, for the bank checker;
//! - [`list_append`]: serializable transactions appending to and reading
//!   lists, for the dependency-cycle checker.

pub mod bank;
pub mod list_append;
pub mod register;
pub mod set;

use zdb_client::Error;

/// Whether a failed write certainly did not apply. Only errors raised before
/// anything reached a node qualify; everything else (timeouts, lost replies,
/// retries that ran out of time) may have applied.
pub fn definitely_not_applied(error: &Error) -> bool {
    matches!(
        error,
        Error::InvalidArgument(_) | Error::BadEndpoint { .. } | Error::NoEndpoints
    )
}
