//! Node errors as gRPC statuses. The errors a client must act on carry a
//! typed `zdb.v1.Error` in the status details, so that a client in any
//! language decides by kind, never by message (kv.proto lists them all).

use tonic::{Code, Status};
use zdb_proto::v1::{self, error::Kind};

use crate::error::Error;

fn with_detail(code: Code, message: String, kind: Kind) -> Status {
    let detail = v1::Error { kind: Some(kind) };
    let bytes = zdb_proto::encode_error_details(code as i32, &message, &detail);
    Status::with_details(code, message, bytes.into())
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InvalidArgument(_) => Status::invalid_argument(message),
            Error::NotLeader {
                range_id,
                leader_id,
                leader_address,
            } => with_detail(
                Code::Unavailable,
                message,
                Kind::NotLeader(v1::NotLeader {
                    range_id,
                    leader_id,
                    leader_address,
                }),
            ),
            Error::RangeNotFound(range_id) => with_detail(
                Code::NotFound,
                message,
                Kind::RangeNotFound(v1::RangeNotFound { range_id }),
            ),
            Error::KeyNotInRange { key, range } => with_detail(
                Code::FailedPrecondition,
                message,
                Kind::KeyNotInRange(v1::KeyNotInRange {
                    key,
                    range: Some(*range),
                }),
            ),
            Error::EpochNotMatch { current } => with_detail(
                Code::FailedPrecondition,
                message,
                Kind::EpochNotMatch(v1::EpochNotMatch { current }),
            ),
            Error::NotApplied(_) => with_detail(
                Code::Unavailable,
                message,
                Kind::NotApplied(v1::NotApplied {}),
            ),
            Error::OracleUnavailable(_) => with_detail(
                Code::Unavailable,
                message,
                Kind::NotApplied(v1::NotApplied {}),
            ),
            Error::TimestampTooOld {
                read_ts,
                safe_point,
            } => with_detail(
                Code::FailedPrecondition,
                message,
                Kind::TimestampTooOld(v1::TimestampTooOld {
                    read_ts,
                    safe_point,
                }),
            ),
            Error::ShuttingDown => with_detail(
                Code::Unavailable,
                message,
                Kind::ShuttingDown(v1::ShuttingDown {}),
            ),
            Error::ServerBusy(_) => with_detail(
                Code::ResourceExhausted,
                message,
                Kind::ServerBusy(v1::ServerBusy {}),
            ),
            Error::OutcomeUnknown => with_detail(
                Code::DeadlineExceeded,
                message,
                Kind::OutcomeUnknown(v1::OutcomeUnknown {}),
            ),
            Error::KeyLocked(lock) => with_detail(
                Code::Unavailable,
                message,
                Kind::KeyLocked(v1::KeyLocked { lock: Some(*lock) }),
            ),
            Error::WriteConflict {
                key,
                start_ts,
                conflict_ts,
            } => with_detail(
                Code::Aborted,
                message,
                Kind::WriteConflict(v1::WriteConflict {
                    key,
                    start_ts,
                    conflict_ts,
                }),
            ),
            Error::SerializationFailure { key, start_ts } => with_detail(
                Code::Aborted,
                message,
                Kind::SerializationFailure(v1::SerializationFailure { key, start_ts }),
            ),
            Error::Deadlock { cycle, key } => with_detail(
                Code::Aborted,
                message,
                Kind::Deadlock(v1::Deadlock { cycle, key }),
            ),
            Error::Unauthenticated { token_expired, .. } => with_detail(
                Code::Unauthenticated,
                message,
                Kind::Unauthenticated(v1::Unauthenticated { token_expired }),
            ),
            Error::CacheFull { prefix, max_bytes } => with_detail(
                Code::ResourceExhausted,
                message,
                Kind::CacheFull(v1::CacheFull { prefix, max_bytes }),
            ),
            Error::PermissionDenied { user, permission } => with_detail(
                Code::PermissionDenied,
                message,
                Kind::PermissionDenied(v1::PermissionDenied { user, permission }),
            ),
            Error::LockWaitTimeout { key, holder } => with_detail(
                Code::DeadlineExceeded,
                message,
                Kind::LockWaitTimeout(v1::LockWaitTimeout { key, holder }),
            ),
            Error::TxnAborted { start_ts, reason } => with_detail(
                Code::Aborted,
                message,
                Kind::TxnAborted(v1::TxnAborted { start_ts, reason }),
            ),
            Error::TxnNotFound(txn_id) => with_detail(
                Code::NotFound,
                message,
                Kind::TxnNotFound(v1::TxnNotFound { txn_id }),
            ),
            Error::Timeout(_) | Error::WaitTimedOut(_) => Status::deadline_exceeded(message),
            Error::FailedPrecondition(_) | Error::IdentityChanged { .. } => {
                Status::failed_precondition(message)
            }
            Error::NotFound(_) => Status::not_found(message),
            Error::Remote {
                code,
                message,
                details,
            } => Status::with_details(Code::from_i32(code), message, details.into()),
            Error::Engine(_)
            | Error::Corruption { .. }
            | Error::Raft(_)
            | Error::Config(_)
            | Error::Encryption(_)
            | Error::Io(_)
            | Error::Transport(_) => Status::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(status: &Status) -> Option<Kind> {
        zdb_proto::decode_error_details(status.details())?.kind
    }

    #[test]
    fn not_leader_carries_the_leader_in_the_details() {
        let status = Status::from(Error::NotLeader {
            range_id: 1,
            leader_id: 3,
            leader_address: "127.0.0.1:9".into(),
        });
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            kind_of(&status),
            Some(Kind::NotLeader(v1::NotLeader {
                range_id: 1,
                leader_id: 3,
                leader_address: "127.0.0.1:9".into()
            }))
        );
        assert!(
            !status.message().contains("no leader"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn whether_a_request_applied_is_told_by_a_typed_kind() {
        let cases = [
            (
                Error::NotApplied("leader changed"),
                Code::Unavailable,
                Kind::NotApplied(v1::NotApplied {}),
            ),
            (
                Error::ShuttingDown,
                Code::Unavailable,
                Kind::ShuttingDown(v1::ShuttingDown {}),
            ),
            (
                Error::ServerBusy("full"),
                Code::ResourceExhausted,
                Kind::ServerBusy(v1::ServerBusy {}),
            ),
            (
                Error::OutcomeUnknown,
                Code::DeadlineExceeded,
                Kind::OutcomeUnknown(v1::OutcomeUnknown {}),
            ),
        ];
        for (err, code, kind) in cases {
            let status = Status::from(err);
            assert_eq!(status.code(), code);
            assert_eq!(kind_of(&status), Some(kind));
        }
    }

    #[test]
    fn a_remote_answer_passes_through_unchanged() {
        let original = Status::from(Error::RangeNotFound(7));
        let passed = Status::from(Error::Remote {
            code: original.code() as i32,
            message: original.message().to_owned(),
            details: original.details().to_vec(),
        });
        assert_eq!(passed.code(), Code::NotFound);
        assert_eq!(kind_of(&passed), kind_of(&original));
    }
}
