use tonic::{Code, Status};
use zdb_proto::v1::error::Kind;

/// What a zdb call can fail with, as far as the application is concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or over a limit; retrying will not help.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The write may or may not have been applied (it timed out after being
    /// sent). Read the key to find out.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),

    /// No node answered successfully before the deadline.
    #[error("gave up after {attempts} attempts within the deadline; last error: {last}")]
    Timeout { attempts: u32, last: String },

    /// An endpoint is not a valid address.
    #[error("bad endpoint {endpoint:?}: {reason}")]
    BadEndpoint { endpoint: String, reason: String },

    #[error("no endpoints given; pass --endpoints or set ZDB_ENDPOINTS")]
    NoEndpoints,

    #[error("TLS: {0}")]
    Tls(String),

    /// A read named a timestamp below the GC safe point.
    #[error("read timestamp {read_ts} is below the GC safe point {safe_point}: the versions it needs may be collected; read at a newer timestamp")]
    TimestampTooOld { read_ts: u64, safe_point: u64 },

    /// Another transaction committed `key` at `conflict_ts`, after this
    /// one's snapshot `start_ts` (or holds a lock on it). Nothing of the
    /// transaction was applied.
    #[error("write conflict on key \"{}\": another transaction wrote it at {conflict_ts}, after this transaction's snapshot {start_ts}; run the transaction again", .key.escape_ascii())]
    WriteConflict {
        key: Vec<u8>,
        start_ts: u64,
        conflict_ts: u64,
    },

    /// A serializable transaction read `key` (or scanned a span holding it)
    /// and it changed before the transaction could commit.
    #[error("serialization failure on key \"{}\": it changed after the transaction (snapshot {start_ts}) read it; run the transaction again", .key.escape_ascii())]
    SerializationFailure { key: Vec<u8>, start_ts: u64 },

    /// The transaction was aborted to break a cycle of lock waits; `cycle`
    /// lists the transactions (their ids) in wait order, this one first.
    #[error("deadlock on key \"{}\": the transaction was aborted to break the lock wait cycle {cycle:?}; run it again", .key.escape_ascii())]
    Deadlock { cycle: Vec<u64>, key: Vec<u8> },

    /// A locking read waited for `key`, locked by transaction `holder`,
    /// longer than the transaction's lock wait timeout.
    #[error("lock wait timeout on key \"{}\", held by transaction {holder}: run the transaction again later, or give it a longer lock_wait_timeout", .key.escape_ascii())]
    LockWaitTimeout { key: Vec<u8>, holder: u64 },

    /// The transaction was rolled back (by its coordinator, a lock resolver,
    /// an earlier error, or the client giving up on an unreachable
    /// coordinator); nothing of it was applied.
    #[error("transaction {start_ts} was rolled back ({reason}); run it again")]
    TxnAborted { start_ts: u64, reason: String },

    /// The coordinator does not know the transaction (it idled out, the
    /// node restarted, or the call reached another node).
    #[error("transaction {0} is unknown to its coordinator (idle timeout or node restart): begin a new one")]
    TxnNotFound(u64),

    /// The call named no one while authentication is on, or its
    /// credentials did not hold.
    #[error("{0}")]
    Unauthenticated(String),

    /// The user lacks a permission; nothing was applied.
    #[error("permission denied: user {user:?} lacks {permission}")]
    PermissionDenied { user: String, permission: String },

    /// Any other error status from the node.
    #[error("{}: {}", .0.code(), .0.message())]
    Rpc(Box<Status>),
}

impl Error {
    pub(crate) fn from_final_status(status: Status) -> Self {
        let kind = zdb_proto::decode_error_details(status.details()).and_then(|error| error.kind);
        match kind {
            Some(Kind::TimestampTooOld(too_old)) => Error::TimestampTooOld {
                read_ts: too_old.read_ts,
                safe_point: too_old.safe_point,
            },
            Some(Kind::WriteConflict(conflict)) => Error::WriteConflict {
                key: conflict.key,
                start_ts: conflict.start_ts,
                conflict_ts: conflict.conflict_ts,
            },
            Some(Kind::SerializationFailure(failure)) => Error::SerializationFailure {
                key: failure.key,
                start_ts: failure.start_ts,
            },
            Some(Kind::Deadlock(deadlock)) => Error::Deadlock {
                cycle: deadlock.cycle,
                key: deadlock.key,
            },
            Some(Kind::LockWaitTimeout(timeout)) => Error::LockWaitTimeout {
                key: timeout.key,
                holder: timeout.holder,
            },
            Some(Kind::TxnAborted(aborted)) => Error::TxnAborted {
                start_ts: aborted.start_ts,
                reason: aborted.reason,
            },
            Some(Kind::TxnNotFound(not_found)) => Error::TxnNotFound(not_found.txn_id),
            Some(Kind::PermissionDenied(denied)) => Error::PermissionDenied {
                user: denied.user,
                permission: denied.permission,
            },
            _ => match status.code() {
                Code::Unauthenticated => Error::Unauthenticated(status.message().to_owned()),
                Code::InvalidArgument | Code::OutOfRange => {
                    Error::InvalidArgument(status.message().to_owned())
                }
                _ => Error::Rpc(Box::new(status)),
            },
        }
    }

