//! Leaving gracefully: before a node stops, every range it leads gets a
//! new leader, so clients see a leadership change instead of an election
//! timeout.

use std::time::{Duration, Instant};

use zdb_proto::v1::RaftRole;

use super::Ops;

impl Ops {
    /// Moves each leadership this node holds to another voter of the range
    /// (the one heard from last), until none is left or `within` passes.
    /// Returns how many ranges it still leads (ranges without another
    /// voter cannot move and are not counted).
    pub async fn hand_off_leaderships(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let me = self.identity.node_id;
        loop {
            let Ok(status) = self.store.status().await else {
                return 0;
            };
            let movable: Vec<_> = status
                .into_iter()
                .filter(|replica| replica.role == RaftRole::Leader as i32)
                .filter_map(|replica| replica.range)
                .filter(|range| range.replicas.iter().any(|r| !r.learner && r.node_id != me))
                .collect();
            if movable.is_empty() || Instant::now() >= deadline {
                return movable.len();
            }
            let heard = self.store.last_heard().await.unwrap_or_default();
            for range in &movable {
                let successor = range
                    .replicas
                    .iter()
                    .filter(|r| !r.learner && r.node_id != me)
                    .max_by_key(|r| heard.get(&r.node_id).copied());
                if let Some(successor) = successor {
                    if let Err(err) = self
                        .store
                        .transfer_leader(range.range_id, successor.node_id)
                        .await
                    {
                        tracing::debug!(range_id = range.range_id, error = %err, "leadership transfer refused");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
