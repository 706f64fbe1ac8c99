use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    A,
    B,
    C,
    /// Updates only, spread over the existing records.
    Update,
    Insert,
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "a" => Ok(Workload::A),
            "b" => Ok(Workload::B),
            "c" => Ok(Workload::C),
            "update" => Ok(Workload::Update),
            "insert" => Ok(Workload::Insert),
            other => Err(format!(
                "unknown workload {other:?}; choose a, b, c, update or insert"
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
            Workload::Update => "update (update only)",
            Workload::Insert => "insert",
        })
    }
}

pub enum Operation {
    Read(Vec<u8>),
    Update(Vec<u8>),
    Insert(Vec<u8>),
}

impl Operation {
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::Read(_) => "read",
            Operation::Update(_) => "update",
            Operation::Insert(_) => "insert",
        }
    }
}

pub fn key(i: u64) -> Vec<u8> {
    format!("user{i:012}").into_bytes()
}

impl Workload {
    pub fn next(self, rng: &mut impl Rng, records: u64, next_insert: &AtomicU64) -> Operation {
        let existing = key(rng.random_range(0..records.max(1)));
        let read_share = match self {
            Workload::A => 0.5,
            Workload::B => 0.95,
            Workload::C => 1.0,
            Workload::Update => 0.0,
            Workload::Insert => {
                return Operation::Insert(key(next_insert.fetch_add(1, Ordering::Relaxed)))
            }
        };
        if rng.random_bool(read_share) {
            Operation::Read(existing)
        } else {
            Operation::Update(existing)
        }
    }
}
