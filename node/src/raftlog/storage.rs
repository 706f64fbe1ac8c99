use std::collections::VecDeque;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use super::entry_cache::EntryCache;
use super::ApplyState;
use crate::engine::{keys, Batch, Engine, ReadView, CF_RAFT};
use crate::error::{Error, Result};
use crate::range::snapshot;

/// A bootstrapped range starts with a log that is already truncated at this
/// index, so a replica created empty (index 0) can only catch up by snapshot
/// and never mistakes its empty log for the bootstrap state.
pub const RAFT_INIT_INDEX: u64 = 5;
pub const RAFT_INIT_TERM: u64 = 5;

/// Raft state of one range replica. Mutations go into the caller's
/// `Batch` (so that one pass of the event loop writes every range at
/// once) and into the cached state at once: raft-rs reads them back only
/// after that batch is written.
pub struct RangeStorage {
    engine: Engine,
    range_id: u64,
    hard_state: HardState,
    apply: ApplyState,
    /// Term of every entry in `[first_index, last_index]`, so that `term()`
    /// (called for every append message) never touches the disk.
    terms: VecDeque<u64>,
    cache: EntryCache,
}

impl RangeStorage {
    /// Loads a range's Raft state; a range never seen before starts empty.
    pub fn load(engine: Engine, range_id: u64) -> Result<Self> {
        let mut hard_state = Self::stored_hard_state(&engine, range_id)?;
        let apply = match engine.get(CF_RAFT, &keys::apply_state_key(range_id))? {
            Some(raw) => ApplyState::decode(&raw)?,
            None => ApplyState::default(),
        };
        // Every applied entry was committed, but the stored commit index may
        // lag: a commit-only change is not written (see `set_hard_state`), and
        // a range created by a split over an empty replica (made for an early
        // message from the new range's leader) can find that replica's hard
        // state, commit 0, written after the split's initial state. raft-rs
        // refuses a commit below the applied index: restore that bound.
        if hard_state.commit < apply.applied_index {
            hard_state.commit = apply.applied_index;
        }
        let mut storage = RangeStorage {
            engine,
            range_id,
            hard_state,
            apply,
            terms: VecDeque::new(),
            cache: EntryCache::default(),
        };
        let first = storage.first();
        let mut expected = first;
        let mut terms = VecDeque::new();
        storage.engine.scan(
            CF_RAFT,
            &keys::log_entry_key(range_id, first),
            &keys::log_entry_key(range_id, u64::MAX),
            false,
            |_, raw| {
                let entry = decode_entry(raw)?;
                if entry.index != expected {
                    return Err(Error::corruption(
                        "raft log",
                        format!(
                            "range {range_id}: expected entry {expected}, found {}",
                            entry.index
                        ),
                    ));
                }
                expected += 1;
                terms.push_back(entry.term);
                Ok(true)
            },
        )?;
        storage.terms = terms;
        Ok(storage)
    }

    fn stored_hard_state(engine: &Engine, range_id: u64) -> Result<HardState> {
        match engine.get(CF_RAFT, &keys::hard_state_key(range_id))? {
            Some(raw) => HardState::parse_from_bytes(&raw)
                .map_err(|err| Error::corruption("hard state", err)),
            None => Ok(HardState::default()),
        }
    }

    /// Writes the initial state of a range whose first members are
    /// `conf_state` (voters and learners). An empty replica made for an
    /// early message of the range's leader may already have a term and a
    /// vote here: they are kept (a vote must never be forgotten within its term).
    pub fn write_bootstrap_state(
        engine: &Engine,
        batch: &mut Batch,
        range_id: u64,
        conf_state: ConfState,
    ) -> Result<()> {
        let apply = ApplyState {
            applied_index: RAFT_INIT_INDEX,
            truncated_index: RAFT_INIT_INDEX,
            truncated_term: RAFT_INIT_TERM,
            conf_state,
        };
        let mut hard_state = Self::stored_hard_state(engine, range_id)?;
        if hard_state.term <= RAFT_INIT_TERM {
            hard_state.term = RAFT_INIT_TERM;
            hard_state.vote = 0;
        }
        hard_state.commit = RAFT_INIT_INDEX;
        batch.put(CF_RAFT, keys::apply_state_key(range_id), apply.encode());
        batch.put(
            CF_RAFT,
            keys::hard_state_key(range_id),
            encode_pb(&hard_state),
        );
        Ok(())
    }

