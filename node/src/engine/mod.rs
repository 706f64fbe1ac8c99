//! The node's single RocksDB instance and the column families in it.

pub mod keys;
mod overlay;
pub mod value;
mod view;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch,
    WriteOptions, DB,
};

use crate::error::{Error, Result};
use crate::metrics;

pub use keys::{CF_DATA, CF_META, CF_RAFT, CF_SYSTEM, CF_TTL};
pub use overlay::OverlayBatch;
pub use view::{ReadView, Snapshot};

/// Shared handle to the node's RocksDB. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Arc<DB>,
}

impl Engine {
    pub fn open(path: &Path) -> Result<Self> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);

        let cache = Cache::new_lru_cache(128 << 20);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);

        let mut data_opts = Options::default();
        data_opts.set_block_based_table_factory(&table);
        data_opts.set_write_buffer_size(64 << 20);
        data_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);

        // The Raft log is written once, read rarely and deleted soon: no bloom
        // filters, no compression, small memtables. Each range appends at the
        // end of its own key prefix, so the memtable keeps one insert position
        // per range (range id + record kind) instead of searching its skip
        // list from the top for every entry.
        let raft_opts = Options::default().get_options_from_string(format!(
            "write_buffer_size={};memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.{}",
            32 << 20,
            keys::RAFT_KEY_PREFIX_LEN
        ))?;

        let cfs = vec![
            ColumnFamilyDescriptor::new(CF_DATA, data_opts),
            ColumnFamilyDescriptor::new(CF_RAFT, raft_opts),
            ColumnFamilyDescriptor::new(CF_META, Options::default()),
            ColumnFamilyDescriptor::new(CF_TTL, Options::default()),
            ColumnFamilyDescriptor::new(CF_SYSTEM, Options::default()),
        ];
        let db = DB::open_cf_descriptors(&db_opts, path, cfs)?;
        Ok(Engine { db: Arc::new(db) })
    }

    pub fn cf(&self, name: &'static str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} is created at open"))
    }

    pub fn db(&self) -> &DB {
        &self.db
    }

    /// Writes a batch; with `sync`, returns only once it is on stable storage.
    pub fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let started = Instant::now();
        self.db.write_opt(batch, &opts)?;
        if sync {
            metrics::FSYNC_SECONDS.observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Makes every write made so far durable, without holding up writers.
    pub fn sync_wal(&self) -> Result<()> {
        Ok(self.db.flush_wal(true)?)
    }

    pub fn put(&self, cf: &'static str, key: &[u8], value: &[u8], sync: bool) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(cf), key, value);
        self.write(batch, sync)
    }

    /// Approximate bytes in the data column family (for status and metrics).
    pub fn approximate_data_bytes(&self) -> u64 {
        self.db
            .property_int_value_cf(self.cf(CF_DATA), "rocksdb.estimate-live-data-size")
            .ok()
            .flatten()
            .unwrap_or(0)
    }
}

impl From<prost::DecodeError> for Error {
    fn from(err: prost::DecodeError) -> Self {
        Error::corruption("protobuf record", err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_respects_bounds_and_direction() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        for key in [b"a", b"b", b"c", b"d"] {
            engine.put(CF_DATA, key, b"v", false).unwrap();
        }
        let collect = |start: &[u8], end: &[u8], reverse| {
            let mut keys = Vec::new();
            engine
                .scan(CF_DATA, start, end, reverse, |k, _| {
                    keys.push(k.to_vec());
                    Ok(true)
                })
                .unwrap();
            keys
        };
        assert_eq!(
            collect(b"b", b"d", false),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(
            collect(b"b", b"d", true),
            vec![b"c".to_vec(), b"b".to_vec()]
        );
        assert_eq!(collect(b"b", b"", true).len(), 3);
    }

    #[test]
    fn the_raft_log_memtable_keeps_an_insert_position_per_range() {
        let dir = tempfile::tempdir().unwrap();
        drop(Engine::open(dir.path()).unwrap());
        let options_file = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("OPTIONS-")
            })
            .max()
            .unwrap();
        let options = std::fs::read_to_string(options_file).unwrap();
        let raft_section = options
            .split("[CFOptions \"")
            .find(|section| section.starts_with(&format!("{CF_RAFT}\"")))
            .unwrap();
        assert!(raft_section.contains(&format!(
            "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.{}",
            keys::RAFT_KEY_PREFIX_LEN
        )));
        assert!(raft_section.contains(&format!("write_buffer_size={}", 32 << 20)));
    }
}
