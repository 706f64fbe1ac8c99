//! Changing where a range lives: adding a replica (a learner that catches
//! up, then promoted through joint consensus), removing one without costing
//! the range its quorum, and moving the leadership. Each runs on the
//! range's leader; another node answers with where the leader is.

use std::future::Future;
use std::time::{Duration, Instant};

use raft::eraftpb::{ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2};
use zdb_proto::v1::*;

use super::Ops;
use crate::apply::Outcome;
use crate::error::{Error, Result};

const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(5);
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long live voters have to show themselves (several heartbeats).
const LIVENESS_WINDOW: Duration = Duration::from_secs(2);

impl Ops {
    pub async fn transfer_leader(
        &self,
        req: TransferLeaderRequest,
    ) -> Result<TransferLeaderResponse> {
        let TransferLeaderRequest { range_id, node_id } = req;
        let range = self.led_range(range_id).await?;
        if !range
            .replicas
            .iter()
            .any(|r| r.node_id == node_id && !r.learner)
        {
            return Err(Error::InvalidArgument(format!(
                "node {node_id} holds no voting replica of range {range_id}"
            )));
        }
        self.store.transfer_leader(range_id, node_id).await?;
        wait_until(MEMBERSHIP_TIMEOUT, "the leadership transfer", || async {
            let status = self.store.status().await.ok()?;
            let replica = status
                .into_iter()
                .find(|r| r.range.as_ref().is_some_and(|d| d.range_id == range_id))?;
            (replica.leader_id == node_id).then_some(())
        })
        .await?;
        Ok(TransferLeaderResponse {})
    }

    pub async fn add_replica(&self, req: AddReplicaRequest) -> Result<AddReplicaResponse> {
        self.admit()?;
        let AddReplicaRequest { range_id, node_id } = req;
        let range = self.led_range(range_id).await?;
        // The registry as the meta range's leader has it: this node's own
        // copy may be stale, or gone with its replica of the meta range.
        let registry = self.meta.registry().await?;
        match registry.iter().find(|n| n.node_id == node_id) {
            None => {
                return Err(Error::FailedPrecondition(format!(
                    "node {node_id} is not registered in the cluster; start it with --join first"
                )))
            }
            Some(node) if node.state != NodeState::Active as i32 => {
                let state = if node.state == NodeState::Draining as i32 {
                    "draining"
                } else {
                    "decommissioned"
                };
                return Err(Error::FailedPrecondition(format!(
                    "node {node_id} is {state}; it takes no new replicas"
                )));
            }
            Some(_) => {}
        }
        let existing = range
            .replicas
            .iter()
            .find(|r| r.node_id == node_id)
            .cloned();
        if existing.as_ref().is_some_and(|r| !r.learner) {
            return Ok(AddReplicaResponse { range: Some(range) });
        }
        let mut range = range;
        if existing.is_none() {
            tracing::info!(range_id, node_id, "adding a learner");
            range = self
                .change(
                    &range,
                    ConfChangeType::AddLearnerNode,
                    node_id,
                    ConfChangeTransition::Auto,
                )
                .await?;
        }
        // The learner catches up (by snapshot) before it may vote.
        let target = self.store.progress(range_id).await?.commit_index;
        wait_until(CATCH_UP_TIMEOUT, "the new replica to catch up", || async {
            let progress = self.store.progress(range_id).await.ok()?;
            let matched = progress.members.iter().find(|(id, _, _)| *id == node_id)?.1;
            (matched >= target).then_some(())
        })
        .await?;
        tracing::info!(
            range_id,
            node_id,
            "promoting the learner through joint consensus"
        );
        let range = self
            .change(
                &range,
                ConfChangeType::AddNode,
                node_id,
                ConfChangeTransition::Implicit,
            )
            .await?;
        Ok(AddReplicaResponse { range: Some(range) })
    }

