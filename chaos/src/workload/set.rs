//! The set workload: adders put one key per unique element, a reader scans
//! all of them now and then. Elements are never removed, so an element
//! missing from a later read is a lost write.

use std::time::Duration;

use tokio::sync::watch;
use zdb_client::Client;

use super::definitely_not_applied;
use crate::history::{History, Outcome, SetCall, SetOp, SetReply};

pub const PREFIX: &str = "set/";
const END: &str = "set0"; // '0' follows '/': the first key after the prefix

/// Adds `p{process}-{n}` for n = 1, 2, ... until `stop`.
pub async fn run_adder(
    process: u64,
    client: Client,
    history: History,
    mut stop: watch::Receiver<bool>,
) {
    let mut sequence = 0u64;
    while !*stop.borrow_and_update() {
        sequence += 1;
        let element = format!("p{process}-{sequence}");
        let invoked = history.now();
        let result = client.put(format!("{PREFIX}{element}"), "1").await;
        let completed = history.now();
        let outcome = match result {
            Ok(()) => Outcome::Ok(SetReply::Added),
            Err(err) if definitely_not_applied(&err) => Outcome::Failed(err.to_string()),
            Err(err) => Outcome::Unknown(err.to_string()),
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
        read_all(process, &client, &history).await;
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// One full read of the set, recorded; returns whether it succeeded.
pub async fn read_all(process: u64, client: &Client, history: &History) -> bool {
    let invoked = history.now();
    let result = client.scan(PREFIX, END, 0, false).await;
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
        op: SetOp::ReadAll,
        invoked,
        completed,
        outcome,
    });
    succeeded
}
