//! The engine's write batch: the only way to write to the engine. It names
//! column families by name and seals the values of the sealed families as
//! they are put (see [`super::sealing`]), so a write site cannot store a
//! value in the clear by forgetting to seal it.

use rocksdb::WriteBatch;

use super::Engine;
use crate::error::{Error, Result};

/// Writes collected to be written at once by [`Engine::write`].
pub struct Batch {
    engine: Engine,
    inner: WriteBatch,
    /// The first value that could not be sealed (the key file could not be
    /// written): the batch is refused as a whole when written. Keeping the
    /// error here keeps every `put` infallible, like RocksDB's own.
    error: Option<Error>,
}

impl Batch {
    pub(super) fn new(engine: Engine) -> Self {
        Batch {
            engine,
            inner: WriteBatch::default(),
            error: None,
        }
    }

    pub fn put(&mut self, cf: &'static str, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let key = key.as_ref();
        match self.engine.seal(cf, key, value.as_ref()) {
            Ok(stored) => self.inner.put_cf(self.engine.cf(cf), key, stored),
            Err(err) => {
                self.error.get_or_insert(err);
            }
        }
    }

    pub fn delete(&mut self, cf: &'static str, key: impl AsRef<[u8]>) {
        self.inner.delete_cf(self.engine.cf(cf), key);
    }

    /// Deletes the keys of `cf` in `[from, to)`.
    pub fn delete_range(&mut self, cf: &'static str, from: impl AsRef<[u8]>, to: impl AsRef<[u8]>) {
        self.inner
            .delete_range_cf(self.engine.cf(cf), from.as_ref(), to.as_ref());
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty() && self.error.is_none()
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub(super) fn into_write_batch(self) -> Result<WriteBatch> {
        match self.error {
            Some(err) => Err(err),
            None => Ok(self.inner),
        }
    }
}
