use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::oneshot;
use zdb_proto::v1::{Command, ReplicaStatus};

use raft::eraftpb::ConfChangeV2;

use super::msg::{RangeProgress, ReadKind, StoreMsg, Target};
use crate::error::{Error, Result};
use crate::range::apply::ApplyResult;

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

    /// Proposes a command and waits until it applied. After `timeout` the
    /// outcome is unknown: the command may still commit.
    pub async fn propose(
        &self,
        target: Target,
        command: Command,
        timeout: Duration,
    ) -> Result<ApplyResult> {
        let (responder, reply) = oneshot::channel();
        self.send(StoreMsg::Propose {
            target,
            command,
            responder,
        })?;
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::OutcomeUnknown),
        }
    }

    /// Waits until reading the local engine is as good as `kind` asks for.
    pub async fn read_barrier(
        &self,
        target: Target,
        kind: ReadKind,
        timeout: Duration,
    ) -> Result<()> {
        let (responder, reply) = oneshot::channel();
        self.send(StoreMsg::Read {
            target,
            kind,
            responder,
        })?;
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::Timeout(
                "the read could not be confirmed by a quorum in time",
            )),
        }
    }

    pub async fn status(&self) -> Result<Vec<ReplicaStatus>> {
        let (responder, reply) = oneshot::channel();
        self.send(StoreMsg::Status(responder))?;
        reply.await.map_err(|_| Error::ShuttingDown)
    }

    pub async fn change_membership(
        &self,
        range_id: u64,
        change: ConfChangeV2,
        timeout: Duration,
    ) -> Result<ApplyResult> {
        let (responder, reply) = oneshot::channel();
        self.send(StoreMsg::ChangeMembership {
            range_id,
            change,
            responder,
        })?;
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Err(_) => Err(Error::OutcomeUnknown),
        }
    }

    pub async fn transfer_leader(&self, range_id: u64, to: u64) -> Result<()> {
        let (responder, reply) = oneshot::channel();
        self.send(StoreMsg::TransferLeader {
            range_id,
            to,
            responder,
        })?;
        reply.await.map_err(|_| Error::ShuttingDown)?
    }

    pub async fn progress(&self, range_id: u64) -> Result<RangeProgress> {
        let (responder, reply) = oneshot::channel();
        self.send(StoreMsg::Progress {
            range_id,
            responder,
        })?;
        reply.await.map_err(|_| Error::ShuttingDown)?
    }

    pub async fn last_heard(&self) -> Result<std::collections::HashMap<u64, std::time::Instant>> {
        let (responder, reply) = oneshot::channel();
        self.send(StoreMsg::LastHeard(responder))?;
        reply.await.map_err(|_| Error::ShuttingDown)
    }
}
