use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use raft::eraftpb::ConfChangeV2;
use tokio::sync::oneshot;
use zdb_proto::v1::{Command, RangeEpoch, ReplicaStatus};

use super::msg::{RangeProgress, ReadKind, StoreMsg, Target};
use crate::apply::Outcome;
use crate::error::{Error, Result};

/// How services talk to the store's event loop. Cheap to clone.
#[derive(Clone)]
pub struct StoreHandle {
    sender: mpsc::Sender<StoreMsg>,
}

impl StoreHandle {
    pub fn new(sender: mpsc::Sender<StoreMsg>) -> Self {
        StoreHandle { sender }
    }

    pub fn send(&self, msg: StoreMsg) -> Result<()> {
        self.sender.send(msg).map_err(|_| Error::ShuttingDown)
    }

    /// Sends the message `make` builds around a reply channel and waits for
    /// the reply, at most `timeout` (then `on_timeout`).
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> StoreMsg,
        timeout: Duration,
        on_timeout: Error,
    ) -> Result<T> {
        let (responder, reply) = oneshot::channel();
        self.send(make(responder))?;
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(on_timeout),
        }
    }

    /// Proposes a command and waits until it applied. After `timeout` the
    /// outcome is unknown: the command may still commit.
    pub async fn propose(
        &self,
        target: Target,
        command: Command,
        timeout: Duration,
    ) -> Result<Outcome> {
        self.propose_timestamped(target, command, None, timeout)
            .await
    }

    /// Proposes a command whose timestamp (`command.ts`) was asked of the
    /// oracle at `ts_taken_at`.
    pub async fn propose_timestamped(
        &self,
        target: Target,
        command: Command,
        ts_taken_at: Option<Instant>,
        timeout: Duration,
    ) -> Result<Outcome> {
        let make = |responder| StoreMsg::Propose {
            target,
            command,
            ts_taken_at,
            responder,
        };
        self.ask(make, timeout, Error::OutcomeUnknown).await?
    }

    /// Waits until reading the local engine is as good as `kind` asks for;
    /// with a `read_ts` (not 0), until it holds every write that may commit
    /// at or below it.
    pub async fn read_barrier(
        &self,
        target: Target,
        kind: ReadKind,
        read_ts: u64,
        timeout: Duration,
    ) -> Result<()> {
        let make = |responder| StoreMsg::Read {
            target,
            kind,
            read_ts,
            responder,
        };
        let late = Error::Timeout("the read could not be confirmed by a quorum in time");
        self.ask(make, timeout, late).await?
    }

    /// The term this node leads `range_id` in, or where its leader is.
    pub async fn leader_term(&self, range_id: u64) -> Result<u64> {
        let make = |responder| StoreMsg::LeaderTerm {
            range_id,
            responder,
        };
        self.ask(make, LOCAL_TIMEOUT, LOCAL_LATE).await?
    }

    /// Proposes a membership change decided on the range at `epoch`.
    pub async fn change_membership(
        &self,
        range_id: u64,
        epoch: Option<RangeEpoch>,
        change: ConfChangeV2,
        timeout: Duration,
    ) -> Result<Outcome> {
        let make = |responder| StoreMsg::ChangeMembership {
            range_id,
            epoch,
            change,
            responder,
        };
        self.ask(make, timeout, Error::OutcomeUnknown).await?
    }

    pub async fn status(&self) -> Result<Vec<ReplicaStatus>> {
        self.ask(StoreMsg::Status, LOCAL_TIMEOUT, LOCAL_LATE).await
    }

    pub async fn transfer_leader(&self, range_id: u64, to: u64) -> Result<()> {
        let make = |responder| StoreMsg::TransferLeader {
            range_id,
            to,
            responder,
        };
        self.ask(make, LOCAL_TIMEOUT, LOCAL_LATE).await?
    }

    pub async fn progress(&self, range_id: u64) -> Result<RangeProgress> {
        let make = |responder| StoreMsg::Progress {
            range_id,
            responder,
        };
        self.ask(make, LOCAL_TIMEOUT, LOCAL_LATE).await?
    }

    pub async fn last_heard(&self) -> Result<HashMap<u64, Instant>> {
        self.ask(StoreMsg::LastHeard, LOCAL_TIMEOUT, LOCAL_LATE)
            .await
    }
}

/// Questions only the event loop answers, without Raft: it answers at once
/// unless it is stuck.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(10);
const LOCAL_LATE: Error = Error::Timeout("the store's event loop did not answer");
