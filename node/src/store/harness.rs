//! Several stores in one process, for deterministic tests of the store:
//! a manual clock, each pass run by the test, and a network the test
//! controls (it delivers, holds or drops each message). Writes are made
//! durable inline at the end of each pass.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use raft::eraftpb::{Message, MessageType};
use tokio::sync::oneshot;
use zdb_proto::v1::{
    command, stored_mutation, Command, RangeDescriptor, RequestHeader, SplitCommand,
    StoredMutation, StoredPut, WriteBatchCommand,
};
use zdb_security::encryption::MasterKey;

use super::msg::{ReadKind, StoreMsg, Target};
use super::{Durability, MessageSink, Store, StoreParts};
use crate::apply::Outcome;
use crate::clock::{Clock, ManualClock};
use crate::config::{EncryptionConfig, RaftConfig};
use crate::engine::{Engine, ReadView, CF_DATA};
use crate::error::Result;
use crate::health::Health;
use crate::mvcc::{Versions, LATEST};
use crate::transport::PeerDirectory;

/// A message on the wire: from, to, range, message.
pub type InFlight = (u64, u64, u64, Message);

/// Decides what happens to a message: deliver it now, or hold it until the
/// rule changes.
pub type Rule = Box<dyn Fn(&InFlight) -> bool>;

#[derive(Clone, Default)]
struct Wire(Arc<Mutex<VecDeque<InFlight>>>);

struct WireSink {
    from: u64,
    wire: Wire,
}

impl MessageSink for WireSink {
    fn send(&self, messages: Vec<(u64, Message)>) {
        let mut wire = self.wire.0.lock().expect("wire lock");
        for (range_id, message) in messages {
            wire.push_back((self.from, message.to, range_id, message));
        }
    }
}

pub struct Node {
    pub store: Store,
    pub sender: mpsc::Sender<StoreMsg>,
    pub engine: Engine,
}

pub struct Harness {
    _dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub raft: RaftConfig,
    pub nodes: BTreeMap<u64, Node>,
    wire: Wire,
    /// Messages the rule held back, delivered once it lets them through.
    held: VecDeque<InFlight>,
    rule: Rule,
    addresses: BTreeMap<u64, String>,
    /// Each node encrypts at rest with its own master key.
    encrypted: bool,
}

pub type Answer = oneshot::Receiver<Result<Outcome>>;

impl Harness {
    /// `founders` bootstrap the cluster; `others` start empty (they join
    /// as learners and catch up by snapshot).
    pub fn new(founders: &[u64], others: &[u64], raft: RaftConfig) -> Harness {
        Harness::build(founders, others, raft, false)
    }

    /// Like [`new`](Self::new), every node encrypting at rest with a master
    /// key of its own (`master.key` in its data directory).
    pub fn new_encrypted(founders: &[u64], others: &[u64], raft: RaftConfig) -> Harness {
        Harness::build(founders, others, raft, true)
    }

