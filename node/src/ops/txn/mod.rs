//! Transactions, coordinated by the node that receives their calls.
//!
//! - [`range`]: the per-range protocol (prewrite, locks, commit and rollback
//!   of keys, a transaction's status from its primary, keep-alive), proposed
//!   here or passed on to the range's leader;
//! - [`resolve`]: settling a lock a read or write met, from its primary's fate;
//! - [`table`]: the transactions this node coordinates, their buffered
//!   writes, what they read, the locks they hold;
//! - [`session`]: Begin, reads at the snapshot, buffered writes, Rollback,
//!   the one-shot Atomic call;
//! - [`commit`]: one-phase commit within a range, two-phase commit across
//!   ranges (the primary's commit is the commit point);
//! - [`locking`]: pessimistic locks with a lock wait, per-key waiter queues;
//! - [`keeper`]: keeping the primary locks of running transactions alive
//!   and rolling back those whose client went away.
//!
//! Isolation: READ COMMITTED reads each key at a fresh timestamp and never
//! checks writes against later commits; SNAPSHOT reads at the start
//! timestamp and refuses a write to a key committed after it (first
//! committer wins); SERIALIZABLE also locks, at commit, every key it read
//! and every span it scanned, checking that none changed since its
//! snapshot: while those read locks are held nothing can commit over what
//! it read, so the transaction is equivalent to running alone at its commit
//! timestamp (commit order is the serial order).

pub mod commit;
pub mod keeper;
pub mod locking;
pub mod range;
pub mod resolve;
pub mod session;
pub mod table;

pub use resolve::{LockedRetries, Resolution};
pub use table::{Transactions, TxnOptions};
