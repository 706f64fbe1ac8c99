//! Prometheus metrics, served on the node's HTTP status port at `/metrics`.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, register_histogram, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge, Encoder, Histogram, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, TextEncoder,
};

pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "zdb_requests_total",
        "gRPC requests by method and outcome",
        &["method", "code"]
    )
    .expect("metric registers once")
});

pub static REQUEST_SECONDS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "zdb_request_duration_seconds",
        "gRPC request latency by method",
        &["method"],
        exponential_buckets(0.0001, 2.0, 18).expect("valid buckets")
    )
    .expect("metric registers once")
});

pub static REQUESTS_FORWARDED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_requests_forwarded_total",
        "requests passed on to the node leading their range",
    )
});

pub static RAFT_PROPOSALS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("zdb_raft_proposals_total", "commands proposed to Raft"));

pub static RAFT_APPLIED: LazyLock<IntCounter> =
    LazyLock::new(|| counter("zdb_raft_applied_entries_total", "Raft entries applied"));

pub static RAFT_LEADER_ELECTED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_raft_leader_elections_total",
        "times a replica on this node became leader",
    )
});

pub static RAFT_LOG_ENTRIES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "zdb_raft_log_entries",
        "entries in the Raft logs of all replicas on this node"
    )
    .expect("metric registers once")
});

pub static RAFT_SNAPSHOTS_SENT: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_raft_snapshots_sent_total",
        "snapshots streamed to followers",
    )
});

pub static RAFT_SNAPSHOTS_APPLIED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_raft_snapshots_applied_total",
        "snapshots installed on this node",
    )
});

pub static TTL_KEYS_REMOVED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_ttl_keys_removed_total",
        "expired keys removed from disk",
    )
});

pub static GC_VERSIONS_COLLECTED: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_gc_versions_collected_total",
        "versions below the GC safe point removed from disk",
    )
});

pub static DATA_BYTES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "zdb_data_bytes",
        "bytes the user data takes in the engine (table files and memtables), every version included"
    )
    .expect("metric registers once")
});

pub static ORACLE_TIMESTAMPS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_oracle_timestamps_total",
        "timestamps this node handed out as the oracle (the meta range's leader)",
    )
});

pub static ORACLE_BATCHES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_oracle_batches_total",
        "requests this node sent to the oracle, each for the timestamps of many callers",
    )
});

pub static FSYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "zdb_fsync_duration_seconds",
        "duration of write-ahead log fsyncs (one covers every pass written while the previous ran)",
        exponential_buckets(0.00005, 2.0, 18).expect("valid buckets"),
    )
});

pub static ENTRIES_PER_SYNC: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "zdb_raft_entries_per_sync",
        "Raft log entries made durable by one fsync (group commit size)",
        exponential_buckets(1.0, 2.0, 12).expect("valid buckets"),
    )
});

pub static RAFT_MESSAGES_SENT: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_raft_messages_sent_total",
        "Raft messages handed to the transport for other nodes",
    )
});

pub static RAFT_BATCHES_SENT: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_raft_batches_sent_total",
        "batches of Raft messages sent on peer streams",
    )
});

pub static MESSAGES_PER_PASS: LazyLock<Histogram> = LazyLock::new(|| {
    histogram(
        "zdb_store_messages_per_pass",
        "messages (requests, Raft batches, admin calls) one event-loop pass took",
        exponential_buckets(1.0, 2.0, 13).expect("valid buckets"),
    )
});

pub static EVICTED_KEYS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_evicted_keys_total",
        "keys removed by cache-mode eviction (applied by this node's replicas)",
    )
});

pub static CACHE_POLICIES: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "zdb_cache_policies",
        "cache policies (prefix budgets) this node holds"
    )
    .expect("metric registers once")
});

pub static REDIS_COMMANDS: LazyLock<IntCounter> =
    LazyLock::new(|| counter("zdb_redis_commands_total", "commands the Redis port ran"));

pub static REDIS_CONNECTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_redis_connections_total",
        "connections the Redis port accepted",
    )
});

pub static REDIS_KEYSPACE_HITS: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_redis_keyspace_hits_total",
        "Redis reads of a key that existed",
    )
});

pub static REDIS_KEYSPACE_MISSES: LazyLock<IntCounter> = LazyLock::new(|| {
    counter(
        "zdb_redis_keyspace_misses_total",
        "Redis reads of a key that did not exist",
    )
});

fn counter(name: &str, help: &str) -> IntCounter {
    register_int_counter!(name, help).expect("metric registers once")
}

fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register_histogram!(name, help, buckets).expect("metric registers once")
}

/// Every registered metric in the Prometheus text format.
pub fn render() -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&prometheus::gather(), &mut out)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}
