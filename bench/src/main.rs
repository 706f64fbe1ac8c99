//! `zdb-bench`: a YCSB-style load generator. Clients run concurrently for a
//! fixed time against a cluster; it prints progress, then throughput and
//! latency percentiles per operation type.
//!
//! - `workload`: the operation mixes and key choice.
//! - `stats`: HDR histograms per operation and the final report.

mod stats;
mod workload;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use rand::SeedableRng;
use zdb_client::{Client, ClientConfig};

use stats::Stats;
use workload::{Operation, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "zdb-bench",
    about = "Load generator for zdb: throughput and latency percentiles"
)]
struct Args {
    /// System under test.
    #[arg(long, default_value = "zdb", value_parser = ["zdb"])]
    target: String,
    /// HOST:PORT of the nodes, comma-separated.
    #[arg(long, env = "ZDB_ENDPOINTS", value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// a: 50% read 50% update; b: 95/5; c: read only; update: updates only; insert: new keys only.
    #[arg(long, default_value = "a")]
    workload: Workload,
    /// Keys in the data set.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Concurrent clients (each one request at a time).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds of measured load.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Write every record first (needed before reads find anything).
    #[arg(long)]
    load: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut config = ClientConfig::new(args.endpoints.clone());
    config.timeout = Duration::from_secs(10);
    let client = Client::new(config).context("bad endpoints")?;
    let value = vec![b'x'; args.value_size];

    if args.load {
        load(&client, &args, &value).await?;
    }

    println!(
        "workload {} | {} records | {}-byte values | {} clients | {}s warm-up + {}s",
        args.workload, args.records, args.value_size, args.clients, args.warmup, args.duration
    );
    let stats = Arc::new(Stats::new());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let next_insert = Arc::new(AtomicU64::new(args.records));
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, stats, measuring, stop, next_insert) = (
            client.clone(),
            stats.clone(),
            measuring.clone(),
            stop.clone(),
            next_insert.clone(),
        );
        let (workload, records, value) = (args.workload, args.records, value.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::SmallRng::from_os_rng();
            while !stop.load(Ordering::Relaxed) {
                let operation = workload.next(&mut rng, records, &next_insert);
                let started = Instant::now();
                let result = match &operation {
                    Operation::Read(key) => client.get(key.clone()).await.map(drop),
                    Operation::Update(key) | Operation::Insert(key) => {
                        client.put(key.clone(), value.clone()).await
                    }
                };
                if measuring.load(Ordering::Relaxed) {
                    stats.record(operation.kind(), started.elapsed(), result.is_ok());
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut last = (started, 0u64);
    while started.elapsed() < Duration::from_secs(args.duration) {
        tokio::time::sleep(
            Duration::from_secs(1)
                .min(Duration::from_secs(args.duration).saturating_sub(started.elapsed())),
        )
        .await;
        let (when, count) = last;
        let total = stats.total_ops();
        if when.elapsed() >= Duration::from_secs(5)
            || started.elapsed() >= Duration::from_secs(args.duration)
        {
            let rate = (total - count) as f64 / when.elapsed().as_secs_f64();
            println!(
                "[{:>4.0}s] {total} ops, {rate:.0} ops/s",
                started.elapsed().as_secs_f64()
            );
            last = (Instant::now(), total);
        }
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }

    let report = stats.report(elapsed);
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.json())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

async fn load(client: &Client, args: &Args, value: &[u8]) -> Result<()> {
    println!(
        "loading {} records with {} clients",
        args.records, args.clients
    );
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (client, next, value, records) =
            (client.clone(), next.clone(), value.to_vec(), args.records);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= records {
                    return Ok::<_, zdb_client::Error>(());
                }
                client.put(workload::key(i), value.clone()).await?;
            }
        }));
    }
    for task in tasks {
        task.await?.context("load failed")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "loaded {} records in {elapsed:.1}s ({:.0} writes/s)",
        args.records,
        args.records as f64 / elapsed
    );
    Ok(())
}
