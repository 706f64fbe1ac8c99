//! Linearizable reads on the leader: batched ReadIndex rounds, and a leader
//! lease that each completed round extends.
//!
//! A read may run against the local state machine once it has applied up to
//! an index that was committed when the read arrived and the node was
//! confirmed leader at that moment. The confirmation is a ReadIndex round
//! (a heartbeat quorum) or a valid lease. The lease is sound because, with
//! check-quorum on, a follower that heard from the leader refuses to vote for
//! anyone else for an election timeout; we count the lease from when the round
//! was *sent*, with margin, on the monotonic clock (a paused process sees its
//! lease expired when it resumes).
//!
//! A read at a timestamp also waits for every entry in the leader's log
//! when it arrived (its `min_index`): a write proposed before the read may
//! carry a lower timestamp and must be applied before the snapshot is read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::{Error, Result};

pub type ReadResponder = oneshot::Sender<Result<()>>;

#[derive(Default)]
pub struct ReadQueue {
    /// Reads waiting for the next ReadIndex round, each with the index it
    /// must see applied whatever the round's read index.
    unsent: Vec<(u64, ReadResponder)>,
    /// Rounds sent and not yet answered, by context.
    in_flight: HashMap<u64, Round>,
    /// Reads confirmed at a read index, waiting for the apply to reach it.
    awaiting_apply: Vec<(u64, ReadResponder)>,
    next_round: u64,
    lease: Option<Lease>,
}

struct Round {
    sent_at: Instant,
    term: u64,
    readers: Vec<(u64, ReadResponder)>,
}

struct Lease {
    term: u64,
    until: Instant,
}

impl ReadQueue {
    /// Until when the lease of `term` runs, if there is one.
    pub fn lease_until(&self, term: u64) -> Option<Instant> {
        self.lease
            .as_ref()
            .filter(|lease| lease.term == term)
            .map(|lease| lease.until)
    }

