//! The set workload: adders put one key per unique element, a reader scans
//! all of them now and then. Elements are never removed, so an element
//! missing from a later read is a lost write.
//!
//! The set is cut in parts by time (a new part every `PART_LENGTH`): adders
//! add to the current part, the reader reads the current part, and the
//! final reads read every part. Reads stay small however long the run.

use std::time::Duration;

use tokio::sync::watch;
use zdb_client::Client;

use super::definitely_not_applied;
use crate::history::{History, Outcome, SetCall, SetOp, SetReply};

pub const PREFIX: &str = "set/";
pub const PART_LENGTH: Duration = Duration::from_secs(60);

/// The part of the set that is current at `now` (ns since the run began).
pub fn part_at(now: u64) -> String {
    format!("{:05}/", now / PART_LENGTH.as_nanos() as u64)
}

/// Every part up to now (for the final reads).
pub fn parts_until(history: &History) -> Vec<String> {
    let last = history.now() / PART_LENGTH.as_nanos() as u64;
    (0..=last).map(|part| format!("{part:05}/")).collect()
}

/// Adds `{part}/p{process}-{n}` for n = 1, 2, ... until `stop`.
pub async fn run_adder(
    process: u64,
    client: Client,
    history: History,
    mut stop: watch::Receiver<bool>,
) {
    let mut sequence = 0u64;
    while !*stop.borrow_and_update() {
        sequence += 1;
        let element = format!("{}p{process}-{sequence}", part_at(history.now()));
        let invoked = history.now();
        let result = client.put(format!("{PREFIX}{element}"), "1").await;
        let completed = history.now();
        let outcome = match result {
            Ok(()) => Outcome::Ok(SetReply::Added),
            Err(err) if definitely_not_applied(&err) => Outcome::Failed(err.to_string()),
            Err(err) => {
                tokio::time::sleep(super::register::UNKNOWN_BACKOFF).await;
                Outcome::Unknown(err.to_string())
            }
        };
        history.record_set(SetCall {
            process,
            op: SetOp::Add(element),
            invoked,
            completed,
            outcome,
        });
    }
}

/// Reads the whole set every `interval` until `stop`.
pub async fn run_reader(
    process: u64,
    client: Client,
    history: History,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    while !*stop.borrow_and_update() {
        read_all(process, &client, &history, &part_at(history.now())).await;
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One full read of one part of the set, recorded; returns whether it succeeded.
pub async fn read_all(process: u64, client: &Client, history: &History, part: &str) -> bool {
    let start = format!("{PREFIX}{part}");
    // The part ends with '/': the next byte, '0', ends its keys.
    let end = format!("{}0", start.trim_end_matches('/'));
    let invoked = history.now();
    let result = client.scan(start, end, 0, false).await;
    let completed = history.now();
    let outcome = match result {
        Ok(pairs) => Outcome::Ok(SetReply::Elements(
            pairs
                .into_iter()
                .map(|kv| {
                    let element = kv.key.strip_prefix(PREFIX.as_bytes()).unwrap_or(&kv.key);
                    String::from_utf8_lossy(element).into_owned()
                })
                .collect(),
        )),
        Err(err) => Outcome::Failed(err.to_string()),
    };
    let succeeded = matches!(outcome, Outcome::Ok(_));
    history.record_set(SetCall {
        process,
        op: SetOp::ReadAll {
            part: part.to_owned(),
        },
        invoked,
        completed,
        outcome,
    });
    succeeded
}
