//! Encryption at rest inside the engine: which column families hold sealed
//! values, sealing them on write and opening them on read, and the data
//! directory's own record of whether it is encrypted.
//!
//! Values are sealed one by one (AES-256-GCM, see
//! `zdb_security::encryption`), with the RocksDB key as associated data: a
//! sealed value copied under another key does not open. Keys stay in the
//! clear: RocksDB orders them, and ranges, scans and the Raft log's
//! truncation all depend on that order.
//!
//! Sealing is local to a node: each node has its own data keys, and the
//! sealed bytes differ from replica to replica (random nonces). Nothing
//! replicas must agree on reads sealed bytes: apply, compare-and-swap,
//! conflict checks and snapshots all see opened values, and a snapshot
//! travels in the clear (inside the transport's TLS) to be sealed again by
//! the receiver with its own keys.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocksdb::DB;
use zdb_security::encryption::{KeyRing, MasterKey};

use super::keys::{self, CF_DATA, CF_LOCKS, CF_META, CF_RAFT, CF_SPAN_LOCKS, CF_SYSTEM, CF_TXN};
use super::Engine;
use crate::config::EncryptionConfig;
use crate::error::{Error, Result};

/// The column families whose values are sealed: user data (every version),
/// transactions' staged values and locks, span locks and transaction
/// records, the Raft log (its entries carry user values; hard and apply
/// state are sealed too, since the family is sealed whole), and the meta
/// range's system keyspace (routing table, registry, users and password
/// hashes, the token signing secret). Left in the clear: `CF_META` (this
/// node's identity, storage format, range descriptors, peer store ids) and
/// `CF_TTL` (its values are empty; its keys are expiry time and user key).
pub const SEALED_FAMILIES: [&str; 6] =
    [CF_DATA, CF_LOCKS, CF_SPAN_LOCKS, CF_TXN, CF_RAFT, CF_SYSTEM];

/// What the marker in `CF_META` says: values are sealed in this layout.
const MARKER: &[u8] = b"aes-256-gcm/1";

/// Name of the data key file, in the node's data directory.
pub const KEY_FILE_NAME: &str = "data-keys";

pub fn is_sealed(cf: &str) -> bool {
    SEALED_FAMILIES.contains(&cf)
}

/// What opening an encrypted engine takes: the master key (and the
/// previous one, during a master key rotation) and where the data keys are.
#[derive(Debug)]
pub struct Encryption {
    pub master: MasterKey,
    pub previous: Option<MasterKey>,
    pub key_file: PathBuf,
}

impl Encryption {
    /// Reads the master key files the node was given; the data key file is
    /// `KEY_FILE_NAME` in `data_dir`.
    pub fn load(config: &EncryptionConfig, data_dir: &Path) -> Result<Self> {
        Ok(Encryption {
            master: MasterKey::load(&config.key_file)?,
            previous: config
                .previous_key_file
                .as_deref()
                .map(MasterKey::load)
                .transpose()?,
            key_file: data_dir.join(KEY_FILE_NAME),
        })
    }
}

impl Engine {
    /// Opens the node's engine in `data_dir` (RocksDB in `db`, the data key
    /// file beside it), encrypted at rest if `encryption` is given.
    pub fn open_node(data_dir: &Path, encryption: Option<&EncryptionConfig>) -> Result<Engine> {
        let encryption = encryption
            .map(|config| Encryption::load(config, data_dir))
            .transpose()?;
        Engine::open_with(&data_dir.join("db"), encryption)
    }

    /// The key ring that seals `cf`'s values, if any. Without encryption
    /// this is one branch on every read and write.
    #[inline]
    pub(super) fn sealer(&self, cf: &str) -> Option<&KeyRing> {
        match &self.keys {
            None => None,
            Some(ring) if is_sealed(cf) => Some(ring),
            Some(_) => None,
        }
    }

    /// The bytes to store for `value` under `key` in `cf`.
    #[inline]
    pub(super) fn seal<'v>(
        &self,
        cf: &'static str,
        key: &[u8],
        value: &'v [u8],
    ) -> Result<Cow<'v, [u8]>> {
        match self.sealer(cf) {
            None => Ok(Cow::Borrowed(value)),
            Some(ring) => Ok(Cow::Owned(ring.seal(value, key)?)),
        }
    }

    /// The value stored as `stored` under `key` in `cf`.
    #[inline]
    pub(super) fn open_owned(
        &self,
        cf: &'static str,
        key: &[u8],
        stored: Vec<u8>,
    ) -> Result<Vec<u8>> {
        match self.sealer(cf) {
            None => Ok(stored),
            Some(ring) => Ok(ring.open(&stored, key)?),
        }
    }
}

