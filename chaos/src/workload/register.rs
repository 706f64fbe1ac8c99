//! The register workload: random operations on a small set of keys, each
//! write with a value no other write uses, so that a read tells exactly
//! which write it saw.
//!
//! Keys are renewed every `generation` (a new key prefix), which keeps each
//! key's history short enough to check quickly however long the run.

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use zdb_client::Client;

use super::definitely_not_applied;
use crate::history::{History, Outcome, RegisterCall, RegisterOp, RegisterReply, Value};

/// Pause after an operation whose outcome is unknown.
pub const UNKNOWN_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct RegisterWorkload {
    /// Keys in use at any time.
    pub keys: usize,
    /// How long a set of keys is used before the next one.
    pub generation: Duration,
}

impl RegisterWorkload {
    pub fn key(&self, generation: u64, index: usize) -> String {
        format!("reg/{generation:05}/{index:02}")
    }

    /// Every key used up to now (for the final reads).
    pub fn keys_until(&self, history: &History) -> Vec<String> {
        let generations = history.now() / self.generation.as_nanos().max(1) as u64;
        (0..=generations)
            .flat_map(|generation| (0..self.keys).map(move |index| (generation, index)))
            .map(|(generation, index)| self.key(generation, index))
            .collect()
    }
}

/// Runs one worker until `stop` turns true.
pub async fn run_worker(
    process: u64,
    workload: RegisterWorkload,
    client: Client,
    history: History,
    seed: u64,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    // What this worker last saw in each key: the expected value of its CASes.
    let mut last_seen: HashMap<String, Option<Value>> = HashMap::new();
    let mut sequence = 0u64;
    while !*stop.borrow_and_update() {
        let generation = history.now() / workload.generation.as_nanos().max(1) as u64;
        let key = workload.key(generation, rng.random_range(0..workload.keys));
        sequence += 1;
        let unique = format!("p{process}-{sequence}").into_bytes();
        let op = match rng.random_range(0..100) {
            0..40 => RegisterOp::Get,
            40..65 => RegisterOp::Put(unique),
            65..75 => RegisterOp::Delete,
            _ => RegisterOp::Cas {
                expected: last_seen.get(&key).cloned().flatten(),
                new: unique,
            },
        };
        let call = execute(process, &client, &history, key.clone(), op).await;
        match &call.outcome {
            Outcome::Ok(RegisterReply::Read(value)) => {
                last_seen.insert(key, value.clone());
            }
            Outcome::Ok(RegisterReply::Cas {
                previous,
                succeeded,
            }) => {
                let now = match (&call.op, succeeded) {
                    (RegisterOp::Cas { new, .. }, true) => Some(new.clone()),
                    _ => previous.clone(),
                };
                last_seen.insert(key, now);
            }
            Outcome::Unknown(_) => {
                // Like a real client: do not hammer a cluster that just lost a reply.
                tokio::time::sleep(UNKNOWN_BACKOFF).await;
            }
            _ => {}
        }
        history.record_register(call);
    }
}

/// Runs one operation and returns its record (not yet recorded).
pub async fn execute(
    process: u64,
    client: &Client,
    history: &History,
    key: String,
    op: RegisterOp,
) -> RegisterCall {
    let invoked = history.now();
    let result = match &op {
        RegisterOp::Get => client.get(key.as_bytes()).await.map(RegisterReply::Read),
        RegisterOp::Put(value) => client
            .put(key.as_bytes(), value.clone())
            .await
            .map(|()| RegisterReply::Written),
        RegisterOp::Delete => client
            .delete(key.as_bytes())
            .await
            .map(|()| RegisterReply::Written),
        RegisterOp::Cas { expected, new } => client
            .compare_and_swap(key.as_bytes(), expected.as_deref(), new.clone())
            .await
            .map(|outcome| RegisterReply::Cas {
                succeeded: outcome.succeeded,
                previous: outcome.previous,
            }),
    };
    let completed = history.now();
    let outcome = match result {
        Ok(reply) => Outcome::Ok(reply),
        Err(err) if op.is_read() || definitely_not_applied(&err) => {
            Outcome::Failed(err.to_string())
        }
        Err(err) => Outcome::Unknown(err.to_string()),
    };
    RegisterCall {
        process,
        key,
        op,
        invoked,
        completed,
        outcome,
    }
}
