//! What each message asks of the store.

use raft::eraftpb::Message;
use zdb_proto::v1::command;

use super::msg::{ReadKind, StoreMsg, Target};
use super::{not_leader, Store};
use crate::apply::Outcome;
use crate::error::Result;
use crate::range::replica::ProposalResponder;

impl Store {
    /// Returns false once asked to stop, an error when the node must stop.
    pub(super) fn handle(&mut self, msg: StoreMsg) -> Result<bool> {
        match msg {
            StoreMsg::Shutdown => return Ok(false),
            StoreMsg::Fatal(err) => return Err(err),
            StoreMsg::Synced(token) => self.synced = self.synced.max(token),
            StoreMsg::Raft(messages) => self.step_all(messages),
            StoreMsg::Propose {
                target,
                command,
                ts_taken_at,
                responder,
            } => self.propose(&target, command, ts_taken_at, responder),
            StoreMsg::LeaderTerm {
                range_id,
                responder,
            } => {
                let _ = responder.send(self.led(range_id).map(|replica| replica.term_and_vote().0));
            }
            StoreMsg::Read {
                target,
                kind,
                read_ts,
                responder,
            } => match self.route(&target) {
                Err(err) => {
                    let _ = responder.send(Err(err));
                }
                Ok(range_id) => {
                    let now = self.clock.now();
                    let peers = self.peers.clone();
                    let replica = self.replica_mut(range_id);
                    if kind == ReadKind::Stale {
                        replica.count_read();
                        let _ = responder.send(Ok(()));
                    } else if !replica.is_leader() {
                        let _ = responder.send(Err(not_leader(replica, &peers)));
                    } else {
                        let min_index = match read_ts {
                            0 => 0,
                            ts => replica.note_snapshot_read(ts),
                        };
                        replica.read(responder, now, min_index);
                    }
                }
            },
            StoreMsg::Unreachable { range_id, to } => {
                if let Some(replica) = self.replicas.get_mut(&range_id) {
                    replica.report_unreachable(to);
                }
            }
            StoreMsg::SnapshotSent { range_id, to, ok } => {
                if let Some(replica) = self.replicas.get_mut(&range_id) {
                    replica.report_snapshot(to, ok);
                }
            }
            StoreMsg::Status(responder) => {
                let _ = responder.send(self.status());
            }
            StoreMsg::LastHeard(responder) => {
                let _ = responder.send(self.last_heard.clone());
            }
            StoreMsg::ChangeMembership {
                range_id,
                epoch,
                change,
                responder,
            } => match self.led(range_id) {
                Ok(replica) => replica.propose_conf_change(change, epoch, responder),
                Err(err) => {
                    let _ = responder.send(Err(err));
                }
            },
            StoreMsg::TransferLeader {
                range_id,
                to,
                responder,
            } => {
                let result = self
                    .led(range_id)
                    .map(|replica| replica.transfer_leader(to));
                // Before the transfer's message leaves: the oracle stops now.
                self.publish_meta_lease();
                let _ = responder.send(result);
            }
            StoreMsg::Progress {
                range_id,
                responder,
            } => {
                let _ = responder.send(self.led(range_id).map(|replica| replica.progress()));
            }
        }
        Ok(true)
    }

    fn step_all(&mut self, messages: Vec<(u64, Message)>) {
        let now = self.clock.now();
        for (range_id, message) in messages {
            self.last_heard.insert(message.from, now);
            if !self.replicas.contains_key(&range_id)
                && !self.create_for_message(range_id, &message)
            {
                if is_vote_request(&message) {
                    self.early_votes.push((range_id, message));
                }
                continue;
            }
            if let Err(err) = self.replica_mut(range_id).step(message) {
                tracing::debug!(range_id, error = %err, "raft message ignored");
            }
        }
    }

    fn propose(
        &mut self,
        target: &Target,
        mut command: zdb_proto::v1::Command,
        ts_taken_at: Option<std::time::Instant>,
        responder: ProposalResponder,
    ) {
        let range_id = match self.route(target) {
            Ok(range_id) => range_id,
            Err(err) => {
                let _ = responder.send(Err(err));
                return;
            }
        };
        command.now_ms = self.clock.wall_ms();
        let peers = self.peers.clone();
        let replica = self.replica_mut(range_id);
        if !replica.is_leader() {
            let _ = responder.send(Err(not_leader(replica, &peers)));
            return;
        }
        if crate::planted::active() == Some(crate::planted::PlantedBug::AckBeforeCommit)
            && matches!(command.kind, Some(command::Kind::Write(_)))
        {
            let _ = responder.send(Ok(Outcome::Written));
            return replica.propose(command, ts_taken_at, None);
        }
        replica.propose(command, ts_taken_at, Some(responder));
    }
}

pub(super) fn is_vote_request(message: &Message) -> bool {
    use raft::eraftpb::MessageType::{MsgRequestPreVote, MsgRequestVote};
    matches!(message.get_msg_type(), MsgRequestPreVote | MsgRequestVote)
}
