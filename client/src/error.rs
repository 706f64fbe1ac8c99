use tonic::{Code, Status};

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

    /// An atomic batch touched keys of several ranges.
    #[error("the batch spans {0} ranges and atomicity holds only within one range; split it by range or use batch_write_per_range")]
    CrossRange(usize),

    #[error("no endpoints given; pass --endpoints or set ZDB_ENDPOINTS")]
    NoEndpoints,

    /// A read named a timestamp below the GC safe point.
    #[error("read timestamp {read_ts} is below the GC safe point {safe_point}: the versions it needs may be collected; read at a newer timestamp")]
    TimestampTooOld { read_ts: u64, safe_point: u64 },

    /// Any other error status from the node.
    #[error("{}: {}", .0.code(), .0.message())]
    Rpc(Box<Status>),
}

impl Error {
    pub(crate) fn from_final_status(status: Status) -> Self {
        let kind = zdb_proto::decode_error_details(status.details()).and_then(|error| error.kind);
        if let Some(zdb_proto::v1::error::Kind::TimestampTooOld(too_old)) = kind {
            return Error::TimestampTooOld {
                read_ts: too_old.read_ts,
                safe_point: too_old.safe_point,
            };
        }
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => {
                Error::InvalidArgument(status.message().to_owned())
            }
            _ => Error::Rpc(Box::new(status)),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
