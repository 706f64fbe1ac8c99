//! Data commands. Output is meant for scripts: values raw on stdout, one
//! `KEY<TAB>VALUE` line per pair for scans, errors on stderr.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use zdb_client::Client;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Write KEY=VALUE.
    Put {
        key: String,
        value: String,
        /// Expire the key after this many seconds.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Print KEY's value; exit code 1 when it does not exist.
    Get {
        key: String,
        /// Allow a possibly stale answer from any node.
        #[arg(long, conflicts_with = "at")]
        stale: bool,
        /// The value as of timestamp TS (from `zdbctl now`).
        #[arg(long, value_name = "TS")]
        at: Option<u64>,
    },
    /// Delete KEY.
    Del { key: String },
    /// Print the pairs with START <= key < END (an empty END: no bound).
    Scan {
        start: String,
        end: String,
        #[arg(long, default_value_t = 0)]
        limit: usize,
        #[arg(long)]
        reverse: bool,
        /// The pairs as of timestamp TS (from `zdbctl now`).
        #[arg(long, value_name = "TS")]
        at: Option<u64>,
    },
    /// Print how many keys START <= key < END holds (an empty END: no bound).
    Count { start: String, end: String },
    /// Print how many of the KEYs exist.
    Exists {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Delete every key starting with PREFIX (every key at all with --all),
    /// range by range; prints how many were deleted.
    Clear {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        prefix: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Set KEY to NEW if it holds EXPECTED: `cas KEY EXPECTED NEW`, or
    /// `cas KEY NEW --absent` to set it only if it does not exist.
    Cas {
        key: String,
        /// EXPECTED NEW, or just NEW with --absent.
        #[arg(num_args = 1..=2, required = true, value_names = ["EXPECTED", "NEW"])]
        values: Vec<String>,
        #[arg(long)]
        absent: bool,
    },
}

pub async fn run(client: &Client, command: DataCommand) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        DataCommand::Put { key, value, ttl } => {
            client.put_with_ttl(key, value, ttl.unwrap_or(0)).await?;
            writeln!(out, "OK")?;
        }
        DataCommand::Get { key, stale, at } => {
            let consistency = if stale {
                zdb_client::Consistency::Stale
            } else {
                zdb_client::Consistency::Linearizable
            };
            let value = match at {
                Some(ts) => client.get_at(key, ts).await?,
                None => client.get_with(key, consistency).await?,
            };
            match value {
                Some(value) => {
                    out.write_all(&value)?;
                    writeln!(out)?;
                }
                None => {
                    eprintln!("not found");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        DataCommand::Del { key } => {
            client.delete(key).await?;
            writeln!(out, "OK")?;
        }
        DataCommand::Scan {
            start,
            end,
            limit,
            reverse,
            at,
        } => {
            let pairs = match at {
                Some(ts) => client.scan_at(start, end, limit, reverse, ts).await?,
                None => client.scan(start, end, limit, reverse).await?,
            };
            for pair in pairs {
                out.write_all(&pair.key)?;
                out.write_all(b"\t")?;
                out.write_all(&pair.value)?;
                writeln!(out)?;
            }
        }
        DataCommand::Count { start, end } => {
            writeln!(out, "{}", client.count(start, end).await?)?;
        }
        DataCommand::Exists { keys } => {
            let keys = keys.into_iter().map(String::into_bytes).collect();
            writeln!(out, "{}", client.exists(keys).await?)?;
        }
        DataCommand::Clear { prefix, .. } => {
            let (start, end) = crate::keyspan::prefix_span(prefix.unwrap_or_default().as_bytes());
            let deleted = client.delete_range(start, end).await?;
            writeln!(out, "deleted {deleted} keys")?;
        }
        DataCommand::Cas {
            key,
            mut values,
            absent,
        } => {
            let (expected, new_value) = match (absent, values.len()) {
                (true, 1) => (None, values.remove(0)),
                (false, 2) => {
                    let new_value = values.remove(1);
                    (Some(values.remove(0)), new_value)
                }
                _ => anyhow::bail!(
                    "usage: zdbctl cas KEY EXPECTED NEW, or zdbctl cas KEY NEW --absent"
                ),
            };
            let outcome = client
                .compare_and_swap(key, expected.as_deref().map(str::as_bytes), new_value)
                .await?;
            if outcome.succeeded {
                writeln!(out, "OK")?;
            } else {
                match outcome.previous {
                    Some(value) => eprintln!(
                        "compare failed: current value is {}",
                        String::from_utf8_lossy(&value)
                    ),
                    None => eprintln!("compare failed: key does not exist"),
                }
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
