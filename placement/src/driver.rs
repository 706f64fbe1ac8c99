//! The placement driver: observe the cluster, plan, act, repeat.

use std::time::Duration;

use zdb_client::Client;
use zdb_proto::v1::RaftRole;

use crate::planner::{self, Action, RangeLoad, SplitSettings};

/// What the driver observed and did in one round, for progress reports.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Round {
    pub ranges: usize,
    pub splits: Vec<(u64, String)>,
    pub failures: Vec<String>,
}

/// Every range, as reported by its leader on the nodes that answer.
pub async fn observe(client: &Client) -> Vec<RangeLoad> {
    let mut ranges = Vec::new();
    for endpoint in client.endpoints() {
        let Ok(status) = client.node_status(endpoint).await else {
            continue;
        };
        for replica in status.replicas {
            if replica.role != RaftRole::Leader as i32 {
                continue;
            }
            let Some(range) = replica.range else { continue };
            ranges.push(RangeLoad {
                range_id: range.range_id,
                bytes: replica.approximate_bytes,
                keys: replica.approximate_keys,
                writes_per_second: replica.writes_per_second,
                leader_address: status.address.clone(),
            });
        }
    }
    ranges
}

/// One round: observe, plan, carry out the splits.
pub async fn run_once(client: &Client, settings: &SplitSettings) -> Round {
    let ranges = observe(client).await;
    let mut round = Round {
        ranges: ranges.len(),
        ..Round::default()
    };
    for action in planner::plan_splits(&ranges, settings) {
        let Action::Split {
            range_id,
            leader_address,
            reason,
        } = action;
        match client.split_range_at_node(&leader_address, range_id).await {
            Ok(()) => round.splits.push((range_id, reason)),
            Err(err) => round
                .failures
                .push(format!("split of range {range_id}: {err}")),
        }
    }
    round
}

/// Runs rounds every `interval` until `stop` turns true, reporting each action.
pub async fn run(
    client: Client,
    settings: SplitSettings,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    report: impl Fn(&Round) + Send,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let round = run_once(&client, &settings).await;
        if !round.splits.is_empty() || !round.failures.is_empty() {
            report(&round);
        }
    }
}