    pub fn lease_valid(&self, term: u64, now: Instant) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|lease| lease.term == term && now < lease.until)
    }

    /// True when the lease has less than half its length left: time to renew
    /// it before reads have to wait for a round.
    pub fn lease_needs_renewal(&self, term: u64, now: Instant, length: Duration) -> bool {
        match &self.lease {
            Some(lease) if lease.term == term => {
                lease.until.saturating_duration_since(now) < length / 2
            }
            _ => true,
        }
    }

    pub fn revoke_lease(&mut self) {
        self.lease = None;
    }

    pub fn push_unsent(&mut self, min_index: u64, reader: ReadResponder) {
        self.unsent.push((min_index, reader));
    }

    pub fn has_unsent(&self) -> bool {
        !self.unsent.is_empty()
    }

    /// Starts a round for every unsent read (possibly none, to renew the
    /// lease); returns the context to hand to `RawNode::read_index`.
    pub fn start_round(&mut self, term: u64, now: Instant) -> Vec<u8> {
        self.next_round += 1;
        let readers = std::mem::take(&mut self.unsent);
        self.in_flight.insert(
            self.next_round,
            Round {
                sent_at: now,
                term,
                readers,
            },
        );
        self.next_round.to_be_bytes().to_vec()
    }

    pub fn has_round_in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// A round came back: leadership at `term` was confirmed as of when it
    /// was sent, at read index `index`.
    pub fn round_confirmed(
        &mut self,
        context: &[u8],
        index: u64,
        term: u64,
        lease_length: Duration,
    ) {
        let Some(id) = context.try_into().ok().map(u64::from_be_bytes) else {
            return;
        };
        let Some(round) = self.in_flight.remove(&id) else {
            return;
        };
        if round.term != term {
            for (_, reader) in round.readers {
                let _ = reader.send(Err(Error::NotApplied(
                    "the leadership changed before the read was confirmed",
                )));
            }
            return;
        }
        let until = round.sent_at + lease_length;
        match &mut self.lease {
            Some(lease) if lease.term == term => lease.until = lease.until.max(until),
            _ => self.lease = Some(Lease { term, until }),
        }
        self.awaiting_apply.extend(
            round
                .readers
                .into_iter()
                .map(|(min_index, reader)| (index.max(min_index), reader)),
        );
    }

    /// Rounds that got no answer (lost heartbeats) go out again.
    pub fn resend_stale_rounds(&mut self, now: Instant, timeout: Duration) {
        let stale: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, round)| now.duration_since(round.sent_at) > timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            if let Some(round) = self.in_flight.remove(&id) {
                self.unsent.extend(round.readers);
            }
        }
    }

    pub fn await_apply(&mut self, index: u64, reader: ReadResponder) {
        self.awaiting_apply.push((index, reader));
    }

    /// Releases the reads whose read index has been applied.
    pub fn applied(&mut self, applied_index: u64) {
        if self.awaiting_apply.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting_apply)
            .into_iter()
            .partition(|(index, _)| *index <= applied_index);
        self.awaiting_apply = waiting;
        for (_, reader) in ready {
            let _ = reader.send(Ok(()));
        }
    }

    /// This replica stopped leading: reads not yet confirmed go elsewhere.
    /// Confirmed ones stay: their read index is still valid.
    pub fn lost_leadership(&mut self, range_id: u64, leader_id: u64, leader_address: String) {
        self.lease = None;
        let readers = std::mem::take(&mut self.unsent)
            .into_iter()
            .chain(self.in_flight.drain().flat_map(|(_, round)| round.readers));
        for (_, reader) in readers {
            let _ = reader.send(Err(Error::NotLeader {
                range_id,
                leader_id,
                leader_address: leader_address.clone(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(800);

    #[test]
    fn confirmed_round_grants_lease_from_send_time_and_releases_after_apply() {
        let mut queue = ReadQueue::default();
        let (tx, mut rx) = oneshot::channel();
        queue.push_unsent(0, tx);
        let sent = Instant::now();
        let ctx = queue.start_round(3, sent);
        assert!(!queue.lease_valid(3, sent));
        queue.round_confirmed(&ctx, 42, 3, LEASE);
        assert!(queue.lease_valid(3, sent + LEASE / 2));
        assert!(!queue.lease_valid(3, sent + LEASE));
        assert!(
            !queue.lease_valid(4, sent),
            "a lease never outlives its term"
        );
        queue.applied(41);
        assert!(rx.try_recv().is_err());
        queue.applied(42);
        assert!(rx.try_recv().unwrap().is_ok());
    }

    #[test]
    fn losing_leadership_fails_unconfirmed_reads_only() {
        let mut queue = ReadQueue::default();
        let (confirmed, mut confirmed_rx) = oneshot::channel();
        let (unsent, mut unsent_rx) = oneshot::channel();
        queue.push_unsent(0, confirmed);
        let ctx = queue.start_round(1, Instant::now());
        queue.round_confirmed(&ctx, 10, 1, LEASE);
        queue.push_unsent(0, unsent);
        queue.lost_leadership(1, 2, "n2".into());
        assert!(matches!(
            unsent_rx.try_recv(),
            Ok(Err(Error::NotLeader { leader_id: 2, .. }))
        ));
        assert!(!queue.lease_valid(1, Instant::now()));
        queue.applied(10);
        assert!(confirmed_rx.try_recv().unwrap().is_ok());
    }

    #[test]
    fn a_read_waits_for_its_own_index_when_it_is_above_the_read_index() {
        let mut queue = ReadQueue::default();
        let (tx, mut rx) = oneshot::channel();
        queue.push_unsent(50, tx);
        let ctx = queue.start_round(1, Instant::now());
        queue.round_confirmed(&ctx, 42, 1, LEASE);
        queue.applied(42);
        assert!(
            rx.try_recv().is_err(),
            "entries up to 50 were proposed before the read"
        );
        queue.applied(50);
        assert!(rx.try_recv().unwrap().is_ok());
    }

    #[test]
    fn stale_round_is_resent() {
        let mut queue = ReadQueue::default();
        let (tx, _rx) = oneshot::channel();
        queue.push_unsent(0, tx);
        let start = Instant::now();
        queue.start_round(1, start);
        queue.resend_stale_rounds(start + Duration::from_secs(1), Duration::from_millis(500));
        assert!(queue.has_unsent());
        assert!(!queue.has_round_in_flight());
    }
}
