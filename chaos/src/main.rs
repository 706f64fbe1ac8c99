//! `zdb-chaos`: one long chaos run against a local cluster; prints a
//! summary and exits non-zero when any checker fails.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use zdb_chaos::{run, RunConfig, Schedule};

#[derive(Parser, Debug)]
#[command(
    name = "zdb-chaos",
    about = "Fault injection and linearizability checking for zdb"
)]
struct Args {
    /// Node processes to start.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// How long to inject faults under load, in seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seeds the workload and the nemesis (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Folder for the report (saved on failure, or always with --always-report).
    #[arg(long)]
    out: Option<PathBuf>,
    /// partitions, crashes, pauses, flaky-network, topology or mixed.
    #[arg(long, default_value = "mixed")]
    schedule: String,
    /// Register workers (each runs one operation at a time).
    #[arg(long, default_value_t = 6)]
    workers: usize,
    #[arg(long)]
    always_report: bool,
    /// TLS on every connection and authentication on.
    #[arg(long)]
    secure: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let Some(schedule) = Schedule::parse(&args.schedule) else {
        let names: Vec<&str> = Schedule::ALL.iter().map(|s| s.name()).collect();
        eprintln!(
            "error: unknown schedule {:?}; one of {names:?}",
            args.schedule
        );
        std::process::exit(2);
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64)
    });
    println!(
        "zdb-chaos: seed {seed}, {} nodes, schedule {schedule}, {} s",
        args.nodes, args.duration
    );
    let mut config = RunConfig::new(
        args.nodes,
        Duration::from_secs(args.duration),
        seed,
        schedule,
    );
    config.out = args.out;
    config.register_workers = args.workers;
    config.always_report = args.always_report;
    config.secure = args.secure;
    // Ctrl-C or SIGTERM: drop the run, which stops every node it started.
    let interrupted = async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match terminate.as_mut() {
                    Some(signal) => { signal.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    };
    let outcome = tokio::select! {
        outcome = run(config) => outcome,
        _ = interrupted => {
            eprintln!("zdb-chaos: interrupted; stopping the nodes");
            std::process::exit(130);
        }
    };
    match outcome {
        Ok(summary) => {
            println!("{summary}");
            if !summary.passed() {
                std::process::exit(1);
            }
        }
        Err(err) => {
            eprintln!("zdb-chaos: the run could not complete: {err}");
            std::process::exit(3);
        }
    }
}
