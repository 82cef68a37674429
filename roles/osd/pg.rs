//! One placement group as an OSD holds it: its interval (acting set and primary
//! since an epoch), its phase, its info and log, and the bookkeeping of writes in
//! flight. The log is a ring of `LOG_KEEP` entries kept in the PG's metadata keys,
//! written in the same store transaction as the data they describe, so a copy's log
//! and objects never disagree after a crash.
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_bytes::ByteBuf;

use super::store::{ObjectStore, StoreError, Transaction, TxOp};
use crate::ids::{Epoch, OsdId};
use crate::maps::PgId;
use crate::msg::osd::{Eversion, ObjectCopy, PgInfo, PgLogEntry, ReqId};
use crate::msg::payload::Payload;

/// Entries kept in a PG log; a copy further behind than this is backfilled.
pub const LOG_KEEP: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Primary gathering infos and logs from the acting set.
    Peering,
    /// Primary bringing itself or replicas up to the authoritative log.
    Recovering,
    /// Primary waiting for the monitors to record `up_thru` for this interval.
    WaitUpThru,
    Active,
    /// Fewer than `min_size` acting OSDs: no I/O until the acting set grows.
    Inactive,
    /// Not primary: serves the primary's replication and peering requests.
    Replica,
    /// An interval that may have accepted writes has no member up: wait for one.
    Down,
}

impl Phase {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Peering => "peering",
            Phase::Recovering => "recovering",
            Phase::WaitUpThru => "peering+wait_up_thru",
            Phase::Active => "active",
            Phase::Inactive => "inactive",
            Phase::Replica => "replica",
            Phase::Down => "down",
        }
    }
}

pub struct Pg {
    pub id: PgId,
    pub acting: Vec<OsdId>,
    pub primary: Option<OsdId>,
    pub min_size: usize,
    pub interval_since: Epoch,
    pub phase: Phase,
    pub info: PgInfo,
    pub log: VecDeque<PgLogEntry>,
    reqids: HashMap<ReqId, Eversion>,
    /// Peering: each other acting member's reported info and log.
    pub peer_info: BTreeMap<OsdId, Option<(PgInfo, Vec<PgLogEntry>)>>,
    /// Recovery: members whose push is not yet acknowledged.
    pub pushing: BTreeSet<OsdId>,
    /// Objects with a write in flight (writes to one object are applied in order).
    pub busy: BTreeSet<String>,
    /// Objects with work queued on the store thread (a local commit, a replicated
    /// write acknowledged once durable, a bulk read) that is not yet applied or done,
    /// and how many. Unlike `busy` it outlives interval changes: an op on such an
    /// object waits, since its check would read the store from before that work.
    pub in_store: HashMap<String, u32>,
    /// When the current peering step started (stalled steps are retried).
    pub step_since: std::time::Instant,
    /// Objects in the local copy (kept by the primary for its reports).
    pub num_objects: u64,
}

