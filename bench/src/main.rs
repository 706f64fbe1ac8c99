//! `zdb-bench`: a YCSB-style load generator for zdb and, with the same
//! workload code, for etcd. Clients run concurrently for a fixed time (or
//! operation count); it prints progress, then throughput and latency
//! percentiles per operation type, optionally as JSON.
//!
//! - `backend`: the systems under test (zdb through its client, etcd v3).
//! - `workload`: the YCSB mixes A–F, update and insert.
//! - `distribution`: uniform, zipfian and latest key choice.
//! - `runner`: load phase, warm-up, measured run, progress.
//! - `stats`: HDR histograms per operation and the final report.

mod backend;
mod distribution;
mod runner;
mod stats;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;

use backend::{Backend, Security, Target};
use distribution::{Distribution, KeyChooser};
use runner::RunSettings;
use workload::Workload;

#[derive(Parser, Debug)]
#[command(
    name = "zdb-bench",
    about = "YCSB-style load generator for zdb and etcd: throughput and latency percentiles"
)]
struct Args {
    /// System under test.
    #[arg(long, value_enum, default_value = "zdb")]
    target: Target,
    /// HOST:PORT of the nodes (zdb) or members (etcd), comma-separated.
    #[arg(long, env = "ZDB_ENDPOINTS", value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// a: 50% read 50% update; b: 95/5; c: read only; d: read latest + 5% insert;
    /// e: short scans + 5% insert; f: read + read-modify-write; update; insert.
    #[arg(long, default_value = "a")]
    workload: Workload,
    /// Key distribution: uniform, zipfian or latest (default: YCSB's for the workload).
    #[arg(long)]
    distribution: Option<Distribution>,
    /// Records in the data set.
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
    /// Stop after this many measured operations instead of after --duration.
    #[arg(long)]
    operations: Option<u64>,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Write every record first (needed before reads find anything).
    #[arg(long)]
    load: bool,
    /// Deadline of one operation in seconds (a read-modify-write retries its
    /// compare-and-swap until then).
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The CA certificate to trust: connect over TLS (to both systems).
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// A client certificate to log in with (needs --key); its common name is
    /// the user, on zdb and on etcd run with --client-cert-auth.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The client certificate's private key.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Log in as USER with --password instead (or as well).
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// USER's password.
    #[arg(long)]
    password: Option<String>,
}

impl Args {
    /// TLS and login as the flags ask; the rules are checked here so that a
    /// mistake is named rather than seen as a refused connection.
    fn security(&self) -> Result<Security> {
        let cert_and_key = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => bail!("--cert needs --key: the client certificate's private key"),
            (None, Some(_)) => bail!("--key needs --cert: the client certificate it belongs to"),
        };
        let credentials = match (&self.user, &self.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            (Some(user), None) => bail!("--user {user} needs --password"),
            (None, Some(_)) => bail!("--password needs --user: whose password is it?"),
        };
        if self.ca_cert.is_none() && (cert_and_key.is_some() || credentials.is_some()) {
            bail!(
                "--cert, --key, --user and --password need --ca-cert (the CA that signed the servers' certificates): they are only sent over TLS"
            );
        }
        Ok(Security {
            ca_cert: self.ca_cert.clone(),
            cert_and_key,
            credentials,
        })
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let backend = Backend::connect(
        args.target,
        &args.endpoints,
        Duration::from_secs(args.timeout),
        &args.security()?,
    )
    .await?;
    let value = vec![b'x'; args.value_size];
    if args.load {
        runner::load(&backend, args.records, args.clients, &value).await?;
    }

    let distribution = args
        .distribution
        .unwrap_or(args.workload.default_distribution());
    println!(
        "{:?}{} | workload {} | {distribution} keys | {} records | {}-byte values | {} clients | {}s warm-up + {}",
        args.target,
        if args.ca_cert.is_some() { " over TLS" } else { "" },
        args.workload,
        args.records,
        args.value_size,
        args.clients,
        args.warmup,
        match args.operations {
            Some(count) => format!("{count} operations"),
            None => format!("{}s", args.duration),
        }
    );
    let report = runner::run(
        &backend,
        RunSettings {
            workload: args.workload,
            keys: KeyChooser::new(distribution, args.records),
            records: args.records,
            value,
            clients: args.clients,
            warmup: Duration::from_secs(args.warmup),
            duration: Duration::from_secs(args.duration),
            operations: args.operations,
            timeout: Duration::from_secs(args.timeout),
        },
    )
    .await?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.json())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
