//! `zdbctl now` and `zdbctl gc`: the oracle's time and the versions kept.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use zdb_client::Client;
use zdb_proto::timestamp::{logical, physical_ms};

/// Prints a timestamp from the oracle (for `get --at`, `scan --at`).
pub async fn now(client: &Client) -> Result<ExitCode> {
    let ts = client.now().await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{ts}")?;
    eprintln!(
        "(ms since the Unix epoch {}, logical {})",
        physical_ms(ts),
        logical(ts)
    );
    Ok(ExitCode::SUCCESS)
}

/// Shows the GC safe point, life time and versions collected per node; with
/// `life_time`, sets the life time first.
pub async fn gc(client: &Client, life_time: Option<&str>) -> Result<ExitCode> {
    if let Some(life_time) = life_time {
        client.set_gc_life_time(parse_duration(life_time)?).await?;
    }
    let status = client.gc_status(None).await?;
    let mut out = std::io::stdout().lock();
    let behind = physical_ms(status.oracle_seen).saturating_sub(physical_ms(status.safe_point));
    writeln!(
        out,
        "safe point   {} ({} behind the oracle's time)",
        status.safe_point,
        if status.safe_point == 0 {
            "none yet; nothing collected".to_owned()
        } else {
            format_ms(behind)
        }
    )?;
    writeln!(out, "life time    {}", format_ms(status.life_time_ms))?;
    writeln!(
        out,
        "{:<6} {:<22} {:>20}",
        "NODE", "ADDRESS", "VERSIONS COLLECTED"
    )?;
    let mut total = 0;
    for node in client.list_nodes().await? {
        let collected = match client.gc_status(Some(&node.address)).await {
            Ok(status) => {
                total += status.versions_collected;
                status.versions_collected.to_string()
            }
            Err(err) => format!("unreachable: {err}"),
        };
        writeln!(
            out,
            "{:<6} {:<22} {:>20}",
            node.node_id, node.address, collected
        )?;
    }
    writeln!(out, "{:<6} {:<22} {:>20}", "total", "", total)?;
    Ok(ExitCode::SUCCESS)
}

/// "90", "90s", "10m", "1h", "500ms".
fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let Ok(number) = number.parse::<u64>() else {
        bail!("{text:?} is not a duration: write a number with s, m, h or ms (for example 10m)");
    };
    Ok(match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number * 60),
        "h" => Duration::from_secs(number * 3600),
        _ => bail!("unknown unit {unit:?} in {text:?}: use ms, s, m or h"),
    })
}

fn format_ms(ms: u64) -> String {
    match ms {
        ms if ms < 1_000 => format!("{ms} ms"),
        ms if ms < 120_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{:.1} min", ms as f64 / 60_000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
