//! Which local replica a request is for, and whether it may serve it.

use zdb_proto::v1::RangeDescriptor;

use super::msg::Target;
use super::Store;
use crate::error::{Error, Result};
use crate::range::{descriptor, Replica};
use crate::transport::PeerDirectory;

pub(super) fn not_leader(replica: &Replica, peers: &PeerDirectory) -> Error {
    let leader_id = replica.leader_id();
    Error::NotLeader {
        range_id: replica.range_id(),
        leader_id,
        leader_address: peers.address(leader_id).unwrap_or_default(),
    }
}

impl Store {
    /// A replica a request was routed to (it exists: routing found it).
    pub(super) fn replica_mut(&mut self, range_id: u64) -> &mut Replica {
        self.replicas
            .get_mut(&range_id)
            .expect("routed to a local replica")
    }

    /// The descriptor of the local initialized range holding `key`, if any.
    pub(super) fn holding(&self, key: &[u8]) -> Option<RangeDescriptor> {
        self.replicas
            .values()
            .find(|replica| {
                replica.is_initialized() && descriptor::contains(replica.descriptor(), key)
            })
            .map(|replica| replica.descriptor().clone())
    }

    /// The local replica of `range_id`, if it leads its range.
    pub(super) fn led(&mut self, range_id: u64) -> Result<&mut Replica> {
        let peers = self.peers.clone();
        let replica = self
            .replicas
            .get_mut(&range_id)
            .filter(|replica| replica.is_initialized())
            .ok_or(Error::RangeNotFound(range_id))?;
        if !replica.is_leader() {
            return Err(not_leader(replica, &peers));
        }
        Ok(replica)
    }

    /// Finds the local replica a request is for and checks span and epoch.
    pub(super) fn route(&self, target: &Target) -> Result<u64> {
        let named = target.header.as_ref().map_or(0, |header| header.range_id);
        let replica = if named != 0 {
            self.replicas
                .get(&named)
                .filter(|replica| replica.is_initialized())
                .ok_or(Error::RangeNotFound(named))?
        } else {
            let key = target.keys.first().map(Vec::as_slice).unwrap_or_default();
            self.replicas
                .values()
                .find(|replica| {
                    replica.is_initialized() && descriptor::contains(replica.descriptor(), key)
                })
                .ok_or(Error::RangeNotFound(0))?
        };
        let checked = descriptor::check_request(
            replica.descriptor(),
            target.header.as_ref(),
            target.keys.iter().map(Vec::as_slice),
        )
        .and_then(|()| match &target.span_end {
            Some(end) => descriptor::check_span_end(replica.descriptor(), end),
            None => Ok(()),
        });
        match checked {
            Ok(()) => Ok(replica.range_id()),
            // Tell the client about every local range it may want instead.
            Err(Error::EpochNotMatch { .. }) => Err(Error::EpochNotMatch {
                current: self.overlapping(replica.descriptor()),
            }),
            Err(err) => Err(err),
        }
    }

    /// Local initialized ranges overlapping `range`'s span (itself included).
    pub(super) fn overlapping(&self, range: &RangeDescriptor) -> Vec<RangeDescriptor> {
        let mut ranges: Vec<RangeDescriptor> = self
            .replicas
            .values()
            .filter(|replica| {
                replica.is_initialized() && descriptor::overlaps(replica.descriptor(), range)
            })
            .map(|replica| replica.descriptor().clone())
            .collect();
        ranges.sort_by(|a, b| a.start_key.cmp(&b.start_key));
        ranges
    }
}
