//! The command table (name, arity, flags, key positions, docs: what
//! COMMAND reports and the arity check uses) and the dispatch of data
//! commands to their files in `cmd/`.

use super::args::Args;
use super::cmd;
use super::frame::Frame;
use super::keyspace::Keyspace;
use super::reply::error_reply;
use super::state::RedisState;
use crate::error::Result;

/// One command as Redis's COMMAND describes it.
pub struct Spec {
    pub name: &'static str,
    /// The argument count with the name: exact when positive, at least
    /// `-arity` when negative.
    pub arity: i32,
    pub flags: &'static [&'static str],
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub summary: &'static str,
}

const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "denyoom", "fast"];
const SLOW_R: &[&str] = &["readonly"];
const SLOW_W: &[&str] = &["write"];
const CONN: &[&str] = &["fast", "loading", "stale", "no-auth"];
const ADMIN: &[&str] = &["loading", "stale"];

macro_rules! specs {
    ($($name:literal $arity:literal $flags:ident $first:literal $last:literal $step:literal $group:literal $summary:literal;)*) => {
        pub const COMMANDS: &[Spec] = &[$(Spec {
            name: $name, arity: $arity, flags: $flags, first_key: $first, last_key: $last,
            step: $step, group: $group, summary: $summary,
        }),*];
    };
}

specs! {
    "ping" -1 CONN 0 0 0 "connection" "Returns the server's liveliness response.";
    "echo" 2 CONN 0 0 0 "connection" "Returns the given string.";
    "hello" -1 CONN 0 0 0 "connection" "Handshakes with the server.";
    "auth" -2 CONN 0 0 0 "connection" "Authenticates the connection.";
    "select" 2 CONN 0 0 0 "connection" "Changes the selected database (only 0 exists).";
    "quit" -1 CONN 0 0 0 "connection" "Closes the connection.";
    "reset" 1 CONN 0 0 0 "connection" "Resets the connection.";
    "client" -2 ADMIN 0 0 0 "connection" "CLIENT SETNAME, GETNAME, ID, INFO, LIST, SETINFO.";
    "get" 2 R 1 1 1 "string" "Returns the string value of a key.";
    "set" -3 W 1 1 1 "string" "Sets the string value of a key, ignoring its type.";
    "setnx" 3 W 1 1 1 "string" "Set the string value of a key only when the key doesn't exist.";
    "setex" 4 W 1 1 1 "string" "Sets the string value and expiration time of a key.";
    "psetex" 4 W 1 1 1 "string" "Sets both string value and expiration time in milliseconds of a key.";
    "getset" 3 W 1 1 1 "string" "Returns the previous string value of a key after setting it to a new value.";
    "getdel" 2 W 1 1 1 "string" "Returns the string value of a key after deleting the key.";
    "mget" -2 R 1 -1 1 "string" "Atomically returns the string values of one or more keys.";
    "mset" -3 W 1 -1 2 "string" "Atomically creates or modifies the string values of one or more keys.";
    "msetnx" -3 W 1 -1 2 "string" "Atomically modifies the string values of one or more keys only when all keys don't exist.";
    "del" -2 SLOW_W 1 -1 1 "generic" "Deletes one or more keys.";
    "unlink" -2 SLOW_W 1 -1 1 "generic" "Deletes one or more keys.";
    "exists" -2 R 1 -1 1 "generic" "Determines whether one or more keys exist.";
    "incr" 2 W 1 1 1 "string" "Increments the integer value of a key by one.";
    "decr" 2 W 1 1 1 "string" "Decrements the integer value of a key by one.";
    "incrby" 3 W 1 1 1 "string" "Increments the integer value of a key by a number.";
    "decrby" 3 W 1 1 1 "string" "Decrements a number from the integer value of a key.";
    "incrbyfloat" 3 W 1 1 1 "string" "Increment the floating point value of a key by a number.";
    "append" 3 W 1 1 1 "string" "Appends a string to the value of a key.";
    "strlen" 2 R 1 1 1 "string" "Returns the length of a string value.";
    "expire" -3 W 1 1 1 "generic" "Sets the expiration time of a key in seconds.";
    "pexpire" -3 W 1 1 1 "generic" "Sets the expiration time of a key in milliseconds.";
    "expireat" -3 W 1 1 1 "generic" "Sets the expiration time of a key to a Unix timestamp.";
    "pexpireat" -3 W 1 1 1 "generic" "Sets the expiration time of a key to a Unix milliseconds timestamp.";
    "persist" 2 W 1 1 1 "generic" "Removes the expiration time of a key.";
    "ttl" 2 R 1 1 1 "generic" "Returns the expiration time in seconds of a key.";
    "pttl" 2 R 1 1 1 "generic" "Returns the expiration time in milliseconds of a key.";
    "type" 2 R 1 1 1 "generic" "Determines the type of value stored at a key.";
    "keys" 2 SLOW_R 0 0 0 "generic" "Returns all key names that match a pattern.";
    "scan" -2 SLOW_R 0 0 0 "generic" "Iterates over the key names in the database.";
    "dbsize" 1 R 0 0 0 "server" "Returns the number of keys in the database.";
    "flushdb" -1 SLOW_W 0 0 0 "server" "Removes all keys from the current database.";
    "flushall" -1 SLOW_W 0 0 0 "server" "Removes all keys from all databases.";
    "info" -1 ADMIN 0 0 0 "server" "Returns information and statistics about the server.";
    "command" -1 ADMIN 0 0 0 "server" "Returns detailed information about all commands.";
    "config" -2 ADMIN 0 0 0 "server" "CONFIG GET, SET (maxmemory, maxmemory-policy), RESETSTAT.";
    "multi" 1 CONN 0 0 0 "transactions" "Starts a transaction.";
    "exec" 1 SLOW_W 0 0 0 "transactions" "Executes all commands in a transaction.";
    "discard" 1 CONN 0 0 0 "transactions" "Discards a transaction.";
    "watch" -2 CONN 1 -1 1 "transactions" "Monitors changes to keys to determine the execution of a transaction.";
    "unwatch" 1 CONN 0 0 0 "transactions" "Forgets about watched keys of a transaction.";
}

