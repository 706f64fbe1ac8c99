//! Drives the clients: the load phase, then the measured run with a
//! warm-up, progress lines, and a stop by time or by operation count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::SeedableRng;

use crate::backend::Backend;
use crate::distribution::KeyChooser;
use crate::stats::{Report, Stats};
use crate::workload::{key, Operation, Workload};

const PROGRESS_EVERY: Duration = Duration::from_secs(5);

pub struct RunSettings {
    pub workload: Workload,
    pub keys: KeyChooser,
    pub records: u64,
    pub value: Vec<u8>,
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Stop after this many measured operations instead of after `duration`.
    pub operations: Option<u64>,
    /// How long one operation may take, retries included. A read-modify-write
    /// on a hot key can lose many compare-and-swaps in a row (under a zipfian
    /// load at high concurrency the hottest key gathers dozens of contenders,
    /// and one of them wins each round), so it retries until this deadline.
    pub timeout: Duration,
}

/// Writes records `0..records` with `clients` concurrent writers.
pub async fn load(backend: &Backend, records: u64, clients: usize, value: &[u8]) -> Result<()> {
    println!("loading {records} records with {clients} clients");
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (backend, next, value) = (backend.clone(), next.clone(), value.to_vec());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= records {
                    return Ok::<_, anyhow::Error>(());
                }
                backend.put(key(i), value.clone()).await?;
                if i > 0 && i % 20_000 == 0 {
                    println!("  {i} records loaded");
                }
            }
        }));
    }
    for task in tasks {
        task.await?.context("load failed; is the cluster up?")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "loaded {records} records in {elapsed:.1}s ({:.0} writes/s)",
        records as f64 / elapsed
    );
    Ok(())
}

pub async fn run(backend: &Backend, settings: RunSettings) -> Result<Report> {
    let settings = Arc::new(settings);
    let stats = Arc::new(Stats::new());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let next_record = Arc::new(AtomicU64::new(settings.records));
    let mut tasks = Vec::new();
    for _ in 0..settings.clients {
        let (backend, settings, stats, measuring, stop, next_record) = (
            backend.clone(),
            settings.clone(),
            stats.clone(),
            measuring.clone(),
            stop.clone(),
            next_record.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::from_os_rng();
            while !stop.load(Ordering::Relaxed) {
                let operation = settings
                    .workload
                    .next(&mut rng, &settings.keys, &next_record);
                let started = Instant::now();
                let result = execute(&backend, &operation, &settings.value, settings.timeout).await;
                if measuring.load(Ordering::Relaxed) {
                    stats.record(operation.kind(), started.elapsed(), &result);
                }
            }
        }));
    }

    tokio::time::sleep(settings.warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut last_report = (started, 0u64);
    loop {
        let done = match settings.operations {
            Some(target) => stats.total_ops() >= target,
            None => started.elapsed() >= settings.duration,
        };
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (when, count) = last_report;
        if when.elapsed() >= PROGRESS_EVERY {
            let total = stats.total_ops();
            let rate = (total - count) as f64 / when.elapsed().as_secs_f64();
            println!(
                "[{:>4.0}s] {total} ops, {rate:.0} ops/s, {} errors",
                started.elapsed().as_secs_f64(),
                stats.total_errors()
            );
            last_report = (Instant::now(), total);
        }
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.context("a client task panicked")?;
    }
    Ok(stats.report(elapsed))
}

async fn execute(
    backend: &Backend,
    operation: &Operation,
    value: &[u8],
    timeout: Duration,
) -> Result<()> {
    match operation {
        Operation::Read(key) => backend.get(key.clone()).await.map(drop),
        Operation::Update(key) | Operation::Insert(key) => {
            backend.put(key.clone(), value.to_vec()).await
        }
        Operation::Scan { start, end, count } => backend
            .scan(start.clone(), end.clone(), *count)
            .await
            .map(drop),
        Operation::ReadModifyWrite(key) => {
            let deadline = Instant::now() + timeout;
            let mut current = backend.get(key.clone()).await?;
            let mut attempts = 0;
            while Instant::now() < deadline {
                attempts += 1;
                let changed = crate::workload::modified(current.as_deref().unwrap_or(value));
                let cas = backend
                    .compare_and_swap(key.clone(), current, changed)
                    .await?;
                if cas.succeeded {
                    return Ok(());
                }
                // Someone wrote in between: retry against what is there now.
                current = cas.current;
            }
            bail!("read-modify-write lost {attempts} compare-and-swaps in {timeout:?}")
        }
        Operation::Transaction(keys) => backend.read_modify_write(keys.clone(), value).await,
        Operation::Batch(keys) => backend.batch_put(keys.clone(), value.to_vec()).await,
    }
}
