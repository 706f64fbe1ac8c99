//! `zdbctl cache`: cache mode, key prefixes with a size budget and an
//! eviction policy (as Redis's maxmemory and maxmemory-policy), kept for
//! the whole cluster.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use zdb_client::Client;
use zdb_proto::v1 as pb;

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Give PREFIX ("" for every key) a budget and an eviction policy.
    Set {
        prefix: String,
        /// Keys plus values of the prefix's keys, across the cluster: a
        /// number of bytes, or with a unit (64kb, 100mb, 2gb).
        #[arg(long)]
        max_bytes: String,
        /// allkeys-lru, allkeys-lfu, volatile-ttl or noeviction.
        #[arg(long, default_value = "allkeys-lru")]
        policy: String,
    },
    /// Remove PREFIX's policy (its keys stay).
    Remove { prefix: String },
    /// Show every policy and what its prefix holds now.
    Status,
}

fn policy_named(name: &str) -> Result<pb::EvictionPolicy> {
    pb::EvictionPolicy::from_redis_name(name).with_context(|| {
        format!("unknown policy {name:?}: use allkeys-lru, allkeys-lfu, volatile-ttl or noeviction")
    })
}

fn policy_name(policy: i32) -> &'static str {
    pb::EvictionPolicy::try_from(policy)
        .unwrap_or(pb::EvictionPolicy::Noeviction)
        .redis_name()
}

/// Bytes, or a number with kb, mb or gb (powers of 1024).
fn parse_bytes(text: &str) -> Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let scale: u64 = match unit {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        _ => bail!("{text:?} is not a size such as 65536, 64kb, 100mb or 2gb"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a size such as 65536, 64kb, 100mb or 2gb"))?;
    number
        .checked_mul(scale)
        .ok_or_else(|| anyhow::anyhow!("{text:?} is too large"))
}

fn print_status(status: &pb::CacheStatusResponse) {
    if status.policies.is_empty() {
        println!("no cache policies: nothing is evicted");
        return;
    }
    println!(
        "{:<24} {:>14} {:>14} {:>10}  {:<13} full",
        "prefix", "max bytes", "used bytes", "keys", "policy"
    );
    for (i, policy) in status.policies.iter().enumerate() {
        let usage = status.usage.get(i).cloned().unwrap_or_default();
        println!(
            "{:<24} {:>14} {:>14} {:>10}  {:<13} {}",
            format!("{:?}", String::from_utf8_lossy(&policy.prefix)),
            policy.max_bytes,
            usage.bytes,
            usage.keys,
            policy_name(policy.policy),
            if policy.full {
                "yes: writes refused"
            } else {
                "no"
            },
        );
    }
}

pub async fn run(client: &Client, command: CacheCommand) -> Result<ExitCode> {
    match command {
        CacheCommand::Set {
            prefix,
            max_bytes,
            policy,
        } => {
            let status = client
                .set_cache_policy(prefix, parse_bytes(&max_bytes)?, policy_named(&policy)?)
                .await?;
            print_status(&status);
        }
        CacheCommand::Remove { prefix } => {
            client.remove_cache_policy(prefix).await?;
            println!("OK");
        }
        CacheCommand::Status => print_status(&client.cache_status().await?),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_bytes("65536").unwrap(), 65536);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("2GB").unwrap(), 2 << 30);
        assert!(parse_bytes("lots").is_err());
    }
}
