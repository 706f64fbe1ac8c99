//! Node errors as gRPC statuses. Routing errors carry a typed `zdb.v1.Error`
//! in the status details so that a client (in any language) knows where to go.

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
            // Definitely not applied: safe to retry.
            Error::ProposalDropped | Error::ShuttingDown => Status::unavailable(message),
            // Maybe applied: the client must not assume either way.
            Error::OutcomeUnknown | Error::Timeout(_) => Status::deadline_exceeded(message),
            Error::IdentityChanged { .. } => Status::failed_precondition(message),
            Error::Engine(_)
            | Error::Corruption { .. }
            | Error::Raft(_)
            | Error::Config(_)
            | Error::Io(_)
            | Error::Transport(_) => Status::internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_carries_the_leader_in_the_details() {
        let status = Status::from(Error::NotLeader {
            range_id: 1,
            leader_id: 3,
            leader_address: "127.0.0.1:9".into(),
        });
        assert_eq!(status.code(), Code::Unavailable);
        let detail = zdb_proto::decode_error_details(status.details()).unwrap();
        assert_eq!(
            detail.kind,
            Some(Kind::NotLeader(v1::NotLeader {
                range_id: 1,
                leader_id: 3,
                leader_address: "127.0.0.1:9".into()
            }))
        );
    }
}
