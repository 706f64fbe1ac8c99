//! Checkers: each turns a history (or the quiet cluster) into a [`Verdict`].
//!
//! - [`linearizability`]: register histories against the register model
//!   ([`model`]), key by key;
//! - [`set`]: the set workload: no acknowledged add is lost, nothing
//!   appears that was never added, nothing seen disappears;
//! - [`replicas`]: once the cluster is quiet, every replica of each range
//!   holds the same data, and no two ranges overlap;
//! - [`bank`]: every snapshot of the accounts holds all the money, none
//!   overdrawn;
//! - [`list_append`]: Elle's dependency graph of list-append transactions
//!   has no cycle (serializability), no aborted read, no lost append.

pub mod bank;
pub mod linearizability;
pub mod list_append;
pub mod model;
pub mod replicas;
pub mod set;

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// What was violated, one entry per problem.
    Fail(Vec<String>),
    /// The checker could not decide (e.g. the search was too large).
    Inconclusive(String),
}

impl Verdict {
    pub fn passed(&self) -> bool {
        matches!(self, Verdict::Pass)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => write!(f, "pass"),
            Verdict::Fail(problems) => {
                write!(f, "FAIL ({} problems)", problems.len())?;
                for problem in problems.iter().take(5) {
                    write!(f, "\n      - {}", problem.replace('\n', "\n        "))?;
                }
                Ok(())
            }
            Verdict::Inconclusive(why) => write!(f, "INCONCLUSIVE: {why}"),
        }
    }
}
