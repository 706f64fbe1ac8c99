//! The node's single RocksDB instance and the column families in it.
//!
//! Every write goes through a [`Batch`] and every read through a
//! [`ReadView`]: with a key ring (encryption at rest, see [`sealing`]) they
//! seal and open the values of the families that hold user data, and there
//! is no other way in, so no write site can forget to seal.

mod batch;
pub mod keys;
mod overlay;
pub mod sealing;
mod view;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Options, WriteOptions, DB,
};
use zdb_security::encryption::KeyRing;

use crate::error::{Error, Result};
use crate::metrics;

pub use batch::Batch;
pub use keys::{CF_DATA, CF_LOCKS, CF_META, CF_RAFT, CF_SPAN_LOCKS, CF_SYSTEM, CF_TTL, CF_TXN};
pub use overlay::OverlayBatch;
pub use sealing::Encryption;
pub use view::{RawIter, ReadView, Snapshot};

/// Version 2: every user key is stored as versions (see `mvcc::keys`).
const STORAGE_FORMAT: u32 = 2;

/// Shared handle to the node's RocksDB. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Arc<DB>,
    /// The data keys that seal values at rest; None: stored in the clear.
    keys: Option<Arc<KeyRing>>,
}

impl Engine {
    /// Opens a data directory without encryption at rest (refused if it is
    /// encrypted).
    pub fn open(path: &Path) -> Result<Self> {
        Engine::open_with(path, None)
    }

    /// Opens a data directory, encrypted at rest if `encryption` is given
    /// (see [`sealing::settle`] for what is refused).
    pub fn open_with(path: &Path, encryption: Option<Encryption>) -> Result<Self> {
        let db = open_db(path)?;
        let keys = sealing::settle(&db, path, encryption)?;
        Ok(Engine {
            db: Arc::new(db),
            keys,
        })
    }
}

fn open_db(path: &Path) -> Result<DB> {
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

    // Locks live for the length of a transaction: almost every lookup
    // finds nothing, which the bloom filter answers.
    let mut small_opts = Options::default();
    small_opts.set_block_based_table_factory(&table);
    small_opts.set_write_buffer_size(16 << 20);

    let cfs = vec![
        ColumnFamilyDescriptor::new(CF_DATA, data_opts),
        ColumnFamilyDescriptor::new(CF_RAFT, raft_opts),
        ColumnFamilyDescriptor::new(CF_META, Options::default()),
        ColumnFamilyDescriptor::new(CF_TTL, Options::default()),
        ColumnFamilyDescriptor::new(CF_SYSTEM, Options::default()),
        ColumnFamilyDescriptor::new(CF_LOCKS, small_opts.clone()),
        ColumnFamilyDescriptor::new(CF_SPAN_LOCKS, small_opts.clone()),
        ColumnFamilyDescriptor::new(CF_TXN, small_opts),
    ];
    Ok(DB::open_cf_descriptors(&db_opts, path, cfs)?)
}

impl Engine {
    /// Records the storage format in a new data directory; refuses one
    /// written in another (user data without versions, from before MVCC).
    pub fn check_format(&self) -> Result<()> {
        let stored = self.db.get_cf(self.cf(CF_META), keys::STORAGE_FORMAT_KEY)?;
        let has_identity = self
            .db
            .get_cf(self.cf(CF_META), keys::NODE_IDENTITY_KEY)?
            .is_some();
        match stored {
            Some(format) if format == STORAGE_FORMAT.to_be_bytes() => Ok(()),
            None if !has_identity => self.put(
                CF_META,
                keys::STORAGE_FORMAT_KEY,
                &STORAGE_FORMAT.to_be_bytes(),
                true,
            ),
            _ => Err(Error::Config(format!(
                "the data directory holds user data in an older storage format (without \
                 versions); this zdb reads format {STORAGE_FORMAT} only: start the node on an \
                 empty data directory and copy the data over with a client"
            ))),
        }
    }

    /// The column family's handle; private: writes go through [`Batch`].
    fn cf(&self, name: &'static str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .unwrap_or_else(|| panic!("column family {name} is created at open"))
    }

    /// The raw RocksDB; private: reads go through [`ReadView`].
    fn db(&self) -> &DB {
        &self.db
    }

    /// The data keys, if values are encrypted at rest.
    pub fn key_ring(&self) -> Option<&Arc<KeyRing>> {
        self.keys.as_ref()
    }

    /// A new, empty write batch for this engine.
    pub fn batch(&self) -> Batch {
        Batch::new(self.clone())
    }

    /// Writes a batch; with `sync`, returns only once it is on stable
    /// storage. A batch that could not seal a value is not written.
    pub fn write(&self, batch: Batch, sync: bool) -> Result<()> {
        let batch = batch.into_write_batch()?;
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
        let mut batch = self.batch();
        batch.put(cf, key, value);
        self.write(batch, sync)
    }

    /// Compacts the whole data column family (after many versions were
    /// collected: their space returns only once compaction drops them).
    pub fn compact_data(&self) {
        self.db
            .compact_range_cf(self.cf(CF_DATA), None::<&[u8]>, None::<&[u8]>);
    }

    /// Bytes the data column family takes: its table files and memtables.
    pub fn data_bytes(&self) -> u64 {
        let property = |name: &str| {
            self.db
                .property_int_value_cf(self.cf(CF_DATA), name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        property("rocksdb.total-sst-files-size") + property("rocksdb.cur-size-all-mem-tables")
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
    fn a_directory_from_before_versions_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        engine.check_format().unwrap();
        engine.check_format().unwrap();
        let old = tempfile::tempdir().unwrap();
        let engine = Engine::open(old.path()).unwrap();
        engine
            .put(CF_META, keys::NODE_IDENTITY_KEY, b"someone", false)
            .unwrap();
        let err = engine.check_format().unwrap_err().to_string();
        assert!(err.contains("older storage format"), "{err}");
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