/// Decides at open whether the data directory is encrypted, and returns its
/// key ring if so. Refused, so that plaintext and sealed values never mix:
/// - an encrypted directory opened without a master key;
/// - an encrypted directory whose data key file is gone;
/// - a directory holding plaintext data opened with a master key (only an
///   empty one may become encrypted).
pub(super) fn settle(
    db: &DB,
    path: &Path,
    encryption: Option<Encryption>,
) -> Result<Option<Arc<KeyRing>>> {
    let meta = db
        .cf_handle(CF_META)
        .expect("column family meta is created at open");
    let marked = db.get_cf(meta, keys::ENCRYPTION_MARKER_KEY)?.is_some();
    match (marked, encryption) {
        (false, None) => Ok(None),
        (true, None) => {
            let key_file = path.with_file_name(KEY_FILE_NAME);
            let wrapped_by = KeyRing::master_key_id_of(&key_file)
                .map(|id| format!(", wrapped by master key {id}"))
                .unwrap_or_default();
            Err(Error::Config(format!(
                "the data directory {} is encrypted at rest (data keys in {}{wrapped_by}): start \
                 the node with --encryption-key-file FILE (ZDB_ENCRYPTION_KEY_FILE), the master \
                 key it was encrypted with",
                path.display(),
                key_file.display()
            )))
        }
        (true, Some(encryption)) => {
            if !encryption.key_file.exists() {
                return Err(Error::Config(format!(
                    "the data directory {} is encrypted at rest but its data key file {} is \
                     missing: restore that file (from the backup of this data directory); \
                     without it the data cannot be read, and the node must be replaced by a \
                     new one on an empty data directory",
                    path.display(),
                    encryption.key_file.display()
                )));
            }
            let ring = open_ring(encryption)?;
            Ok(Some(ring))
        }
        (false, Some(encryption)) => {
            if let Some(what) = plaintext_data(db)? {
                return Err(Error::Config(format!(
                    "the data directory {} holds data stored in the clear ({what}); encryption \
                     at rest is only turned on for an empty data directory (zdb does not mix \
                     plaintext and encrypted values): start this node without \
                     --encryption-key-file, or add a new node with encryption on an empty data \
                     directory and decommission this one",
                    path.display()
                )));
            }
            // The key file first, then the marker: a crash in between
            // leaves an empty directory and a key file the next start
            // takes up again.
            let ring = open_ring(encryption)?;
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(meta, keys::ENCRYPTION_MARKER_KEY, MARKER);
            db.write_opt(batch, &opts)?;
            tracing::info!(path = %path.display(), "encryption at rest turned on for a new data directory");
            Ok(Some(ring))
        }
    }
}

fn open_ring(encryption: Encryption) -> Result<Arc<KeyRing>> {
    let ring =
        KeyRing::open_or_create(&encryption.key_file, encryption.master, encryption.previous)?;
    let status = ring.status();
    tracing::info!(
        master_key_id = %status.master_key_id,
        data_key_id = status.current_key_id,
        data_keys = status.data_keys,
        "encryption at rest on"
    );
    Ok(Arc::new(ring))
}

/// What makes the directory not empty, if anything: a node identity, or
/// any key in a family that would be sealed.
fn plaintext_data(db: &DB) -> Result<Option<String>> {
    let meta = db
        .cf_handle(CF_META)
        .expect("column family meta is created at open");
    if db.get_cf(meta, keys::NODE_IDENTITY_KEY)?.is_some() {
        return Ok(Some("a node identity".into()));
    }
    for cf in SEALED_FAMILIES {
        let handle = db.cf_handle(cf).expect("every family is created at open");
        let mut iter = db.raw_iterator_cf(handle);
        iter.seek_to_first();
        if iter.valid() {
            return Ok(Some(format!("keys in column family {cf}")));
        }
        iter.status()?;
    }
    Ok(None)
}

