//! One chaos run: start the cluster, run the workloads while the nemesis
//! injects faults, heal, read everything back, run the checkers, and save a
//! report when any of them fails.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Mutex};

use crate::checker::{linearizability, replicas, set, Verdict};
use crate::cluster::{ChaosCluster, ClusterConfig};
use crate::error::{ChaosError, Result};
use crate::history::{History, Outcome, RegisterOp, SetOp};
use crate::nemesis::{FaultLog, Nemesis, Schedule};
use crate::workload::register::{self, RegisterWorkload};
use crate::workload::set as set_workload;

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub nodes: u64,
    pub duration: Duration,
    pub seed: u64,
    pub schedule: Schedule,
    pub register_workers: usize,
    pub set_adders: usize,
    /// Register keys in use at a time.
    pub keys: usize,
    /// Deadline of one client call, retries included.
    pub client_timeout: Duration,
    /// Where to save a failure report (default: a new temporary folder).
    pub out: Option<PathBuf>,
    /// Environment for the node processes.
    pub node_env: Vec<(String, String)>,
    /// Save the report even when every checker passes.
    pub always_report: bool,
}

impl RunConfig {
    pub fn new(nodes: u64, duration: Duration, seed: u64, schedule: Schedule) -> Self {
        RunConfig {
            nodes,
            duration,
            seed,
            schedule,
            register_workers: 6,
            set_adders: 2,
            keys: 6,
            client_timeout: Duration::from_secs(5),
            out: None,
            node_env: Vec::new(),
            always_report: false,
        }
    }
}

/// What a run did and what the checkers found.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub seed: u64,
    pub schedule: Schedule,
    pub nodes: u64,
    pub duration: Duration,
    /// (operation, outcome) -> count
    pub operations: BTreeMap<(&'static str, &'static str), usize>,
    pub faults: FaultLog,
    pub linearizability: Verdict,
    pub lost_writes: Verdict,
    pub replicas: Verdict,
    /// No node died on its own (a panic or an error exit).
    pub node_health: Verdict,
    pub check_time: Duration,
    pub report: Option<PathBuf>,
}

