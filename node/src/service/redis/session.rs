//! One client connection's state and its request loop: read every request
//! the client pipelined, answer each in order, flush once; queue commands
//! between MULTI and EXEC; log in again before a token runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::args::Args;
use super::cmd;
use super::commands::{self, run_data};
use super::connection::{Connection, ConnectionError};
use super::frame::{Frame, FrameLimits, Protocol};
use super::keyspace::Direct;
use super::state::{ClientInfo, RedisState};
use crate::auth::Caller;
use crate::ops::Ops;

/// What every session of the node shares.
pub struct Shared {
    pub ops: Ops,
    pub state: Arc<RedisState>,
}

/// A password login, kept to log in again before the token runs out.
pub struct Login {
    pub user: String,
    pub password: String,
    pub renew_at: Instant,
}

/// The commands queued since MULTI.
#[derive(Default)]
pub struct Multi {
    pub queued: Vec<Args>,
    /// A queued command was refused (unknown, wrong arity): EXEC aborts.
    pub failed: bool,
}

pub struct Session {
    pub info: ClientInfo,
    pub protocol: Protocol,
    pub caller: Caller,
    pub login: Option<Login>,
    pub multi: Option<Multi>,
    /// The transaction WATCH began (its start is the watch's moment) and
    /// the keys watched.
    pub watch: Option<(u64, Vec<Vec<u8>>)>,
    /// QUIT: answer, then close.
    pub closing: bool,
}

/// At most this many pipelined requests are answered before a flush.
const MAX_BATCH: usize = 256;

/// Commands whose only effect is on the keys they name: pipelined ones
/// that name different keys run concurrently (they are concurrent
/// operations anyway: the client sent each before the reply to the one
/// before it), while a later command on a key waits for the earlier ones.
const KEYED: &[&str] = &[
    "GET",
    "SET",
    "SETNX",
    "SETEX",
    "PSETEX",
    "GETSET",
    "GETDEL",
    "MGET",
    "MSET",
    "DEL",
    "UNLINK",
    "EXISTS",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "INCRBYFLOAT",
    "APPEND",
    "STRLEN",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "PERSIST",
    "TTL",
    "PTTL",
    "TYPE",
];

/// Commands that run at once inside MULTI instead of being queued.
const NOT_QUEUED: &[&str] = &["EXEC", "DISCARD", "MULTI", "WATCH", "QUIT", "RESET"];

impl Session {
    pub fn new(info: ClientInfo, caller: Caller) -> Self {
        Session {
            info,
            protocol: Protocol::Resp2,
            caller,
            login: None,
            multi: None,
            watch: None,
            closing: false,
        }
    }

    /// The replies to pipelined requests, in order; runs of keyed commands
    /// on distinct keys run concurrently.
    /// Each reply comes with the protocol to write it in (HELLO changes it).
    pub async fn handle_batch(
        &mut self,
        shared: &Shared,
        batch: Vec<Vec<Bytes>>,
    ) -> Vec<(Frame, Protocol)> {
        let mut replies = Vec::with_capacity(batch.len());
        let mut pending = batch.into_iter().peekable();
        while pending.peek().is_some() {
            let mut run: Vec<Args> = Vec::new();
            let mut keys = std::collections::HashSet::new();
            while self.multi.is_none() && !self.closing {
                let Some(args) = pending.peek().and_then(|request| keyed(request, &keys)) else {
                    break;
                };
                pending.next();
                keys.extend(key_positions(&args).map(|i| args.bytes(i).clone()));
                run.push(args);
            }
            if run.len() > 1 {
                let protocol = self.protocol;
                let ran = self.run_concurrently(shared, run).await;
                replies.extend(ran.into_iter().map(|reply| (reply, protocol)));
                continue;
            }
            let args = match run.pop() {
                Some(args) => Some(args),
                None => pending.next().and_then(Args::new),
            };
            if let Some(args) = args {
                let reply = self.handle(shared, args).await;
                replies.push((reply, self.protocol));
            }
            if self.closing {
                break;
            }
        }
        replies
    }

    async fn run_concurrently(&mut self, shared: &Shared, run: Vec<Args>) -> Vec<Frame> {
        crate::metrics::REDIS_COMMANDS.inc_by(run.len() as u64);
        if let Some(last) = run.last() {
            self.info.last_command = last.name.clone();
        }
        self.renew_login(shared).await;
        let caller = &self.caller;
        futures::future::join_all(run.iter().map(|args| async move {
            let direct = Direct {
                ops: &shared.ops,
                caller,
                command: &args.name,
            };
            match run_data(&direct, args, &shared.state).await {
                Some(reply) => reply,
                None => unknown_command(args),
            }
        }))
        .await
    }

    /// The reply to one request.
    pub async fn handle(&mut self, shared: &Shared, args: Args) -> Frame {
        crate::metrics::REDIS_COMMANDS.inc();
        self.info.last_command = args.name.clone();
        let refusal = match commands::spec(&args.name) {
            None => Some(unknown_command(&args)),
            Some(spec) if !spec.admits(args.len()) => Some(args.wrong_arity()),
            Some(_) => None,
        };
        if let Some(refusal) = refusal {
            if let Some(multi) = &mut self.multi {
                multi.failed = true;
            }
            return refusal;
        }
        if let Some(multi) = &mut self.multi {
            if !NOT_QUEUED.contains(&args.name.as_str()) {
                multi.queued.push(args);
                return Frame::Simple("QUEUED".into());
            }
        }
        self.run(shared, &args).await
    }