fn meta_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl Pg {
    pub fn new(id: PgId) -> Pg {
        Pg {
            id,
            acting: vec![],
            primary: None,
            min_size: 1,
            interval_since: 0,
            phase: Phase::Replica,
            info: PgInfo { pg: Some(id), ..PgInfo::default() },
            log: VecDeque::new(),
            reqids: HashMap::new(),
            peer_info: BTreeMap::new(),
            pushing: BTreeSet::new(),
            busy: BTreeSet::new(),
            in_store: HashMap::new(),
            step_since: std::time::Instant::now(),
            num_objects: 0,
        }
    }

    /// Loads info and log of a PG from the store.
    ///
    /// Writes store only their log entry, not the info, so the stored info's `last_update`
    /// and `log_tail` may be behind: the log is the newest run of consecutive versions in
    /// the slots (every slot holds an entry of this copy's history: [`Pg::adopt`] clears
    /// the slots of the log it replaces), `last_update` its newest entry, and the tail
    /// moves up to just before its oldest entry when entries were trimmed since.
    pub fn load(store: &ObjectStore, id: PgId) -> Result<Pg, StoreError> {
        let mut pg = Pg::new(id);
        if let Some(b) = store.pg_meta_get(id, "info")? {
            pg.info = rmp_serde::from_slice(&b).map_err(meta_err)?;
        }
        let mut entries = Vec::new();
        for (_, b) in store.pg_meta_prefixed(id, LOG_PREFIX)? {
            let e: PgLogEntry = rmp_serde::from_slice(&b).map_err(meta_err)?;
            if e.version > pg.info.log_tail {
                entries.push(e);
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.version));
        let run = 1 + entries.windows(2).take_while(|w| w[1].version.v + 1 == w[0].version.v).count();
        entries.truncate(run);
        if let (Some(newest), Some(oldest)) = (entries.first(), entries.last()) {
            pg.info.last_update = pg.info.last_update.max(newest.version);
            if oldest.version.v > pg.info.log_tail.v + 1 {
                // The entry before the oldest is gone; its epoch is at most the oldest's.
                pg.info.log_tail = Eversion { epoch: oldest.version.epoch, v: oldest.version.v - 1 };
            }
        }
        for e in entries.into_iter().rev() {
            pg.remember(e);
        }
        Ok(pg)
    }

    fn remember(&mut self, e: PgLogEntry) {
        if let Some(r) = &e.reqid {
            self.reqids.insert(r.clone(), e.version);
        }
        self.log.push_back(e);
        while self.log.len() as u64 > LOG_KEEP {
            if let Some(old) = self.log.pop_front() {
                self.info.log_tail = old.version;
                if let Some(r) = &old.reqid {
                    self.reqids.remove(r);
                }
            }
        }
    }

    /// Ceph's name for the PG's state as its primary sees it.
    pub fn state_name(&self, pool_size: usize) -> String {
        let undersized = self.acting.len() < pool_size;
        match self.phase {
            Phase::Active if undersized => "active+undersized+degraded".into(),
            Phase::Active => "active+clean".into(),
            Phase::Peering | Phase::WaitUpThru => "peering".into(),
            Phase::Recovering => "recovering+degraded".into(),
            Phase::Inactive => "undersized+peered".into(),
            Phase::Down => "down".into(),
            Phase::Replica => "replica".into(),
        }
    }

    /// Counts the local objects again (after recovery or on becoming primary).
    pub fn recount(&mut self, store: &ObjectStore) {
        self.num_objects = object_names(store, self.id).map_or(0, |v| v.len() as u64);
    }

    pub fn is_primary(&self, me: OsdId) -> bool {
        self.primary == Some(me)
    }

    /// The version a re-sent request already got, if it was applied.
    pub fn applied(&self, r: &ReqId) -> Option<Eversion> {
        self.reqids.get(r).copied()
    }

    pub fn next_version(&self, epoch: Epoch) -> Eversion {
        Eversion { epoch, v: self.info.last_update.v + 1 }
    }

    /// Records `entry` in memory and adds the metadata op that persists it to `txn` (the
    /// info is not rewritten: [`Pg::load`] finds `last_update` and the tail from the log).
    pub fn log_write(&mut self, entry: PgLogEntry, txn: &mut Transaction) {
        self.info.last_update = entry.version;
        let slot = entry.version.v % LOG_KEEP;
        if let Ok(b) = rmp_serde::to_vec_named(&entry) {
            txn.ops.push(TxOp::PgMetaSet { key: slot_key(slot), value: b });
        }
        self.remember(entry);
    }

    pub fn persist_info(&self, txn: &mut Transaction) {
        if let Ok(b) = rmp_serde::to_vec_named(&self.info) {
            txn.ops.push(TxOp::PgMetaSet { key: "info".into(), value: b });
        }
    }

    /// Replaces info and log with the authoritative ones (after recovery from them).
    pub fn adopt(&mut self, info: PgInfo, log: Vec<PgLogEntry>, txn: &mut Transaction) {
        // No slot may keep an entry of the replaced log: `load` trusts every slot.
        let kept: BTreeSet<u64> = log.iter().map(|e| e.version.v % LOG_KEEP).collect();
        let stale: BTreeSet<u64> = self.log.iter().map(|e| e.version.v % LOG_KEEP).filter(|s| !kept.contains(s)).collect();
        txn.ops.extend(stale.into_iter().map(|s| TxOp::PgMetaRm { key: slot_key(s) }));
        self.log.clear();
        self.reqids.clear();
        self.info = PgInfo { pg: Some(self.id), ..info };
        for e in log {
            if let Ok(b) = rmp_serde::to_vec_named(&e) {
                txn.ops.push(TxOp::PgMetaSet { key: slot_key(e.version.v % LOG_KEEP), value: b });
            }
            self.remember(e);
        }
        self.persist_info(txn);
    }

    /// Whether a copy at `last_update` can be brought current from the log alone.
    pub fn log_reaches(&self, last_update: Eversion) -> bool {
        last_update >= self.info.log_tail
    }

    pub fn log_vec(&self) -> Vec<PgLogEntry> {
        self.log.iter().cloned().collect()
    }
}

