//! Multi-version storage of user keys on top of the engine's data column
//! family. Every write adds a version at its commit timestamp; reads name
//! the timestamp they see the data at; old versions are collected once no
//! read may need them.
//!
//! - [`keys`]: the byte layout of version keys (newest version first);
//! - [`record`]: what a version stores (a value with its expiry, or a tombstone);
//! - [`reader`]: a key or a span as of a timestamp;
//! - [`horizon`]: the newest oracle timestamp and the GC safe point this
//!   node knows;
//! - [`gc`]: removing the versions older than the GC safe point.

pub mod gc;
pub mod horizon;
pub mod keys;
pub mod reader;
pub mod record;

pub use horizon::Horizon;
pub use reader::{Versions, LATEST};
pub use record::Record;

/// Writes one version straight into the engine (None: a tombstone).
#[cfg(test)]
pub fn put_version(engine: &crate::engine::Engine, key: &[u8], ts: u64, value: Option<&[u8]>) {
    let raw = match value {
        Some(value) => record::encode_put(value, 0),
        None => record::encode_tombstone(),
    };
    engine
        .put(
            crate::engine::CF_DATA,
            &keys::version_key(key, ts),
            &raw,
            false,
        )
        .expect("write a version");
}