/// Rotates the node's data key whenever the current one is older than
/// `period`, until `stop` turns true. Rotation costs a small synced file
/// write and nothing else: old keys stay to open old values.
pub async fn rotate_periodically(
    engine: Engine,
    config: Option<EncryptionConfig>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (Some(ring), Some(config)) = (engine.key_ring().cloned(), config) else {
        return;
    };
    let period = config.data_key_rotation_period;
    // Checked often enough to rotate close to the period, rarely enough to
    // cost nothing.
    let check = (period / 100).clamp(Duration::from_secs(1), Duration::from_secs(600));
    loop {
        let ring = ring.clone();
        let rotated = tokio::task::spawn_blocking(move || ring.rotate_if_older(period, now_ms()))
            .await
            .unwrap_or_else(|err| {
                Err(zdb_security::Error::Encryption(format!(
                    "rotation task failed: {err}"
                )))
            });
        match rotated {
            Ok(true) => tracing::info!("data key rotated after its period"),
            Ok(false) => {}
            Err(err) => tracing::error!(error = %err, "cannot rotate the data key"),
        }
        tokio::select! {
            _ = tokio::time::sleep(check) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
impl Engine {
    /// Writes every memtable to table files, so that a test sees what
    /// RocksDB keeps on disk beyond its write-ahead log.
    pub fn flush_all(&self) -> Result<()> {
        for cf in keys::ALL_FAMILIES {
            self.db().flush_cf(self.cf(cf))?;
        }
        Ok(())
    }

    /// The bytes stored for `key`, as RocksDB holds them (sealed or not).
    pub fn stored(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db().get_cf(self.cf(cf), key)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ReadView, CF_TTL};

    struct Dir {
        dir: tempfile::TempDir,
    }

    impl Dir {
        fn new() -> Dir {
            let dir = Dir {
                dir: tempfile::tempdir().unwrap(),
            };
            fs::write(dir.key("master.key"), MasterKey::generate_hex()).unwrap();
            dir
        }

        fn key(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        fn config(&self, key: &str) -> EncryptionConfig {
            EncryptionConfig {
                key_file: self.key(key),
                previous_key_file: None,
                data_key_rotation_period: EncryptionConfig::DEFAULT_ROTATION_PERIOD,
            }
        }

        fn open(&self, key: Option<&str>) -> Result<Engine> {
            Engine::open_node(self.dir.path(), key.map(|key| self.config(key)).as_ref())
        }
    }

    use std::fs;

    #[test]
    fn values_are_sealed_and_keys_stay_in_the_clear() {
        let dir = Dir::new();
        let engine = dir.open(Some("master.key")).unwrap();
        let mut batch = engine.batch();
        batch.put(CF_DATA, b"user-key", b"user-value");
        batch.put(CF_TTL, b"ttl-key", b"");
        batch.put(CF_META, b"meta-key", b"meta-value");
        engine.write(batch, true).unwrap();

        let stored = engine.stored(CF_DATA, b"user-key").unwrap().unwrap();
        assert_eq!(KeyRing::key_id_of(&stored), Some(1));
        assert!(!stored.windows(10).any(|w| w == b"user-value"));
        assert_eq!(
            engine.get(CF_DATA, b"user-key").unwrap(),
            Some(b"user-value".to_vec())
        );
        let mut seen = Vec::new();
        engine
            .scan(CF_DATA, b"", b"", false, |key, value| {
                seen.push((key.to_vec(), value.to_vec()));
                Ok(true)
            })
            .unwrap();
        assert_eq!(seen, vec![(b"user-key".to_vec(), b"user-value".to_vec())]);
        let mut iter = engine.raw_iterator(CF_DATA, b"", b"");
        iter.seek_to_first();
        assert_eq!(iter.key(), Some(&b"user-key"[..]));
        assert_eq!(iter.value().unwrap().as_deref(), Some(&b"user-value"[..]));
        let snapshot = engine.snapshot();
        assert_eq!(
            snapshot.get(CF_DATA, b"user-key").unwrap(),
            Some(b"user-value".to_vec())
        );

        // Node-local bookkeeping and the TTL index stay in the clear.
        assert_eq!(
            engine.stored(CF_META, b"meta-key").unwrap(),
            Some(b"meta-value".to_vec())
        );
        assert_eq!(engine.stored(CF_TTL, b"ttl-key").unwrap(), Some(Vec::new()));
    }

    #[test]
    fn an_engine_without_keys_stores_values_as_given() {
        let dir = Dir::new();
        let engine = dir.open(None).unwrap();
        engine.put(CF_DATA, b"k", b"v", false).unwrap();
        assert_eq!(engine.stored(CF_DATA, b"k").unwrap(), Some(b"v".to_vec()));
        assert!(engine.key_ring().is_none());
    }

    #[test]
    fn a_sealed_value_moved_to_another_key_does_not_open() {
        let dir = Dir::new();
        let engine = dir.open(Some("master.key")).unwrap();
        engine.put(CF_DATA, b"a", b"secret", false).unwrap();
        let stored = engine.stored(CF_DATA, b"a").unwrap().unwrap();
        engine
            .db()
            .put_cf(engine.cf(CF_DATA), b"b", &stored)
            .unwrap();
        let err = engine.get(CF_DATA, b"b").unwrap_err();
        assert!(
            matches!(&err, Error::Encryption(inner) if matches!(**inner, zdb_security::Error::Tampered { .. })),
            "{err}"
        );
    }

    #[test]
    fn an_encrypted_directory_refuses_to_open_without_its_key() {
        let dir = Dir::new();
        let engine = dir.open(Some("master.key")).unwrap();
        engine.put(CF_DATA, b"k", b"v", true).unwrap();
        drop(engine);

        let err = dir.open(None).err().unwrap().to_string();
        let master = MasterKey::load(&dir.key("master.key")).unwrap();
        assert!(
            err.contains("is encrypted at rest")
                && err.contains("--encryption-key-file")
                && err.contains(master.id()),
            "{err}"
        );

        fs::write(dir.key("other.key"), MasterKey::generate_hex()).unwrap();
        let err = dir.open(Some("other.key")).err().unwrap();
        assert!(
            matches!(&err, Error::Encryption(inner) if matches!(**inner, zdb_security::Error::WrongMasterKey { .. })),
            "{err}"
        );

        let engine = dir.open(Some("master.key")).unwrap();
        assert_eq!(engine.get(CF_DATA, b"k").unwrap(), Some(b"v".to_vec()));
        drop(engine);

        fs::remove_file(dir.key(KEY_FILE_NAME)).unwrap();
        let err = dir.open(Some("master.key")).err().unwrap().to_string();
        assert!(
            err.contains("data key file") && err.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn only_an_empty_plaintext_directory_may_become_encrypted() {
        let dir = Dir::new();
        let engine = dir.open(None).unwrap();
        // What a first start writes before anything else: still empty.
        engine.check_format().unwrap();
        drop(engine);
        let engine = dir.open(Some("master.key")).unwrap();
        engine.put(CF_DATA, b"k", b"v", true).unwrap();
        drop(engine);

        let plain = Dir::new();
        let engine = plain.open(None).unwrap();
        engine.put(CF_RAFT, b"log", b"entry", true).unwrap();
        drop(engine);
        let err = plain.open(Some("master.key")).err().unwrap().to_string();
        assert!(
            err.contains("stored in the clear") && err.contains("raft"),
            "{err}"
        );
        assert!(
            !plain.key(KEY_FILE_NAME).exists(),
            "no key file for a refused directory"
        );
        // Still readable as it was.
        let engine = plain.open(None).unwrap();
        assert_eq!(
            engine.get(CF_RAFT, b"log").unwrap(),
            Some(b"entry".to_vec())
        );
    }

    #[test]
    fn the_master_key_is_rotated_by_a_restart_with_the_previous_one() {
        let dir = Dir::new();
        let engine = dir.open(Some("master.key")).unwrap();
        engine.put(CF_DATA, b"k", b"v", true).unwrap();
        drop(engine);
        fs::write(dir.key("new.key"), MasterKey::generate_hex()).unwrap();
        let config = EncryptionConfig {
            previous_key_file: Some(dir.key("master.key")),
            ..dir.config("new.key")
        };
        let engine = Engine::open_node(dir.dir.path(), Some(&config)).unwrap();
        let new_id = MasterKey::load(&dir.key("new.key")).unwrap();
        assert_eq!(engine.key_ring().unwrap().master_key_id(), new_id.id());
        assert_eq!(engine.get(CF_DATA, b"k").unwrap(), Some(b"v".to_vec()));
        drop(engine);
        // The old key alone no longer opens it; the new one alone does.
        assert!(dir.open(Some("master.key")).is_err());
        let engine = dir.open(Some("new.key")).unwrap();
        assert_eq!(engine.get(CF_DATA, b"k").unwrap(), Some(b"v".to_vec()));
    }

    #[test]
    fn a_bad_master_key_file_is_named() {
        let dir = Dir::new();
        fs::write(dir.key("short.key"), "abcd").unwrap();
        let err = dir.open(Some("short.key")).err().unwrap().to_string();
        assert!(err.contains("short.key") && err.contains("64 hex"), "{err}");
        let err = dir.open(Some("absent.key")).err().unwrap().to_string();
        assert!(err.contains("absent.key"), "{err}");
    }
}
