//! The timestamp oracle, served by the meta range's leader: strictly
//! increasing hybrid timestamps (wall-clock milliseconds and a counter).
//!
//! It hands out timestamps only up to a window end that the meta range
//! has committed (as PD does): a new leader reads the window its
//! predecessors committed and starts above it, so no timestamp is handed
//! out twice, whatever happened to the old leader. It hands out a batch
//! only while its leader lease is valid (as the event loop publishes it;
//! without one, after a ReadIndex round), so two leaders never hand out
//! timestamps at the same time either.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Mutex;
use zdb_proto::timestamp::{at_ms, LOGICAL_BITS};
use zdb_proto::v1::{command, Command, ExtendOracleWindowCommand};

use super::client::meta_target;
use super::table::{self, META_RANGE_ID};
use crate::apply::Outcome;
use crate::clock::wall_ms;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::metrics;
use crate::store::msg::ReadKind;
use crate::store::{MetaLease, StoreHandle};

/// How far ahead of the wall clock a window reaches, and how close to its
/// end the leader extends it.
const WINDOW_MS: u64 = 3_000;
const EXTEND_WITHIN_MS: u64 = 1_000;
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Oracle {
    store: StoreHandle,
    engine: Engine,
    lease: Arc<MetaLease>,
    state: Mutex<State>,
}

/// The oracle as this node's replica of the meta range runs it.
#[derive(Debug, Default)]
struct State {
    /// The term it was set up in; another term sets it up again.
    term: u64,
    last_handed_out: u64,
    window_end: u64,
}

fn ms(duration_ms: u64) -> u64 {
    duration_ms << LOGICAL_BITS
}

impl Oracle {
    pub fn new(store: StoreHandle, engine: Engine, lease: Arc<MetaLease>) -> Self {
        Oracle {
            store,
            engine,
            lease,
            state: Mutex::new(State::default()),
        }
    }

    /// Takes `count` consecutive timestamps; returns the first. Refused with
    /// NotLeader where this node does not lead the meta range.
    pub async fn take(&self, count: u32) -> Result<u64> {
        let count = u64::from(count.max(1));
        let mut state = self.state.lock().await;
        let term = self.leading_term().await?;
        if state.term != term {
            // A barrier that passes within this term: every window a
            // predecessor committed is applied here.
            if self.confirmed_term().await? != term {
                return Err(Error::NotApplied("the oracle's leadership moved"));
            }
            let persisted = table::oracle_window_end(&self.engine)?;
            *state = State {
                term,
                last_handed_out: persisted,
                window_end: persisted,
            };
            tracing::info!(
                term,
                window_end = persisted,
                "timestamp oracle starts above its predecessors' window"
            );
        }
        let now = at_ms(wall_ms());
        let first = (state.last_handed_out + 1).max(now);
        let last = first + count - 1;
        if last + ms(EXTEND_WITHIN_MS) > state.window_end {
            state.window_end = self.extend_window(last.max(now) + ms(WINDOW_MS)).await?;
        }
        if last > state.window_end {
            return Err(Error::NotApplied("the oracle's window did not grow"));
        }
        // Still leading in the same term, with a valid lease, as they go out.
        if self.leading_term().await? != term {
            return Err(Error::NotApplied("the oracle's leadership moved"));
        }
        state.last_handed_out = last;
        metrics::ORACLE_TIMESTAMPS.inc_by(count);
        Ok(first)
    }

    /// The term this node leads the meta range in, with a valid lease now:
    /// as published, or confirmed through the event loop.
    async fn leading_term(&self) -> Result<u64> {
        match self.lease.valid_term(Instant::now()) {
            Some(term) => Ok(term),
            None => self.confirmed_term().await,
        }
    }

    /// Confirms that this node leads the meta range now (lease or ReadIndex
    /// round, after which it has applied everything committed before);
    /// returns the term.
    async fn confirmed_term(&self) -> Result<u64> {
        self.store
            .read_barrier(meta_target(), ReadKind::Linearizable, 0, CALL_TIMEOUT)
            .await?;
        self.store.leader_term(META_RANGE_ID).await
    }

    async fn extend_window(&self, end: u64) -> Result<u64> {
        let command = Command {
            kind: Some(command::Kind::ExtendOracleWindow(
                ExtendOracleWindowCommand { end },
            )),
            ..Default::default()
        };
        match self
            .store
            .propose(meta_target(), command, CALL_TIMEOUT)
            .await?
        {
            Outcome::Timestamp(window_end) => Ok(window_end),
            other => Err(Error::Config(format!(
                "the oracle's window extension applied as {other:?}"
            ))),
        }
    }
}
