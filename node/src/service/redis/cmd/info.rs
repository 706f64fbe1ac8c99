//! INFO [section ...]: server, clients, stats, replication, keyspace.
//! The counters are the node's Prometheus metrics.

use super::super::args::Args;
use super::super::frame::Frame;
use super::super::keyspace::{Direct, Keyspace};
use super::super::session::Shared;
use super::hello::REDIS_VERSION;
use crate::auth::Caller;
use crate::metrics;

const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "memory",
    "stats",
    "replication",
    "keyspace",
];

pub async fn run(shared: &Shared, caller: &Caller, args: &Args) -> Frame {
    let asked: Vec<String> = (0..args.len())
        .map(|i| args.word(i).to_ascii_lowercase())
        .collect();
    let everything = asked.is_empty()
        || asked
            .iter()
            .any(|section| matches!(section.as_str(), "all" | "default" | "everything"));
    let mut text = String::new();
    for section in SECTIONS {
        if everything || asked.iter().any(|asked| asked == section) {
            text.push_str(&section_text(shared, caller, section).await);
            text.push_str("\r\n");
        }
    }
    Frame::Verbatim(text)
}

async fn section_text(shared: &Shared, caller: &Caller, section: &str) -> String {
    let state = &shared.state;
    let identity = shared.ops.identity();
    let uptime = state.uptime().as_secs();
    match section {
        "server" => format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nzdb_version:{}\r\nredis_mode:standalone\r\narch_bits:64\r\nprocess_id:{}\r\nzdb_node_id:{}\r\nzdb_cluster_id:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            identity.node_id,
            identity.cluster_id,
            uptime / 86_400,
        ),
        // The cluster's cache policy for the whole keyspace, as this node
        // holds it (zdb keeps data on disk: maxmemory is the budget of
        // keys plus values).
        "memory" => {
            let settings = shared.ops.cache_settings();
            let policy = settings
                .policies
                .iter()
                .find(|policy| policy.prefix.is_empty())
                .cloned()
                .unwrap_or_default();
            format!(
                "# Memory\r\nmaxmemory:{}\r\nmaxmemory_policy:{}\r\n",
                policy.max_bytes,
                crate::ops::cache::policy_name(policy.policy),
            )
        }
        "clients" => format!(
            "# Clients\r\nconnected_clients:{}\r\n",
            state.clients().len()
        ),
        "stats" => format!(
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n",
            metrics::REDIS_CONNECTIONS.get(),
            metrics::REDIS_COMMANDS.get(),
            metrics::TTL_KEYS_REMOVED.get(),
            metrics::EVICTED_KEYS.get(),
            metrics::REDIS_KEYSPACE_HITS.get(),
            metrics::REDIS_KEYSPACE_MISSES.get(),
        ),
        // Every write is replicated by Raft to the range's replicas; each
        // node serves every key (forwarding to the leader).
        "replication" => "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nzdb_replication:raft\r\n".into(),
        "keyspace" => {
            // Counted as the connection's user: one who may not read every
            // key gets no count.
            let direct = Direct {
                ops: &shared.ops,
                caller,
                command: "INFO",
            };
            match direct.count_all().await {
                Ok(0) | Err(_) => "# Keyspace\r\n".into(),
                Ok(keys) => format!("# Keyspace\r\ndb0:keys={keys},expires=0,avg_ttl=0\r\n"),
            }
        }
        _ => String::new(),
    }
}
