//! COMMAND, COMMAND COUNT / DOCS / INFO / LIST: the command table, enough
//! for redis-cli's hints and for client libraries that look commands up.

use super::super::args::Args;
use super::super::commands::{spec, Spec, COMMANDS};
use super::super::frame::Frame;

fn text(s: &str) -> Frame {
    Frame::bulk(s.to_owned())
}

fn info(spec: &Spec) -> Frame {
    Frame::Array(vec![
        text(spec.name),
        Frame::Integer(spec.arity as i64),
        Frame::Set(
            spec.flags
                .iter()
                .map(|flag| Frame::Simple((*flag).into()))
                .collect(),
        ),
        Frame::Integer(spec.first_key as i64),
        Frame::Integer(spec.last_key as i64),
        Frame::Integer(spec.step as i64),
        Frame::Set(vec![Frame::Simple(format!("@{}", spec.group))]),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
    ])
}

fn docs(spec: &Spec) -> Frame {
    Frame::Map(vec![
        (text("summary"), text(spec.summary)),
        (text("since"), text("1.0.0")),
        (text("group"), text(spec.group)),
    ])
}

/// The specs `args` names from position 1 on (all of them if none).
fn named(args: &Args) -> Vec<Option<&'static Spec>> {
    if args.len() <= 1 {
        return COMMANDS.iter().map(Some).collect();
    }
    (1..args.len())
        .map(|i| spec(&String::from_utf8_lossy(args.bytes(i))))
        .collect()
}

pub fn run(args: &Args) -> Frame {
    if args.is_empty() {
        return Frame::Array(COMMANDS.iter().map(info).collect());
    }
    match args.word(0).as_str() {
        "COUNT" => Frame::Integer(COMMANDS.len() as i64),
        "LIST" => Frame::Array(COMMANDS.iter().map(|spec| text(spec.name)).collect()),
        "INFO" => Frame::Array(
            named(args)
                .into_iter()
                .map(|spec| spec.map_or(Frame::Null, info))
                .collect(),
        ),
        "DOCS" => Frame::Map(
            named(args)
                .into_iter()
                .flatten()
                .map(|spec| (text(spec.name), docs(spec)))
                .collect(),
        ),
        _ => Frame::error(format!(
            "ERR unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(args.bytes(0))
        )),
    }
}
