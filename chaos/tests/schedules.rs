//! Seeded chaos runs, one per fault schedule, each ~25 s of faults under
//! load against 3 real nodes. Set ZDB_CHAOS_SEED to replay a seed; the seed
//! is printed either way. Needs the zdb-node binary (cargo build -p zdb-node).

use std::time::Duration;

use zdb_chaos::{run, RunConfig, Schedule};

const FAULT_TIME: Duration = Duration::from_secs(25);

fn seed(default: u64) -> u64 {
    std::env::var("ZDB_CHAOS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(default)
}

async fn run_schedule(schedule: Schedule, default_seed: u64) {
    run_config(RunConfig::new(3, FAULT_TIME, seed(default_seed), schedule)).await;
}

async fn run_config(config: RunConfig) {
    let (seed, schedule) = (config.seed, config.schedule);
    println!("chaos schedule {schedule}: seed {seed} (replay with ZDB_CHAOS_SEED={seed})");
    let summary = run(config)
        .await
        .unwrap_or_else(|err| panic!("the {schedule} run (seed {seed}) could not complete: {err}"));
    println!("{summary}");
    assert!(summary.passed(), "{summary}");
    assert!(
        !summary.faults.entries.is_empty(),
        "the nemesis injected no fault"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions() {
    run_schedule(Schedule::Partitions, 101).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes() {
    run_schedule(Schedule::Crashes, 102).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses() {
    run_schedule(Schedule::Pauses, 103).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_network() {
    run_schedule(Schedule::FlakyNetwork, 104).await;
}

/// The same faults with TLS between every node (through the proxies) and
/// authentication on: reconnecting, re-handshaking peers keep every checker
/// passing. Shorter: the TLS-free schedules cover the faults themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_and_partitions_with_tls_and_auth() {
    let mut config = RunConfig::new(3, Duration::from_secs(15), seed(106), Schedule::Mixed);
    config.secure = true;
    run_config(config).await;
}

/// Splits, leader transfers and replica moves (snapshots), with SIGKILLs at
/// random moments during them: crash consistency of the topology paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_changes_with_crashes() {
    run_schedule(Schedule::Topology, 105).await;
}
