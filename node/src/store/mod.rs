//! The store: every range replica on this node, driven by one event loop.
//!
//! One pass of the loop takes every pending message, ticks the Raft groups
//! when a tick is due, then collects the Ready of every replica and writes
//! all of them — log entries, hard states, applied commands — in one RocksDB
//! write. The loop does not wait for the disk: the syncer thread fsyncs the
//! write-ahead log once for every pass written while the previous fsync ran
//! (group commit), and only then do the messages that depend on durability
//! leave and Raft learn that the entries are persisted. Committed entries
//! are applied only once persisted here, so answering clients right after
//! the write is safe.
//!
//! - `event_loop`: the thread that runs passes on the real clock;
//! - `inbox`: what each message asks of the store;
//! - `pass`: one pass (ticks, reads, Readies, the write, replies);
//! - `routing`: which local replica a request is for;
//! - `lifecycle`: replicas created by splits and messages, destroyed on removal;
//! - `meta_lease`: the meta range's lease, published for the oracle;
//! - `syncer`, `ttl`, `bootstrap`, `handle`, `msg`.
//!
//! The pass functions take the time from a [`Clock`] and hand messages to
//! a [`MessageSink`], so a test runs several stores in one process with a
//! manual clock and a transport it controls (`harness`).

mod bootstrap;
mod event_loop;
mod handle;
mod inbox;
mod lifecycle;
pub mod meta_lease;
pub mod msg;
mod pass;
mod routing;
mod syncer;
mod ttl;

#[cfg(test)]
mod encryption_tests;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use raft::eraftpb::Message;

pub use bootstrap::bootstrap;
pub use handle::StoreHandle;
pub use meta_lease::MetaLease;
use msg::StoreMsg;
use routing::not_leader;
use syncer::Syncer;

use crate::clock::Clock;
use crate::config::RaftConfig;
use crate::engine::Engine;
use crate::error::Result;
use crate::health::Health;
use crate::mvcc::Horizon;
use crate::range::descriptor;
use crate::range::Replica;
use crate::transport::PeerDirectory;

/// Where the store's outgoing Raft messages go, each with its range id.
/// Never blocks the event loop.
pub trait MessageSink: Send {
    fn send(&self, messages: Vec<(u64, Message)>);
}

/// Everything a store is made of.
pub struct StoreParts {
    pub node_id: u64,
    pub engine: Engine,
    pub raft: RaftConfig,
    pub ttl_sweep_interval: Duration,
    pub sink: Box<dyn MessageSink>,
    pub peers: Arc<PeerDirectory>,
    pub logger: slog::Logger,
    pub clock: Arc<dyn Clock>,
    pub health: Health,
    /// The oracle's time as this node knows it (for the TTL sweep's tombstones).
    pub horizon: Arc<Horizon>,
    pub meta_lease: Arc<MetaLease>,
}

/// How a pass's writes become durable.
enum Durability {
    /// The syncer thread fsyncs and reports back (`StoreMsg::Synced`).
    Syncer(Syncer),
    /// The pass fsyncs itself before it ends (in-process tests).
    #[cfg(test)]
    Inline,
}

pub struct Store {
    node_id: u64,
    logger: slog::Logger,
    engine: Engine,
    raft: RaftConfig,
    /// By range id: a pass writes the ranges' log entries in key order,
    /// which keeps RocksDB's memtable inserts cheap.
    replicas: BTreeMap<u64, Replica>,
    sink: Box<dyn MessageSink>,
    peers: Arc<PeerDirectory>,
    inbox: mpsc::Receiver<StoreMsg>,
    ttl: ttl::Sweeper,
    /// When a message from each peer node last arrived.
    last_heard: HashMap<u64, Instant>,
    durability: Durability,
    /// Token of the newest sync asked for, and of the newest one done.
    sync_requested: u64,
    synced: u64,
    /// Readies written but maybe not durable yet, oldest first.
    unsynced: VecDeque<Unsynced>,
    /// Messages of this pass, by range: they leave together, as one batch
    /// per peer, rather than one hand-over per range.
    outgoing: Vec<(u64, Message)>,
    /// Vote requests for ranges this node does not hold, kept until the
    /// end of the pass: a new range's leader campaigns as soon as it applies
    /// the split, so its request can arrive together with the commit that
    /// makes this node apply the split and create the range.
    early_votes: Vec<(u64, Message)>,
    clock: Arc<dyn Clock>,
    health: Health,
    horizon: Arc<Horizon>,
    meta_lease: Arc<MetaLease>,
    next_tick: Instant,
}

/// A Ready whose writes wait for the sync `token` before Raft may count
/// them as persisted and before the messages that depend on them may leave.
struct Unsynced {
    token: u64,
    range_id: u64,
    awaiting: crate::range::ready::AwaitingSync,
}

impl Store {
    /// Publishes the meta range's lease as it stands now.
    fn publish_meta_lease(&self) {
        let lease = self
            .replicas
            .get(&crate::meta::META_RANGE_ID)
            .and_then(Replica::lease);
        self.meta_lease.publish(lease);
    }

    /// Opens every replica found on disk.
    fn open(
        parts: StoreParts,
        inbox: mpsc::Receiver<StoreMsg>,
        durability: Durability,
    ) -> Result<Self> {
        let now = parts.clock.now();
        let mut replicas = BTreeMap::new();
        for range in descriptor::load_all(&parts.engine)? {
            let replica = Replica::open(
                parts.engine.clone(),
                parts.node_id,
                range,
                &parts.raft,
                &parts.logger,
                now,
            )?;
            replicas.insert(replica.range_id(), replica);
        }
        Ok(Store {
            node_id: parts.node_id,
            logger: parts.logger,
            engine: parts.engine,
            replicas,
            sink: parts.sink,
            peers: parts.peers,
            inbox,
            ttl: ttl::Sweeper::new(parts.ttl_sweep_interval, now),
            last_heard: HashMap::new(),
            durability,
            sync_requested: 0,
            synced: 0,
            unsynced: VecDeque::new(),
            outgoing: Vec::new(),
            early_votes: Vec::new(),
            next_tick: now + parts.raft.tick,
            raft: parts.raft,
            clock: parts.clock,
            health: parts.health,
            horizon: parts.horizon,
            meta_lease: parts.meta_lease,
        })
    }

    /// Opens the store and runs its event loop on a thread of its own. The
    /// thread ends when asked to (`StoreMsg::Shutdown`) or on an error it
    /// cannot go on after (the engine refused a write): the node must stop
    /// then, or it could acknowledge what is not durable.
    pub fn start(
        parts: StoreParts,
    ) -> Result<(
        StoreHandle,
        thread::JoinHandle<Result<()>>,
        mpsc::Sender<StoreMsg>,
    )> {
        let (sender, inbox) = mpsc::channel();
        let syncer = Syncer::start(parts.engine.clone(), sender.clone())?;
        let store = Store::open(parts, inbox, Durability::Syncer(syncer))?;
        let thread = thread::Builder::new()
            .name("zdb-store".into())
            .spawn(move || store.run())?;
        Ok((StoreHandle::new(sender.clone()), thread, sender))
    }
}