    /// Records a term and vote that an in-memory replica reached, if newer
    /// than the stored ones (synced: a vote may be sent right after).
    pub fn keep_newer_vote(engine: &Engine, range_id: u64, term: u64, vote: u64) -> Result<()> {
        let mut hard_state = Self::stored_hard_state(engine, range_id)?;
        if term <= hard_state.term {
            return Ok(());
        }
        hard_state.term = term;
        hard_state.vote = vote;
        let mut batch = engine.batch();
        batch.put(
            CF_RAFT,
            keys::hard_state_key(range_id),
            encode_pb(&hard_state),
        );
        engine.write(batch, true)
    }

    pub fn range_id(&self) -> u64 {
        self.range_id
    }

    pub fn apply_state(&self) -> &ApplyState {
        &self.apply
    }

    pub fn applied_index(&self) -> u64 {
        self.apply.applied_index
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    fn first(&self) -> u64 {
        self.apply.truncated_index + 1
    }

    fn last(&self) -> u64 {
        self.apply.truncated_index + self.terms.len() as u64
    }

    /// Number of entries still in the log.
    pub fn log_len(&self) -> u64 {
        self.terms.len() as u64
    }

    pub fn append(&mut self, batch: &mut Batch, entries: &[Entry]) -> Result<()> {
        let Some(first_new) = entries.first() else {
            return Ok(());
        };
        if first_new.index <= self.apply.truncated_index || first_new.index > self.last() + 1 {
            return Err(Error::corruption(
                "raft append",
                format!(
                    "range {}: entries from {} do not follow the log [{}, {}]",
                    self.range_id,
                    first_new.index,
                    self.first(),
                    self.last()
                ),
            ));
        }
        let old_last = self.last();
        // A new leader may overwrite a suffix of the log.
        self.terms
            .truncate((first_new.index - self.first()) as usize);
        for entry in entries {
            batch.put(
                CF_RAFT,
                keys::log_entry_key(self.range_id, entry.index),
                encode_pb(entry),
            );
            self.terms.push_back(entry.term);
        }
        self.cache.append(entries);
        let new_last = self.last();
        if old_last > new_last {
            batch.delete_range(
                CF_RAFT,
                keys::log_entry_key(self.range_id, new_last + 1),
                keys::log_entry_key(self.range_id, old_last + 1),
            );
        }
        Ok(())
    }

    /// Term and vote must be durable before any message that depends on them
    /// leaves; the commit index need not be (a restarted replica learns it
    /// again from the leader, and everything applied is committed). A change
    /// of the commit index alone stays in memory: under load it changes every
    /// pass for every active range, and each write costs a memtable insert.
    pub fn set_hard_state(&mut self, batch: &mut Batch, hard_state: &HardState) {
        let vote_changed =
            hard_state.term != self.hard_state.term || hard_state.vote != self.hard_state.vote;
        self.hard_state = hard_state.clone();
        if vote_changed {
            batch.put(
                CF_RAFT,
                keys::hard_state_key(self.range_id),
                encode_pb(hard_state),
            );
        }
    }

    pub fn set_commit(&mut self, batch: &mut Batch, commit: u64) {
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = commit;
        self.set_hard_state(batch, &hard_state);
    }

    /// Records that entries up to `index` are applied, with their effects in the same batch.
    pub fn set_applied(&mut self, batch: &mut Batch, index: u64, conf_state: Option<ConfState>) {
        self.apply.applied_index = index;
        self.cache.applied(index);
        if let Some(conf_state) = conf_state {
            self.apply.conf_state = conf_state;
        }
        self.write_apply_state(batch);
    }

    /// Drops log entries up to and including `index`, which must be applied.
    pub fn compact_to(&mut self, batch: &mut Batch, index: u64) -> Result<()> {
        let index = index.min(self.apply.applied_index);
        if index <= self.apply.truncated_index {
            return Ok(());
        }
        let term = self.term(index)?;
        let drop = (index - self.apply.truncated_index) as usize;
        batch.delete_range(
            CF_RAFT,
            keys::log_entry_key(self.range_id, self.first()),
            keys::log_entry_key(self.range_id, index + 1),
        );
        self.terms.drain(..drop.min(self.terms.len()));
        self.cache.drop_through(index);
        self.apply.truncated_index = index;
        self.apply.truncated_term = term;
        self.write_apply_state(batch);
        Ok(())
    }

    /// Replaces the log by a snapshot's position. The caller writes the data.
    pub fn apply_snapshot(&mut self, batch: &mut Batch, snapshot: &Snapshot) {
        let meta = snapshot.get_metadata();
        batch.delete_range(
            CF_RAFT,
            keys::log_entry_key(self.range_id, 0),
            keys::log_entry_key(self.range_id, u64::MAX),
        );
        self.terms.clear();
        self.cache.clear();
        self.apply = ApplyState {
            applied_index: meta.index,
            truncated_index: meta.index,
            truncated_term: meta.term,
            conf_state: meta.get_conf_state().clone(),
        };
        self.write_apply_state(batch);
        let mut hard_state = self.hard_state.clone();
        hard_state.term = hard_state.term.max(meta.term);
        hard_state.commit = hard_state.commit.max(meta.index);
        self.set_hard_state(batch, &hard_state);
    }

    fn write_apply_state(&self, batch: &mut Batch) {
        batch.put(
            CF_RAFT,
            keys::apply_state_key(self.range_id),
            self.apply.encode(),
        );
    }
}

fn encode_pb(message: &impl protobuf::Message) -> Vec<u8> {
    message
        .write_to_bytes()
        .expect("encoding an in-memory raft message cannot fail")
}

fn decode_entry(raw: &[u8]) -> Result<Entry> {
    Entry::parse_from_bytes(raw).map_err(|err| Error::corruption("raft log entry", err))
}

fn storage_error(err: Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(err)))
}

