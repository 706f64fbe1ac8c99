//! The nemesis: injects one fault at a time into the running cluster, holds
//! it for a while, heals it, and keeps a log of what it did.
//!
//! Process faults are real signals (SIGKILL, SIGSTOP/SIGCONT); network
//! faults are set on the proxies between nodes; topology changes (splits,
//! leader transfers, replica moves) go through the admin API, sometimes
//! with a SIGKILL at a random moment while they run.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use tokio::sync::{watch, Mutex};
use zdb_client::Client;
use zdb_proto::v1::{RaftRole, RangeDescriptor};

use crate::cluster::ChaosCluster;
use crate::proxy::LinkFault;

/// Which faults a run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Majority/minority splits, an isolated leader, bridges, one-way cuts.
    Partitions,
    /// SIGKILL and restart.
    Crashes,
    /// SIGSTOP, then SIGCONT.
    Pauses,
    /// Slow links, lossy links, connection resets.
    FlakyNetwork,
    /// Splits, leader transfers and replica moves (which need snapshots),
    /// with SIGKILLs at random moments during them.
    Topology,
    /// All of the above, at random.
    Mixed,
}

impl Schedule {
    pub const ALL: [Schedule; 6] = [
        Schedule::Partitions,
        Schedule::Crashes,
        Schedule::Pauses,
        Schedule::FlakyNetwork,
        Schedule::Topology,
        Schedule::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Schedule::Partitions => "partitions",
            Schedule::Crashes => "crashes",
            Schedule::Pauses => "pauses",
            Schedule::FlakyNetwork => "flaky-network",
            Schedule::Topology => "topology",
            Schedule::Mixed => "mixed",
        }
    }

    pub fn parse(name: &str) -> Option<Schedule> {
        Schedule::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One kind of fault, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Kill,
    Pause,
    PartitionHalves,
    IsolateLeader,
    Bridge,
    OneWayCut,
    SlowLinks,
    LossyLinks,
    ConnectionResets,
    Split,
    TransferLeader,
    MoveReplica,
    KillDuringTopologyChange,
}

/// What the nemesis did: each fault with when it began (ns since the run
/// began) and a description.
#[derive(Debug, Default, Clone)]
pub struct FaultLog {
    pub entries: Vec<(u64, FaultKind, String)>,
}

impl FaultLog {
    pub fn counts(&self) -> BTreeMap<FaultKind, usize> {
        let mut counts = BTreeMap::new();
        for (_, kind, _) in &self.entries {
            *counts.entry(*kind).or_default() += 1;
        }
        counts
    }
}

pub struct Nemesis {
    cluster: Arc<Mutex<ChaosCluster>>,
    /// Admin calls: topology changes and finding leaders.
    admin: Client,
    addresses: Vec<(u64, String)>,
    rng: StdRng,
    schedule: Schedule,
    history_clock: crate::history::History,
    log: FaultLog,
    /// Splits made so far (capped so ranges stay few enough to check).
    splits: usize,
}

const MAX_SPLITS: usize = 24;

impl Nemesis {
    pub fn new(
        cluster: Arc<Mutex<ChaosCluster>>,
        admin: Client,
        addresses: Vec<(u64, String)>,
        schedule: Schedule,
        seed: u64,
        history_clock: crate::history::History,
    ) -> Self {
        Nemesis {
            cluster,
            admin,
            addresses,
            rng: StdRng::seed_from_u64(seed),
            schedule,
            history_clock,
            log: FaultLog::default(),
            splits: 0,
        }
    }

