use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies (µs) and error counts per operation type.
pub struct Stats {
    per_op: Mutex<BTreeMap<&'static str, OpStats>>,
}

struct OpStats {
    latency_us: Histogram<u64>,
    errors: u64,
    /// The first error seen, so a run with errors says what went wrong.
    first_error: Option<String>,
}

impl Stats {
    pub fn new() -> Self {
        Stats {
            per_op: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn record(&self, op: &'static str, latency: Duration, result: &anyhow::Result<()>) {
        let mut per_op = self.per_op.lock().expect("stats lock is never poisoned");
        let stats = per_op.entry(op).or_insert_with(|| OpStats {
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            errors: 0,
            first_error: None,
        });
        match result {
            Ok(()) => stats
                .latency_us
                .saturating_record(latency.as_micros() as u64),
            Err(err) => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| format!("{err:#}"));
            }
        }
    }

    pub fn total_ops(&self) -> u64 {
        let per_op = self.per_op.lock().expect("stats lock is never poisoned");
        per_op.values().map(|s| s.latency_us.len() + s.errors).sum()
    }

    pub fn total_errors(&self) -> u64 {
        let per_op = self.per_op.lock().expect("stats lock is never poisoned");
        per_op.values().map(|s| s.errors).sum()
    }

    pub fn report(&self, elapsed: Duration) -> Report {
        let per_op = self.per_op.lock().expect("stats lock is never poisoned");
        let ops = per_op
            .iter()
            .map(|(name, s)| {
                let h = &s.latency_us;
                OpReport {
                    name,
                    count: h.len(),
                    errors: s.errors,
                    first_error: s.first_error.clone(),
                    p50_us: h.value_at_quantile(0.50),
                    p95_us: h.value_at_quantile(0.95),
                    p99_us: h.value_at_quantile(0.99),
                    p999_us: h.value_at_quantile(0.999),
                    max_us: h.max(),
                }
            })
            .collect::<Vec<_>>();
        let total: u64 = ops.iter().map(|op| op.count).sum();
        Report {
            throughput_ops: total as f64 / elapsed.as_secs_f64(),
            elapsed,
            ops,
        }
    }
}

pub struct Report {
    pub throughput_ops: f64,
    pub elapsed: Duration,
    ops: Vec<OpReport>,
}

struct OpReport {
    name: &'static str,
    count: u64,
    errors: u64,
    first_error: Option<String>,
    p50_us: u64,
    p95_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = format!(
            "\nthroughput: {:.0} ops/s over {:.1}s\n{:<8} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            self.throughput_ops,
            self.elapsed.as_secs_f64(),
            "op",
            "count",
            "errors",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "p999 ms",
            "max ms"
        );
        for op in &self.ops {
            let ms = |us: u64| us as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{:<8} {:>10} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                op.name,
                op.count,
                op.errors,
                ms(op.p50_us),
                ms(op.p95_us),
                ms(op.p99_us),
                ms(op.p999_us),
                ms(op.max_us)
            );
        }
        for op in &self.ops {
            if let Some(error) = &op.first_error {
                let _ = writeln!(out, "first {} error: {error}", op.name);
            }
        }
        out
    }

    pub fn json(&self) -> String {
        let ops = self
            .ops
            .iter()
            .map(|op| {
                format!(
                    "\"{}\":{{\"count\":{},\"errors\":{},\"p50_us\":{},\"p95_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
                    op.name, op.count, op.errors, op.p50_us, op.p95_us, op.p99_us, op.p999_us, op.max_us
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "{{\"throughput_ops\":{:.1},\"operations\":{{{ops}}}}}\n",
            self.throughput_ops
        )
    }
}
