//! The monitor's durable consensus log: raft-rs `Storage` over an embedded redb
//! database in the monitor's data dir. Entries and the hard state are written (and
//! fsync'd) in one transaction before a ready batch is acknowledged; the applied
//! state is kept as snapshots taken when the log is compacted, so a restarted
//! monitor loads its last snapshot and re-applies the committed entries after it.
use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use redb::{Database, TableDefinition};
use std::path::Path;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
/// Every OSDMap epoch this monitor applied, for OSDs computing past intervals.
const ARCHIVE: TableDefinition<u64, &[u8]> = TableDefinition::new("osdmap_archive");
/// Epochs kept in the archive.
const ARCHIVE_KEEP: u64 = 5000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("monitor store {0}")]
    Db(String),
    #[error("monitor store is corrupt: {0}")]
    Corrupt(String),
}

fn db<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

pub struct MonStore {
    db: Database,
    hard: HardState,
    snap: Snapshot,
    /// Entries after the snapshot: `entries[0].index == snap index + 1`.
    entries: Vec<Entry>,
}

impl MonStore {
    /// Opens the store under `dir`, or makes a new one whose first configuration has
    /// `voters` (every monitor of the MonMap).
    pub fn open(dir: &Path, voters: &[u64]) -> Result<MonStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(db)?;
        let db = Database::create(dir.join("store.redb")).map_err(db)?;
        let mut s = MonStore { db, hard: HardState::default(), snap: Snapshot::default(), entries: vec![] };
        if !s.load()? {
            s.snap.mut_metadata().set_conf_state(ConfState::from((voters.to_vec(), vec![])));
            s.persist_meta(true)?;
        }
        Ok(s)
    }

    fn load(&mut self) -> Result<bool, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let meta = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(db(e)),
        };
        let Some(snap) = meta.get("snapshot").map_err(db)? else { return Ok(false) };
        self.snap = Snapshot::parse_from_bytes(snap.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if let Some(h) = meta.get("hardstate").map_err(db)? {
            self.hard = HardState::parse_from_bytes(h.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
        let log = tx.open_table(LOG).map_err(db)?;
        let first = self.snap.get_metadata().index + 1;
        for r in log.range(first..).map_err(db)? {
            let (_, v) = r.map_err(db)?;
            let e = Entry::parse_from_bytes(v.value()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            self.entries.push(e);
        }
        Ok(true)
    }

    fn persist_meta(&self, with_snapshot: bool) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut m = tx.open_table(META).map_err(db)?;
            let h = self.hard.write_to_bytes().map_err(db)?;
            m.insert("hardstate", h.as_slice()).map_err(db)?;
            if with_snapshot {
                let s = self.snap.write_to_bytes().map_err(db)?;
                m.insert("snapshot", s.as_slice()).map_err(db)?;
            }
            tx.open_table(LOG).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// Records one OSDMap epoch (encoded) in the archive, trimming the oldest.
    pub fn archive_osdmap(&self, epoch: u64, encoded: &[u8]) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(ARCHIVE).map_err(db)?;
            t.insert(epoch, encoded).map_err(db)?;
            if epoch > ARCHIVE_KEEP {
                t.retain_in(..epoch - ARCHIVE_KEEP, |_, _| false).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Archived epochs in `first..=last` (at most `max`), oldest first.
    pub fn archived_osdmaps(&self, first: u64, last: u64, max: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = match tx.open_table(ARCHIVE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(db(e)),
        };
        let mut out = Vec::new();
        for r in t.range(first..=last).map_err(db)?.take(max) {
            let (_, v) = r.map_err(db)?;
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snap.get_metadata().index
    }
    /// The applied state saved with the last snapshot (empty: the initial state).
    pub fn snapshot_data(&self) -> &[u8] {
        self.snap.get_data()
    }
    pub fn hard_state(&self) -> &HardState {
        &self.hard
    }

    /// Appends `ents` (replacing any conflicting suffix) and records `hs`, durably.
    pub fn append(&mut self, ents: &[Entry], hs: Option<&HardState>) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut log = tx.open_table(LOG).map_err(db)?;
            if let Some(first) = ents.first() {
                let from = first.index;
                let old_last = self.snapshot_index() + self.entries.len() as u64;
                for i in from..=old_last {
                    log.remove(i).map_err(db)?;
                }
                let keep = from.saturating_sub(self.snapshot_index() + 1) as usize;
                self.entries.truncate(keep);
                for e in ents {
                    log.insert(e.index, e.write_to_bytes().map_err(db)?.as_slice()).map_err(db)?;
                }
                self.entries.extend_from_slice(ents);
            }
            if let Some(hs) = hs {
                self.hard = hs.clone();
                let mut m = tx.open_table(META).map_err(db)?;
                m.insert("hardstate", hs.write_to_bytes().map_err(db)?.as_slice()).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Records the commit index learnt from the leader.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        let mut hs = self.hard.clone();
        hs.commit = commit;
        self.append(&[], Some(&hs))
    }

    /// Replaces the log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<(), StoreError> {
        let idx = snap.get_metadata().index;
        self.hard.commit = self.hard.commit.max(idx);
        self.hard.term = self.hard.term.max(snap.get_metadata().term);
        self.entries.clear();
        self.snap = snap;
        self.rewrite_log_from(idx + 1)
    }

    /// Folds entries up to `index` (applied) into a snapshot holding `data`.
    pub fn compact(&mut self, index: u64, conf: ConfState, data: Vec<u8>) -> Result<(), StoreError> {
        if index <= self.snapshot_index() {
            return Ok(());
        }
        let term = self.term_of(index).map_err(|e| StoreError::Db(e.to_string()))?;
        let drop = (index - self.snapshot_index()) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        let md = self.snap.mut_metadata();
        md.index = index;
        md.term = term;
        md.set_conf_state(conf);
        self.snap.set_data(data.into());
        self.rewrite_log_from(index + 1)
    }

    fn rewrite_log_from(&mut self, first: u64) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut log = tx.open_table(LOG).map_err(db)?;
            log.retain_in(..first, |_, _| false).map_err(db)?;
            let mut m = tx.open_table(META).map_err(db)?;
            m.insert("snapshot", self.snap.write_to_bytes().map_err(db)?.as_slice()).map_err(db)?;
            m.insert("hardstate", self.hard.write_to_bytes().map_err(db)?.as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    fn last(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    fn term_of(&self, idx: u64) -> raft::Result<u64> {
        let si = self.snapshot_index();
        if idx == si {
            return Ok(self.snap.get_metadata().term);
        }
        if idx < si {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entries
            .get((idx - si - 1) as usize)
            .map(|e| e.term)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }
}

impl raft::Storage for MonStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard.clone(),
            conf_state: self.snap.get_metadata().get_conf_state().clone(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _ctx: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let si = self.snapshot_index();
        if low <= si {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut v = self.entries[(low - si - 1) as usize..(high - si - 1) as usize].to_vec();
        raft::util::limit_size(&mut v, max_size.into());
        Ok(v)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.term_of(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, _request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        Ok(self.snap.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage;

    fn entry(index: u64, term: u64) -> Entry {
        let mut e = Entry::default();
        e.index = index;
        e.term = term;
        e.data = vec![index as u8].into();
        e
    }

    /// That appended entries, hard state and compaction survive a reopen, and a
    /// conflicting append replaces the old suffix.
    #[test]
    fn survives_reopen_and_compaction() {
        let d = tempfile::tempdir().unwrap();
        {
            let mut s = MonStore::open(d.path(), &[1, 2, 3]).unwrap();
            s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)], None).unwrap();
            s.append(&[entry(3, 2), entry(4, 2)], None).unwrap();
            let mut hs = HardState::default();
            hs.term = 2;
            hs.commit = 4;
            s.append(&[], Some(&hs)).unwrap();
            s.compact(2, ConfState::from((vec![1, 2, 3], vec![])), b"state@2".to_vec()).unwrap();
        }
        let s = MonStore::open(d.path(), &[9]).unwrap();
        assert_eq!(s.first_index().unwrap(), 3);
        assert_eq!(s.last_index().unwrap(), 4);
        assert_eq!(s.term(3).unwrap(), 2);
        assert_eq!(s.snapshot_data(), b"state@2");
        assert_eq!(s.initial_state().unwrap().hard_state.commit, 4);
        assert_eq!(s.initial_state().unwrap().conf_state.voters, vec![1, 2, 3]);
        assert!(matches!(s.entries(1, 3, None, GetEntriesContext::empty(false)), Err(_)));
        assert_eq!(s.entries(3, 5, None, GetEntriesContext::empty(false)).unwrap().len(), 2);
    }
}
