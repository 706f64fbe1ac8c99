//! MULTI, EXEC, DISCARD, WATCH, UNWATCH on the node's transactions: EXEC
//! runs the queued commands in one serializable transaction, all of their
//! writes or none, on every range they touch. WATCH begins that
//! transaction and reads the watched keys in it, so EXEC fails (a nil
//! reply) when one of them changed since the WATCH — or when any key the
//! queued commands read did (a superset of Redis's rule; clients run the
//! WATCH loop again). Without WATCH a conflict is retried here.

use std::time::{Duration, Instant};

use zdb_proto::v1::{BeginRequest, CommitRequest, Isolation, RollbackRequest};

use super::super::args::Args;
use super::super::commands::run_data;
use super::super::frame::Frame;
use super::super::keyspace::{InTxn, Keyspace};
use super::super::reply::error_reply;
use super::super::session::{Multi, Session, Shared};
use crate::error::{Error, Result};
use crate::ops::txn::session::retryable;

/// How long WATCH may wait for its EXEC.
const WATCH_IDLE: Duration = Duration::from_secs(600);
/// How long EXEC retries a transaction that conflicted (without WATCH).
const EXEC_DEADLINE: Duration = Duration::from_secs(5);

pub async fn run(session: &mut Session, shared: &Shared, args: &Args) -> Frame {
    match args.name.as_str() {
        "MULTI" if session.multi.is_some() => Frame::error("ERR MULTI calls can not be nested"),
        "MULTI" => {
            session.multi = Some(Multi::default());
            Frame::ok()
        }
        "DISCARD" => match session.multi.take() {
            None => Frame::error("ERR DISCARD without MULTI"),
            Some(_) => {
                unwatch(session, shared).await;
                Frame::ok()
            }
        },
        "WATCH" if session.multi.is_some() => Frame::error("ERR WATCH inside MULTI is not allowed"),
        "WATCH" => match watch(session, shared, args).await {
            Ok(()) => Frame::ok(),
            Err(err) => error_reply(&err),
        },
        "UNWATCH" => {
            unwatch(session, shared).await;
            Frame::ok()
        }
        _ => exec(session, shared).await,
    }
}

async fn begin(shared: &Shared, idle: Duration) -> Result<u64> {
    let begun = shared
        .ops
        .begin(BeginRequest {
            isolation: Isolation::Serializable as i32,
            idle_timeout_ms: idle.as_millis() as u64,
            ..Default::default()
        })
        .await?;
    Ok(begun.txn_id)
}

async fn watch(session: &mut Session, shared: &Shared, args: &Args) -> Result<()> {
    let txn_id = match &session.watch {
        Some((txn_id, _)) => *txn_id,
        None => begin(shared, WATCH_IDLE).await?,
    };
    let keys = (0..args.len()).map(|i| args.key(i));
    let watched = session.watch.get_or_insert((txn_id, Vec::new()));
    watched.1.extend(keys);
    Ok(())
}

/// Ends the WATCH's transaction, if any.
pub async fn unwatch(session: &mut Session, shared: &Shared) {
    if let Some((txn_id, _)) = session.watch.take() {
        let _ = shared.ops.txn_rollback(RollbackRequest { txn_id }).await;
    }
}

async fn exec(session: &mut Session, shared: &Shared) -> Frame {
    let Some(multi) = session.multi.take() else {
        return Frame::error("ERR EXEC without MULTI");
    };
    if multi.failed {
        unwatch(session, shared).await;
        return Frame::error("EXECABORT Transaction discarded because of previous errors.");
    }
    let deadline = Instant::now() + EXEC_DEADLINE;
    let mut watch = session.watch.take();
    let mut attempt = 0u32;
    loop {
        let watched = watch.take();
        let was_watched = watched.is_some();
        match run_once(session, shared, &multi.queued, watched).await {
            Ok(replies) => return Frame::Array(replies),
            Err(err) if retryable(&err) && was_watched => return Frame::NullArray,
            Err(err) if retryable(&err) && Instant::now() < deadline => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(2u64 << attempt.min(7))).await;
            }
            Err(err) => return error_reply(&err),
        }
    }
}

/// One attempt: the queued commands in one transaction, then its commit.
async fn run_once(
    session: &Session,
    shared: &Shared,
    queued: &[Args],
    watched: Option<(u64, Vec<Vec<u8>>)>,
) -> Result<Vec<Frame>> {
    let (txn_id, watched_keys) = match watched {
        Some(watched) => watched,
        None => (begin(shared, EXEC_DEADLINE).await?, Vec::new()),
    };
    let txn = InTxn {
        ops: &shared.ops,
        caller: &session.caller,
        txn_id,
    };
    let ran = async {
        // Read in the transaction: a change since its start fails the commit.
        for key in watched_keys {
            txn.get(key).await?;
        }
        let mut replies = Vec::with_capacity(queued.len());
        for args in queued {
            let reply = match args.name.as_str() {
                "PING" => Frame::Simple("PONG".into()),
                "ECHO" => Frame::bulk(args.bytes(0).clone()),
                _ => match run_data(&txn, args, &shared.state).await {
                    Some(reply) => reply,
                    None => Frame::error(format!(
                        "ERR {} cannot run inside MULTI; run it on its own",
                        args.name
                    )),
                },
            };
            replies.push(reply);
        }
        shared
            .ops
            .txn_commit(CommitRequest {
                txn_id,
                mutations: Vec::new(),
            })
            .await?;
        Ok::<_, Error>(replies)
    }
    .await;
    if ran.is_err() {
        let _ = shared.ops.txn_rollback(RollbackRequest { txn_id }).await;
    }
    ran
}
