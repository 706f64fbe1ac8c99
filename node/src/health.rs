//! Whether this node is alive and whether it should take requests, as the
//! status port (`/livez`, `/readyz`), the gRPC health service and Kubernetes
//! probes report it. Nothing here is a constant: the server records where
//! startup and shutdown are, the store records on every tick whether each
//! replica has caught up.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// Beats are counted on the monotonic clock, from the process's first use of it.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn monotonic_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64 + 1
}

/// Where the node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Opening the engine, settling the node's identity (joining a cluster).
    Starting = 0,
    /// The store runs; requests are served once every replica caught up.
    Running = 1,
    /// SIGTERM: handing leaderships away, taking no new requests.
    ShuttingDown = 2,
    /// The store stopped on an error it cannot recover from.
    Failed = 3,
}

/// A store event loop silent this long is stuck: the node is not alive.
pub const STORE_STALL_LIMIT: Duration = Duration::from_secs(15);

#[derive(Clone, Default)]
pub struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    phase: AtomicU8,
    /// Every replica knows a leader and applied what it knows committed.
    caught_up: AtomicBool,
    /// Monotonic ms of the store loop's last tick; 0 before it started.
    store_beat_ms: AtomicU64,
    /// How many replicas are not caught up, for the report.
    behind: AtomicU64,
    /// Set once the node stops taking requests (late in a shutdown, after
    /// its leaderships have moved).
    refusing: AtomicBool,
}

impl Health {
    pub fn set_phase(&self, phase: Phase) {
        self.inner.phase.store(phase as u8, Ordering::SeqCst);
    }

    pub fn phase(&self) -> Phase {
        match self.inner.phase.load(Ordering::SeqCst) {
            0 => Phase::Starting,
            1 => Phase::Running,
            2 => Phase::ShuttingDown,
            _ => Phase::Failed,
        }
    }

    /// From now on requests are refused (not applied; go elsewhere).
    pub fn stop_accepting(&self) {
        self.inner.refusing.store(true, Ordering::SeqCst);
    }

    pub fn accepting(&self) -> bool {
        !self.inner.refusing.load(Ordering::SeqCst)
    }

    /// The store's report, once per tick: how many replicas lag behind.
    pub fn store_beat(&self, replicas_behind: usize) {
        self.inner
            .behind
            .store(replicas_behind as u64, Ordering::SeqCst);
        self.inner
            .caught_up
            .store(replicas_behind == 0, Ordering::SeqCst);
        self.inner
            .store_beat_ms
            .store(monotonic_ms(), Ordering::SeqCst);
    }

    /// Alive: the process runs and its store loop is not stuck. A failed
    /// node is not alive (Kubernetes restarts it; it recovers from disk).
    pub fn liveness(&self) -> Result<(), String> {
        self.liveness_at(monotonic_ms())
    }

    fn liveness_at(&self, now_ms: u64) -> Result<(), String> {
        if self.phase() == Phase::Failed {
            return Err("the store stopped on an unrecoverable error; see the log".into());
        }
        let beat = self.inner.store_beat_ms.load(Ordering::SeqCst);
        if beat != 0 {
            let silent = Duration::from_millis(now_ms.saturating_sub(beat));
            if silent > STORE_STALL_LIMIT {
                return Err(format!(
                    "the store event loop has not ticked for {silent:?}"
                ));
            }
        }
        Ok(())
    }

    /// Ready: requests sent here are served (or forwarded) with current data.
    pub fn readiness(&self) -> Result<(), String> {
        self.liveness()?;
        match self.phase() {
            Phase::Starting => return Err("starting: opening the engine and joining".into()),
            Phase::ShuttingDown => return Err("shutting down".into()),
            Phase::Failed => return Err("failed".into()),
            Phase::Running => {}
        }
        if self.inner.store_beat_ms.load(Ordering::SeqCst) == 0 {
            return Err("the store has not started yet".into());
        }
        if !self.inner.caught_up.load(Ordering::SeqCst) {
            let behind = self.inner.behind.load(Ordering::SeqCst);
            return Err(format!(
                "catching up: {behind} replicas have no leader yet or have not applied their committed log"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_running_with_every_replica_caught_up() {
        let health = Health::default();
        assert!(health.liveness().is_ok());
        assert!(health.readiness().unwrap_err().contains("starting"));
        health.set_phase(Phase::Running);
        assert!(health.readiness().unwrap_err().contains("store"));
        health.store_beat(2);
        assert!(health.readiness().unwrap_err().contains("2 replicas"));
        health.store_beat(0);
        assert!(health.readiness().is_ok());
        health.set_phase(Phase::ShuttingDown);
        assert!(health.readiness().unwrap_err().contains("shutting down"));
        assert!(health.liveness().is_ok());
        health.set_phase(Phase::Failed);
        assert!(health.liveness().is_err());
    }

    #[test]
    fn a_stuck_store_is_not_alive() {
        let health = Health::default();
        health.set_phase(Phase::Running);
        health.store_beat(0);
        let beat = health.inner.store_beat_ms.load(Ordering::SeqCst);
        assert!(health.liveness_at(beat + 1000).is_ok());
        let later = beat + STORE_STALL_LIMIT.as_millis() as u64 + 1000;
        assert!(health
            .liveness_at(later)
            .unwrap_err()
            .contains("not ticked"));
    }
}
