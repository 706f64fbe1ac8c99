use std::process::ExitCode;

use anyhow::Result;
use zdb_client::Client;
use zdb_proto::v1::RaftRole;

/// One line per replica on every endpoint; unreachable nodes are reported and skipped.
pub async fn run(client: &Client) -> Result<ExitCode> {
    println!("NODE\tADDRESS\tRANGE\tROLE\tLEADER\tTERM\tCOMMIT\tAPPLIED\tLOG");
    let mut unreachable = 0;
    for endpoint in client.endpoints() {
        match client.node_status(endpoint).await {
            Ok(status) => {
                for replica in status.replicas {
                    let role = RaftRole::try_from(replica.role).map_or("?".into(), |role| {
                        role.as_str_name()
                            .trim_start_matches("RAFT_ROLE_")
                            .to_lowercase()
                    });
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}..{}",
                        status.node_id,
                        status.address,
                        replica.range.map_or(0, |range| range.range_id),
                        role,
                        replica.leader_id,
                        replica.term,
                        replica.commit_index,
                        replica.applied_index,
                        replica.first_log_index,
                        replica.last_log_index
                    );
                }
            }
            Err(err) => {
                unreachable += 1;
                eprintln!("{endpoint}: unreachable: {err}");
            }
        }
    }
    Ok(if unreachable == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The range table as the ranges' leaders report it.
pub async fn ranges(client: &Client) -> Result<ExitCode> {
    let table = client.ranges(b"", b"").await?;
    let mut leaders = std::collections::HashMap::new();
    for endpoint in client.endpoints() {
        if let Ok(status) = client.node_status(endpoint).await {
            for replica in status.replicas {
                if replica.role == RaftRole::Leader as i32 {
                    if let Some(range) = &replica.range {
                        leaders.insert(range.range_id, (status.node_id, replica.clone()));
                    }
                }
            }
        }
    }
    println!("RANGE\tSTART\tEND\tEPOCH\tREPLICAS\tLEADER\tKEYS\tBYTES\tREADS/S\tWRITES/S");
    for range in table {
        let epoch = range.epoch.unwrap_or_default();
        let replicas: Vec<String> = range
            .replicas
            .iter()
            .map(|r| r.node_id.to_string())
            .collect();
        let (leader, keys, bytes, reads, writes) = match leaders.get(&range.range_id) {
            Some((node, r)) => (
                node.to_string(),
                r.approximate_keys,
                r.approximate_bytes,
                r.reads_per_second,
                r.writes_per_second,
            ),
            None => ("?".into(), 0, 0, 0.0, 0.0),
        };
        let end = if range.end_key.is_empty() {
            "+inf".into()
        } else {
            String::from_utf8_lossy(&range.end_key).into_owned()
        };
        println!(
            "{}\t{:?}\t{}\t{}.{}\t{}\t{}\t{}\t{}\t{:.1}\t{:.1}",
            range.range_id,
            String::from_utf8_lossy(&range.start_key),
            end,
            epoch.conf_ver,
            epoch.version,
            replicas.join(","),
            leader,
            keys,
            bytes,
            reads,
            writes
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn split(client: &Client, key: &str) -> Result<ExitCode> {
    let (left, right) = client.split_at(key.as_bytes()).await?;
    println!(
        "split range {} at {key:?}: range {} now ends there, range {} starts there",
        left.range_id, left.range_id, right.range_id
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn nodes(client: &Client) -> Result<ExitCode> {
    println!("NODE\tADDRESS\tSTATE\tREPLICAS\tLEADERS\tZONE");
    for node in client.list_nodes().await? {
        let state = zdb_client::NodeState::try_from(node.state).map_or("?".into(), |s| {
            s.as_str_name()
                .trim_start_matches("NODE_STATE_")
                .to_lowercase()
        });
        let (replicas, leaders) = match client.node_status(&node.address).await {
            Ok(status) => (
                status.replica_count.to_string(),
                status.leader_count.to_string(),
            ),
            Err(_) => ("down".into(), "down".into()),
        };
        let zone = if node.zone.is_empty() {
            "-"
        } else {
            &node.zone
        };
        println!(
            "{}\t{}\t{state}\t{replicas}\t{leaders}\t{zone}",
            node.node_id, node.address
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn set_zone(client: &Client, node: u64, zone: &str) -> Result<ExitCode> {
    client.set_node_zone(node, zone).await?;
    match zone {
        "" => println!("node {node}'s zone is unknown now"),
        zone => println!(
            "node {node} runs in zone {zone}; placement spreads each range's replicas over zones"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn set_state(
    client: &Client,
    node: u64,
    state: zdb_client::NodeState,
) -> Result<ExitCode> {
    client.set_node_state(node, state).await?;
    println!(
        "node {node} is now {}; the placement driver moves its replicas and leaderships away",
        state
            .as_str_name()
            .trim_start_matches("NODE_STATE_")
            .to_lowercase()
    );
    Ok(ExitCode::SUCCESS)
}
