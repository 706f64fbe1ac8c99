//! Fault injection and linearizability checking for zdb, in the spirit of
//! Jepsen: real `zdb-node` processes on 127.0.0.1, real faults, concurrent
//! clients whose every operation is recorded, and checkers over the record.
//!
//! - [`proxy`]: a fault-injecting TCP proxy for one direction of one node
//!   pair (pass, blackhole, delay, loss, connection resets);
//! - [`cluster`]: starts N nodes wired to each other through those proxies;
//!   SIGKILL, SIGSTOP/SIGCONT, restart, partitions;
//! - [`nemesis`]: the fault schedules (crashes, pauses, partitions, a flaky
//!   network, splits / leader transfers / replica moves with crashes in
//!   between) and the log of faults injected;
//! - [`workload`]: client workers for the register workload (get, put,
//!   delete, CAS with unique values), the set workload (unique adds, full
//!   reads), the bank (serializable transfers over 16 ranges, snapshot
//!   reads) and list-append transactions;
//! - [`history`]: every operation with invocation and completion time and
//!   outcome (ok, failed, unknown);
//! - [`checker`]: linearizability (Wing–Gong with Lowe's memoization, per
//!   key), lost writes (set workload), replica consistency of the quiet
//!   cluster, the bank's invariants, and Elle's dependency cycles for
//!   list-append;
//! - [`run`]: one whole run: start, load, faults, heal, final reads, checks;
//! - [`report`]: on failure, the history and node logs saved to a folder.

pub mod checker;
pub mod cluster;
pub mod error;
pub mod history;
pub mod nemesis;
pub mod proxy;
pub mod report;
pub mod run;
pub mod workload;

pub use error::{ChaosError, Result};
pub use nemesis::Schedule;
pub use run::{run, RunConfig, RunSummary};
