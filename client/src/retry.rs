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

/// Decides on the typed error kind the node sent; without one, on the gRPC
/// code and on whether the connection could be made at all. Never on the
/// message text, which is for people.
pub fn classify(status: &Status) -> Next {
    let kind = zdb_proto::decode_error_details(status.details()).and_then(|error| error.kind);
    match kind {
        Some(Kind::NotLeader(not_leader)) => Next::NotLeader {
            leader_id: not_leader.leader_id,
            address: not_leader.leader_address,
        },
        Some(Kind::EpochNotMatch(epoch)) => Next::Refresh(epoch.current),
        Some(Kind::KeyNotInRange(_) | Kind::RangeNotFound(_)) => Next::Relocate,
        // Definitely not applied: the node says so. A transaction's lock
        // that outlasted the request goes away when the transaction ends
        // (or its lock expires and is resolved).
        Some(
            Kind::NotApplied(_) | Kind::ShuttingDown(_) | Kind::ServerBusy(_) | Kind::KeyLocked(_),
        ) => Next::Retry,
        Some(Kind::OutcomeUnknown(_)) => Next::Ambiguous,
        // The token ran out or was revoked: the transport dropped it, the
        // next attempt logs in again. Nothing was applied.
        Some(Kind::Unauthenticated(unauthenticated)) if unauthenticated.token_expired => {
            Next::Retry
        }
        Some(Kind::Unauthenticated(_) | Kind::PermissionDenied(_)) => Next::Fail,
        // The versions the read needs may be gone: a newer timestamp is the fix.
        Some(Kind::TimestampTooOld(_)) => Next::Fail,
        // A full cache prefix stays full until keys are deleted or the
        // budget raised: the application decides.
        Some(Kind::CacheFull(_)) => Next::Fail,
        // The transaction is over: sending the call again cannot help, only
        // running the whole transaction again can (`Client::transaction`).
        Some(
            Kind::WriteConflict(_)
            | Kind::SerializationFailure(_)
            | Kind::Deadlock(_)
            | Kind::LockWaitTimeout(_)
            | Kind::TxnAborted(_)
            | Kind::TxnNotFound(_),
        ) => Next::Fail,
        None => match status.code() {
            Code::Unavailable if never_sent(status) => Next::Retry,
            // The request may have reached a node and applied before the
            // answer was lost.
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded => {
                Next::Ambiguous
            }
            _ => Next::Fail,
        },
    }
}

/// Nothing was sent: tonic could not make the connection (a `ConnectError`
/// in the status's source chain), or the server refused the stream before
/// looking at it (HTTP/2 REFUSED_STREAM, as a node going away does).
fn never_sent(status: &Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = source {
        if err.is::<tonic::ConnectError>() {
            return true;
        }
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
                return true;
            }
        }
        source = err.source();
    }
    false
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

    fn refused_connection() -> Status {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))))
    }

    #[test]
    fn lost_responses_are_ambiguous_but_refused_connections_are_not() {
        assert_eq!(
            classify(&Status::deadline_exceeded("slow")),
            Next::Ambiguous
        );
        let refused = refused_connection();
        assert_eq!(refused.code(), Code::Unavailable);
        assert_eq!(classify(&refused), Next::Retry);
        assert_eq!(classify(&Status::unavailable("reset")), Next::Ambiguous);
        assert_eq!(classify(&Status::invalid_argument("bad")), Next::Fail);
    }

    /// Issue 15, item 4: decisions come from kinds and codes, so the words
    /// of a message cannot change one. The texts below are what the old
    /// classifier matched on.
    #[test]
    fn rewording_a_message_never_changes_a_decision() {
        let texts = [
            "",
            "tcp connect error: Connection refused",
            "error trying to connect",
            "the node is shutting down",
            "the proposal was dropped before it committed (leader changed)",
            "anything at all",
        ];
        let typed = [
            (Kind::NotApplied(v1::NotApplied {}), Next::Retry),
            (Kind::ShuttingDown(v1::ShuttingDown {}), Next::Retry),
            (Kind::ServerBusy(v1::ServerBusy {}), Next::Retry),
            (Kind::OutcomeUnknown(v1::OutcomeUnknown {}), Next::Ambiguous),
            (Kind::KeyLocked(v1::KeyLocked { lock: None }), Next::Retry),
            (
                Kind::WriteConflict(v1::WriteConflict::default()),
                Next::Fail,
            ),
            (
                Kind::SerializationFailure(v1::SerializationFailure::default()),
                Next::Fail,
            ),
            (Kind::Deadlock(v1::Deadlock::default()), Next::Fail),
            (
                Kind::LockWaitTimeout(v1::LockWaitTimeout::default()),
                Next::Fail,
            ),
            (Kind::TxnAborted(v1::TxnAborted::default()), Next::Fail),
            (Kind::TxnNotFound(v1::TxnNotFound::default()), Next::Fail),
        ];
        for text in texts {
            for (kind, next) in &typed {
                let detail = v1::Error {
                    kind: Some(kind.clone()),
                };
                let bytes =
                    zdb_proto::encode_error_details(Code::Unavailable as i32, text, &detail);
                let status = Status::with_details(Code::Unavailable, text, bytes.into());
                assert_eq!(&classify(&status), next, "{kind:?} with {text:?}");
            }
            // Without a kind and without a failed connection behind it, an
            // UNAVAILABLE may have applied, whatever it says.
            assert_eq!(
                classify(&Status::unavailable(text)),
                Next::Ambiguous,
                "{text:?}"
            );
            assert_eq!(classify(&Status::deadline_exceeded(text)), Next::Ambiguous);
        }
    }

    /// A lock in the way applied nothing: retry. A transaction abort is
    /// final for the call, whatever gRPC code carries it (a DEADLINE_EXCEEDED
    /// LockWaitTimeout is not an ambiguous timeout, a NOT_FOUND TxnNotFound
    /// is not a missing range).
    #[test]
    fn locks_are_retried_and_transaction_aborts_are_final() {
        let kind_with_code = |code: Code, kind: Kind| {
            let detail = v1::Error { kind: Some(kind) };
            let bytes = zdb_proto::encode_error_details(code as i32, "txn", &detail);
            Status::with_details(code, "txn", bytes.into())
        };
        let locked = kind_with_code(
            Code::Unavailable,
            Kind::KeyLocked(v1::KeyLocked {
                lock: Some(v1::LockInfo {
                    key: b"k".to_vec(),
                    primary: b"p".to_vec(),
                    start_ts: 3,
                    ..Default::default()
                }),
            }),
        );
        assert_eq!(classify(&locked), Next::Retry);
        let aborts = [
            (
                Code::Aborted,
                Kind::WriteConflict(v1::WriteConflict {
                    key: b"k".to_vec(),
                    start_ts: 1,
                    conflict_ts: 2,
                }),
            ),
            (
                Code::Aborted,
                Kind::SerializationFailure(v1::SerializationFailure::default()),
            ),
            (Code::Aborted, Kind::Deadlock(v1::Deadlock::default())),
            (
                Code::DeadlineExceeded,
                Kind::LockWaitTimeout(v1::LockWaitTimeout::default()),
            ),
            (Code::Aborted, Kind::TxnAborted(v1::TxnAborted::default())),
            (
                Code::NotFound,
                Kind::TxnNotFound(v1::TxnNotFound { txn_id: 4 }),
            ),
        ];
        for (code, kind) in aborts {
            assert_eq!(
                classify(&kind_with_code(code, kind.clone())),
                Next::Fail,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(15));
        assert!(backoff(20) <= Duration::from_millis(750));
    }
}
