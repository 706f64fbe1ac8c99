//! Applying committed commands to the data column family.
//!
//! Everything here is deterministic: the outcome depends only on the command
//! (including the proposer's clock) and the data, so every replica reaches the
//! same state and the same result.

use std::collections::HashMap;

use rocksdb::WriteBatch;
use zdb_proto::v1::{command, stored_mutation, Command, RangeDescriptor, StoredPut};

use super::meta;
use crate::engine::{keys, value, Engine, CF_DATA, CF_TTL};
use crate::error::Result;
use crate::metrics;

/// What a command did, for the client that proposed it.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyResult {
    Written,
    /// A fresh range id from the meta range.
    RangeId(u64),
    /// A fresh node id from the meta range.
    NodeId(u64),
    /// The range's membership changed; its new descriptor.
    ConfChanged(RangeDescriptor),
    Split {
        left: RangeDescriptor,
        right: RangeDescriptor,
    },
    /// The command was refused, identically on every replica.
    Refused(String),
    CompareAndSwap {
        succeeded: bool,
        /// The live value before the command, if any.
        current: Option<Vec<u8>>,
    },
}

/// Applies a sequence of commands into one write batch. Later commands in the
/// same batch must see the effects of earlier ones, which the batch cannot
/// answer, so the applier keeps what it wrote in an overlay.
pub struct Applier<'a> {
    engine: &'a Engine,
    batch: &'a mut WriteBatch,
    /// Raw stored value per key written in this batch; None for deleted.
    overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// The same for the system keyspace.
    system_overlay: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Applier<'a> {
    pub fn new(engine: &'a Engine, batch: &'a mut WriteBatch) -> Self {
        Applier {
            engine,
            batch,
            overlay: HashMap::new(),
            system_overlay: HashMap::new(),
        }
    }

    pub fn batch(&mut self) -> &mut WriteBatch {
        self.batch
    }

    /// Applies a command of the meta range to the system keyspace.
    pub fn apply_meta(&mut self, command: &Command) -> Result<ApplyResult> {
        match &command.kind {
            Some(command::Kind::MetaUpdate(update)) => {
                for range in &update.ranges {
                    meta::upsert(
                        self.engine,
                        self.engine,
                        self.batch,
                        &mut self.system_overlay,
                        range,
                    )?;
                }
                Ok(ApplyResult::Written)
            }
            Some(command::Kind::AllocateRangeId(_)) => {
                Ok(ApplyResult::RangeId(meta::allocate_range_id(
                    self.engine,
                    self.engine,
                    self.batch,
                    &mut self.system_overlay,
                )?))
            }
            Some(command::Kind::RegisterNode(register)) if register.node_id != 0 => {
                meta::announce_node(
                    self.engine,
                    self.engine,
                    self.batch,
                    &mut self.system_overlay,
                    register.node_id,
                    &register.address,
                )
            }
            Some(command::Kind::RegisterNode(register)) => {
                Ok(ApplyResult::NodeId(meta::register_node(
                    self.engine,
                    self.engine,
                    self.batch,
                    &mut self.system_overlay,
                    &register.address,
                )?))
            }
            Some(command::Kind::SetNodeState(change)) => {
                meta::set_node_state(
                    self.engine,
                    self.batch,
                    &mut self.system_overlay,
                    change.node_id,
                    change.state,
                );
                Ok(ApplyResult::Written)
            }
            _ => self.apply(command),
        }
    }

    pub fn apply(&mut self, command: &Command) -> Result<ApplyResult> {
        let now_ms = command.now_ms;
        match &command.kind {
            Some(command::Kind::Write(write)) => {
                for mutation in &write.mutations {
                    match &mutation.op {
                        Some(stored_mutation::Op::Put(put)) => self.put(put),
                        Some(stored_mutation::Op::Delete(key)) => self.delete(key),
                        None => {}
                    }
                }
                Ok(ApplyResult::Written)
            }
            Some(command::Kind::Cas(cas)) => {
                let current = self.live_value(&cas.key, now_ms)?;
                let succeeded = match &current {
                    None => cas.expect_absent,
                    Some(value) => !cas.expect_absent && *value == cas.expected_value,
                };
                if succeeded {
                    if let Some(new_value) = &cas.new_value {
                        self.put(new_value);
                    }
                }
                Ok(ApplyResult::CompareAndSwap { succeeded, current })
            }
            Some(command::Kind::Expire(expire)) => {
                for expired in &expire.keys {
                    let still_that_version = match self.raw(&expired.key)? {
                        Some(raw) => {
                            let stored = value::decode(&raw)?;
                            stored.expire_at_ms == expired.expire_at_ms
                                && !stored.is_live_at(now_ms)
                        }
                        None => false,
                    };
                    if still_that_version {
                        self.delete(&expired.key);
                        metrics::TTL_KEYS_REMOVED.inc();
                    }
                    self.batch.delete_cf(
                        self.engine.cf(CF_TTL),
                        keys::ttl_key(expired.expire_at_ms, &expired.key),
                    );
                }
                Ok(ApplyResult::Written)
            }
            Some(command::Kind::MetaUpdate(_))
            | Some(command::Kind::AllocateRangeId(_))
            | Some(command::Kind::RegisterNode(_))
            | Some(command::Kind::SetNodeState(_)) => Ok(ApplyResult::Refused(
                "system commands are only accepted by the meta range".into(),
            )),
            Some(command::Kind::Split(_)) => Ok(ApplyResult::Refused(
                "a split is applied by its range".into(),
            )),
            None => Ok(ApplyResult::Written),
        }
    }

    fn put(&mut self, put: &StoredPut) {
        let raw = value::encode(&put.value, put.expire_at_ms);
        self.batch.put_cf(self.engine.cf(CF_DATA), &put.key, &raw);
        if put.expire_at_ms != 0 {
            self.batch.put_cf(
                self.engine.cf(CF_TTL),
                keys::ttl_key(put.expire_at_ms, &put.key),
                [],
            );
        }
        self.overlay.insert(put.key.clone(), Some(raw));
    }

    fn delete(&mut self, key: &[u8]) {
        self.batch.delete_cf(self.engine.cf(CF_DATA), key);
        self.overlay.insert(key.to_vec(), None);
    }

    fn raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.overlay.get(key) {
            Some(raw) => Ok(raw.clone()),
            None => self.engine.get(CF_DATA, key),
        }
    }

    fn live_value(&self, key: &[u8], now_ms: u64) -> Result<Option<Vec<u8>>> {
        let Some(raw) = self.raw(key)? else {
            return Ok(None);
        };
        let stored = value::decode(&raw)?;
        Ok(stored.is_live_at(now_ms).then(|| stored.value.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zdb_proto::v1::{
        CompareAndSwapCommand, ExpireCommand, ExpiredKey, StoredMutation, WriteBatchCommand,
    };

    fn put(key: &str, value: &str, expire_at_ms: u64) -> StoredPut {
        StoredPut {
            key: key.into(),
            value: value.into(),
            expire_at_ms,
        }
    }

    fn write(now_ms: u64, puts: Vec<StoredPut>) -> Command {
        Command {
            now_ms,
            kind: Some(command::Kind::Write(WriteBatchCommand {
                mutations: puts
                    .into_iter()
                    .map(|p| StoredMutation {
                        op: Some(stored_mutation::Op::Put(p)),
                    })
                    .collect(),
            })),
        }
    }

    fn cas(now_ms: u64, key: &str, expected: Option<&str>, new: &str) -> Command {
        Command {
            now_ms,
            kind: Some(command::Kind::Cas(CompareAndSwapCommand {
                key: key.into(),
                expected_value: expected.unwrap_or_default().into(),
                expect_absent: expected.is_none(),
                new_value: Some(put(key, new, 0)),
            })),
        }
    }

    #[test]
    fn cas_sees_writes_earlier_in_the_same_batch() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        let mut applier = Applier::new(&engine, &mut batch);
        let absent = applier.apply(&cas(1, "k", None, "v1")).unwrap();
        assert_eq!(
            absent,
            ApplyResult::CompareAndSwap {
                succeeded: true,
                current: None
            }
        );
        let wrong = applier.apply(&cas(1, "k", Some("nope"), "v2")).unwrap();
        assert_eq!(
            wrong,
            ApplyResult::CompareAndSwap {
                succeeded: false,
                current: Some(b"v1".to_vec())
            }
        );
        let right = applier.apply(&cas(1, "k", Some("v1"), "v2")).unwrap();
        assert!(matches!(
            right,
            ApplyResult::CompareAndSwap {
                succeeded: true,
                ..
            }
        ));
        engine.write(batch, false).unwrap();
        let raw = engine.get(CF_DATA, b"k").unwrap().unwrap();
        assert_eq!(value::decode(&raw).unwrap().value, b"v2");
    }

    #[test]
    fn expired_value_counts_as_absent_and_is_removed_only_if_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        let mut applier = Applier::new(&engine, &mut batch);
        applier
            .apply(&write(0, vec![put("old", "x", 100), put("new", "y", 100)]))
            .unwrap();
        // Expired at t=150: CAS expecting absence succeeds.
        let result = applier.apply(&cas(150, "new", None, "fresh")).unwrap();
        assert!(matches!(
            result,
            ApplyResult::CompareAndSwap {
                succeeded: true,
                current: None
            }
        ));
        let expire = Command {
            now_ms: 200,
            kind: Some(command::Kind::Expire(ExpireCommand {
                keys: vec![
                    ExpiredKey {
                        key: b"old".to_vec(),
                        expire_at_ms: 100,
                    },
                    ExpiredKey {
                        key: b"new".to_vec(),
                        expire_at_ms: 100,
                    },
                ],
            })),
        };
        applier.apply(&expire).unwrap();
        engine.write(batch, false).unwrap();
        assert_eq!(engine.get(CF_DATA, b"old").unwrap(), None);
        let kept = engine.get(CF_DATA, b"new").unwrap().unwrap();
        assert_eq!(value::decode(&kept).unwrap().value, b"fresh");
        let mut ttl_entries = 0;
        engine
            .scan(CF_TTL, b"", b"", false, |_, _| {
                ttl_entries += 1;
                Ok(true)
            })
            .unwrap();
        assert_eq!(ttl_entries, 0);
    }
}
