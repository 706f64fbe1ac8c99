//! zdb placement.
//!
//! - [`planner`]: pure decisions from a snapshot of the cluster (no I/O):
//!   splits, replicas to add and remove (replication factor, leaving and
//!   dead nodes, zones), leaderships to move, balance.
//! - [`driver`]: the loop that reads the cluster through the admin API, asks
//!   the planner, carries out its actions and reports each step by kind
//!   (an unreadable cluster is a failure, never an empty one). `zdbctl local
//!   up` and the operator run it.

pub mod driver;
pub mod planner;