    fn build(founders: &[u64], others: &[u64], raft: RaftConfig, encrypted: bool) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let addresses: BTreeMap<u64, String> = founders
            .iter()
            .chain(others)
            .map(|&id| (id, format!("node-{id}:1")))
            .collect();
        let mut harness = Harness {
            _dir: dir,
            clock: ManualClock::default(),
            raft,
            nodes: BTreeMap::new(),
            wire: Wire::default(),
            held: VecDeque::new(),
            rule: Box::new(|_| true),
            addresses,
            encrypted,
        };
        let members: BTreeMap<u64, String> = founders
            .iter()
            .map(|id| (*id, harness.addresses[id].clone()))
            .collect();
        for &id in founders.iter().chain(others) {
            let engine = harness.open_engine(id).expect("engine opens");
            if founders.contains(&id) {
                super::bootstrap(&engine, "harness", &members).expect("bootstrap");
            }
            harness.start(id, engine);
        }
        harness
    }

    /// Where `node` keeps its data: RocksDB in `db`, and with encryption
    /// its master key and data key file.
    pub fn data_dir(&self, node: u64) -> std::path::PathBuf {
        self._dir.path().join(format!("node-{node}"))
    }

    fn open_engine(&self, node: u64) -> Result<Engine> {
        let dir = self.data_dir(node);
        if !self.encrypted {
            return Engine::open(&dir.join("db"));
        }
        std::fs::create_dir_all(&dir)?;
        let key_file = dir.join("master.key");
        if !key_file.exists() {
            std::fs::write(&key_file, MasterKey::generate_hex())?;
        }
        let config = EncryptionConfig {
            key_file,
            previous_key_file: None,
            data_key_rotation_period: EncryptionConfig::DEFAULT_ROTATION_PERIOD,
        };
        Engine::open_node(&dir, Some(&config))
    }

    fn start(&mut self, id: u64, engine: Engine) {
        let (sender, inbox) = mpsc::channel();
        let parts = StoreParts {
            node_id: id,
            engine: engine.clone(),
            raft: self.raft.clone(),
            ttl_sweep_interval: Duration::from_secs(3600),
            sink: Box::new(WireSink {
                from: id,
                wire: self.wire.clone(),
            }),
            peers: Arc::new(PeerDirectory::new(
                engine.clone(),
                self.addresses.clone(),
                Vec::new(),
            )),
            logger: slog::Logger::root(slog::Discard, slog::o!()),
            clock: Arc::new(self.clock.clone()),
            health: Health::default(),
            horizon: Arc::default(),
            meta_lease: Arc::default(),
        };
        let store = Store::open(parts, inbox, Durability::Inline).expect("store opens");
        self.nodes.insert(
            id,
            Node {
                store,
                sender,
                engine,
            },
        );
    }

    /// Stops `node` (its store and engine closed, as after a crash: every
    /// pass was durable at its end) and starts it again from its data
    /// directory.
    pub fn restart(&mut self, node: u64) {
        drop(self.nodes.remove(&node).expect("the node runs"));
        let engine = self.open_engine(node).expect("engine reopens");
        self.start(node, engine);
    }

    /// From now on only messages `rule` accepts are delivered; the others
    /// wait (in order) until a later rule accepts them.
    pub fn set_rule(&mut self, rule: impl Fn(&InFlight) -> bool + 'static) {
        self.rule = Box::new(rule);
    }

    pub fn deliver_all(&mut self) {
        self.rule = Box::new(|_| true);
    }

    /// One round: every node handles what it received and runs a pass,
    /// then the network delivers what the rule lets through. The clock
    /// moves one tick when `tick` is set.
    /// Returns how many messages the network delivered.
    pub fn round(&mut self, tick: bool) -> usize {
        if tick {
            self.clock.advance(self.raft.tick);
        }
        let now = self.clock.now();
        for node in self.nodes.values_mut() {
            while let Ok(msg) = node.store.inbox.try_recv() {
                node.store.handle(msg).expect("store handles its message");
            }
            node.store.run_pass(now).expect("pass succeeds");
        }
        self.deliver()
    }

    fn deliver(&mut self) -> usize {
        let mut delivered = 0;
        let sent: Vec<InFlight> = self.wire.0.lock().expect("wire lock").drain(..).collect();
        let mut waiting = std::mem::take(&mut self.held);
        waiting.extend(sent);
        for flight in waiting {
            if !(self.rule)(&flight) {
                self.held.push_back(flight);
                continue;
            }
            delivered += 1;
            let (from, to, range_id, message) = flight;
            let snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            if let Some(node) = self.nodes.get(&to) {
                let _ = node.sender.send(StoreMsg::Raft(vec![(range_id, message)]));
            }
            if snapshot {
                if let Some(sender) = self.nodes.get(&from) {
                    let _ = sender.sender.send(StoreMsg::SnapshotSent {
                        range_id,
                        to,
                        ok: true,
                    });
                }
            }
        }
        delivered
    }

    /// Runs rounds (ticking) until `done` holds, at most `rounds` of them.
    pub fn run_until(&mut self, what: &str, rounds: usize, mut done: impl FnMut(&Harness) -> bool) {
        for _ in 0..rounds {
            if done(self) {
                return;
            }
            self.round(true);
        }
        assert!(done(self), "not reached within {rounds} rounds: {what}");
    }

    /// Runs rounds without ticking until nothing moves: every message
    /// the rule lets through delivered and handled.
    pub fn settle(&mut self) {
        for _ in 0..50 {
            let delivered = self.round(false);
            let quiet = delivered == 0
                && self.wire.0.lock().expect("wire lock").is_empty()
                && self.nodes.values().all(|node| {
                    node.store.unsynced.is_empty()
                        && node
                            .store
                            .replicas
                            .values()
                            .all(|replica| !replica.has_ready())
                });
            if quiet {
                return;
            }
        }
    }

    /// Makes `node` campaign for `range_id` and runs until it leads.
    pub fn elect(&mut self, node: u64, range_id: u64) {
        self.nodes
            .get_mut(&node)
            .and_then(|n| n.store.replicas.get_mut(&range_id))
            .expect("the node holds the range")
            .campaign()
            .expect("campaign starts");
        self.run_until(&format!("node {node} leads range {range_id}"), 100, |h| {
            h.leads(node, range_id)
        });
        // The new leader's first entry commits and applies everywhere.
        self.settle();
    }

    pub fn leads(&self, node: u64, range_id: u64) -> bool {
        self.nodes[&node]
            .store
            .replicas
            .get(&range_id)
            .is_some_and(|replica| replica.is_leader())
    }

    pub fn descriptor(&self, node: u64, range_id: u64) -> Option<RangeDescriptor> {
        self.nodes[&node]
            .store
            .replicas
            .get(&range_id)
            .filter(|replica| replica.is_initialized())
            .map(|replica| replica.descriptor().clone())
    }

    /// Proposes `command` on `node` under `header` (the range and epoch a
    /// client would name); the answer arrives once it applies.
    pub fn propose(
        &mut self,
        node: u64,
        header: RequestHeader,
        keys: Vec<Vec<u8>>,
        kind: command::Kind,
    ) -> Answer {
        self.propose_at(node, header, keys, kind, 0)
    }

    /// Proposes with the timestamp `ts` the oracle would have given it.
    pub fn propose_at(
        &mut self,
        node: u64,
        header: RequestHeader,
        keys: Vec<Vec<u8>>,
        kind: command::Kind,
        ts: u64,
    ) -> Answer {
        let (responder, answer) = oneshot::channel();
        let msg = StoreMsg::Propose {
            target: Target {
                header: Some(header),
                keys,
                span_end: None,
            },
            command: Command {
                kind: Some(kind),
                ts,
                ..Default::default()
            },
            ts_taken_at: None,
            responder,
        };
        self.nodes[&node].sender.send(msg).expect("store inbox");
        answer
    }

    /// Asks `node` for a linearizable read of `key` at `read_ts`.
    pub fn read_at(
        &mut self,
        node: u64,
        range: &RangeDescriptor,
        key: &str,
        read_ts: u64,
    ) -> oneshot::Receiver<Result<()>> {
        let (responder, answer) = oneshot::channel();
        let msg = StoreMsg::Read {
            target: Target {
                header: Some(header(range)),
                keys: vec![key.into()],
                span_end: None,
            },
            kind: ReadKind::Linearizable,
            read_ts,
            responder,
        };
        self.nodes[&node].sender.send(msg).expect("store inbox");
        answer
    }

    /// The value of `key` on `node` as of `ts`.
    pub fn value_at(&self, node: u64, key: &str, ts: u64) -> Option<Vec<u8>> {
        Versions::new(&self.nodes[&node].engine)
            .get(key.as_bytes(), ts, 0)
            .expect("read")
    }

    /// A put of `key`, proposed to `range` as the client sees it.
    pub fn put(&mut self, node: u64, range: &RangeDescriptor, key: &str, value: &str) -> Answer {
        self.propose(node, header(range), vec![key.into()], put(key, value))
    }

    pub fn split(
        &mut self,
        node: u64,
        range: &RangeDescriptor,
        at: &str,
        new_range_id: u64,
    ) -> Answer {
        let split = command::Kind::Split(SplitCommand {
            split_key: at.into(),
            new_range_id,
        });
        self.propose(node, header(range), Vec::new(), split)
    }

    /// Every live key and its latest value on `node`.
    pub fn data(&self, node: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut data = BTreeMap::new();
        Versions::new(&self.nodes[&node].engine)
            .scan((b"", b""), LATEST, false, 0, |key, value| {
                data.insert(key, value);
                Ok(true)
            })
            .expect("scan");
        data
    }

    /// Every version `node` stores, as stored (key with timestamp, record).
    pub fn versions(&self, node: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut versions = BTreeMap::new();
        self.nodes[&node]
            .engine
            .scan(CF_DATA, b"", b"", false, |key, raw| {
                versions.insert(key.to_vec(), raw.to_vec());
                Ok(true)
            })
            .expect("scan");
        versions
    }

    /// Runs rounds (ticking: followers learn of commits with heartbeats)
    /// until every node holds the same data.
    pub fn converge(&mut self) {
        self.run_until("every replica holds the same data", 100, |h| {
            let first = h.versions(*h.nodes.keys().next().expect("a node"));
            h.nodes.keys().all(|&node| h.versions(node) == first)
        });
    }

    /// Asserts that every node holds the same versions.
    pub fn assert_replicas_identical(&self) {
        let mut nodes = self.nodes.keys();
        let first = *nodes.next().expect("a node");
        let expected = self.versions(first);
        for &other in nodes {
            assert_eq!(
                self.versions(other),
                expected,
                "node {other} holds other data than node {first}"
            );
        }
    }
}

pub fn header(range: &RangeDescriptor) -> RequestHeader {
    RequestHeader {
        range_id: range.range_id,
        epoch: range.epoch,
    }
}

pub fn put(key: &str, value: &str) -> command::Kind {
    command::Kind::Write(WriteBatchCommand {
        mutations: vec![StoredMutation {
            op: Some(stored_mutation::Op::Put(StoredPut {
                key: key.into(),
                value: value.into(),
                expire_at_ms: 0,
            })),
        }],
    })
}

/// The answer, which must have arrived.
pub fn answered(answer: &mut Answer) -> Result<Outcome> {
    answer.try_recv().expect("the proposal was answered")
}
