//! The checkers catch a real bug: a zdb-node that acknowledges writes
//! before they commit (zdb-node's `planted-bugs` feature, switched on with
//! ZDB_PLANTED_BUG) must fail the run once leaders get isolated.
//!
//! The zdb-node binary must be built with `--features planted-bugs`; building
//! the workspace's tests does that (this crate's dev-dependency enables it).

use std::time::Duration;

use zdb_chaos::{run, RunConfig, Schedule};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_before_commit_fails_the_checks() {
    let seed = std::env::var("ZDB_CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(2);
    println!("planted bug run: seed {seed}");
    let out = tempfile::tempdir().expect("a temporary directory");
    let mut config = RunConfig::new(3, Duration::from_secs(20), seed, Schedule::Partitions);
    config.node_env = vec![("ZDB_PLANTED_BUG".into(), "ack-before-commit".into())];
    config.out = Some(out.path().to_path_buf());
    config.always_report = true;
    let summary = run(config).await.expect("the run completes");
    println!("{summary}");

    let log = std::fs::read_to_string(out.path().join("node-1.log")).unwrap_or_default();
    assert!(
        log.contains("PLANTED BUG ACTIVE"),
        "the zdb-node binary was built without the planted-bugs feature: \
         build it with `cargo build -p zdb-node --features planted-bugs` (or build the workspace's tests)"
    );
    assert!(
        !summary.linearizability.passed() || !summary.lost_writes.passed(),
        "acknowledged-but-uncommitted writes went unnoticed:\n{summary}"
    );
}

/// A zdb-node whose transactions skip the write-conflict check must fail the
/// transaction checkers: appends are lost (list-append) or money is made or
/// destroyed (bank) by concurrent read-modify-write transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_the_write_conflict_check_fails_the_transaction_checks() {
    let seed = std::env::var("ZDB_CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(3);
    println!("planted bug run: seed {seed}");
    let mut config = RunConfig::new(3, Duration::from_secs(15), seed, Schedule::Pauses);
    config.node_env = vec![("ZDB_PLANTED_BUG".into(), "skip-conflict-check".into())];
    config.register_workers = 1;
    config.set_adders = 1;
    config.bank_workers = 4;
    config.list_append_workers = 4;
    let summary = run(config).await.expect("the run completes");
    println!("{summary}");
    assert!(
        !summary.list_append.passed() || !summary.bank.passed(),
        "conflicting transactions committed unnoticed:\n{summary}"
    );
    assert!(
        summary.linearizability.passed() && summary.lost_writes.passed(),
        "the bug touches transactions only:\n{summary}"
    );
}
