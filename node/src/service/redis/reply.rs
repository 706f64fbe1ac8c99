//! The node's typed errors as Redis error replies. The first word is the
//! error code clients switch on: NOAUTH, NOPERM, TRYAGAIN (nothing was
//! applied: retry) or ERR.

use tonic::Code;

use super::frame::Frame;
use crate::error::Error;

pub fn error_reply(err: &Error) -> Frame {
    let code = match err {
        Error::Unauthenticated { .. } => return Frame::error("NOAUTH Authentication required."),
        Error::InvalidArgument(reason) => return Frame::error(format!("ERR {reason}")),
        Error::CacheFull { .. } => {
            return Frame::error("OOM command not allowed when used memory > 'maxmemory'.")
        }
        Error::PermissionDenied { user, permission } => {
            return Frame::error(format!(
                "NOPERM user '{user}' has no permissions to run this command: it lacks {permission}"
            ))
        }
        Error::NotLeader { .. }
        | Error::RangeNotFound(_)
        | Error::KeyNotInRange { .. }
        | Error::EpochNotMatch { .. }
        | Error::NotApplied(_)
        | Error::ServerBusy(_)
        | Error::ShuttingDown
        | Error::KeyLocked(_)
        | Error::OracleUnavailable(_) => "TRYAGAIN",
        Error::OutcomeUnknown | Error::Timeout(_) => return outcome_unknown(err),
        Error::Remote { code, .. }
            if err.remote_kind().is_none()
                && matches!(
                    Code::from_i32(*code),
                    Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
                ) =>
        {
            return outcome_unknown(err)
        }
        Error::Remote { code, .. } => match Code::from_i32(*code) {
            Code::Unauthenticated => return Frame::error("NOAUTH Authentication required."),
            Code::PermissionDenied => "NOPERM",
            Code::Unavailable | Code::ResourceExhausted => "TRYAGAIN",
            _ => "ERR",
        },
        _ => "ERR",
    };
    Frame::error(format!("{code} {err}"))
}

/// A write whose fate is not known: the node serving its key failed or
/// stopped answering while it was in flight.
fn outcome_unknown(err: &Error) -> Frame {
    Frame::error(format!(
        "ERR outcome unknown ({err}): the write may or may not have been applied; read the key to find out"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(frame: Frame) -> String {
        match frame {
            Frame::Error(text) => text,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn errors_lead_with_the_code_clients_switch_on() {
        assert_eq!(
            text(error_reply(&Error::Unauthenticated {
                reason: "no credentials".into(),
                token_expired: false
            })),
            "NOAUTH Authentication required."
        );
        assert!(text(error_reply(&Error::PermissionDenied {
            user: "reader".into(),
            permission: "write on key \"a\"".into()
        }))
        .starts_with("NOPERM user 'reader'"));
        assert!(text(error_reply(&Error::ShuttingDown)).starts_with("TRYAGAIN "));
        assert!(
            text(error_reply(&Error::InvalidArgument("key is empty".into())))
                .starts_with("ERR key is empty")
        );
    }
}
