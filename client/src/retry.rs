//! Classifying a failed attempt: fix the route, wait and retry, or stop.

use std::time::Duration;

use rand::Rng;
use tonic::{Code, Status};
use zdb_proto::v1::error::Kind;
use zdb_proto::v1::RangeDescriptor;

/// What to do after an attempt failed.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// The range is led elsewhere (leader 0: unknown yet).
    NotLeader { leader_id: u64, address: String },
    /// The range changed: these are its current descriptors.
    Refresh(Vec<RangeDescriptor>),
    /// The node does not hold that range (any more): look it up again.
    Relocate,
    /// Try again (another node, or later) after a backoff.
    Retry,
    /// The write may have applied: retrying a non-idempotent one is unsafe.
    Ambiguous,
    /// A final answer.
    Fail,
}

pub fn classify(status: &Status) -> Next {
    if let Some(error) = zdb_proto::decode_error_details(status.details()) {
        return match error.kind {
            Some(Kind::NotLeader(not_leader)) => Next::NotLeader {
                leader_id: not_leader.leader_id,
                address: not_leader.leader_address,
            },
            Some(Kind::EpochNotMatch(epoch)) => Next::Refresh(epoch.current),
            Some(Kind::KeyNotInRange(_)) | Some(Kind::RangeNotFound(_)) | None => Next::Relocate,
        };
    }
    match status.code() {
        // The node said it did not apply it (no leader, shutting down), or
        // the request never reached a node.
        Code::Unavailable if is_connect_error(status) => Next::Retry,
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded => {
            Next::Ambiguous
        }
        Code::ResourceExhausted | Code::Aborted => Next::Retry,
        _ => Next::Fail,
    }
}

/// tonic reports a refused or failed connection as Unavailable with a
/// transport error; nothing was sent then.
fn is_connect_error(status: &Status) -> bool {
    let message = status.message();
    message.contains("tcp connect error")
        || message.contains("Connection refused")
        || message.contains("error trying to connect")
        || message.contains("node is shutting down")
        || message.contains("dropped before it committed")
}

pub fn backoff(attempt: u32) -> Duration {
    let base_ms = 10u64.saturating_mul(1 << attempt.min(6)).min(500);
    let jitter = rand::rng().random_range(0..=base_ms / 2);
    Duration::from_millis(base_ms + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdb_proto::v1;

    fn with_detail(kind: Kind) -> Status {
        let detail = v1::Error { kind: Some(kind) };
        let bytes = zdb_proto::encode_error_details(Code::Unavailable as i32, "routing", &detail);
        Status::with_details(Code::Unavailable, "routing", bytes.into())
    }

    #[test]
    fn typed_errors_fix_the_route() {
        let not_leader = with_detail(Kind::NotLeader(v1::NotLeader {
            range_id: 1,
            leader_id: 2,
            leader_address: "127.0.0.1:5".into(),
        }));
        assert_eq!(
            classify(&not_leader),
            Next::NotLeader {
                leader_id: 2,
                address: "127.0.0.1:5".into()
            }
        );
        let moved = with_detail(Kind::EpochNotMatch(v1::EpochNotMatch {
            current: vec![RangeDescriptor::default()],
        }));
        assert_eq!(
            classify(&moved),
            Next::Refresh(vec![RangeDescriptor::default()])
        );
        let gone = with_detail(Kind::RangeNotFound(v1::RangeNotFound { range_id: 9 }));
        assert_eq!(classify(&gone), Next::Relocate);
    }

    #[test]
    fn lost_responses_are_ambiguous_but_refused_connections_are_not() {
        assert_eq!(
            classify(&Status::deadline_exceeded("slow")),
            Next::Ambiguous
        );
        assert_eq!(
            classify(&Status::unavailable(
                "tcp connect error: Connection refused"
            )),
            Next::Retry
        );
        assert_eq!(classify(&Status::unavailable("reset")), Next::Ambiguous);
        assert_eq!(classify(&Status::invalid_argument("bad")), Next::Fail);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(15));
        assert!(backoff(20) <= Duration::from_millis(750));
    }
}
