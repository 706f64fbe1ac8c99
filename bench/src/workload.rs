//! The YCSB operation mixes, and which key each operation touches.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

use crate::distribution::{Distribution, KeyChooser};

/// YCSB's longest short scan.
const MAX_SCAN_LENGTH: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// 50% read, 50% update.
    A,
    /// 95% read, 5% update.
    B,
    /// Read only.
    C,
    /// 95% read of the latest records, 5% insert.
    D,
    /// 95% short scans, 5% insert.
    E,
    /// 50% read, 50% read-modify-write.
    F,
    /// Updates only.
    Update,
    /// New keys only.
    Insert,
    /// Read-modify-write of 2 (or 4) random records in one serializable
    /// transaction.
    Txn(usize),
    /// Blind writes of 2 (or 4) random records in one atomic batch, the
    /// non-transactional way to write several keys at once.
    Batch(usize),
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "a" => Ok(Workload::A),
            "b" => Ok(Workload::B),
            "c" => Ok(Workload::C),
            "d" => Ok(Workload::D),
            "e" => Ok(Workload::E),
            "f" => Ok(Workload::F),
            "update" => Ok(Workload::Update),
            "insert" => Ok(Workload::Insert),
            "txn2" => Ok(Workload::Txn(2)),
            "txn4" => Ok(Workload::Txn(4)),
            "batch2" => Ok(Workload::Batch(2)),
            "batch4" => Ok(Workload::Batch(4)),
            other => Err(format!(
                "unknown workload {other:?}; choose a, b, c, d, e, f, update, insert, txn2, txn4, \
                 batch2 or batch4"
            )),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::A => "a (50% read, 50% update)",
            Workload::B => "b (95% read, 5% update)",
            Workload::C => "c (read only)",
            Workload::D => "d (95% read latest, 5% insert)",
            Workload::E => "e (95% scan, 5% insert)",
            Workload::F => "f (50% read, 50% read-modify-write)",
            Workload::Update => "update (update only)",
            Workload::Insert => "insert (new keys only)",
            Workload::Txn(2) => "txn2 (read-modify-write of 2 keys in a transaction)",
            Workload::Txn(_) => "txn4 (read-modify-write of 4 keys in a transaction)",
            Workload::Batch(2) => "batch2 (atomic batch write of 2 keys)",
            Workload::Batch(_) => "batch4 (atomic batch write of 4 keys)",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Read(Vec<u8>),
    Update(Vec<u8>),
    Insert(Vec<u8>),
    /// Up to `count` records from `start` on. `end` bounds the span to the
    /// records that can hold them (record keys are dense), so a store that
    /// walks its whole span before applying a limit is not penalized.
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        count: usize,
    },
    /// Read the record, then write it back changed only if nobody wrote it
    /// in between (compare-and-swap).
    ReadModifyWrite(Vec<u8>),
    /// Read these records and write each back changed, in one transaction.
    Transaction(Vec<Vec<u8>>),
    /// Write these records in one atomic batch.
    Batch(Vec<Vec<u8>>),
}

impl Operation {
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Read(_) => "read",
            Operation::Update(_) => "update",
            Operation::Insert(_) => "insert",
            Operation::Scan { .. } => "scan",
            Operation::ReadModifyWrite(_) => "rmw",
            Operation::Transaction(_) => "txn",
            Operation::Batch(_) => "batch",
        }
    }
}

/// The key of record `i`: fixed width, so record order is key order.
pub fn key(i: u64) -> Vec<u8> {
    format!("user{i:012}").into_bytes()
}

impl Workload {
    /// YCSB's default key distribution for the workload.
    pub fn default_distribution(self) -> Distribution {
        match self {
            Workload::D => Distribution::Latest,
            _ => Distribution::Zipfian,
        }
    }

    /// The next operation. `next_record` counts records written so far and
    /// hands out numbers for inserts.
    pub fn next(self, rng: &mut impl Rng, keys: &KeyChooser, next_record: &AtomicU64) -> Operation {
        let newest = next_record.load(Ordering::Relaxed).saturating_sub(1);
        match self {
            Workload::Txn(count) => {
                return Operation::Transaction(distinct(rng, keys, newest, count))
            }
            Workload::Batch(count) => return Operation::Batch(distinct(rng, keys, newest, count)),
            _ => {}
        }
        let (first_share, first, second) = self.mix();
        let kind = if rng.random_bool(first_share) {
            first
        } else {
            second
        };
        let existing = |rng: &mut _| {
            let newest = next_record.load(Ordering::Relaxed).saturating_sub(1);
            keys.next(rng, newest)
        };
        match kind {
            Kind::Read => Operation::Read(key(existing(rng))),
            Kind::Update => Operation::Update(key(existing(rng))),
            Kind::Insert => Operation::Insert(key(next_record.fetch_add(1, Ordering::Relaxed))),
            Kind::Scan => {
                let first = existing(rng);
                let count = rng.random_range(1..=MAX_SCAN_LENGTH);
                Operation::Scan {
                    start: key(first),
                    end: key(first + count as u64),
                    count,
                }
            }
            Kind::ReadModifyWrite => Operation::ReadModifyWrite(key(existing(rng))),
        }
    }