const LOG_PREFIX: &str = "log.";

fn slot_key(slot: u64) -> String {
    format!("{LOG_PREFIX}{slot:04}")
}

/// Every object name of a PG in the local store, in order.
pub fn object_names(store: &ObjectStore, pg: PgId) -> Result<Vec<String>, StoreError> {
    let mut out: Vec<String> = Vec::new();
    loop {
        let page = store.list_objects(pg, out.last().map(String::as_str), 4096)?;
        let done = page.len() < 4096;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Objects changed after `since` in `log`: each object's newest version and whether
/// that entry deleted it.
pub fn changed_in(log: &[PgLogEntry], since: Eversion) -> Vec<(String, Eversion, bool)> {
    let mut newest: BTreeMap<&str, (Eversion, bool)> = BTreeMap::new();
    for e in log.iter().filter(|e| e.version > since) {
        newest.insert(&e.oid, (e.version, e.deleted));
    }
    newest.into_iter().map(|(o, (v, d))| (o.to_string(), v, d)).collect()
}

/// What a copy must recover from the authoritative log `auth`, as Ceph's log merge
/// finds it: `since`, the newest version the copy's log `theirs` shares with `auth`
/// (every object `auth` changed after it is to be recovered), and the objects of the
/// copy's own entries after that point. Those entries are divergent: a primary ordered
/// them in an interval that ended before every replica had them (the replicas had moved
/// to a newer interval and ignored them), so none was acknowledged, and the authority's
/// copy of each such object replaces the copy's (or removes it, where the authority has
/// none). Entries at or before `auth`'s tail cannot be compared and count as shared
/// (every later version of the authority is in `auth`); a copy with nothing in common
/// starts from its own tail (and is backfilled when `auth` does not reach back there).
pub fn merge_point(theirs: &PgInfo, their_log: &[PgLogEntry], auth_info: &PgInfo, auth: &[PgLogEntry]) -> (Eversion, Vec<String>) {
    let known: HashMap<Eversion, &str> = auth.iter().map(|e| (e.version, e.oid.as_str())).collect();
    let mut divergent = BTreeSet::new();
    let mut since = if their_log.is_empty() { theirs.last_update } else { theirs.log_tail };
    for e in their_log.iter().rev() {
        let shared = known.get(&e.version).is_some_and(|o| *o == e.oid) || e.version <= auth_info.log_tail;
        if shared {
            since = e.version;
            break;
        }
        divergent.insert(e.oid.clone());
    }
    (since, divergent.into_iter().collect())
}

/// The objects to recover on a copy whose log is `theirs` (see [`merge_point`]), each
/// with the authority's newest version of it; `since` says where the copy's log meets
/// `auth`.
pub fn to_recover(theirs: &PgInfo, their_log: &[PgLogEntry], auth_info: &PgInfo, auth: &[PgLogEntry]) -> (Eversion, Vec<(String, Eversion)>) {
    let (since, divergent) = merge_point(theirs, their_log, auth_info, auth);
    let mut out: BTreeMap<String, Eversion> = changed_in(auth, since).into_iter().map(|(o, v, _)| (o, v)).collect();
    for o in divergent {
        out.entry(o).or_insert(auth_info.last_update);
    }
    (since, out.into_iter().collect())
}

/// How far the copy of one object has gone: an object larger than a push part goes
/// in pieces (data first, from offset 0, then the omap in key order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CopyAt {
    /// Data bytes copied so far.
    pub off: u64,
    /// Whether all of the data is copied (the omap is next).
    pub data_done: bool,
    /// The last omap key copied.
    pub omap_after: Option<String>,
}

/// Omap entries read at a time for a copy.
const COPY_OMAP_PAGE: usize = 4096;

/// The next piece of a copy of `oid` from the local store, from where `at` stands: at
/// most about `budget` bytes of data and omap (at least one omap page when the omap is
/// next). The first piece has the xattrs and replaces the object (None data: the object
/// does not exist); the later ones add to it. Returns the piece and whether the object
/// is now copied whole. The caller keeps the PG from changing between pieces (a PG
/// being recovered serves no writes).
pub fn copy_piece(store: &ObjectStore, pg: PgId, oid: &str, version: Eversion, at: &mut CopyAt, budget: usize) -> Result<(ObjectCopy, bool), StoreError> {
    let first = *at == CopyAt::default();
    let stat = match store.stat(pg, oid) {
        Ok(s) => s,
        Err(StoreError::NoObject(_)) if first => {
            let gone = ObjectCopy { oid: oid.into(), version, data: None, mtime_ms: 0, xattrs: vec![], omap: vec![], data_off: 0, cont: false };
            return Ok((gone, true));
        }
        Err(e) => return Err(e),
    };
    let data_off = at.off;
    let mut left = budget;
    let mut data = bytes::Bytes::new();
    if !at.data_done {
        let len = stat.size.saturating_sub(at.off).min(left as u64);
        if len > 0 {
            data = store.read_bytes(pg, oid, at.off, Some(len))?;
        }
        at.off += data.len() as u64;
        left = left.saturating_sub(data.len());
        // A short read (the object shrank) would end the copy early, not loop.
        at.data_done = at.off >= stat.size || (data.len() as u64) < len;
    }
    let xattrs = if first { store.xattrs(pg, oid)?.into_iter().map(|(k, v)| (k, ByteBuf::from(v))).collect() } else { vec![] };
    let mut omap = Vec::new();
    let mut done = false;
    if at.data_done {
        loop {
            let page = store.omap_list(pg, oid, at.omap_after.as_deref(), COPY_OMAP_PAGE)?;
            let last = page.len() < COPY_OMAP_PAGE;
            if let Some((k, _)) = page.last() {
                at.omap_after = Some(k.clone());
            }
            for (k, v) in page {
                left = left.saturating_sub(k.len() + v.len());
                omap.push((k, ByteBuf::from(v)));
            }
            if last {
                done = true;
                break;
            }
            if left == 0 {
                break;
            }
        }
    }
    let copy = ObjectCopy { oid: oid.into(), version, data: Some(Payload::from(data)), mtime_ms: stat.mtime_ms, xattrs, omap, data_off, cont: !first };
    Ok((copy, done))
}

/// Store ops that make the local object equal to `c` (`exists`: it exists now).
pub fn install_copy(c: &ObjectCopy, exists: bool, txn: &mut Transaction) {
    let oid = c.oid.clone();
    if c.cont {
        // A later piece: more data and omap for the object its first piece made.
        if let Some(data) = c.data.as_ref().filter(|d| !d.is_empty()) {
            txn.ops.push(TxOp::Write { oid: oid.clone(), off: c.data_off, data: data.clone() });
        }
        if !c.omap.is_empty() {
            txn.ops.push(TxOp::OmapSet { oid: oid.clone(), entries: c.omap.clone() });
        }
        txn.ops.push(TxOp::SetMtime { oid, mtime_ms: c.mtime_ms });
        return;
    }
    if exists {
        txn.ops.push(TxOp::Remove { oid: oid.clone() });
    }
    let Some(data) = &c.data else { return };
    txn.ops.push(TxOp::WriteFull { oid: oid.clone(), data: data.clone() });
    for (k, v) in &c.xattrs {
        txn.ops.push(TxOp::SetXattr { oid: oid.clone(), name: k.clone(), value: v.to_vec() });
    }
    if !c.omap.is_empty() {
        txn.ops.push(TxOp::OmapSet { oid: oid.clone(), entries: c.omap.clone() });
    }
    txn.ops.push(TxOp::SetMtime { oid, mtime_ms: c.mtime_ms });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: u64, oid: &str, deleted: bool) -> PgLogEntry {
        PgLogEntry { version: Eversion { epoch: 1, v }, oid: oid.into(), reqid: None, deleted }
    }

    /// Logs `e` on `pg` and commits it, as a write would.
    fn log_and_commit(store: &ObjectStore, pg: &mut Pg, e: PgLogEntry) {
        let mut t = Transaction::default();
        pg.log_write(e, &mut t);
        store.apply(pg.id, &t).unwrap();
    }

    /// That the log persists through the store, trims to LOG_KEEP with the tail
    /// following, and reports each object's newest change since a version.
    #[test]
    fn log_persists_trims_and_diffs() {
        let d = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(d.path()).unwrap();
        let id = PgId { pool: 1, seed: 3 };
        let mut pg = Pg::new(id);
        for v in 1..=LOG_KEEP + 5 {
            log_and_commit(&store, &mut pg, entry(v, &format!("o{}", v % 7), v % 11 == 0));
        }
        assert_eq!(pg.log.len() as u64, LOG_KEEP);
        assert_eq!(pg.info.log_tail.v, 5);
        let back = Pg::load(&store, id).unwrap();
        assert_eq!(back.info, pg.info);
        assert_eq!(back.log_vec(), pg.log_vec());
        assert!(back.log_reaches(Eversion { epoch: 1, v: 5 }) && !back.log_reaches(Eversion { epoch: 1, v: 4 }));
        let ch = changed_in(&back.log_vec(), Eversion { epoch: 1, v: LOG_KEEP });
        assert_eq!(ch.len(), 5);
        assert!(ch.iter().all(|(_, v, _)| v.v > LOG_KEEP));
    }

    /// That a copy's log is merged with the authority's as Ceph merges logs: the copy
    /// recovers what the authority changed after the newest entry both share, plus the
    /// objects of its own divergent entries (ordered in an interval that ended before
    /// the replicas had them; the authority's later entries reuse their counters in a
    /// newer epoch). The field case: osd.1, primary, committed `x` alone after the others
    /// had moved on; the new authority never wrote `x`, so `x` must go, or a later remove
    /// of `x` fails on the replicas that never had it.
    #[test]
    fn divergent_entries_are_recovered_from_the_authority() {
        let at = |epoch: u64, v: u64, oid: &str| PgLogEntry { version: Eversion { epoch, v }, ..entry(v, oid, false) };
        let info = |log: &[PgLogEntry], tail: Eversion| PgInfo {
            pg: None,
            last_update: log.last().map_or(tail, |e| e.version),
            log_tail: tail,
            last_epoch_started: 0,
        };
        let zero = Eversion::default();
        // Shared 12'1..12'3; the old primary then wrote x and y alone at 12'4, 12'5.
        let shared: Vec<PgLogEntry> = (1..=3).map(|v| at(12, v, &format!("s{v}"))).collect();
        let mut old = shared.clone();
        old.extend([at(12, 4, "x"), at(12, 5, "y")]);
        // The authority went on in epoch 14 with the same counters.
        let mut auth = shared.clone();
        auth.extend([at(14, 4, "a"), at(14, 5, "y"), at(14, 6, "b")]);
        let (ai, oi) = (info(&auth, zero), info(&old, zero));
        assert_eq!(merge_point(&oi, &old, &ai, &auth), (Eversion { epoch: 12, v: 3 }, vec!["x".to_string(), "y".to_string()]));
        let (since, names) = to_recover(&oi, &old, &ai, &auth);
        assert_eq!(since, Eversion { epoch: 12, v: 3 });
        let names: Vec<&str> = names.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(names, ["a", "b", "x", "y"], "the authority's changes and the divergent objects");
        // A copy that is simply behind has nothing divergent.
        let behind = shared[..2].to_vec();
        let (since, names) = to_recover(&info(&behind, zero), &behind, &ai, &auth);
        assert_eq!(since, Eversion { epoch: 12, v: 2 });
        assert_eq!(names.iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(), ["a", "b", "s3", "y"]);
        // The authority itself, or an equal copy: nothing to recover.
        assert_eq!(to_recover(&ai, &auth, &ai, &auth), (Eversion { epoch: 14, v: 6 }, vec![]));
        // Everything divergent: from the copy's own tail, which the authority's log
        // must reach (else the caller backfills).
        let lone = vec![at(13, 4, "z")];
        let li = info(&lone, Eversion { epoch: 12, v: 3 });
        let (since, names) = to_recover(&li, &lone, &ai, &auth);
        assert_eq!(since, Eversion { epoch: 12, v: 3 });
        assert_eq!(names.iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(), ["a", "b", "y", "z"]);
        // Entries at or before the authority's tail count as shared (they cannot be
        // compared); a divergent one after it does not.
        let trimmed = auth[3..].to_vec();
        let ti = info(&trimmed, Eversion { epoch: 12, v: 3 });
        assert_eq!(merge_point(&oi, &old, &ti, &trimmed), (Eversion { epoch: 12, v: 3 }, vec!["x".to_string(), "y".to_string()]));
        assert_eq!(merge_point(&info(&behind, zero), &behind, &ti, &trimmed).0, Eversion { epoch: 12, v: 2 });
    }

    /// That a copy reloaded after adopting a shorter, divergent log has exactly that log
    /// (its own newer entries must not come back from their slots), and that writes after
    /// it are found again from the slots alone.
    #[test]
    fn adopted_log_survives_reload() {
        let d = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(d.path()).unwrap();
        let id = PgId { pool: 1, seed: 4 };
        let mut pg = Pg::new(id);
        for v in 1..=10 {
            log_and_commit(&store, &mut pg, entry(v, "o", false));
        }
        let mut auth: Vec<PgLogEntry> = (1..=7).map(|v| entry(v, "o", false)).collect();
        auth[6].version.epoch = 2;
        let info = PgInfo { pg: Some(id), last_update: auth[6].version, log_tail: Eversion::default(), last_epoch_started: 2 };
        let mut t = Transaction::default();
        pg.adopt(info.clone(), auth.clone(), &mut t);
        store.apply(id, &t).unwrap();
        let back = Pg::load(&store, id).unwrap();
        assert_eq!(back.log_vec(), auth);
        assert_eq!(back.info, info);
        let next = PgLogEntry { version: Eversion { epoch: 3, v: 8 }, ..entry(8, "p", false) };
        log_and_commit(&store, &mut pg, next.clone());
        let back = Pg::load(&store, id).unwrap();
        assert_eq!(back.info.last_update, next.version);
        assert_eq!(back.log_vec(), pg.log_vec());
    }

    /// That an object copy installed elsewhere reproduces the object exactly.
    #[test]
    fn copies_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (ObjectStore::open(&d.path().join("a")).unwrap(), ObjectStore::open(&d.path().join("b")).unwrap());
        let id = PgId { pool: 1, seed: 0 };
        let t = Transaction {
            ops: vec![
                TxOp::WriteFull { oid: "x".into(), data: vec![7; 100_000].into() },
                TxOp::SetXattr { oid: "x".into(), name: "n".into(), value: b"v".to_vec() },
                TxOp::OmapSet { oid: "x".into(), entries: vec![("k".into(), ByteBuf::from(b"1".to_vec()))] },
            ],
            mtime_ms: 42,
        };
        a.apply(id, &t).unwrap();
        b.apply(id, &Transaction { ops: vec![TxOp::WriteFull { oid: "x".into(), data: vec![1].into() }], mtime_ms: 1 }).unwrap();
        let c = copy_piece(&a, id, "x", Eversion::default(), &mut CopyAt::default(), usize::MAX).unwrap().0;
        let mut t2 = Transaction::default();
        install_copy(&c, true, &mut t2);
        b.apply(id, &t2).unwrap();
        assert_eq!(a.pg_digest(id).unwrap(), b.pg_digest(id).unwrap());
        assert_eq!(b.stat(id, "x").unwrap().mtime_ms, 42);
    }

    /// That objects larger than a piece (data, omap, or both) copy in bounded pieces,
    /// each installed in its own transaction as push parts are, and come out equal;
    /// an empty object and a deleted one take one piece each.
    #[test]
    fn large_copies_go_in_pieces() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (ObjectStore::open(&d.path().join("a")).unwrap(), ObjectStore::open(&d.path().join("b")).unwrap());
        let id = PgId { pool: 1, seed: 0 };
        let data: Vec<u8> = (0..3 * (1 << 20) + 123).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let omap: Vec<(String, ByteBuf)> = (0..10_000).map(|i| (format!("key-{i:06}"), ByteBuf::from(vec![i as u8; 90]))).collect();
        let t = Transaction {
            ops: vec![
                TxOp::WriteFull { oid: "data".into(), data: data.clone().into() },
                TxOp::SetXattr { oid: "data".into(), name: "n".into(), value: b"v".to_vec() },
                TxOp::OmapSet { oid: "omap".into(), entries: omap.clone() },
                TxOp::WriteFull { oid: "both".into(), data: data[..700_000].to_vec().into() },
                TxOp::OmapSet { oid: "both".into(), entries: omap.clone() },
                TxOp::Create { oid: "empty".into(), exclusive: true },
            ],
            mtime_ms: 42,
        };
        a.apply(id, &t).unwrap();
        // The receiver has older, different versions, and an object the source deleted.
        let old = Transaction {
            ops: vec![
                TxOp::WriteFull { oid: "data".into(), data: vec![1; 5 << 20].into() },
                TxOp::SetXattr { oid: "data".into(), name: "stale".into(), value: b"x".to_vec() },
                TxOp::OmapSet { oid: "both".into(), entries: vec![("zzz".into(), ByteBuf::from(b"old".to_vec()))] },
                TxOp::WriteFull { oid: "gone".into(), data: vec![2; 10].into() },
            ],
            mtime_ms: 1,
        };
        b.apply(id, &old).unwrap();
        let budget = 256 << 10;
        for oid in ["data", "omap", "both", "empty", "gone"] {
            let (mut at, mut pieces) = (CopyAt::default(), 0);
            loop {
                let exists = b.stat(id, oid).is_ok();
                let (c, whole) = copy_piece(&a, id, oid, Eversion::default(), &mut at, budget).unwrap();
                let bytes = c.data.as_ref().map_or(0, |d| d.len()) + c.omap.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
                assert!(bytes <= budget + COPY_OMAP_PAGE * 100, "{oid}: a piece of {bytes} bytes");
                assert_eq!(c.cont, pieces > 0);
                let mut t = Transaction::default();
                install_copy(&c, exists, &mut t);
                b.apply(id, &t).unwrap();
                pieces += 1;
                if whole {
                    break;
                }
                assert!(pieces < 100, "{oid}: the copy does not end");
            }
            let want = match oid {
                "data" => 13,
                "omap" => 3,
                "both" => 5,
                _ => 1,
            };
            assert_eq!(pieces, want, "{oid}");
        }
        assert_eq!(a.pg_digest(id).unwrap(), b.pg_digest(id).unwrap());
        assert_eq!(b.read(id, "data", 0, None).unwrap(), data);
        assert_eq!(b.omap_list(id, "both", None, 20_000).unwrap().len(), 10_000);
        assert!(b.stat(id, "gone").is_err());
    }
}
