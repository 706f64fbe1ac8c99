//! Deliberately wrong behaviour, to prove that the chaos checkers (the
//! `zdb-chaos` crate) catch real bugs. Compiled in only with the
//! `planted-bugs` feature, and even then inert unless the environment
//! variable `ZDB_PLANTED_BUG` names a bug. Production builds have neither.

/// A bug that can be switched on in a test build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// The leader acknowledges a write as soon as it is proposed, before a
    /// quorum has it: a leader that loses its quorum loses acknowledged writes.
    AckBeforeCommit,
    /// Transactions' prewrites skip the check for versions committed after
    /// their snapshot (and of what serializable transactions read): lost
    /// updates and write skew go through.
    SkipConflictCheck,
}

pub const ENV: &str = "ZDB_PLANTED_BUG";

/// The bug switched on for this process, if any.
#[cfg(feature = "planted-bugs")]
pub fn active() -> Option<PlantedBug> {
    static ACTIVE: std::sync::OnceLock<Option<PlantedBug>> = std::sync::OnceLock::new();
    *ACTIVE.get_or_init(|| match std::env::var(ENV).ok()?.as_str() {
        "ack-before-commit" => Some(PlantedBug::AckBeforeCommit),
        "skip-conflict-check" => Some(PlantedBug::SkipConflictCheck),
        _ => None,
    })
}

#[cfg(not(feature = "planted-bugs"))]
pub fn active() -> Option<PlantedBug> {
    None
}

/// Says loudly at startup when a bug is on, so that a test can tell that
/// the node it started really runs with it.
pub fn announce() {
    if let Some(bug) = active() {
        tracing::warn!("PLANTED BUG ACTIVE: {bug:?} (test build, {ENV} is set)");
    }
}
