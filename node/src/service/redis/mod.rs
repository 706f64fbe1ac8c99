//! The Redis protocol front end (RESP2 and RESP3) over the node's
//! operations: every command is a thin adapter over `crate::ops`, with the
//! same validation, limits, routing, forwarding and permissions as gRPC.
//!
//! - [`frame`]: RESP frames, parsed from bytes and written back, apart
//!   from any I/O;
//! - [`connection`]: one client connection: buffered frame reads and
//!   writes, pipelined replies flushed once per batch of requests;
//! - [`listener`]: the port (plain or TLS) and a session per connection;
//! - [`session`]: a connection's state (protocol, login, MULTI queue,
//!   WATCH) and its request loop;
//! - [`commands`]: the command table and the dispatch of data commands;
//!   [`cmd`]: one file per command;
//! - [`keyspace`]: what data commands run against: the operations, as
//!   the connection's user, or a transaction (EXEC);
//! - [`args`], [`reply`], [`glob`], [`state`]: argument parsing, errors
//!   as Redis words them, KEYS/SCAN patterns, what sessions share.

pub mod args;
pub mod cmd;
pub mod commands;
pub mod connection;
pub mod frame;
pub mod glob;
pub mod keyspace;
pub mod listener;
pub mod reply;
pub mod session;
pub mod state;
