//! Garbage collection of old versions, cluster side: the meta range's
//! leader moves the safe point to the oracle's time minus the GC life
//! time; every node learns it and collects below it on its own; and every
//! node keeps its knowledge of the oracle's time fresh (the TTL sweep
//! stamps its tombstones with it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use zdb_proto::timestamp::{at_ms, physical_ms};

use super::{MetaClient, Timestamps, META_RANGE_ID};
use crate::clock::wall_ms;
use crate::engine::Engine;
use crate::metrics;
use crate::mvcc::gc::Collector;
use crate::mvcc::Horizon;
use crate::store::StoreHandle;

const TICK: Duration = Duration::from_secs(1);
/// A full collection round starts this long after the previous one ended,
/// or later: see [`ROUND_SHARE`].
const ROUND_INTERVAL: Duration = Duration::from_secs(5);
/// A round walks every version the node holds: rounds may take at most
/// one part in this many of one core, so that a node holding many
/// versions does not spend a steady share of its CPU walking them.
const ROUND_SHARE: u32 = 20;
/// Between two slices of a round, so that collection never crowds out requests.
const SLICE_PAUSE: Duration = Duration::from_millis(5);

/// What the safe point follows.
pub struct GcParts {
    pub meta: MetaClient,
    pub timestamps: Timestamps,
    pub store: StoreHandle,
    pub engine: Engine,
    pub horizon: Arc<Horizon>,
}

/// Runs until `stop`: learns and (on the meta leader) moves the safe point,
/// keeps the oracle's time fresh, and collects versions on a thread of its own.
pub async fn run(parts: GcParts, mut stop: watch::Receiver<bool>) {
    let collector = {
        let engine = parts.engine.clone();
        let horizon = parts.horizon.clone();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || collect(engine, horizon, stop))
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
        follow(&parts).await;
    }
    let _ = collector.await;
}

async fn follow(parts: &GcParts) {
    metrics::DATA_BYTES.set(parts.engine.data_bytes() as i64);
    let seen = parts.horizon.oracle_seen();
    if physical_ms(seen) + TICK.as_millis() as u64 <= wall_ms() {
        if let Err(err) = parts.timestamps.now().await {
            tracing::debug!(error = %err, "no timestamp from the oracle");
        }
    }
    let (safe_point, life_time_ms) = match parts.meta.gc_settings().await {
        Ok(settings) => settings,
        Err(err) => {
            tracing::debug!(error = %err, "the GC safe point could not be read");
            return;
        }
    };
    parts.horizon.raise_safe_point(safe_point);
    if parts.store.leader_term(META_RANGE_ID).await.is_err() {
        return;
    }
    let now = parts.horizon.oracle_seen();
    let target = at_ms(physical_ms(now).saturating_sub(life_time_ms));
    if now == 0 || target <= safe_point {
        return;
    }
    match parts.meta.raise_gc_safe_point_here(target).await {
        Ok(stored) => parts.horizon.raise_safe_point(stored),
        Err(err) => tracing::debug!(error = %err, "the GC safe point could not be moved"),
    }
}

/// Collection rounds over the node's versions, a slice at a time.
fn collect(engine: Engine, horizon: Arc<Horizon>, stop: watch::Receiver<bool>) {
    let mut collector = Collector::default();
    let (mut examined, mut removed) = (0, 0);
    // The time the round's slices took, pauses aside.
    let mut working = Duration::ZERO;
    while !*stop.borrow() {
        let started = Instant::now();
        let collected = collector.collect_slice(&engine, &horizon);
        working += started.elapsed();
        match collected {
            Ok(slice) => {
                examined += slice.examined;
                removed += slice.removed;
                if !slice.wrapped {
                    std::thread::sleep(SLICE_PAUSE);
                    continue;
                }
                // Removed versions take disk space until a compaction
                // drops them: compact when a round removed many.
                if removed > 0 && removed * 4 >= examined {
                    engine.compact_data();
                }
                (examined, removed) = (0, 0);
            }
            Err(err) => tracing::warn!(error = %err, "version collection failed"),
        }
        pause(ROUND_INTERVAL.max(working * ROUND_SHARE), &stop);
        working = Duration::ZERO;
    }
}

/// Sleeps for `length`, or until `stop`.
fn pause(length: Duration, stop: &watch::Receiver<bool>) {
    let until = Instant::now() + length;
    while !*stop.borrow() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