    /// Injects faults until `stop`, then heals everything; returns the log.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> FaultLog {
        while !*stop.borrow_and_update() {
            let schedule = match self.schedule {
                Schedule::Mixed => *[
                    Schedule::Partitions,
                    Schedule::Crashes,
                    Schedule::Pauses,
                    Schedule::FlakyNetwork,
                    Schedule::Topology,
                ]
                .choose(&mut self.rng)
                .unwrap_or(&Schedule::Crashes),
                other => other,
            };
            match schedule {
                Schedule::Partitions => self.partition(&mut stop).await,
                Schedule::Crashes => self.crash(&mut stop).await,
                Schedule::Pauses => self.pause(&mut stop).await,
                Schedule::FlakyNetwork => self.flaky_network(&mut stop).await,
                Schedule::Topology | Schedule::Mixed => self.topology(&mut stop).await,
            }
            // Quiet time between faults, so the cluster recovers and the
            // workload makes progress.
            let gap = self.millis(500..2500);
            wait(&mut stop, gap).await;
        }
        let healed = self.cluster.lock().await.heal_all();
        if let Err(err) = healed {
            self.note(FaultKind::Kill, format!("healing failed: {err}"));
        }
        self.log
    }

    fn millis(&mut self, range: std::ops::Range<u64>) -> Duration {
        Duration::from_millis(self.rng.random_range(range))
    }

    fn note(&mut self, kind: FaultKind, description: String) {
        let at = self.history_clock.now();
        self.log.entries.push((at, kind, description));
    }

    fn node_ids(&self) -> Vec<u64> {
        self.addresses.iter().map(|(id, _)| *id).collect()
    }

    fn random_node(&mut self) -> u64 {
        let ids = self.node_ids();
        *ids.choose(&mut self.rng).unwrap_or(&1)
    }

    async fn crash(&mut self, stop: &mut watch::Receiver<bool>) {
        let node = self.random_node();
        self.note(FaultKind::Kill, format!("SIGKILL node {node}"));
        let killed = self.cluster.lock().await.kill(node);
        let down = self.millis(300..3000);
        wait(stop, down).await;
        let restarted = self.cluster.lock().await.start_node(node);
        if let Err(err) = killed.and(restarted) {
            self.note(FaultKind::Kill, format!("node {node}: {err}"));
        }
    }

    async fn pause(&mut self, stop: &mut watch::Receiver<bool>) {
        // Pausing the leader is the interesting case: a stale leader that
        // wakes up must not serve stale reads or lose writes.
        let node = match self.leader_of_random_range().await {
            Some((_, leader)) if self.rng.random_bool(0.7) => leader,
            _ => self.random_node(),
        };
        self.note(FaultKind::Pause, format!("SIGSTOP node {node}"));
        let _ = self.cluster.lock().await.pause(node);
        let hold = self.millis(500..4000);
        wait(stop, hold).await;
        let _ = self.cluster.lock().await.resume(node);
    }

    async fn partition(&mut self, stop: &mut watch::Receiver<bool>) {
        let mut ids = self.node_ids();
        ids.shuffle(&mut self.rng);
        let hold = self.millis(1000..5000);
        let choice = self.rng.random_range(0..4);
        {
            let cluster = self.cluster.lock().await;
            match choice {
                0 => {
                    let minority = ids.split_off(ids.len().div_ceil(2));
                    cluster.partition(&[ids.clone(), minority.clone()]);
                    drop(cluster);
                    self.note(
                        FaultKind::PartitionHalves,
                        format!("partition {ids:?} | {minority:?}"),
                    );
                }
                1 => {
                    drop(cluster);
                    let leader = match self.leader_of_random_range().await {
                        Some((_, leader)) => leader,
                        None => ids[0],
                    };
                    let rest: Vec<u64> = ids.iter().copied().filter(|&id| id != leader).collect();
                    self.cluster.lock().await.partition(&[vec![leader], rest]);
                    self.note(
                        FaultKind::IsolateLeader,
                        format!("isolate leader node {leader}"),
                    );
                }
                2 if ids.len() >= 3 => {
                    // A bridge: two sides that cannot see each other, and
                    // one node that sees both.
                    let bridge = ids[0];
                    let sides: Vec<u64> = ids[1..].to_vec();
                    let (left, right) = sides.split_at(sides.len() / 2);
                    for &a in left {
                        for &b in right {
                            cluster.set_link_both(a, b, LinkFault::Blackhole);
                        }
                    }
                    drop(cluster);
                    self.note(
                        FaultKind::Bridge,
                        format!("bridge: {left:?} <-> {bridge} <-> {right:?}"),
                    );
                }
                _ => {
                    let (from, to) = (ids[0], ids[1 % ids.len()]);
                    cluster.set_link(from, to, LinkFault::Blackhole);
                    drop(cluster);
                    self.note(FaultKind::OneWayCut, format!("cut {from} -> {to} only"));
                }
            }
        }
        wait(stop, hold).await;
        self.cluster.lock().await.heal_network();
    }

    async fn flaky_network(&mut self, stop: &mut watch::Receiver<bool>) {
        let ids = self.node_ids();
        let hold = self.millis(1000..5000);
        match self.rng.random_range(0..3) {
            0 => {
                let delay = self.millis(20..300);
                let cluster = self.cluster.lock().await;
                for &a in &ids {
                    for &b in &ids {
                        cluster.set_link(a, b, LinkFault::Delay(delay));
                    }
                }
                drop(cluster);
                self.note(
                    FaultKind::SlowLinks,
                    format!("every link delayed {delay:?}"),
                );
            }
            1 => {
                let node = self.random_node();
                let loss = self.rng.random_range(0.01..0.2);
                let cluster = self.cluster.lock().await;
                for &other in &ids {
                    cluster.set_link_both(node, other, LinkFault::Lossy(loss));
                }
                drop(cluster);
                self.note(
                    FaultKind::LossyLinks,
                    format!("links of node {node} lose {:.0}% of chunks", loss * 100.0),
                );
            }
            _ => {
                let cluster = self.cluster.lock().await;
                for &a in &ids {
                    for &b in &ids {
                        cluster.reset_connections(a, b);
                    }
                }
                drop(cluster);
                self.note(FaultKind::ConnectionResets, "every connection reset".into());
            }
        }
        wait(stop, hold).await;
        self.cluster.lock().await.heal_network();
    }

    async fn topology(&mut self, stop: &mut watch::Receiver<bool>) {
        let kill_during = self.rng.random_bool(0.4);
        let victim = self.random_node();
        let kill_after = self.millis(0..400);
        let (kind, change) = self.topology_change();
        let change = async { tokio::time::timeout(Duration::from_secs(20), change).await };
        let described = if kill_during {
            let killer = async {
                tokio::time::sleep(kill_after).await;
                let _ = self.cluster.lock().await.kill(victim);
            };
            let (described, ()) = tokio::join!(change, killer);
            described
        } else {
            change.await
        };
        match described {
            Ok(Some(description)) => self.note(kind, description),
            Ok(None) => {} // nothing to change (e.g. no range to pick yet)
            Err(_) => self.note(kind, "did not finish within 20 s".into()),
        }
        if kill_during {
            self.note(
                FaultKind::KillDuringTopologyChange,
                format!("SIGKILL node {victim} {kill_after:?} into the change"),
            );
            let down = self.millis(300..2000);
            wait(stop, down).await;
            let _ = self.cluster.lock().await.start_node(victim);
        }
    }

    /// Picks one random topology change and returns its kind and the
    /// future that makes it (None if there was nothing to do). Errors are
    /// expected under faults: the attempt still counts.
    fn topology_change(
        &mut self,
    ) -> (
        FaultKind,
        impl std::future::Future<Output = Option<String>> + 'static,
    ) {
        let admin = self.admin.clone();
        let addresses = self.addresses.clone();
        let choice = self.rng.random_range(0..3);
        let split_allowed = self.splits < MAX_SPLITS;
        if choice == 0 && split_allowed {
            self.splits += 1;
        }
        let kind = match choice {
            0 if split_allowed => FaultKind::Split,
            1 => FaultKind::TransferLeader,
            _ => FaultKind::MoveReplica,
        };
        let mut rng = StdRng::seed_from_u64(self.rng.random());
        let change = async move {
            let ranges: Vec<RangeDescriptor> = admin
                .ranges(b"", b"")
                .await
                .ok()?
                .into_iter()
                .filter(|range| range.range_id != 1)
                .collect();
            let range = ranges.choose(&mut rng)?.clone();
            let leader = leader_of(&admin, &addresses, range.range_id).await;
            let leader_address = leader.and_then(|id| address_of(&addresses, id));
            match choice {
                0 if split_allowed => {
                    let key = split_key(&mut rng);
                    let result = admin.split_at(key.as_bytes()).await;
                    Some(format!("split at {key}: {}", ok_or(&result)))
                }
                1 => {
                    let members: Vec<u64> = range.replicas.iter().map(|r| r.node_id).collect();
                    let target = *members
                        .iter()
                        .filter(|&&id| Some(id) != leader)
                        .collect::<Vec<_>>()
                        .choose(&mut rng)?;
                    let result = admin
                        .transfer_leader(leader_address.as_deref(), range.range_id, *target)
                        .await;
                    Some(format!(
                        "range {} leader -> node {target}: {}",
                        range.range_id,
                        ok_or(&result)
                    ))
                }
                _ => {
                    let members: Vec<u64> = range.replicas.iter().map(|r| r.node_id).collect();
                    let outsiders: Vec<u64> = addresses
                        .iter()
                        .map(|(id, _)| *id)
                        .filter(|id| !members.contains(id))
                        .collect();
                    // Moving a replica: add one elsewhere, then drop one;
                    // with no node to spare, drop one and add it back (the
                    // returning node needs a snapshot either way).
                    let (add, remove) = match outsiders.choose(&mut rng) {
                        Some(&outsider) => (outsider, *members.choose(&mut rng)?),
                        None => {
                            let member = *members.choose(&mut rng)?;
                            (member, member)
                        }
                    };
                    let (first, second) = if add == remove {
                        let removed = admin
                            .remove_replica(leader_address.as_deref(), range.range_id, remove)
                            .await;
                        let added = admin.add_replica(None, range.range_id, add).await;
                        (ok_or(&removed), ok_or(&added))
                    } else {
                        let added = admin
                            .add_replica(leader_address.as_deref(), range.range_id, add)
                            .await;
                        let removed = admin.remove_replica(None, range.range_id, remove).await;
                        (ok_or(&added), ok_or(&removed))
                    };
                    Some(format!(
                        "range {}: replica node {remove} -> node {add}: {first}, {second}",
                        range.range_id
                    ))
                }
            }
        };
        (kind, change)
    }

    async fn leader_of_random_range(&mut self) -> Option<(u64, u64)> {
        let ranges = self.admin.ranges(b"", b"").await.ok()?;
        let range = ranges.choose(&mut self.rng)?.range_id;
        Some((range, leader_of(&self.admin, &self.addresses, range).await?))
    }
}

