//! What transactions leave in a range besides versions: locks on keys,
//! locks on scanned spans, and the record of each transaction's fate in its
//! primary key's range. All three are keyed by the escaped user key (see
//! `mvcc::keys`), so a range's share is the same span as its versions and
//! travels with them in snapshots.
//!
//! - [`locks`]: the holders of a key's lock (one writer or shared readers)
//!   and the span locks of serializable scans;
//! - [`records`]: committed or rolled back, by primary key and start timestamp;
//! - [`conflict`]: which lock keeps which request out.

pub mod conflict;
pub mod locks;
pub mod records;

pub use conflict::{blocking_read_lock, blocking_scan_lock, unlocked_for_read, Conflict};
pub use locks::{LockSet, SpanLock};
