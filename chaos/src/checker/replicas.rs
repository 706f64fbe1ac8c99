//! Replica consistency, once the cluster is quiet: every member of each
//! range's current descriptor has applied the same log index and holds the
//! same keys and values, now and as of a timestamp taken during the run
//! (read with stale reads at each node, which serve that node's own
//! copy), and no two ranges overlap. For the meta range
//! (range 1) that covers the user keys of its span; its system keys (routing
//! table, node registry) are not reachable through the KV API.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use zdb_client::Client;
use zdb_proto::v1::{KeyValue, RangeDescriptor, ReplicaStatus};

use super::Verdict;

/// What one node says about one of its replicas.
struct ReplicaView {
    node: u64,
    address: String,
    status: ReplicaStatus,
}

fn epoch_of(range: &RangeDescriptor) -> (u64, u64) {
    range
        .epoch
        .as_ref()
        .map_or((0, 0), |epoch| (epoch.version, epoch.conf_ver))
}

/// Polls until the replicas agree or `timeout` passes; returns the verdict
/// of the last attempt. With `past`, the replicas must also agree on their
/// state as of that timestamp.
pub async fn check(
    client: &Client,
    nodes: &[(u64, String)],
    timeout: Duration,
    past: Option<u64>,
) -> Verdict {
    let deadline = Instant::now() + timeout;
    loop {
        let verdict = check_once(client, nodes, past).await;
        if verdict.passed() || Instant::now() >= deadline {
            return verdict;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn check_once(client: &Client, nodes: &[(u64, String)], past: Option<u64>) -> Verdict {
    let mut views: BTreeMap<u64, Vec<ReplicaView>> = BTreeMap::new();
    for (node, address) in nodes {
        let status = match client.node_status(address).await {
            Ok(status) => status,
            Err(err) => {
                return Verdict::Fail(vec![format!(
                    "node {node} did not report its status: {err}"
                )])
            }
        };
        for replica in status.replicas {
            let Some(range) = &replica.range else {
                continue;
            };
            views.entry(range.range_id).or_default().push(ReplicaView {
                node: *node,
                address: address.clone(),
                status: replica,
            });
        }
    }
    let mut problems = Vec::new();
    let mut current: Vec<RangeDescriptor> = Vec::new();
    for (range_id, replicas) in &views {
        // The newest descriptor any replica has applied is the range's.
        let Some(newest) = replicas
            .iter()
            .filter_map(|view| view.status.range.clone())
            .max_by_key(epoch_of)
        else {
            continue;
        };
        let members: Vec<u64> = newest.replicas.iter().map(|r| r.node_id).collect();
        let holders: Vec<&ReplicaView> = replicas
            .iter()
            .filter(|view| members.contains(&view.node))
            .collect();
        if holders.len() != members.len() {
            problems.push(format!(
                "range {range_id}: members {members:?} but only nodes {:?} hold it",
                holders.iter().map(|view| view.node).collect::<Vec<_>>()
            ));
            continue;
        }
        let applied: Vec<(u64, u64, (u64, u64))> = holders
            .iter()
            .map(|view| {
                let epoch = view.status.range.as_ref().map_or((0, 0), epoch_of);
                (view.node, view.status.applied_index, epoch)
            })
            .collect();
        if applied
            .windows(2)
            .any(|pair| pair[0].1 != pair[1].1 || pair[0].2 != pair[1].2)
        {
            problems.push(format!(
                "range {range_id}: replicas at different points (node, applied index, epoch): {applied:?}"
            ));
            continue;
        }
        for read_ts in std::iter::once(0).chain(past) {
            let mut contents: Vec<(u64, Result<Vec<KeyValue>, String>)> = Vec::new();
            for view in &holders {
                let held = client
                    .scan_replica_at_node(&view.address, &newest, read_ts)
                    .await
                    .map_err(|err| err.to_string());
                contents.push((view.node, held));
            }
            let reference = &contents[0];
            let when = match read_ts {
                0 => "now".to_owned(),
                ts => format!("as of timestamp {ts}"),
            };
            for other in &contents[1..] {
                if other.1 != reference.1 {
                    problems.push(format!(
                        "range {range_id}: node {} and node {} hold different data {when} at applied index {}: {}",
                        reference.0,
                        other.0,
                        applied[0].1,
                        difference(&reference.1, &other.1)
                    ));
                }
            }
        }
        current.push(newest);
    }
    current.sort_by(|a, b| a.start_key.cmp(&b.start_key));
    for pair in current.windows(2) {
        let (left, right) = (&pair[0], &pair[1]);
        if left.end_key.is_empty() || left.end_key > right.start_key {
            problems.push(format!(
                "ranges {} [{:?}, {:?}) and {} [{:?}, ..) overlap",
                left.range_id,
                String::from_utf8_lossy(&left.start_key),
                String::from_utf8_lossy(&left.end_key),
                right.range_id,
                String::from_utf8_lossy(&right.start_key)
            ));
        }
    }
    if problems.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(problems)
    }
}

fn difference(a: &Result<Vec<KeyValue>, String>, b: &Result<Vec<KeyValue>, String>) -> String {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            let left: BTreeMap<&[u8], &[u8]> = a
                .iter()
                .map(|kv| (kv.key.as_slice(), kv.value.as_slice()))
                .collect();
            let right: BTreeMap<&[u8], &[u8]> = b
                .iter()
                .map(|kv| (kv.key.as_slice(), kv.value.as_slice()))
                .collect();
            let differing: Vec<String> = left
                .keys()
                .chain(right.keys())
                .filter(|key| left.get(*key) != right.get(*key))
                .take(5)
                .map(|key| String::from_utf8_lossy(key).into_owned())
                .collect();
            format!(
                "{} vs {} keys; differing keys include {differing:?}",
                a.len(),
                b.len()
            )
        }
        (a, b) => format!("{:?} vs {:?}", a.as_ref().err(), b.as_ref().err()),
    }
}
