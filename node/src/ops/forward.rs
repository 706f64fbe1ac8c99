//! Passing a request on to the node that can serve it, so that a client in
//! any language needs only one address. A request that does not name its
//! range (the client does not route itself) is passed on when this node is
//! not the leader of the key's range and knows who is, or holds no replica
//! of it at all (the meta range says where it is). A request that names its
//! range gets the typed redirect instead: its client knows where to go, and
//! a write it sends stays unambiguous (a write passed on over a link that
//! fails may or may not have applied). The number of hops is bounded, and
//! the caller's deadline goes along with the request.

use zdb_proto::v1::error::Kind;

use super::{CallContext, Ops};
use crate::error::{Error, Result};
use crate::metrics;

/// A request travels through at most this many nodes after the first.
pub const MAX_HOPS: u32 = 3;

/// The typed error a redirect is reported as, in response metadata.
fn redirect_of(err: &Error) -> Option<zdb_proto::v1::Error> {
    let kind = match err {
        Error::NotLeader {
            range_id,
            leader_id,
            leader_address,
        } => Kind::NotLeader(zdb_proto::v1::NotLeader {
            range_id: *range_id,
            leader_id: *leader_id,
            leader_address: leader_address.clone(),
        }),
        Error::RangeNotFound(range_id) => Kind::RangeNotFound(zdb_proto::v1::RangeNotFound {
            range_id: *range_id,
        }),
        _ => return None,
    };
    Some(zdb_proto::v1::Error { kind: Some(kind) })
}

impl Ops {
    /// Where to pass on a request this node failed with `err`, or `err`
    /// itself when it is the answer. `routed`: the client named the range;
    /// `key` is the request's first key.
    pub(super) async fn forward_to(
        &self,
        err: Error,
        routed: bool,
        key: &[u8],
        ctx: &mut CallContext,
    ) -> Result<String> {
        if (routed && !ctx.coordinated) || ctx.hops >= MAX_HOPS {
            return Err(err);
        }
        let target = match &err {
            Error::NotLeader { leader_address, .. }
                if !leader_address.is_empty() && *leader_address != self.identity.address =>
            {
                Some(leader_address.clone())
            }
            // No local range holds the key.
            Error::RangeNotFound(_) => self.leader_of_key(key, ctx).await,
            _ => None,
        };
        let Some(target) = target else {
            return Err(err);
        };
        ctx.redirect = redirect_of(&err);
        metrics::REQUESTS_FORWARDED.inc();
        Ok(target)
    }

    /// The address of the leader of the range holding `key` as the meta
    /// range knows it, or of another replica when it knows no leader.
    async fn leader_of_key(&self, key: &[u8], ctx: &CallContext) -> Option<String> {
        let located = self.meta_for(ctx).locate(key, 1).await.ok()?;
        let location = located.ranges.first()?;
        let range = location.range.as_ref()?;
        let address = |node_id: u64| {
            located
                .nodes
                .iter()
                .find(|node| node.node_id == node_id && node_id != self.identity.node_id)
                .map(|node| node.address.clone())
        };
        address(location.leader_node_id).or_else(|| {
            range
                .replicas
                .iter()
                .find_map(|replica| address(replica.node_id))
        })
    }
}
