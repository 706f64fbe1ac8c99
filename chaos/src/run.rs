//! One chaos run: start the cluster, run the workloads while the nemesis
//! injects faults, heal, read everything back, run the checkers, and save a
//! report when any of them fails.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Mutex};

use crate::checker::{self, linearizability, replicas, set, Verdict};
use crate::cluster::{ChaosCluster, ClusterConfig};
use crate::error::{ChaosError, Result};
use crate::history::{History, Outcome, RegisterOp, SetOp};
use crate::nemesis::{FaultLog, Nemesis, Schedule};
use crate::workload::register::{self, RegisterWorkload};
use crate::workload::set as set_workload;
use crate::workload::{bank, list_append};

#[derive(Debug, Clone)]
pub struct RunConfig {
    pub nodes: u64,
    pub duration: Duration,
    pub seed: u64,
    pub schedule: Schedule,
    pub register_workers: usize,
    pub set_adders: usize,
    /// Transfer workers of the bank workload (0: no bank).
    pub bank_workers: usize,
    /// List-append transaction workers (0: none).
    pub list_append_workers: usize,
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
    /// TLS between every node and client, authentication on.
    pub secure: bool,
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
            bank_workers: 2,
            list_append_workers: 2,
            keys: 6,
            client_timeout: Duration::from_secs(5),
            out: None,
            node_env: Vec::new(),
            always_report: false,
            secure: false,
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
    pub bank: Verdict,
    pub list_append: Verdict,
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
            && self.bank.passed()
            && self.list_append.passed()
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
        writeln!(f, "    bank:            {}", self.bank)?;
        writeln!(f, "    list-append:     {}", self.list_append)?;
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

/// How long before the end of a run its past state is taken at most: well
/// inside the default GC life time (10 minutes), including the checks.
const PAST_WITHIN_GC_LIFE_TIME: Duration = Duration::from_secs(5 * 60);

/// Runs one whole chaos test.
pub async fn run(config: RunConfig) -> Result<RunSummary> {
    let mut cluster_config = ClusterConfig::new(config.nodes);
    cluster_config.env = config.node_env.clone();
    cluster_config.secure = config.secure;
    let cluster = ChaosCluster::start(cluster_config).await?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let addresses: Vec<(u64, String)> = cluster
        .node_ids()
        .into_iter()
        .filter_map(|id| Some((id, cluster.address(id)?)))
        .collect();
    let admin = cluster.client(Duration::from_secs(5))?;
    // Each workload in its own ranges from the start, away from the meta range.
    let mut splits: Vec<String> = ["reg/", "set/", bank::PREFIX, list_append::PREFIX]
        .map(String::from)
        .into();
    splits.extend(bank::split_points());
    splits.extend(list_append::split_points());
    for key in splits {
        admin.split_at(key.as_bytes()).await?;
    }
    if config.bank_workers > 0 {
        bank::open_accounts(&admin).await?;
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
    for worker in 0..config.bank_workers {
        workers.push(tokio::spawn(bank::run_transfers(
            cluster.client(config.client_timeout)?,
            config.seed.wrapping_add(1_000 + worker as u64),
            stopped.clone(),
        )));
    }
    if config.bank_workers > 0 {
        process += 1;
        workers.push(tokio::spawn(bank::run_reader(
            process,
            cluster.client(config.client_timeout)?,
            history.clone(),
            Duration::from_millis(500),
            stopped.clone(),
        )));
    }
    for worker in 0..config.list_append_workers {
        process += 1;
        workers.push(tokio::spawn(list_append::run_worker(
            process,
            cluster.client(config.client_timeout)?,
            history.clone(),
            config.seed.wrapping_add(2_000 + worker as u64),
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

    // Halfway (or, in a long run, a few minutes before the end, so that the
    // GC safe point has not passed it when the replicas are compared), a
    // timestamp from the oracle: at the end, every replica must also hold
    // the same past as of it.
    let before_end = config
        .duration
        .saturating_sub(PAST_WITHIN_GC_LIFE_TIME)
        .max(config.duration / 2);
    tokio::time::sleep(before_end).await;
    let midpoint = final_client.now().await.ok();
    tokio::time::sleep(config.duration - before_end).await;
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
    final_transaction_reads(&final_client, &history, &config).await?;

    let check_started = Instant::now();
    let registers = history.registers();
    let linearizability = tokio::task::spawn_blocking(move || linearizability::check(&registers))
        .await
        .map_err(|err| ChaosError::Config(format!("the checker panicked: {err}")))?;
    let lost_writes = set::check(&history.set_calls());
    let replicas = replicas::check(&admin, &addresses, Duration::from_secs(60), midpoint).await;
    let bank = if config.bank_workers > 0 {
        checker::bank::check(&history.bank_reads())
    } else {
        Verdict::Pass
    };
    let list_append = checker::list_append::check(&history.txns());
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
        bank,
        list_append,
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

/// Reads the bank and every list once more, quiet, until the reads succeed.
async fn final_transaction_reads(
    client: &zdb_client::Client,
    history: &History,
    config: &RunConfig,
) -> Result<()> {
    const FINAL_READER: u64 = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while config.bank_workers > 0 && !bank::read_all(FINAL_READER, client, history, true).await {
        if Instant::now() >= deadline {
            return Err(ChaosError::Timeout("the final bank read".into()));
        }
    }
    while config.list_append_workers > 0
        && !list_append::final_reads(FINAL_READER, client, history).await
    {
        if Instant::now() >= deadline {
            return Err(ChaosError::Timeout("the final list reads".into()));
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
    for call in history.txns() {
        *counts.entry(("txn", call.outcome.label())).or_default() += 1;
    }
    for read in history.bank_reads() {
        let outcome = if read.balances.is_some() {
            "ok"
        } else {
            "failed"
        };
        *counts.entry(("bank-read", outcome)).or_default() += 1;
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