pub fn spec(name: &str) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.eq_ignore_ascii_case(name))
}

impl Spec {
    /// Whether `count` arguments (the name excluded) fit the arity.
    pub fn admits(&self, count: usize) -> bool {
        let with_name = count as i32 + 1;
        if self.arity >= 0 {
            with_name == self.arity
        } else {
            with_name >= -self.arity
        }
    }
}

/// The reply for a result: `ok` on success, the error as Redis words it.
pub fn reply<T>(result: Result<T>, ok: impl FnOnce(T) -> Frame) -> Frame {
    match result {
        Ok(value) => ok(value),
        Err(err) => error_reply(&err),
    }
}

/// Runs a command that reads or writes keys (None: `args` is not one).
pub async fn run_data<K: Keyspace>(ks: &K, args: &Args, state: &RedisState) -> Option<Frame> {
    Some(match args.name.as_str() {
        "GET" => cmd::get::run(ks, args).await,
        "SET" => cmd::set::run(ks, args).await,
        "SETNX" => cmd::set::setnx(ks, args).await,
        "SETEX" | "PSETEX" => cmd::set::setex(ks, args).await,
        "GETSET" => cmd::getset::run(ks, args).await,
        "GETDEL" => cmd::getdel::run(ks, args).await,
        "MGET" => cmd::mget::run(ks, args).await,
        "MSET" => cmd::mset::run(ks, args).await,
        "MSETNX" => cmd::mset::msetnx(ks, args).await,
        "DEL" | "UNLINK" => cmd::del::run(ks, args).await,
        "EXISTS" => cmd::exists::run(ks, args).await,
        "INCR" | "DECR" | "INCRBY" | "DECRBY" => cmd::incr::run(ks, args).await,
        "INCRBYFLOAT" => cmd::incr::by_float(ks, args).await,
        "APPEND" => cmd::append::run(ks, args).await,
        "STRLEN" => cmd::strlen::run(ks, args).await,
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => cmd::expire::run(ks, args).await,
        "PERSIST" => cmd::expire::persist(ks, args).await,
        "TTL" | "PTTL" => cmd::ttl::run(ks, args).await,
        "TYPE" => cmd::type_of::run(ks, args).await,
        "KEYS" => cmd::keys::run(ks, args).await,
        "SCAN" => cmd::scan::run(ks, args, state).await,
        "DBSIZE" => cmd::dbsize::run(ks).await,
        "FLUSHDB" | "FLUSHALL" => cmd::flush::run(ks, args).await,
        _ => return None,
    })
}