    async fn run(&mut self, shared: &Shared, args: &Args) -> Frame {
        match args.name.as_str() {
            "PING" => cmd::ping::run(args),
            "ECHO" => Frame::bulk(args.bytes(0).clone()),
            "HELLO" => cmd::hello::run(self, shared, args).await,
            "AUTH" => cmd::auth::run(self, shared, args).await,
            "SELECT" => cmd::select::run(args),
            "QUIT" => {
                self.closing = true;
                Frame::ok()
            }
            "RESET" => self.reset(shared).await,
            "CLIENT" => cmd::client::run(self, shared, args),
            "INFO" => cmd::info::run(shared, &self.caller, args).await,
            "COMMAND" => cmd::command::run(args),
            "CONFIG" => cmd::config::run(self, shared, args).await,
            "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH" => {
                cmd::multi::run(self, shared, args).await
            }
            _ => {
                self.renew_login(shared).await;
                let direct = Direct {
                    ops: &shared.ops,
                    caller: &self.caller,
                    command: &args.name,
                };
                match run_data(&direct, args, &shared.state).await {
                    Some(reply) => reply,
                    None => unknown_command(args),
                }
            }
        }
    }

    /// RESET: back to a new connection's state.
    async fn reset(&mut self, shared: &Shared) -> Frame {
        self.multi = None;
        cmd::multi::unwatch(self, shared).await;
        self.protocol = Protocol::Resp2;
        self.info.name.clear();
        self.info.user.clear();
        self.login = None;
        self.caller.token = None;
        Frame::Simple("RESET".into())
    }

    /// Logs in again once the token nears its end, so a long-lived
    /// connection stays authenticated as long as the password holds.
    async fn renew_login(&mut self, shared: &Shared) {
        let Some(login) = &self.login else { return };
        if Instant::now() < login.renew_at {
            return;
        }
        let (user, password) = (login.user.clone(), login.password.clone());
        if let Err(err) = cmd::auth::log_in(self, shared, user, password).await {
            tracing::debug!(error = %err, "the Redis connection's login could not be renewed");
            self.caller.token = None;
            self.login = None;
        }
    }
}

/// The request as a keyed command whose keys none of `taken` is, if it is one.
fn keyed(request: &[Bytes], taken: &std::collections::HashSet<Bytes>) -> Option<Args> {
    let args = Args::new(request.to_vec())?;
    let spec = commands::spec(&args.name)?;
    if !KEYED.contains(&args.name.as_str()) || !spec.admits(args.len()) {
        return None;
    }
    let clash = key_positions(&args).any(|i| taken.contains(args.bytes(i)));
    (!clash).then_some(args)
}

/// Where the keys of a (known, well-formed) command are among its arguments.
fn key_positions(args: &Args) -> impl Iterator<Item = usize> + '_ {
    let spec = commands::spec(&args.name);
    let (first, last, step) = spec.map_or((0, 0, 1), |s| (s.first_key, s.last_key, s.step));
    let last = if last < 0 {
        args.len() as i32 + last + 1
    } else {
        last
    };
    let step = step.max(1) as usize;
    (first.max(1)..=last)
        .step_by(step)
        .filter(move |_| first > 0)
        .map(|position| position as usize - 1)
        .filter(move |i| *i < args.len())
}

fn unknown_command(args: &Args) -> Frame {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        args.original_name()
    );
    for arg in args.all().iter().take(16) {
        text.push_str(&format!("'{}' ", String::from_utf8_lossy(arg)));
    }
    Frame::error(text)
}

/// Serves one connection until the client leaves, QUIT, or the node stops.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    shared: Arc<Shared>,
    mut session: Session,
    mut stop: watch::Receiver<bool>,
) {
    let mut connection = Connection::new(stream, FrameLimits::default());
    loop {
        let request = tokio::select! {
            request = connection.read_request() => request,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let first = match request {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(err) => {
                answer_protocol_error(&mut connection, err).await;
                break;
            }
        };
        // Every request already buffered is answered before one flush.
        let mut batch = vec![first];
        let mut broken = None;
        while batch.len() < MAX_BATCH {
            match connection.buffered_request() {
                Ok(Some(request)) => batch.push(request),
                Ok(None) => break,
                Err(err) => {
                    broken = Some(err);
                    break;
                }
            }
        }
        for (reply, protocol) in session.handle_batch(&shared, batch).await {
            connection.protocol = protocol;
            connection.queue(&reply);
        }
        if let Some(err) = broken {
            answer_protocol_error(&mut connection, err).await;
            break;
        }
        shared.state.update(&session.info);
        if connection.flush().await.is_err() || session.closing {
            break;
        }
    }
    cmd::multi::unwatch(&mut session, &shared).await;
    shared.state.disconnect(session.info.id);
}

async fn answer_protocol_error<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    err: ConnectionError,
) {
    if let ConnectionError::Frame(err) = &err {
        connection.queue(&err.to_reply());
        let _ = connection.flush().await;
    }
}

/// How long a login's token is used before logging in again: most of it.
pub fn renew_after(ttl_seconds: u64) -> Duration {
    Duration::from_secs(ttl_seconds.saturating_mul(4) / 5)
}
