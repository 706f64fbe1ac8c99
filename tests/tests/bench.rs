//! `zdb-bench` runs every workload end to end against a real cluster and
//! writes the JSON report that scripts (`bench/compare-etcd.sh`) read.

use std::process::Command;
use std::time::Duration;

use zdb_tests::{binary, Cluster};

/// The operation kinds each workload must have run.
const WORKLOADS: &[(&str, &[&str])] = &[
    ("insert", &["insert"]),
    ("a", &["read", "update"]),
    ("b", &["read", "update"]),
    ("c", &["read"]),
    ("d", &["read", "insert"]),
    ("e", &["scan", "insert"]),
    ("f", &["read", "rmw"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_and_reports_json() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let reports = tempfile::tempdir().expect("temp dir");
    let endpoints = cluster.endpoints();

    for (i, (workload, kinds)) in WORKLOADS.iter().enumerate() {
        let json = reports.path().join(format!("{workload}.json"));
        let mut command = Command::new(binary("zdb-bench"));
        command
            .args(["--endpoints", &endpoints, "--workload", workload])
            .args(["--records", "300", "--clients", "4", "--operations", "300"])
            .args(["--warmup", "0", "--json"])
            .arg(&json);
        if i == 0 {
            command.arg("--load");
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("zdb-bench runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "workload {workload} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report = std::fs::read_to_string(&json).expect("JSON report written");
        assert!(
            numbers_after(&report, "\"throughput_ops\":")[0] > 0,
            "{report}"
        );
        for kind in *kinds {
            let section = format!("\"{kind}\":{{\"count\":");
            assert!(
                numbers_after(&report, &section).first() > Some(&0),
                "workload {workload} ran no {kind}: {report}"
            );
        }
        let errors = numbers_after(&report, "\"errors\":");
        assert_eq!(errors.len(), kinds.len(), "{report}");
        assert!(
            errors.iter().all(|&e| e == 0),
            "workload {workload} had errors: {stdout}"
        );
        assert!(stdout.contains("p99 ms"), "no latency table: {stdout}");
    }
}

/// The integers right after each occurrence of `label` in the report.
fn numbers_after(report: &str, label: &str) -> Vec<u64> {
    report
        .match_indices(label)
        .filter_map(|(at, _)| {
            report[at + label.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .ok()
        })
        .collect()
}
