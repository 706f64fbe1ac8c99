//! One file per command (or per family sharing one syntax, such as INCR,
//! DECR, INCRBY and DECRBY). Data commands run against a
//! [`Keyspace`](super::keyspace::Keyspace); connection commands against
//! the connection's session.

pub mod append;
pub mod auth;
pub mod client;
pub mod command;
pub mod config;
pub mod dbsize;
pub mod del;
pub mod exists;
pub mod expire;
pub mod flush;
pub mod get;
pub mod getdel;
pub mod getset;
pub mod hello;
pub mod incr;
pub mod info;
pub mod keys;
pub mod mget;
pub mod mset;
pub mod multi;
pub mod ping;
pub mod scan;
pub mod select;
pub mod set;
pub mod strlen;
pub mod ttl;
pub mod type_of;

use super::frame::Frame;

/// A bulk string, or Null for a missing value.
pub fn bulk_or_null(value: Option<Vec<u8>>) -> Frame {
    match value {
        Some(value) => Frame::bulk(value),
        None => Frame::Null,
    }
}

/// Counts a read of one key for INFO's keyspace_hits / keyspace_misses.
pub fn count_read(found: bool) {
    if found {
        crate::metrics::REDIS_KEYSPACE_HITS.inc();
    } else {
        crate::metrics::REDIS_KEYSPACE_MISSES.inc();
    }
}
