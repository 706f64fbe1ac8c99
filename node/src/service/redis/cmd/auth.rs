//! AUTH [username] password: a login against the cluster's users (the
//! same users and roles as gRPC); a lone password is user "default".

use std::time::Instant;

use zdb_proto::v1::AuthenticateRequest;

use super::super::args::Args;
use super::super::frame::Frame;
use super::super::reply::error_reply;
use super::super::session::{renew_after, Login, Session, Shared};
use crate::auth::Principal;
use crate::error::{Error, Result};

pub async fn run(session: &mut Session, shared: &Shared, args: &Args) -> Frame {
    let (user, password) = match args.len() {
        1 => ("default".to_owned(), args.key(0)),
        2 => (
            String::from_utf8_lossy(args.bytes(0)).into_owned(),
            args.key(1),
        ),
        _ => return Frame::error("ERR syntax error"),
    };
    let password = String::from_utf8_lossy(&password).into_owned();
    match log_in(session, shared, user, password).await {
        Ok(()) => Frame::ok(),
        Err(err) => refusal(&err),
    }
}

/// How a failed AUTH (or HELLO ... AUTH) is answered.
pub fn refusal(err: &Error) -> Frame {
    match err {
        Error::Unauthenticated { .. } => {
            Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
        }
        Error::FailedPrecondition(_) => Frame::error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ),
        other => error_reply(other),
    }
}

/// Logs the session in as `user`; its later commands carry the token.
pub async fn log_in(
    session: &mut Session,
    shared: &Shared,
    user: String,
    password: String,
) -> Result<()> {
    if !shared.ops.auth_status(&Principal::Anonymous).enabled {
        return Err(Error::FailedPrecondition("authentication is off".into()));
    }
    let login = shared
        .ops
        .authenticate(AuthenticateRequest {
            user: user.clone(),
            password: password.clone(),
        })
        .await?;
    session.caller.token = Some(login.token);
    session.info.user = user.clone();
    session.login = Some(Login {
        user,
        password,
        renew_at: Instant::now() + renew_after(login.ttl_seconds),
    });
    Ok(())
}
