//! The systems under test behind one interface, so every workload runs the
//! same code against each.

mod etcd;
mod zdb;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

pub use etcd::EtcdBackend;
pub use zdb::ZdbBackend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Zdb,
    Etcd,
}

/// How to reach the system under test: all None is plaintext, no login.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Connect over TLS, trusting this CA certificate.
    pub ca_cert: Option<PathBuf>,
    /// A client certificate (and its key) naming the user.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// A user name and password to log in with.
    pub credentials: Option<(String, String)>,
}

/// A connection to the system under test; cheap to clone, one per client task.
#[derive(Clone)]
pub enum Backend {
    Zdb(ZdbBackend),
    // Boxed: the etcd client is far larger than the zdb one.
    Etcd(Box<EtcdBackend>),
}

impl Backend {
    pub async fn connect(
        target: Target,
        endpoints: &[String],
        timeout: Duration,
        security: &Security,
    ) -> Result<Self> {
        Ok(match target {
            Target::Zdb => Backend::Zdb(ZdbBackend::connect(endpoints, timeout, security)?),
            Target::Etcd => Backend::Etcd(Box::new(
                EtcdBackend::connect(endpoints, timeout, security).await?,
            )),
        })
    }

    /// A linearizable read of one key.
    pub async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>> {
        match self {
            Backend::Zdb(zdb) => zdb.get(key).await,
            Backend::Etcd(etcd) => etcd.get(key).await,
        }
    }

    pub async fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        match self {
            Backend::Zdb(zdb) => zdb.put(key, value).await,
            Backend::Etcd(etcd) => etcd.put(key, value).await,
        }
    }

    /// Reads up to `count` records in `[start, end)`; returns how many came back.
    pub async fn scan(&self, start: Vec<u8>, end: Vec<u8>, count: usize) -> Result<usize> {
        match self {
            Backend::Zdb(zdb) => zdb.scan(start, end, count).await,
            Backend::Etcd(etcd) => etcd.scan(start, end, count).await,
        }
    }

    /// Writes `new` if the key holds `expected` (None: is absent).
    pub async fn compare_and_swap(
        &self,
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        new: Vec<u8>,
    ) -> Result<CasResult> {
        match self {
            Backend::Zdb(zdb) => zdb.compare_and_swap(key, expected, new).await,
            Backend::Etcd(etcd) => etcd.compare_and_swap(key, expected, new).await,
        }
    }
}

impl Backend {
    /// Reads `keys` and writes each back changed, atomically: a
    /// serializable transaction on zdb (retried on conflicts); on etcd one
    /// Txn comparing every key's revision, retried until none changed.
    pub async fn read_modify_write(&self, keys: Vec<Vec<u8>>, value: &[u8]) -> Result<()> {
        match self {
            Backend::Zdb(zdb) => zdb.read_modify_write(keys, value).await,
            Backend::Etcd(etcd) => etcd.read_modify_write(keys, value).await,
        }
    }

    /// Writes every key in one atomic batch (an etcd Txn of puts).
    pub async fn batch_put(&self, keys: Vec<Vec<u8>>, value: Vec<u8>) -> Result<()> {
        match self {
            Backend::Zdb(zdb) => zdb.batch_put(keys, value).await,
            Backend::Etcd(etcd) => etcd.batch_put(keys, value).await,
        }
    }
}

/// Whether a compare-and-swap wrote; if not, what the key held instead, so
/// that a retry needs no extra read.
pub struct CasResult {
    pub succeeded: bool,
    pub current: Option<Vec<u8>>,
}
