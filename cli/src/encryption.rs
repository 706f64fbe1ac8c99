//! `zdbctl encryption status` and `zdbctl encryption rotate`: which keys
//! each node encrypts its data at rest with, and making a new data key
//! current. Key ids only: no key material ever leaves a node.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use clap::Subcommand;
use zdb_client::Client;
use zdb_proto::v1::EncryptionStatus;

#[derive(Subcommand)]
pub enum EncryptionCommand {
    /// One line per node: id, whether it encrypts, its master key id, the
    /// current data key and when it was made.
    Status,
    /// Make a new data key current (on every node, or on one). Old keys stay
    /// to read what they sealed; nothing is re-encrypted, nothing stops.
    Rotate {
        /// Only this node.
        #[arg(long)]
        node: Option<u64>,
    },
}

pub async fn run(client: &Client, command: EncryptionCommand) -> Result<ExitCode> {
    match command {
        EncryptionCommand::Status => status(client).await,
        EncryptionCommand::Rotate { node } => rotate(client, node).await,
    }
}

const HEADER: &str = "NODE\tENABLED\tMASTER KEY\tDATA KEY\tCREATED";

async fn status(client: &Client) -> Result<ExitCode> {
    println!("{HEADER}");
    let mut code = ExitCode::SUCCESS;
    for node in client.list_nodes().await? {
        match client.node_status(&node.address).await {
            Ok(status) => println!(
                "{}",
                line(node.node_id, &status.encryption.unwrap_or_default())
            ),
            Err(err) => {
                println!("{}\tdown\t-\t-\t-", node.node_id);
                eprintln!("node {} at {}: {err}", node.node_id, node.address);
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

async fn rotate(client: &Client, only: Option<u64>) -> Result<ExitCode> {
    let nodes: Vec<_> = client
        .list_nodes()
        .await?
        .into_iter()
        .filter(|node| only.is_none_or(|id| id == node.node_id))
        .collect();
    if nodes.is_empty() {
        match only {
            Some(id) => bail!("node {id} is not in the cluster's registry (see zdbctl nodes)"),
            None => bail!("the cluster lists no nodes"),
        }
    }
    println!("{HEADER}");
    let mut code = ExitCode::SUCCESS;
    for node in nodes {
        match client.rotate_data_key(&node.address).await {
            Ok(status) => println!("{}", line(node.node_id, &status)),
            Err(err) => {
                println!("{}\tfailed\t-\t-\t-", node.node_id);
                eprintln!("node {} at {}: {err}", node.node_id, node.address);
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

fn line(node_id: u64, status: &EncryptionStatus) -> String {
    if !status.enabled {
        return format!("{node_id}\tno\t-\t-\t-");
    }
    format!(
        "{node_id}\tyes\t{}\t{} (of {})\t{}",
        status.master_key_id,
        status.data_key_id,
        status.data_keys,
        created(status.data_key_created_at_ms, now_ms())
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// "2025-03-01 12:00:00 UTC (3d ago)".
fn created(at_ms: u64, now_ms: u64) -> String {
    let seconds = at_ms / 1000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let age = now_ms.saturating_sub(at_ms) / 1000;
    let age = match age {
        0..60 => format!("{age}s"),
        60..3600 => format!("{}m", age / 60),
        3600..86_400 => format!("{}h", age / 3600),
        _ => format!("{}d", age / 86_400),
    };
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC ({age} ago)",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times_print_as_utc_dates_with_their_age() {
        assert_eq!(created(0, 59_000), "1970-01-01 00:00:00 UTC (59s ago)");
        // 2024-02-29 12:34:56 UTC, two days later.
        let leap = 1_709_210_096_000;
        assert_eq!(
            created(leap, leap + 2 * 86_400_000),
            "2024-02-29 12:34:56 UTC (2d ago)"
        );
    }

    #[test]
    fn a_line_names_keys_by_id() {
        let status = EncryptionStatus {
            enabled: true,
            master_key_id: "0123456789abcdef".into(),
            data_key_id: 3,
            data_key_created_at_ms: 0,
            data_keys: 3,
        };
        assert!(line(2, &status).starts_with("2\tyes\t0123456789abcdef\t3 (of 3)\t1970-01-01"));
        assert_eq!(line(4, &EncryptionStatus::default()), "4\tno\t-\t-\t-");
    }
}
