//! This node's way to the timestamp oracle: callers queue, and one request
//! at a time goes to the oracle for everyone queued meanwhile, so the
//! oracle serves a batch per round trip instead of a call per write. Each
//! timestamp comes from a request sent after its caller asked, so it is
//! above every timestamp handed out before the caller asked.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::MetaClient;
use crate::error::{Error, Result};
use crate::metrics;
use crate::mvcc::Horizon;

/// At most this many timestamps in one request.
const MAX_BATCH: u32 = 1 << 16;

struct Waiter {
    count: u32,
    responder: oneshot::Sender<Result<u64>>,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Timestamps {
    queue: mpsc::UnboundedSender<Waiter>,
}

impl Timestamps {
    /// Starts the task that batches requests; it ends once every handle is dropped.
    pub fn start(meta: MetaClient, horizon: Arc<Horizon>) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(meta, horizon, waiting));
        Timestamps { queue }
    }

    /// `count` consecutive timestamps; returns the first.
    pub async fn take(&self, count: u32) -> Result<u64> {
        let (responder, answer) = oneshot::channel();
        let waiter = Waiter {
            count: count.clamp(1, MAX_BATCH),
            responder,
        };
        self.queue.send(waiter).map_err(|_| Error::ShuttingDown)?;
        answer.await.map_err(|_| Error::ShuttingDown)?
    }

    pub async fn now(&self) -> Result<u64> {
        self.take(1).await
    }
}

async fn run(
    meta: MetaClient,
    horizon: Arc<Horizon>,
    mut waiting: mpsc::UnboundedReceiver<Waiter>,
) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        let mut total = batch[0].count;
        while total < MAX_BATCH {
            match waiting.try_recv() {
                Ok(waiter) if total + waiter.count <= MAX_BATCH => {
                    total += waiter.count;
                    batch.push(waiter);
                }
                Ok(waiter) => {
                    answer(&meta, &horizon, std::mem::take(&mut batch), total).await;
                    total = waiter.count;
                    batch.push(waiter);
                }
                Err(_) => break,
            }
        }
        answer(&meta, &horizon, batch, total).await;
    }
}

async fn answer(meta: &MetaClient, horizon: &Horizon, batch: Vec<Waiter>, total: u32) {
    if batch.is_empty() {
        return;
    }
    metrics::ORACLE_BATCHES.inc();
    match meta.timestamps(total).await {
        Ok(first) => {
            horizon.observe_oracle(first + u64::from(total) - 1);
            let mut next = first;
            for waiter in batch {
                let _ = waiter.responder.send(Ok(next));
                next += u64::from(waiter.count);
            }
        }
        Err(err) => {
            let reason = err.to_string();
            for waiter in batch {
                let _ = waiter
                    .responder
                    .send(Err(Error::OracleUnavailable(reason.clone())));
            }
        }
    }
}
