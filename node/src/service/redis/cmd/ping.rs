//! PING [message]

use super::super::args::Args;
use super::super::frame::Frame;

pub fn run(args: &Args) -> Frame {
    match args.len() {
        0 => Frame::Simple("PONG".into()),
        1 => Frame::bulk(args.bytes(0).clone()),
        _ => args.wrong_arity(),
    }
}
