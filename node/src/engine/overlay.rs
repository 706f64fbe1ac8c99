//! Writes to one column family going into a write batch that commands
//! later in the same batch must read before it is written (a
//! compare-and-swap after a put, a second id allocation after the first).

use std::collections::HashMap;

use super::{Batch, Engine, ReadView};
use crate::error::Result;

pub struct OverlayBatch<'a> {
    engine: &'a Engine,
    batch: &'a mut Batch,
    cf: &'static str,
    /// What the batch holds for each key written to it; None: deleted.
    written: &'a mut HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> OverlayBatch<'a> {
    pub fn new(
        engine: &'a Engine,
        batch: &'a mut Batch,
        cf: &'static str,
        written: &'a mut HashMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> Self {
        OverlayBatch {
            engine,
            batch,
            cf,
            written,
        }
    }

    /// The value as of this batch: what it wrote, else what the engine has.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.written.get(key) {
            Some(value) => Ok(value.clone()),
            None => self.engine.get(self.cf, key),
        }
    }

    pub fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.batch.put(self.cf, key, &value);
        self.written.insert(key.to_vec(), Some(value));
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.batch.delete(self.cf, key);
        self.written.insert(key.to_vec(), None);
    }

    /// The engine and the batch, for writes to other column families that
    /// no read of this batch looks at (an index).
    pub fn side(&mut self) -> (&Engine, &mut Batch) {
        (self.engine, self.batch)
    }
}
