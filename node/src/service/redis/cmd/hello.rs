//! HELLO [protover [AUTH username password] [SETNAME clientname]]: picks
//! RESP2 or RESP3 and answers with the server's description.

use super::super::args::Args;
use super::super::frame::{Frame, Protocol};
use super::super::session::{Session, Shared};
use super::auth;
use super::client::valid_name;

/// The Redis version whose commands and replies zdb follows.
pub const REDIS_VERSION: &str = "7.0.0";

pub async fn run(session: &mut Session, shared: &Shared, args: &Args) -> Frame {
    let mut protocol = session.protocol;
    let mut i = 0;
    if !args.is_empty() {
        protocol = match args.integer(0) {
            Ok(2) => Protocol::Resp2,
            Ok(3) => Protocol::Resp3,
            Ok(_) => return Frame::error("NOPROTO unsupported protocol version"),
            Err(_) => {
                return Frame::error("ERR Protocol version is not an integer or out of range")
            }
        };
        i = 1;
    }
    let mut name = None;
    while i < args.len() {
        match args.word(i).as_str() {
            "AUTH" if i + 2 < args.len() => {
                let user = String::from_utf8_lossy(args.bytes(i + 1)).into_owned();
                let password = String::from_utf8_lossy(args.bytes(i + 2)).into_owned();
                if let Err(err) = auth::log_in(session, shared, user, password).await {
                    return auth::refusal(&err);
                }
                i += 3;
            }
            "SETNAME" if i + 1 < args.len() => {
                let wanted = String::from_utf8_lossy(args.bytes(i + 1)).into_owned();
                if !valid_name(&wanted) {
                    return Frame::error(
                        "ERR Client names cannot contain spaces, newlines or special characters.",
                    );
                }
                name = Some(wanted);
                i += 2;
            }
            _ => {
                return Frame::error(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(args.bytes(i))
                ))
            }
        }
    }
    if let Some(name) = name {
        session.info.name = name;
    }
    session.protocol = protocol;
    session.info.protocol = if protocol == Protocol::Resp3 { 3 } else { 2 };
    let text = |s: &str| Frame::bulk(s.to_owned());
    Frame::Map(vec![
        (text("server"), text("redis")),
        (text("version"), text(REDIS_VERSION)),
        (text("proto"), Frame::Integer(session.info.protocol as i64)),
        (text("id"), Frame::Integer(session.info.id as i64)),
        (text("mode"), text("standalone")),
        (text("role"), text("master")),
        (text("modules"), Frame::Array(Vec::new())),
    ])
}
