//! GETDEL key

use zdb_proto::v1::update_op;

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;
use super::{bulk_or_null, count_read};

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    reply(
        ks.update(args.key(0), update_op::Kind::Take(true)).await,
        |done| {
            count_read(done.found);
            bulk_or_null(done.found.then_some(done.previous))
        },
    )
}
