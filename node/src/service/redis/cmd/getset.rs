//! GETSET key value: SET key value GET, clearing any expiry.

use zdb_proto::v1::{update_op, SetOp};

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;
use super::bulk_or_null;

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let set = SetOp {
        value: args.key(1),
        ..Default::default()
    };
    reply(
        ks.update(args.key(0), update_op::Kind::Set(set)).await,
        |done| bulk_or_null(done.found.then_some(done.previous)),
    )
}
