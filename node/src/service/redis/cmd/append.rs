//! APPEND key value: the length after.

use zdb_proto::v1::{update_op, UpdateRefusal};

use super::super::args::Args;
use super::super::commands::reply;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    reply(
        ks.update(args.key(0), update_op::Kind::Append(args.key(1)))
            .await,
        |done| {
            if done.refusal == UpdateRefusal::TooLarge as i32 {
                return Frame::error(
                    "ERR string exceeds maximum allowed size (node flag --max-value-bytes)",
                );
            }
            Frame::Integer(done.value.len() as i64)
        },
    )
}