fn ok_or<T>(result: &zdb_client::Result<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(err) => format!("failed ({err})"),
    }
}

/// A key inside the workloads' key space, where splits matter.
fn split_key(rng: &mut StdRng) -> String {
    if rng.random_bool(0.5) {
        format!(
            "reg/{:05}/{:02}",
            rng.random_range(0..20),
            rng.random_range(0..10)
        )
    } else {
        format!(
            "set/p{}-{}",
            rng.random_range(1..8),
            rng.random_range(1..2000)
        )
    }
}

fn address_of(addresses: &[(u64, String)], node: u64) -> Option<String> {
    addresses
        .iter()
        .find(|(id, _)| *id == node)
        .map(|(_, address)| address.clone())
}

/// The node that says it leads `range_id` (the highest term wins).
pub async fn leader_of(admin: &Client, addresses: &[(u64, String)], range_id: u64) -> Option<u64> {
    let mut best: Option<(u64, u64)> = None;
    for (node, address) in addresses {
        let Ok(status) = admin.node_status(address).await else {
            continue;
        };
        for replica in status.replicas {
            let is_range = replica
                .range
                .as_ref()
                .is_some_and(|r| r.range_id == range_id);
            if is_range
                && replica.role == RaftRole::Leader as i32
                && best.is_none_or(|(term, _)| replica.term > term)
            {
                best = Some((replica.term, *node));
            }
        }
    }
    best.map(|(_, node)| node)
}

/// Sleeps for `duration` or until `stop` turns true.
async fn wait(stop: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        _ = stop.wait_for(|stopped| *stopped) => {}
        _ = tokio::time::sleep(duration) => {}
    }
}
