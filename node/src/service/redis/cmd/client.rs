//! CLIENT SETNAME / GETNAME / ID / INFO / LIST / SETINFO.

use super::super::args::Args;
use super::super::frame::Frame;
use super::super::session::{Session, Shared};

/// Redis allows printable characters without spaces in client names.
pub fn valid_name(name: &str) -> bool {
    name.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

pub fn run(session: &mut Session, shared: &Shared, args: &Args) -> Frame {
    let sub = args.word(0);
    match sub.as_str() {
        "SETNAME" => {
            if args.len() != 2 {
                return Frame::error("ERR wrong number of arguments for 'client|setname' command");
            }
            let name = String::from_utf8_lossy(args.bytes(1)).into_owned();
            if !valid_name(&name) {
                return Frame::error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            session.info.name = name;
            Frame::ok()
        }
        "GETNAME" => match session.info.name.as_str() {
            "" => Frame::Null,
            name => Frame::bulk(name.to_owned()),
        },
        "ID" => Frame::Integer(session.info.id as i64),
        "INFO" => Frame::Verbatim(format!("{}\n", session.info.line())),
        "LIST" => {
            shared.state.update(&session.info);
            let lines: String = shared
                .state
                .clients()
                .iter()
                .map(|client| format!("{}\n", client.line()))
                .collect();
            Frame::Verbatim(lines)
        }
        // Client libraries announce themselves; nothing to keep.
        "SETINFO" => Frame::ok(),
        _ => Frame::error(format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(args.bytes(0))
        )),
    }
}
