//! The list-append workload (after Elle): serializable transactions of one
//! to four steps, each appending a unique element to a key's list or
//! reading a list, over keys in several ranges. The dependency checker
//! (`checker::list_append`) rebuilds the order of each list from the reads
//! and looks for cycles.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use zdb_client::{Client, Error, Isolation, Transaction, TxnOptions};

use super::definitely_not_applied;
use crate::history::{History, Micro, Outcome, TxnCall};

pub const PREFIX: &str = "la/";
pub const KEYS: usize = 8;

pub fn key(i: usize) -> String {
    format!("{PREFIX}k{i}")
}

/// Each key in its own range.
pub fn split_points() -> Vec<String> {
    (1..KEYS).map(key).collect()
}

pub fn parse(value: Option<Vec<u8>>) -> Vec<u64> {
    let text = String::from_utf8_lossy(&value.unwrap_or_default()).into_owned();
    text.split(',')
        .filter(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect()
}

fn render(list: &[u64]) -> String {
    list.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs the steps; fills in what each read returned.
async fn execute(txn: &mut Transaction, ops: &mut [Micro]) -> zdb_client::Result<()> {
    for op in ops.iter_mut() {
        match op {
            Micro::Append { key, element } => {
                let mut list = parse(txn.get(key.clone()).await?);
                list.push(*element);
                txn.put(key.clone(), render(&list)).await?;
            }
            Micro::Read { key, list } => {
                *list = Some(parse(txn.get(key.clone()).await?));
            }
        }
    }
    Ok(())
}

fn random_ops(rng: &mut StdRng, process: u64, next: &mut u64) -> Vec<Micro> {
    let steps = rng.random_range(1..=4);
    (0..steps)
        .map(|_| {
            let key = key(rng.random_range(0..KEYS));
            if rng.random_bool(0.5) {
                *next += 1;
                Micro::Append {
                    key,
                    element: process * 1_000_000 + *next,
                }
            } else {
                Micro::Read { key, list: None }
            }
        })
        .collect()
}

/// Runs transactions until `stop`; each attempt is one history entry.
pub async fn run_worker(
    process: u64,
    client: Client,
    history: History,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next = 0u64;
    while !*stop.borrow_and_update() {
        let mut ops = random_ops(&mut rng, process, &mut next);
        let invoked = history.now();
        let result = attempt(&client, &mut ops).await;
        let completed = history.now();
        let outcome = match result {
            Ok(()) => Outcome::Ok(()),
            Err(err) if definitely_not_applied(&err) || aborted(&err) => {
                Outcome::Failed(err.to_string())
            }
            Err(err) => Outcome::Unknown(err.to_string()),
        };
        if !matches!(outcome, Outcome::Ok(_)) {
            // Reads of a transaction that did not commit say nothing.
            for op in &mut ops {
                if let Micro::Read { list, .. } = op {
                    *list = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        history.record_txn(TxnCall {
            process,
            ops,
            invoked,
            completed,
            outcome,
        });
    }
}

async fn attempt(client: &Client, ops: &mut [Micro]) -> zdb_client::Result<()> {
    let mut txn = client
        .begin(TxnOptions::new(Isolation::Serializable))
        .await?;
    if let Err(err) = execute(&mut txn, ops).await {
        let _ = txn.rollback().await;
        return Err(err);
    }
    txn.commit().await.map(|_| ())
}

/// The transaction certainly did not commit.
fn aborted(err: &Error) -> bool {
    matches!(
        err,
        Error::WriteConflict { .. }
            | Error::SerializationFailure { .. }
            | Error::Deadlock { .. }
            | Error::TxnAborted { .. }
            | Error::LockWaitTimeout { .. }
            | Error::TxnNotFound(_)
    )
}

/// Reads every key once the cluster is quiet (a transaction of reads).
pub async fn final_reads(process: u64, client: &Client, history: &History) -> bool {
    let mut ops: Vec<Micro> = (0..KEYS)
        .map(|i| Micro::Read {
            key: key(i),
            list: None,
        })
        .collect();
    let invoked = history.now();
    let result = attempt(client, &mut ops).await;
    let completed = history.now();
    let succeeded = result.is_ok();
    if succeeded {
        history.record_txn(TxnCall {
            process,
            ops,
            invoked,
            completed,
            outcome: Outcome::Ok(()),
        });
    }
    succeeded
}