    /// Whether running the whole transaction again may succeed: it was
    /// aborted (a conflict, a deadlock, a lock that stayed held, a rollback,
    /// a coordinator that forgot it), or a call was refused before it was
    /// applied (the node was busy, stopping, lost the proposal, or found a
    /// lock). Nothing of the failed transaction is visible then. Decided on
    /// typed kinds only; [`Error::OutcomeUnknown`] is never retryable: a
    /// commit may have been applied.
    pub fn is_retryable_txn_error(&self) -> bool {
        match self {
            Error::WriteConflict { .. }
            | Error::SerializationFailure { .. }
            | Error::Deadlock { .. }
            | Error::LockWaitTimeout { .. }
            | Error::TxnAborted { .. }
            | Error::TxnNotFound(_) => true,
            Error::Rpc(status) => matches!(
                zdb_proto::decode_error_details(status.details()).and_then(|error| error.kind),
                Some(
                    Kind::NotApplied(_)
                        | Kind::ShuttingDown(_)
                        | Kind::ServerBusy(_)
                        | Kind::KeyLocked(_)
                )
            ),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use zdb_proto::v1;

    fn status(code: Code, kind: Kind) -> Status {
        let detail = v1::Error { kind: Some(kind) };
        let bytes = zdb_proto::encode_error_details(code as i32, "from the node", &detail);
        Status::with_details(code, "from the node", bytes.into())
    }

    #[test]
    fn transaction_aborts_decode_to_typed_errors() {
        let conflict = Error::from_final_status(status(
            Code::Aborted,
            Kind::WriteConflict(v1::WriteConflict {
                key: b"k\x01".to_vec(),
                start_ts: 10,
                conflict_ts: 12,
            }),
        ));
        assert!(
            matches!(&conflict, Error::WriteConflict { key, start_ts: 10, conflict_ts: 12 } if key == b"k\x01"),
            "{conflict:?}"
        );
        let message = conflict.to_string();
        assert!(message.contains("k\\x01"), "{message}");
        assert!(message.contains("run the transaction again"), "{message}");

        let serialization = Error::from_final_status(status(
            Code::Aborted,
            Kind::SerializationFailure(v1::SerializationFailure {
                key: b"r".to_vec(),
                start_ts: 7,
            }),
        ));
        assert!(matches!(
            &serialization,
            Error::SerializationFailure { key, start_ts: 7 } if key == b"r"
        ));

        let deadlock = Error::from_final_status(status(
            Code::Aborted,
            Kind::Deadlock(v1::Deadlock {
                cycle: vec![3, 4, 3],
                key: b"d".to_vec(),
            }),
        ));
        assert!(matches!(
            &deadlock,
            Error::Deadlock { cycle, key } if cycle == &[3, 4, 3] && key == b"d"
        ));

        let waited = Error::from_final_status(status(
            Code::DeadlineExceeded,
            Kind::LockWaitTimeout(v1::LockWaitTimeout {
                key: b"w".to_vec(),
                holder: 9,
            }),
        ));
        assert!(matches!(
            &waited,
            Error::LockWaitTimeout { key, holder: 9 } if key == b"w"
        ));

        let aborted = Error::from_final_status(status(
            Code::Aborted,
            Kind::TxnAborted(v1::TxnAborted {
                start_ts: 5,
                reason: "rolled back by a resolver".into(),
            }),
        ));
        assert!(matches!(
            &aborted,
            Error::TxnAborted { start_ts: 5, reason } if reason == "rolled back by a resolver"
        ));

        let unknown = Error::from_final_status(status(
            Code::NotFound,
            Kind::TxnNotFound(v1::TxnNotFound { txn_id: 42 }),
        ));
        assert!(matches!(unknown, Error::TxnNotFound(42)));
        assert!(unknown.to_string().contains("begin a new one"));

        for error in [conflict, serialization, deadlock, waited, aborted, unknown] {
            assert!(error.is_retryable_txn_error(), "{error:?}");
        }
    }

    #[test]
    fn only_refusals_that_applied_nothing_are_retryable() {
        let refused = [
            status(Code::Unavailable, Kind::NotApplied(v1::NotApplied {})),
            status(Code::Unavailable, Kind::ShuttingDown(v1::ShuttingDown {})),
            status(Code::ResourceExhausted, Kind::ServerBusy(v1::ServerBusy {})),
            status(
                Code::Unavailable,
                Kind::KeyLocked(v1::KeyLocked { lock: None }),
            ),
        ];
        for status in refused {
            let error = Error::from_final_status(status);
            assert!(matches!(error, Error::Rpc(_)), "{error:?}");
            assert!(error.is_retryable_txn_error(), "{error:?}");
        }
        let final_ones = [
            Error::from_final_status(status(
                Code::DeadlineExceeded,
                Kind::OutcomeUnknown(v1::OutcomeUnknown {}),
            )),
            Error::OutcomeUnknown("commit timed out".into()),
            Error::from_final_status(Status::invalid_argument("key too large")),
            // No kind: a message that reads like a conflict decides nothing.
            Error::from_final_status(Status::aborted("write conflict, run it again")),
            Error::Timeout {
                attempts: 3,
                last: "deadlock".into(),
            },
        ];
        for error in final_ones {
            assert!(!error.is_retryable_txn_error(), "{error:?}");
        }
    }
}