    /// The share of the first kind of operation, and the two kinds.
    fn mix(self) -> (f64, Kind, Kind) {
        match self {
            Workload::A => (0.5, Kind::Read, Kind::Update),
            Workload::B => (0.95, Kind::Read, Kind::Update),
            Workload::C => (1.0, Kind::Read, Kind::Read),
            Workload::D => (0.95, Kind::Read, Kind::Insert),
            Workload::E => (0.95, Kind::Scan, Kind::Insert),
            Workload::F => (0.5, Kind::Read, Kind::ReadModifyWrite),
            Workload::Update => (1.0, Kind::Update, Kind::Update),
            Workload::Insert => (1.0, Kind::Insert, Kind::Insert),
            Workload::Txn(_) | Workload::Batch(_) => (1.0, Kind::Update, Kind::Update),
        }
    }
}

/// The record with its first byte changed: same size, different content.
pub fn modified(value: &[u8]) -> Vec<u8> {
    let mut changed = value.to_vec();
    match changed.first_mut() {
        Some(first) => *first = first.wrapping_add(1),
        None => changed.push(0),
    }
    changed
}

/// `count` different record keys (fewer only if there are fewer records).
fn distinct(rng: &mut impl Rng, keys: &KeyChooser, newest: u64, count: usize) -> Vec<Vec<u8>> {
    let mut chosen: Vec<u64> = Vec::with_capacity(count);
    for _ in 0..count * 8 {
        if chosen.len() == count {
            break;
        }
        let record = keys.next(rng, newest);
        if !chosen.contains(&record) {
            chosen.push(record);
        }
    }
    chosen.into_iter().map(key).collect()
}

#[derive(Clone, Copy)]
enum Kind {
    Read,
    Update,
    Insert,
    Scan,
    ReadModifyWrite,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    fn mix(workload: Workload) -> BTreeMap<&'static str, usize> {
        let keys = KeyChooser::new(workload.default_distribution(), 1000);
        let next_record = AtomicU64::new(1000);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut mix = BTreeMap::new();
        for _ in 0..10_000 {
            *mix.entry(workload.next(&mut rng, &keys, &next_record).kind())
                .or_default() += 1;
        }
        mix
    }

    #[test]
    fn mixes_follow_ycsb() {
        let share = |m: &BTreeMap<&str, usize>, k: &str| *m.get(k).unwrap_or(&0) as f64 / 10_000.0;
        let a = mix(Workload::A);
        assert!((share(&a, "read") - 0.5).abs() < 0.03 && (share(&a, "update") - 0.5).abs() < 0.03);
        assert_eq!(
            mix(Workload::C).keys().copied().collect::<Vec<_>>(),
            ["read"]
        );
        let d = mix(Workload::D);
        assert!((share(&d, "insert") - 0.05).abs() < 0.01 && share(&d, "update") == 0.0);
        let e = mix(Workload::E);
        assert!((share(&e, "scan") - 0.95).abs() < 0.01);
        let f = mix(Workload::F);
        assert!((share(&f, "rmw") - 0.5).abs() < 0.03);
        assert_eq!(
            mix(Workload::Txn(2)).keys().copied().collect::<Vec<_>>(),
            ["txn"]
        );
    }

    #[test]
    fn transactions_touch_distinct_keys() {
        let keys = KeyChooser::new(Distribution::Zipfian, 1000);
        let next_record = AtomicU64::new(1000);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        for _ in 0..100 {
            let Operation::Transaction(touched) =
                Workload::Txn(4).next(&mut rng, &keys, &next_record)
            else {
                panic!("a transaction");
            };
            let mut unique = touched.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 4);
        }
    }

    #[test]
    fn inserts_take_fresh_record_numbers() {
        let keys = KeyChooser::new(Distribution::Uniform, 10);
        let next_record = AtomicU64::new(10);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        assert_eq!(
            Workload::Insert.next(&mut rng, &keys, &next_record),
            Operation::Insert(key(10))
        );
        assert_eq!(
            Workload::Insert.next(&mut rng, &keys, &next_record),
            Operation::Insert(key(11))
        );
    }
}