    pub async fn remove_replica(&self, req: RemoveReplicaRequest) -> Result<RemoveReplicaResponse> {
        let RemoveReplicaRequest { range_id, node_id } = req;
        let range = self.led_range(range_id).await?;
        let Some(replica) = range
            .replicas
            .iter()
            .find(|r| r.node_id == node_id)
            .cloned()
        else {
            return Ok(RemoveReplicaResponse { range: Some(range) });
        };
        if node_id == self.identity.node_id {
            return Err(Error::FailedPrecondition(format!(
                "node {node_id} leads range {range_id}; transfer the leadership first"
            )));
        }
        if !replica.learner {
            let remaining: Vec<u64> = range
                .replicas
                .iter()
                .filter(|r| !r.learner && r.node_id != node_id)
                .map(|r| r.node_id)
                .collect();
            self.check_live_quorum(range_id, node_id, &remaining)
                .await?;
        }
        let transition = if replica.learner {
            ConfChangeTransition::Auto
        } else {
            ConfChangeTransition::Implicit
        };
        let range = self
            .change(&range, ConfChangeType::RemoveNode, node_id, transition)
            .await?;
        Ok(RemoveReplicaResponse { range: Some(range) })
    }

    /// Proposes one membership change, decided on `range` as it is, and
    /// waits until it is complete; the routing table then learns the new
    /// epoch (the range reporter retries if this fails).
    async fn change(
        &self,
        range: &RangeDescriptor,
        change_type: ConfChangeType,
        node_id: u64,
        transition: ConfChangeTransition,
    ) -> Result<RangeDescriptor> {
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change_type);
        single.node_id = node_id;
        let mut change = ConfChangeV2::default();
        change.set_transition(transition);
        change.set_changes(vec![single].into());
        let range_id = range.range_id;
        let changed = match self
            .store
            .change_membership(range_id, range.epoch, change, MEMBERSHIP_TIMEOUT)
            .await?
        {
            Outcome::ConfChanged(range) => range,
            other => {
                return Err(Error::Transport(format!(
                    "unexpected membership result {other:?}"
                )))
            }
        };
        // Joint consensus is left by an entry the leader proposes itself;
        // the change is complete once that applied.
        wait_until(
            MEMBERSHIP_TIMEOUT,
            "the membership change to complete",
            || async { (!self.store.progress(range_id).await.ok()?.joint).then_some(()) },
        )
        .await?;
        let current = self.current(range_id).await.unwrap_or(changed);
        let _ = self.meta.update(vec![current.clone()]).await;
        Ok(current)
    }

    /// Refuses a change unless a majority of the voters that remain answer
    /// now: each must be heard from after this check began (heartbeats
    /// arrive every few ticks), so a node that died a moment ago counts as dead.
    async fn check_live_quorum(
        &self,
        range_id: u64,
        removing: u64,
        remaining: &[u64],
    ) -> Result<()> {
        let started = Instant::now();
        let needed = remaining.len() / 2 + 1;
        let deadline = started + LIVENESS_WINDOW;
        loop {
            let heard = self.store.last_heard().await?;
            let live: Vec<u64> = remaining
                .iter()
                .copied()
                .filter(|id| {
                    *id == self.identity.node_id || heard.get(id).is_some_and(|at| *at > started)
                })
                .collect();
            if !remaining.is_empty() && live.len() >= needed {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let silent: Vec<u64> = remaining
                    .iter()
                    .copied()
                    .filter(|id| !live.contains(id))
                    .collect();
                return Err(Error::FailedPrecondition(format!(
                    "removing node {removing} would leave range {range_id} without a live quorum \
                     (voters left: {remaining:?}; not answering: {silent:?}); bring them back or add a replica first"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn current(&self, range_id: u64) -> Option<RangeDescriptor> {
        self.store
            .status()
            .await
            .ok()?
            .into_iter()
            .filter_map(|r| r.range)
            .find(|r| r.range_id == range_id)
    }
}

/// Polls `check` until it says done, or fails after `timeout`.
pub(super) async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<()>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await.is_some() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::WaitTimedOut(format!(
                "timed out after {timeout:?} waiting for {what}; check that every node is up and retry"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
