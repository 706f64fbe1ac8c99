//! The WAL syncer: makes the store's writes durable on its own thread.
//!
//! The event loop writes every pass without waiting for the disk and asks
//! for a sync; the syncer runs one fsync for every request that queued up
//! while the previous one ran (group commit across passes) and reports the
//! newest pass it covers. Meanwhile the loop keeps stepping, applying and
//! answering, so one range's fsync never delays another range's commit.

use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use super::msg::StoreMsg;
use crate::engine::Engine;
use crate::metrics;

/// A pass asks for everything written so far to be made durable.
pub struct SyncRequest {
    /// Increases with every request; `StoreMsg::Synced` names the newest covered.
    pub token: u64,
    /// Raft log entries the pass appended (for the group-commit metric).
    pub entries: usize,
}

pub struct Syncer {
    requests: mpsc::Sender<SyncRequest>,
}

impl Syncer {
    pub fn start(engine: Engine, store: mpsc::Sender<StoreMsg>) -> std::io::Result<Self> {
        let (requests, queue) = mpsc::channel();
        thread::Builder::new()
            .name("zdb-wal-sync".into())
            .spawn(move || run(engine, queue, store))?;
        Ok(Syncer { requests })
    }

    pub fn request(&self, request: SyncRequest) {
        // The syncer only stops once the store is gone.
        let _ = self.requests.send(request);
    }
}

fn run(engine: Engine, queue: mpsc::Receiver<SyncRequest>, store: mpsc::Sender<StoreMsg>) {
    while let Ok(first) = queue.recv() {
        let (mut token, mut entries) = (first.token, first.entries);
        while let Ok(more) = queue.try_recv() {
            token = token.max(more.token);
            entries += more.entries;
        }
        let started = Instant::now();
        if let Err(err) = engine.sync_wal() {
            // Nothing written since the last sync may be acknowledged.
            tracing::error!(error = %err, "cannot sync the write-ahead log; stopping the node");
            let _ = store.send(StoreMsg::Fatal(err));
            return;
        }
        metrics::FSYNC_SECONDS.observe(started.elapsed().as_secs_f64());
        if entries > 0 {
            metrics::ENTRIES_PER_SYNC.observe(entries as f64);
        }
        if store.send(StoreMsg::Synced(token)).is_err() {
            return;
        }
    }
}
