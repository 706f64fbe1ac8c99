//! The meta range's leader lease as the event loop last saw it, published
//! for the timestamp oracle: it must know that no other oracle can be
//! handing out timestamps without a round trip through the event loop for
//! every batch. Revoked at once when the leadership is handed away.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct MetaLease(Mutex<Option<(u64, Instant)>>);

impl MetaLease {
    /// The term this node leads the meta range in, if its lease is valid at `now`.
    pub fn valid_term(&self, now: Instant) -> Option<u64> {
        let lease = *self.0.lock().expect("meta lease lock");
        lease.and_then(|(term, until)| (now < until).then_some(term))
    }

    pub(super) fn publish(&self, lease: Option<(u64, Instant)>) {
        *self.0.lock().expect("meta lease lock") = lease;
    }
}
