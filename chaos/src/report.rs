//! Failure reports: the history, the verdicts, the fault log and every
//! node's log, saved in one folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::history::History;
use crate::run::RunSummary;

/// Writes the report into `out` (or a new folder under the system's
/// temporary directory) and returns the folder.
pub fn save(
    out: Option<&Path>,
    summary: &RunSummary,
    history: &History,
    node_logs: &[(u64, PathBuf)],
) -> Result<PathBuf> {
    let dir = match out {
        Some(dir) => dir.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "zdb-chaos-report-{}-seed-{}-{}",
            summary.schedule,
            summary.seed,
            std::process::id()
        )),
    };
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("summary.txt"), summary.to_string())?;
    std::fs::write(dir.join("history.txt"), history.render())?;
    let mut faults = String::new();
    for (at, kind, description) in &summary.faults.entries {
        let _ = writeln!(faults, "{at} {kind:?} {description}");
    }
    std::fs::write(dir.join("faults.txt"), faults)?;
    for (node, log) in node_logs {
        // A node that never started has no log; that is worth a note, not an error.
        if std::fs::copy(log, dir.join(format!("node-{node}.log"))).is_err() {
            std::fs::write(dir.join(format!("node-{node}.log")), "(no log)")?;
        }
    }
    Ok(dir)
}
