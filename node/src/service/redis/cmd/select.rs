//! SELECT index: zdb has one keyspace, database 0.

use super::super::args::Args;
use super::super::frame::Frame;

pub fn run(args: &Args) -> Frame {
    match args.integer(0) {
        Ok(0) => Frame::ok(),
        Ok(_) => Frame::error("ERR DB index is out of range"),
        Err(reply) => reply,
    }
}