impl RunSummary {
    pub fn passed(&self) -> bool {
        self.linearizability.passed()
            && self.lost_writes.passed()
            && self.replicas.passed()
            && self.node_health.passed()
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "zdb-chaos: {} nodes, schedule {}, seed {}, {:?} of faults",
            self.nodes, self.schedule, self.seed, self.duration
        )?;
        writeln!(f, "  operations (by outcome):")?;
        let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
        for ((op, outcome), count) in &self.operations {
            writeln!(f, "    {op:<10} {outcome:<8} {count}")?;
            *totals.entry(outcome).or_default() += count;
        }
        writeln!(f, "    total      {totals:?}")?;
        writeln!(f, "  faults injected: {}", self.faults.entries.len())?;
        for (kind, count) in self.faults.counts() {
            writeln!(f, "    {kind:?}: {count}")?;
        }
        writeln!(f, "  checkers (took {:?}):", self.check_time)?;
        writeln!(f, "    linearizability: {}", self.linearizability)?;
        writeln!(f, "    lost writes:     {}", self.lost_writes)?;
        writeln!(f, "    replicas:        {}", self.replicas)?;
        writeln!(f, "    node health:     {}", self.node_health)?;
        match &self.report {
            Some(dir) => writeln!(f, "  report saved in {}", dir.display())?,
            None => writeln!(f, "  no report saved")?,
        }
        write!(
            f,
            "  verdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}

/// Runs one whole chaos test.
pub async fn run(config: RunConfig) -> Result<RunSummary> {
    let mut cluster_config = ClusterConfig::new(config.nodes);
    cluster_config.env = config.node_env.clone();
    let cluster = ChaosCluster::start(cluster_config).await?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let addresses: Vec<(u64, String)> = cluster
        .node_ids()
        .into_iter()
        .filter_map(|id| Some((id, cluster.address(id)?)))
        .collect();
    let admin = cluster.client(Duration::from_secs(5))?;
    // Each workload in its own ranges from the start, away from the meta range.
    for key in ["reg/", "set/"] {
        admin.split_at(key.as_bytes()).await?;
    }
    let node_logs = cluster.log_files();
    let history = History::new();
    let workload = RegisterWorkload {
        keys: config.keys,
        generation: Duration::from_secs(30),
    };
    let (stop, stopped) = watch::channel(false);
    let mut workers = Vec::new();
    let mut process = 0u64;
    for worker in 0..config.register_workers {
        process += 1;
        workers.push(tokio::spawn(register::run_worker(
            process,
            workload.clone(),
            cluster.client(config.client_timeout)?,
            history.clone(),
            config.seed.wrapping_add(worker as u64 + 1),
            stopped.clone(),
        )));
    }
    for _ in 0..config.set_adders {
        process += 1;
        workers.push(tokio::spawn(set_workload::run_adder(
            process,
            cluster.client(config.client_timeout)?,
            history.clone(),
            stopped.clone(),
        )));
    }
    process += 1;
    workers.push(tokio::spawn(set_workload::run_reader(
        process,
        cluster.client(config.client_timeout)?,
        history.clone(),
        Duration::from_secs(2),
        stopped.clone(),
    )));
    let final_client = cluster.client(config.client_timeout)?;
    let cluster = Arc::new(Mutex::new(cluster));
    let nemesis = Nemesis::new(
        cluster.clone(),
        cluster.lock().await.client(Duration::from_secs(3))?,
        addresses.clone(),
        config.schedule,
        config.seed,
        history.clone(),
    );
    let nemesis = tokio::spawn(nemesis.run(stopped.clone()));

    // Halfway, a timestamp from the oracle: at the end, every replica must
    // also hold the same past as of it.
    tokio::time::sleep(config.duration / 2).await;
    let midpoint = final_client.now().await.ok();
    tokio::time::sleep(config.duration - config.duration / 2).await;
    let _ = stop.send(true);
    let faults = nemesis.await.unwrap_or_default();
    for worker in workers {
        let _ = worker.await;
    }

    // Quiet now: everything healed. Read every key back.
    cluster.lock().await.heal_all()?;
    cluster
        .lock()
        .await
        .wait_ready(Duration::from_secs(60))
        .await?;
    final_reads(&final_client, &workload, &history).await?;

    let check_started = Instant::now();
    let registers = history.registers();
    let linearizability = tokio::task::spawn_blocking(move || linearizability::check(&registers))
        .await
        .map_err(|err| ChaosError::Config(format!("the checker panicked: {err}")))?;
    let lost_writes = set::check(&history.set_calls());
    let replicas = replicas::check(&admin, &addresses, Duration::from_secs(60), midpoint).await;
    let node_health = node_health(&node_logs);
    let check_time = check_started.elapsed();
    drop(cluster.lock().await); // nodes keep running until the report has their logs

    let mut summary = RunSummary {
        seed: config.seed,
        schedule: config.schedule,
        nodes: config.nodes,
        duration: config.duration,
        operations: count_operations(&history),
        faults,
        linearizability,
        lost_writes,
        replicas,
        node_health,
        check_time,
        report: None,
    };
    if !summary.passed() || config.always_report {
        summary.report = Some(crate::report::save(
            config.out.as_deref(),
            &summary,
            &history,
            &node_logs,
        )?);
    }
    Ok(summary)
}

/// Reads every register key and the whole set until each read succeeds,
/// so that every acknowledged write is checked against a final read.
async fn final_reads(
    client: &zdb_client::Client,
    workload: &RegisterWorkload,
    history: &History,
) -> Result<()> {
    const FINAL_READER: u64 = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    for key in workload.keys_until(history) {
        loop {
            let call =
                register::execute(FINAL_READER, client, history, key.clone(), RegisterOp::Get)
                    .await;
            let done = matches!(call.outcome, Outcome::Ok(_));
            history.record_register(call);
            if done {
                break;
            }
            if Instant::now() >= deadline {
                return Err(ChaosError::Timeout(format!("a final read of {key}")));
            }
        }
    }
    for part in set_workload::parts_until(history) {
        while !set_workload::read_all(FINAL_READER, client, history, &part).await {
            if Instant::now() >= deadline {
                return Err(ChaosError::Timeout(format!(
                    "the final read of set part {part}"
                )));
            }
        }
    }
    Ok(())
}

fn count_operations(history: &History) -> BTreeMap<(&'static str, &'static str), usize> {
    let mut counts = BTreeMap::new();
    for call in history.registers() {
        let op = match call.op {
            RegisterOp::Get => "get",
            RegisterOp::Put(_) => "put",
            RegisterOp::Delete => "delete",
            RegisterOp::Cas { .. } => "cas",
        };
        *counts.entry((op, call.outcome.label())).or_default() += 1;
    }
    for call in history.set_calls() {
        let op = match call.op {
            SetOp::Add(_) => "set-add",
            SetOp::ReadAll { .. } => "set-read",
        };
        *counts.entry((op, call.outcome.label())).or_default() += 1;
    }
    counts
}

/// A node that panicked or stopped on an error (not by our SIGKILL) is a bug.
fn node_health(node_logs: &[(u64, PathBuf)]) -> Verdict {
    let mut problems = Vec::new();
    for (node, log) in node_logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let fatal = ["panicked at", "node stopped", "stopping the node"];
            if fatal.iter().any(|sign| line.contains(sign)) {
                problems.push(format!("node {node}: {line}"));
            }
        }
    }
    if problems.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(problems)
    }
}