impl Storage for RangeStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.apply.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into();
        if let Some(mut entries) = self.cache.get(low, high) {
            raft::util::limit_size(&mut entries, max_size);
            return Ok(entries);
        }
        let mut entries = Vec::with_capacity((high - low) as usize);
        self.engine
            .scan(
                CF_RAFT,
                &keys::log_entry_key(self.range_id, low),
                &keys::log_entry_key(self.range_id, high),
                false,
                |_, raw| {
                    entries.push(decode_entry(raw)?);
                    Ok(true)
                },
            )
            .map_err(storage_error)?;
        if entries.len() as u64 != high - low {
            return Err(storage_error(Error::corruption(
                "raft log",
                format!(
                    "range {}: entries [{low}, {high}) are incomplete",
                    self.range_id
                ),
            )));
        }
        raft::util::limit_size(&mut entries, max_size);
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.apply.truncated_index {
            return Ok(self.apply.truncated_term);
        }
        if idx < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.terms
            .get((idx - self.first()) as usize)
            .copied()
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.apply.applied_index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let data = snapshot::build(&self.engine, self.range_id).map_err(storage_error)?;
        let mut snap = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        let meta = snap.mut_metadata();
        meta.index = self.apply.applied_index;
        meta.term = self.term(self.apply.applied_index)?;
        meta.set_conf_state(self.apply.conf_state.clone());
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("entry {index}").into_bytes().into(),
            ..Entry::default()
        }
    }

    fn bootstrap_three_voters(engine: &Engine, batch: &mut Batch, range_id: u64) {
        let voters = ConfState::from((vec![1, 2, 3], vec![]));
        RangeStorage::write_bootstrap_state(engine, batch, range_id, voters).unwrap();
    }

    fn fresh() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut batch = engine.batch();
        bootstrap_three_voters(&engine, &mut batch, 1);
        engine.write(batch, true).unwrap();
        (dir, engine)
    }

    #[test]
    fn state_survives_restart() {
        let (dir, engine) = fresh();
        let mut storage = RangeStorage::load(engine.clone(), 1).unwrap();
        let mut batch = engine.batch();
        storage
            .append(&mut batch, &[entry(6, 6), entry(7, 6), entry(8, 7)])
            .unwrap();
        let hs = HardState {
            term: 7,
            vote: 2,
            commit: 7,
            ..HardState::default()
        };
        storage.set_hard_state(&mut batch, &hs);
        storage.set_applied(&mut batch, 7, None);
        engine.write(batch, true).unwrap();
        drop(storage);
        drop(engine);

        let engine = Engine::open(dir.path()).unwrap();
        let storage = RangeStorage::load(engine, 1).unwrap();
        let state = storage.initial_state().unwrap();
        assert_eq!(state.hard_state, hs);
        assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
        assert_eq!(storage.applied_index(), 7);
        assert_eq!(storage.first_index().unwrap(), RAFT_INIT_INDEX + 1);
        assert_eq!(storage.last_index().unwrap(), 8);
        assert_eq!(storage.term(8).unwrap(), 7);
        assert_eq!(storage.term(RAFT_INIT_INDEX).unwrap(), RAFT_INIT_TERM);
        let entries = storage
            .entries(6, 9, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(entries, vec![entry(6, 6), entry(7, 6), entry(8, 7)]);
    }

    /// Regression (found by zdb-chaos): a split creating range 9 over an
    /// empty replica that already heard from range 9's leader. Whatever
    /// order their writes land in, the range must load (raft-rs panicked
    /// with "hs.commit 0 is out of range [5, 5]", on every restart) and keep
    /// the empty replica's term and vote.
    #[test]
    fn a_split_over_an_empty_replica_keeps_its_vote_and_loads() {
        let (_dir, engine) = fresh();
        let placeholder_state = HardState {
            term: 9,
            vote: 2,
            commit: 0,
            ..HardState::default()
        };
        // The empty replica persisted its state in an earlier pass...
        let mut placeholder = RangeStorage::load(engine.clone(), 9).unwrap();
        let mut batch = engine.batch();
        placeholder.set_hard_state(&mut batch, &placeholder_state);
        engine.write(batch, true).unwrap();
        // ...then the split writes the range's initial state.
        let mut batch = engine.batch();
        bootstrap_three_voters(&engine, &mut batch, 9);
        engine.write(batch, true).unwrap();
        let state = RangeStorage::load(engine.clone(), 9)
            .unwrap()
            .initial_state()
            .unwrap();
        assert_eq!((state.hard_state.term, state.hard_state.vote), (9, 2));
        assert_eq!(state.hard_state.commit, RAFT_INIT_INDEX);

        // The empty replica's write lands after the split's, in the same batch.
        let mut batch = engine.batch();
        bootstrap_three_voters(&engine, &mut batch, 9);
        placeholder.set_hard_state(&mut batch, &placeholder_state);
        engine.write(batch, true).unwrap();
        let storage = RangeStorage::load(engine.clone(), 9).unwrap();
        assert_eq!(storage.hard_state().commit, RAFT_INIT_INDEX);
        let config = raft::Config {
            id: 1,
            applied: storage.applied_index(),
            ..raft::Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = raft::RawNode::new(&config, storage, &logger).expect("the range opens");
        assert_eq!((raw.raft.term, raw.raft.vote), (9, 2));

        // A vote cast in memory after the last write is recorded too.
        RangeStorage::keep_newer_vote(&engine, 9, 10, 3).unwrap();
        let state = RangeStorage::load(engine, 9)
            .unwrap()
            .initial_state()
            .unwrap();
        assert_eq!((state.hard_state.term, state.hard_state.vote), (10, 3));
    }

    #[test]
    fn commit_alone_is_not_written_but_restart_starts_from_applied() {
        let (dir, engine) = fresh();
        let mut storage = RangeStorage::load(engine.clone(), 1).unwrap();
        let mut batch = engine.batch();
        storage
            .append(&mut batch, &[entry(6, 6), entry(7, 6), entry(8, 6)])
            .unwrap();
        let voted = HardState {
            term: 6,
            vote: 3,
            commit: 6,
            ..HardState::default()
        };
        storage.set_hard_state(&mut batch, &voted);
        engine.write(batch, true).unwrap();

        let mut batch = engine.batch();
        storage.set_commit(&mut batch, 8);
        assert!(batch.is_empty(), "a commit-only change is not written");
        assert_eq!(storage.hard_state().commit, 8);
        storage.set_applied(&mut batch, 7, None);
        engine.write(batch, true).unwrap();
        drop(storage);
        drop(engine);

        let engine = Engine::open(dir.path()).unwrap();
        let state = RangeStorage::load(engine, 1)
            .unwrap()
            .initial_state()
            .unwrap();
        assert_eq!((state.hard_state.term, state.hard_state.vote), (6, 3));
        assert_eq!(state.hard_state.commit, 7, "at least the applied index");
    }

    #[test]
    fn overwriting_a_suffix_drops_the_old_tail() {
        let (_dir, engine) = fresh();
        let mut storage = RangeStorage::load(engine.clone(), 1).unwrap();
        let mut batch = engine.batch();
        storage
            .append(&mut batch, &[entry(6, 6), entry(7, 6), entry(8, 6)])
            .unwrap();
        storage.append(&mut batch, &[entry(7, 7)]).unwrap();
        engine.write(batch, true).unwrap();
        let reloaded = RangeStorage::load(engine, 1).unwrap();
        assert_eq!(reloaded.last_index().unwrap(), 7);
        assert_eq!(reloaded.term(7).unwrap(), 7);
        assert!(reloaded.term(8).is_err());
    }

    #[test]
    fn cached_entries_match_the_log_on_disk() {
        let (_dir, engine) = fresh();
        let mut storage = RangeStorage::load(engine.clone(), 1).unwrap();
        let mut batch = engine.batch();
        let first: Vec<Entry> = (6..40).map(|index| entry(index, 6)).collect();
        storage.append(&mut batch, &first).unwrap();
        storage
            .append(&mut batch, &[entry(30, 7), entry(31, 7)])
            .unwrap();
        storage.set_applied(&mut batch, 20, None);
        storage.compact_to(&mut batch, 10).unwrap();
        engine.write(batch, true).unwrap();
        let reloaded = RangeStorage::load(engine, 1).unwrap();
        let read = |storage: &RangeStorage, low, high, max: Option<u64>| {
            storage
                .entries(low, high, max, GetEntriesContext::empty(false))
                .map(|found| found.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>())
        };
        for (low, high, max) in [(11, 32, None), (25, 32, None), (11, 32, Some(0))] {
            assert_eq!(
                read(&storage, low, high, max).unwrap(),
                read(&reloaded, low, high, max).unwrap(),
                "entries [{low}, {high}) limited to {max:?}"
            );
        }
        assert_eq!(
            read(&storage, 30, 32, None).unwrap(),
            vec![(30, 7), (31, 7)]
        );
        assert!(read(&storage, 10, 12, None).is_err(), "compacted");
        assert!(read(&storage, 31, 33, None).is_err(), "past the last index");
    }

    #[test]
    fn compaction_drops_applied_entries_only() {
        let (_dir, engine) = fresh();
        let mut storage = RangeStorage::load(engine.clone(), 1).unwrap();
        let mut batch = engine.batch();
        let entries: Vec<_> = (6..=20).map(|i| entry(i, 6)).collect();
        storage.append(&mut batch, &entries).unwrap();
        storage.set_applied(&mut batch, 15, None);
        engine.write(batch, true).unwrap();

        let mut batch = engine.batch();
        storage.compact_to(&mut batch, 18).unwrap(); // clamped to the applied index
        engine.write(batch, true).unwrap();
        assert_eq!(storage.first_index().unwrap(), 16);
        assert_eq!(storage.term(15).unwrap(), 6);
        assert_eq!(
            storage.entries(10, 12, None, GetEntriesContext::empty(false)),
            Err(raft::Error::Store(StorageError::Compacted))
        );

        let reloaded = RangeStorage::load(engine, 1).unwrap();
        assert_eq!(reloaded.first_index().unwrap(), 16);
        assert_eq!(reloaded.last_index().unwrap(), 20);
        assert_eq!(
            reloaded
                .entries(16, 21, None, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            5
        );
    }
}
