//! DEL key [key ...], UNLINK: how many of the keys existed.

use futures::future::join_all;
use zdb_proto::v1::update_op;

use super::super::args::Args;
use super::super::frame::Frame;
use super::super::keyspace::Keyspace;
use super::super::reply::error_reply;

pub async fn run<K: Keyspace>(ks: &K, args: &Args) -> Frame {
    let mut keys: Vec<Vec<u8>> = (0..args.len()).map(|i| args.key(i)).collect();
    keys.sort();
    keys.dedup();
    let taken = join_all(
        keys.into_iter()
            .map(|key| ks.update(key, update_op::Kind::Take(true))),
    )
    .await;
    let mut deleted = 0;
    for result in taken {
        match result {
            Ok(done) => deleted += done.applied as i64,
            Err(err) => return error_reply(&err),
        }
    }
    Frame::Integer(deleted)
}
