//! The bank workload: accounts spread over 16 ranges, serializable
//! transfers between random pairs (never overdrawing), and snapshot reads
//! of every account. Money is neither made nor lost: every read must sum to
//! the opening total with no balance below zero.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use zdb_client::{Client, Isolation, Mutation, Transaction, TxnOptions};

use crate::history::{BankRead, History};

pub const PREFIX: &str = "bank/";
pub const ACCOUNTS: usize = 32;
pub const OPENING_BALANCE: i64 = 100;
/// The accounts live in this many ranges.
pub const RANGES: usize = 16;

pub fn account(i: usize) -> String {
    format!("{PREFIX}a{i:02}")
}

/// Where the bank's ranges begin (after the first).
pub fn split_points() -> Vec<String> {
    (1..RANGES)
        .map(|r| account(r * ACCOUNTS / RANGES))
        .collect()
}

/// Opens every account with the opening balance, in one atomic batch.
pub async fn open_accounts(client: &Client) -> zdb_client::Result<()> {
    let mutations = (0..ACCOUNTS)
        .map(|i| Mutation::Put {
            key: account(i).into_bytes(),
            value: OPENING_BALANCE.to_string().into_bytes(),
            ttl_seconds: 0,
        })
        .collect();
    client.batch_write(mutations).await
}

fn balance(value: Option<Vec<u8>>) -> zdb_client::Result<i64> {
    let text = value.unwrap_or_default();
    String::from_utf8_lossy(&text)
        .parse()
        .map_err(|_| zdb_client::Error::InvalidArgument(format!("not a balance: {text:?}")))
}

async fn transfer(
    txn: &mut Transaction,
    from: String,
    to: String,
    amount: i64,
) -> zdb_client::Result<()> {
    let from_balance = balance(txn.get(from.clone()).await?)?;
    let to_balance = balance(txn.get(to.clone()).await?)?;
    if from_balance < amount {
        return Ok(());
    }
    txn.put(from, (from_balance - amount).to_string()).await?;
    txn.put(to, (to_balance + amount).to_string()).await?;
    Ok(())
}

/// Transfers between random accounts until `stop`.
pub async fn run_transfers(client: Client, seed: u64, mut stop: watch::Receiver<bool>) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !*stop.borrow_and_update() {
        let from = rng.random_range(0..ACCOUNTS);
        let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
        let amount = rng.random_range(1..=30);
        let (from, to) = (account(from), account(to));
        let result = client
            .transaction(Isolation::Serializable, |txn| {
                let (from, to) = (from.clone(), to.clone());
                Box::pin(async move { transfer(txn, from, to, amount).await })
            })
            .await;
        if result.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads every account in one snapshot, alternating a read-only
/// serializable transaction and a plain scan at an oracle timestamp.
pub async fn read_all(process: u64, client: &Client, history: &History, in_txn: bool) -> bool {
    let invoked = history.now();
    let end = format!("{}b", PREFIX.trim_end_matches('/'));
    let pairs = if in_txn {
        let options = TxnOptions::new(Isolation::Serializable);
        match client.begin(options).await {
            Ok(mut txn) => {
                let pairs = txn.scan(PREFIX, end.clone(), 0).await;
                let _ = txn.rollback().await;
                pairs
            }
            Err(err) => Err(err),
        }
    } else {
        match client.now().await {
            Ok(ts) => client.scan_at(PREFIX, end.clone(), 0, false, ts).await,
            Err(err) => Err(err),
        }
    };
    let completed = history.now();
    let balances = pairs.ok().map(|pairs| {
        pairs
            .into_iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                (
                    key,
                    String::from_utf8_lossy(&kv.value)
                        .parse()
                        .unwrap_or(i64::MIN),
                )
            })
            .collect()
    });
    let succeeded = balances.is_some();
    history.record_bank_read(BankRead {
        process,
        invoked,
        completed,
        balances,
    });
    succeeded
}

/// Reads the whole bank every `interval` until `stop`.
pub async fn run_reader(
    process: u64,
    client: Client,
    history: History,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut in_txn = false;
    while !*stop.borrow_and_update() {
        read_all(process, &client, &history, in_txn).await;
        in_txn = !in_txn;
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
