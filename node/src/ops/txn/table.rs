//! The transactions this node coordinates.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zdb_proto::v1::{Isolation, LockKind};

use crate::error::{Error, Result};

/// What a transaction was begun with.
#[derive(Debug, Clone, Copy)]
pub struct TxnOptions {
    pub isolation: Isolation,
    pub lock_wait_timeout: Duration,
    pub lock_ttl: Duration,
    pub idle_timeout: Duration,
}

/// One running transaction.
#[derive(Debug)]
pub struct TxnState {
    pub id: u64,
    pub start_ts: u64,
    pub options: TxnOptions,
    pub last_used: Instant,
    /// Buffered writes (None: a delete), in key order.
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// When buffered puts expire (absent: never).
    pub expiries: BTreeMap<Vec<u8>, u64>,
    /// Keys read (serializable: locked and checked at commit).
    pub reads: BTreeSet<Vec<u8>>,
    /// Spans scanned, `[start, end)` (empty end: unbounded).
    pub spans: Vec<(Vec<u8>, Vec<u8>)>,
    /// Pessimistic locks held, and the value each key had when locked.
    pub locked: BTreeMap<Vec<u8>, (LockKind, Option<Vec<u8>>)>,
    /// The key whose lock decides the transaction's fate, once it has locks.
    pub primary: Option<Vec<u8>>,
    /// When the primary lock was last kept alive.
    pub kept_alive: Instant,
    /// Commit or rollback began: no more calls.
    pub ending: bool,
}

impl TxnState {
    pub fn new(id: u64, start_ts: u64, options: TxnOptions) -> Self {
        let now = Instant::now();
        TxnState {
            id,
            start_ts,
            options,
            last_used: now,
            writes: BTreeMap::new(),
            expiries: BTreeMap::new(),
            reads: BTreeSet::new(),
            spans: Vec::new(),
            locked: BTreeMap::new(),
            primary: None,
            kept_alive: now,
            ending: false,
        }
    }

    pub fn serializable(&self) -> bool {
        self.options.isolation == Isolation::Serializable
    }

    /// Refuses calls on a transaction that is ending.
    pub fn check_running(&self) -> Result<()> {
        if self.ending {
            return Err(Error::TxnNotFound(self.id));
        }
        Ok(())
    }

    pub fn touch(&mut self) {
        self.last_used = Instant::now();
    }

    pub fn idle(&self, now: Instant) -> bool {
        now.duration_since(self.last_used) > self.options.idle_timeout
    }
}

pub type SharedTxn = Arc<tokio::sync::Mutex<TxnState>>;

/// Running transactions by id. Cheap to clone.
#[derive(Clone, Default)]
pub struct Transactions {
    running: Arc<Mutex<HashMap<u64, SharedTxn>>>,
}

impl Transactions {
    pub fn insert(&self, state: TxnState) -> SharedTxn {
        let id = state.id;
        let shared = Arc::new(tokio::sync::Mutex::new(state));
        self.lock().insert(id, shared.clone());
        shared
    }

    pub fn get(&self, id: u64) -> Result<SharedTxn> {
        self.lock().get(&id).cloned().ok_or(Error::TxnNotFound(id))
    }

    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    pub fn all(&self) -> Vec<SharedTxn> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SharedTxn>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
