//! The store's thread: take messages, run a pass, repeat, on the real clock.

use std::sync::mpsc::RecvTimeoutError;
use std::thread;
use std::time::Duration;

use super::Store;
use crate::error::Result;
use crate::metrics;

/// Most messages taken from the queue in one pass, so that a flood of
/// requests cannot delay persisting and answering the ones already taken.
const MAX_MESSAGES_PER_PASS: usize = 4096;
/// A pass that took this many messages means load: the next one lingers.
const BUSY_PASS: usize = 16;

impl Store {
    /// Runs until asked to stop, or until a pass fails (returned: the node
    /// must not go on).
    pub(super) fn run(mut self) -> Result<()> {
        let mut busy = false;
        let mut more_work = false;
        loop {
            let wait = if more_work || self.has_synced_readies() {
                Duration::ZERO
            } else {
                self.next_tick.saturating_duration_since(self.clock.now())
            };
            match self.inbox.recv_timeout(wait) {
                Ok(msg) => {
                    let mut running = self.handle(msg)?;
                    let mut taken = 1;
                    // Under load, let more work arrive before the pass:
                    // fewer, larger passes mean fewer syncs, Raft messages
                    // and wake-ups per write. Sleeping rather than waiting
                    // on the queue spares a wake-up per arriving message.
                    if busy {
                        thread::sleep(self.raft.batch_linger);
                    }
                    while taken < MAX_MESSAGES_PER_PASS {
                        let Ok(msg) = self.inbox.try_recv() else {
                            break;
                        };
                        running &= self.handle(msg)?;
                        taken += 1;
                    }
                    metrics::MESSAGES_PER_PASS.observe(taken as f64);
                    busy = taken >= BUSY_PASS;
                    if !running {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            more_work = self.run_pass(self.clock.now()).inspect_err(|err| {
                tracing::error!(error = %err, "cannot persist Raft state; stopping the node");
            })?;
        }
        tracing::info!("store event loop stopped");
        Ok(())
    }
}
