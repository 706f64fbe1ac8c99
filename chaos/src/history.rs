//! The record of every client operation: what was asked, when it was
//! invoked and completed (nanoseconds since the run began, on one monotonic
//! clock), and how it ended.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub type Value = Vec<u8>;

/// One operation on one register (a key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    Get,
    Put(Value),
    Delete,
    /// Set to `new` if the key holds `expected` (None: if absent).
    Cas {
        expected: Option<Value>,
        new: Value,
    },
}

impl RegisterOp {
    pub fn is_read(&self) -> bool {
        matches!(self, RegisterOp::Get)
    }
}

/// What a register operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RegisterReply {
    Read(Option<Value>),
    Written,
    Cas {
        succeeded: bool,
        /// The value the key held when compared.
        previous: Option<Value>,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<R> {
    Ok(R),
    /// Definitely not applied.
    Failed(String),
    /// Maybe applied (a timeout or a lost reply): it may take effect at any
    /// time after its invocation, even after the run ends.
    Unknown(String),
}

impl<R> Outcome<R> {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => "ok",
            Outcome::Failed(_) => "failed",
            Outcome::Unknown(_) => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterCall {
    /// The client worker; each worker runs one operation at a time.
    pub process: u64,
    pub key: String,
    pub op: RegisterOp,
    pub invoked: u64,
    pub completed: u64,
    pub outcome: Outcome<RegisterReply>,
}

/// Set operations. Elements are `"{part}/{name}"`: the set is read one
/// part at a time (a part is a generation of the workload), which keeps each
/// read, and the history, small however long the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOp {
    Add(String),
    /// Reads every element of one part (`part` ends with '/').
    ReadAll {
        part: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetReply {
    Added,
    Elements(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetCall {
    pub process: u64,
    pub op: SetOp,
    pub invoked: u64,
    pub completed: u64,
    pub outcome: Outcome<SetReply>,
}

/// One step of a list-append transaction: append a unique element to a
/// key's list, or read the list (None until the read completes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Micro {
    Append { key: String, element: u64 },
    Read { key: String, list: Option<Vec<u64>> },
}

/// A list-append transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnCall {
    pub process: u64,
    pub ops: Vec<Micro>,
    pub invoked: u64,
    pub completed: u64,
    pub outcome: Outcome<()>,
}

/// A snapshot read of every bank account (None: the read failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankRead {
    pub process: u64,
    pub invoked: u64,
    pub completed: u64,
    pub balances: Option<Vec<(String, i64)>>,
}

/// Shared by all workers of a run.
#[derive(Clone)]
pub struct History {
    start: Instant,
    registers: Arc<Mutex<Vec<RegisterCall>>>,
    set: Arc<Mutex<Vec<SetCall>>>,
    txns: Arc<Mutex<Vec<TxnCall>>>,
    bank: Arc<Mutex<Vec<BankRead>>>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    pub fn new() -> Self {
        History {
            start: Instant::now(),
            registers: Arc::default(),
            set: Arc::default(),
            txns: Arc::default(),
            bank: Arc::default(),
        }
    }

    /// Nanoseconds since the run began.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    pub fn record_register(&self, call: RegisterCall) {
        self.registers
            .lock()
            .expect("history lock is never poisoned")
            .push(call);
    }

    pub fn record_set(&self, call: SetCall) {
        self.set
            .lock()
            .expect("history lock is never poisoned")
            .push(call);
    }

    pub fn registers(&self) -> Vec<RegisterCall> {
        self.registers
            .lock()
            .expect("history lock is never poisoned")
            .clone()
    }

    pub fn set_calls(&self) -> Vec<SetCall> {
        self.set
            .lock()
            .expect("history lock is never poisoned")
            .clone()
    }

    pub fn record_txn(&self, call: TxnCall) {
        self.txns
            .lock()
            .expect("history lock is never poisoned")
            .push(call);
    }

    pub fn record_bank_read(&self, read: BankRead) {
        self.bank
            .lock()
            .expect("history lock is never poisoned")
            .push(read);
    }

    pub fn txns(&self) -> Vec<TxnCall> {
        self.txns
            .lock()
            .expect("history lock is never poisoned")
            .clone()
    }

    pub fn bank_reads(&self) -> Vec<BankRead> {
        self.bank
            .lock()
            .expect("history lock is never poisoned")
            .clone()
    }

    /// One line per operation, in invocation order, for the failure report.
    pub fn render(&self) -> String {
        let mut registers = self.registers();
        registers.sort_by_key(|call| call.invoked);
        let mut out = String::new();
        for call in &registers {
            let _ = writeln!(out, "{}", render_register(call));
        }
        let mut set = self.set_calls();
        set.sort_by_key(|call| call.invoked);
        for call in &set {
            let outcome = match &call.outcome {
                Outcome::Ok(SetReply::Elements(elements)) => {
                    format!("ok {} elements", elements.len())
                }
                other => other.label().to_owned(),
            };
            let _ = writeln!(
                out,
                "set p{} {:?} [{} .. {}] {outcome}",
                call.process, call.op, call.invoked, call.completed
            );
        }
        let mut txns = self.txns();
        txns.sort_by_key(|call| call.invoked);
        for call in &txns {
            let _ = writeln!(
                out,
                "txn p{} {:?} [{} .. {}] {}",
                call.process,
                call.ops,
                call.invoked,
                call.completed,
                call.outcome.label()
            );
        }
        for read in self.bank_reads() {
            let total: Option<i64> = read
                .balances
                .as_ref()
                .map(|balances| balances.iter().map(|(_, b)| b).sum());
            let _ = writeln!(
                out,
                "bank-read p{} [{} .. {}] total {total:?}",
                read.process, read.invoked, read.completed
            );
        }
        out
    }
}

pub fn show(value: &Option<Value>) -> String {
    match value {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => "-".into(),
    }
}

pub fn render_register(call: &RegisterCall) -> String {
    let op = match &call.op {
        RegisterOp::Get => "get".to_owned(),
        RegisterOp::Put(value) => format!("put {}", show(&Some(value.clone()))),
        RegisterOp::Delete => "delete".to_owned(),
        RegisterOp::Cas { expected, new } => {
            format!("cas {} -> {}", show(expected), show(&Some(new.clone())))
        }
    };
    let outcome = match &call.outcome {
        Outcome::Ok(RegisterReply::Read(value)) => format!("ok {}", show(value)),
        Outcome::Ok(RegisterReply::Written) => "ok".to_owned(),
        Outcome::Ok(RegisterReply::Cas {
            succeeded,
            previous,
        }) => format!("ok succeeded={succeeded} previous={}", show(previous)),
        Outcome::Failed(why) => format!("failed ({why})"),
        Outcome::Unknown(why) => format!("unknown ({why})"),
    };
    format!(
        "{} p{} {op} [{} .. {}] {outcome}",
        call.key, call.process, call.invoked, call.completed
    )
}
