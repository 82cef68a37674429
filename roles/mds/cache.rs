//! MdCache: the rank's in-memory namespace. It holds base inodes (root, mdsdir),
//! directory fragments (one fragment, frag 0, per directory) whose dentries hold their
//! primary inodes, an index of where each cached inode's primary dentry is, and the
//! anchor table for hard links (see `types.rs`).
//!
//! Data flow: request handlers (`server.rs`) read the cache and produce an `EMetaBlob`;
//! `apply` installs it, on the live path and in replay alike. `apply` marks what it
//! touched dirty for the current journal segment; the rank writes dirty targets back to
//! RADOS (`flush_payload` → write → `mark_flushed`) and expires a segment once
//! `dirty_for_segment` is empty. Clean, unpinned fragments are evicted by `trim` when the
//! cache is over its memory budget; a fragment is evicted whole, leaves first, so every
//! cached fragment stays reachable from its parent.
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

use super::events::EMetaBlob;
use super::types::{decode, encode, is_base, mdsdir_ino, DecodeError, FileLayout, Ino, Inode, Linkage, ROOT_INO};
use crate::ids::Rank;
use crate::msg::mds::S_IFDIR;

/// Omap key of a fragment's own header; names never contain NUL, so it cannot clash.
pub const FNODE_KEY: &str = "\0fnode";
/// Default memory budget of the cache (Ceph's `mds_cache_memory_limit` is 4 GiB).
pub const DEFAULT_BUDGET: usize = 64 << 20;

/// One directory fragment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirFrag {
    pub dentries: BTreeMap<String, Linkage>,
    /// Every dentry of the directory is in memory. Fragments loaded from RADOS and new
    /// directories are complete; only `apply` on an unloaded fragment makes a partial one.
    pub complete: bool,
    /// Version of the last change applied to it.
    pub version: u64,
    /// Names changed (added, replaced or removed) since they were last written back,
    /// each with the version of its newest change: what the next write-back sends. A
    /// large directory is never rewritten whole for a few changes, and no write-back
    /// grows with the directory.
    pub dirty_names: BTreeMap<String, u64>,
}

impl DirFrag {
    fn mem_estimate(&self) -> usize {
        128 + self.dentries.iter().map(|(k, l)| 64 + k.len() + l.mem_estimate()).sum::<usize>()
            + self.dirty_names.keys().map(|k| 48 + k.len()).sum::<usize>()
    }
}

/// The fragment header stored under `FNODE_KEY`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Fnode {
    version: u64,
}

/// Something that must be written back to RADOS before a segment can expire.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlushTarget {
    /// A directory fragment object (written, or deleted if the directory is gone).
    Dir(Ino),
    /// A base inode's `.inode` object.
    BaseInode(Ino),
    AnchorTable,
}

/// What to write for a flush target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlushPayload {
    /// Set these omap entries of the fragment object (the changed dentries and the
    /// fragment header) and remove these keys (removed dentries); the object is created
    /// if missing.
    Dir { set: BTreeMap<String, Vec<u8>>, rm: Vec<String> },
    /// Delete the fragment object.
    DeleteDir,
    BaseInode(Vec<u8>),
    Anchors(Vec<u8>),
}

/// The namespace part of a cache, for comparing two caches in tests and tools.
#[derive(Debug, PartialEq, Eq)]
pub struct CacheView {
    pub base: BTreeMap<Ino, Inode>,
    pub dirs: BTreeMap<Ino, (bool, BTreeMap<String, Linkage>)>,
    pub anchors: BTreeMap<Ino, (Ino, String)>,
    pub version: u64,
}

#[derive(Clone, Debug)]
pub struct MdCache {
    pub rank: Rank,
    base: BTreeMap<Ino, Inode>,
    dirs: BTreeMap<Ino, DirFrag>,
    /// Primary dentry of every cached non-base inode (derived from `dirs`).
    parent: HashMap<Ino, (Ino, String)>,
    anchors: BTreeMap<Ino, (Ino, String)>,
    version: u64,
    segment: u64,
    /// Dirty targets → (segment → highest version dirtied in it).
    dirty: BTreeMap<FlushTarget, BTreeMap<u64, u64>>,
    tick: u64,
    lru: BTreeMap<u64, Ino>,
    last_used: HashMap<Ino, u64>,
    pins: HashMap<Ino, u32>,
    budget: usize,
    /// The file system's `max_file_size` (from the MDSMap, set by the rank before it
    /// runs a request): sizes past it are refused with EFBIG.
    pub max_file_size: u64,
}

impl MdCache {
    /// An empty cache; base inodes and fragments are then loaded from RADOS.
    pub fn new(rank: Rank) -> Self {
        MdCache {
            rank,
            base: BTreeMap::new(),
            dirs: BTreeMap::new(),
            parent: HashMap::new(),
            anchors: BTreeMap::new(),
            version: 0,
            segment: 0,
            dirty: BTreeMap::new(),
            tick: 0,
            lru: BTreeMap::new(),
            last_used: HashMap::new(),
            pins: HashMap::new(),
            budget: DEFAULT_BUDGET,
            max_file_size: crate::maps::fsmap::DEFAULT_MAX_FILE_SIZE,
        }
    }

    /// A new file system (`boot_create`): root and this rank's mdsdir, empty and dirty.
    pub fn create_fs(rank: Rank, now: i64, layout: FileLayout) -> Self {
        let mut c = MdCache::new(rank);
        let root = Inode::new(ROOT_INO, S_IFDIR | 0o755, 0, 0, now, layout);
        let mdsdir = Inode::new(mdsdir_ino(rank), S_IFDIR | 0o700, 0, 0, now, layout);
        c.apply(&EMetaBlob {
            desc: "create fs".into(),
            version: 1,
            new_dirs: vec![ROOT_INO, mdsdir_ino(rank)],
            base_inodes: vec![root, mdsdir],
            ..Default::default()
        });
        c
    }

    // --- reading ---

    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn segment(&self) -> u64 {
        self.segment
    }
    /// The journal moved to a new segment: later changes are charged to it.
    pub fn set_segment(&mut self, seg: u64) {
        self.segment = seg;
    }
    pub fn mdsdir(&self) -> Ino {
        mdsdir_ino(self.rank)
    }
    pub fn inode(&self, ino: Ino) -> Option<&Inode> {
        if let Some(i) = self.base.get(&ino) {
            return Some(i);
        }
        let (dir, name) = self.parent.get(&ino)?;
        match self.dirs.get(dir)?.dentries.get(name)? {
            Linkage::Primary(i) => Some(i),
            Linkage::Remote { .. } => None,
        }
    }
    pub fn dir(&self, ino: Ino) -> Option<&DirFrag> {
        self.dirs.get(&ino)
    }
    /// Where `ino`'s primary dentry is, if it is cached and not a base inode.
    pub fn parent_of(&self, ino: Ino) -> Option<(Ino, &str)> {
        self.parent.get(&ino).map(|(d, n)| (*d, n.as_str()))
    }
    pub fn anchor(&self, ino: Ino) -> Option<(Ino, &str)> {
        self.anchors.get(&ino).map(|(d, n)| (*d, n.as_str()))
    }
    /// Directories named by primary dentries of complete cached fragments whose own
    /// fragment is not loaded (at most `max`): where to look next for an inode that is
    /// not reachable from the cache.
    pub fn unloaded_subdirs(&self, max: usize) -> Vec<Ino> {
        let mut out = Vec::new();
        for f in self.dirs.values().filter(|f| f.complete) {
            for l in f.dentries.values() {
                if let Linkage::Primary(i) = l {
                    if i.is_dir() && self.dirs.get(&i.ino).is_none_or(|d| !d.complete) {
                        out.push(i.ino);
                        if out.len() >= max {
                            return out;
                        }
                    }
                }
            }
        }
        out
    }
    pub fn view(&self) -> CacheView {
        CacheView {
            base: self.base.clone(),
            dirs: self.dirs.iter().map(|(k, d)| (*k, (d.complete, d.dentries.clone()))).collect(),
            anchors: self.anchors.clone(),
            version: self.version,
        }
    }

    // --- changing ---

    /// Installs a blob: the one way the namespace changes, live and in replay.
    /// The blob's directories should be loaded first (`EMetaBlob::dirs_touched`); a
    /// missing one is created as an incomplete fragment holding only these dentries.
    pub fn apply(&mut self, blob: &EMetaBlob) {
        let (v, seg) = (blob.version, self.segment);
        for &d in &blob.new_dirs {
            self.dirs.entry(d).or_insert_with(|| DirFrag { complete: true, version: v, ..Default::default() });
            self.mark_dirty(FlushTarget::Dir(d), seg, v);
            self.touch(d);
        }
        for u in &blob.dentries {
            let frag = self.dirs.entry(u.dir).or_default();
            frag.version = frag.version.max(v);
            let old = match &u.linkage {
                Some(l) => frag.dentries.insert(u.name.clone(), l.clone()),
                None => frag.dentries.remove(&u.name),
            };
            let dv = frag.dirty_names.entry(u.name.clone()).or_insert(v);
            *dv = (*dv).max(v);
            if let Some(Linkage::Primary(i)) = old {
                if self.parent.get(&i.ino).is_some_and(|(d, n)| *d == u.dir && *n == u.name) {
                    self.parent.remove(&i.ino);
                }
            }
            if let Some(Linkage::Primary(i)) = &u.linkage {
                self.parent.insert(i.ino, (u.dir, u.name.clone()));
            }
            self.mark_dirty(FlushTarget::Dir(u.dir), seg, v);
            self.touch(u.dir);
        }
        for &d in &blob.removed_dirs {
            // Empty on the live path; in replay it may hold dentries re-applied from
            // older entries, whose index entries must go with it.
            for (name, l) in self.dirs.remove(&d).map(|f| f.dentries).unwrap_or_default() {
                if let Linkage::Primary(i) = l {
                    if self.parent.get(&i.ino).is_some_and(|(pd, pn)| *pd == d && *pn == name) {
                        self.parent.remove(&i.ino);
                    }
                }
            }
            if let Some(t) = self.last_used.remove(&d) {
                self.lru.remove(&t);
            }
            self.mark_dirty(FlushTarget::Dir(d), seg, v);
        }
        for i in &blob.base_inodes {
            self.base.insert(i.ino, i.clone());
            self.mark_dirty(FlushTarget::BaseInode(i.ino), seg, v);
        }
        for (ino, a) in &blob.anchors {
            match a {
                Some(a) => self.anchors.insert(*ino, a.clone()),
                None => self.anchors.remove(ino),
            };
            self.mark_dirty(FlushTarget::AnchorTable, seg, v);
        }
        self.version = self.version.max(v);
    }

    fn mark_dirty(&mut self, t: FlushTarget, seg: u64, v: u64) {
        let e = self.dirty.entry(t).or_default().entry(seg).or_insert(v);
        *e = (*e).max(v);
    }

    // --- write-back and segments ---

    /// Everything dirtied in `seg` and not yet flushed.
    pub fn dirty_for_segment(&self, seg: u64) -> Vec<FlushTarget> {
        self.dirty.iter().filter(|(_, s)| s.contains_key(&seg)).map(|(t, _)| t.clone()).collect()
    }
    pub fn dirty_dirs_for_segment(&self, seg: u64) -> Vec<Ino> {
        self.dirty_for_segment(seg)
            .into_iter()
            .filter_map(|t| if let FlushTarget::Dir(d) = t { Some(d) } else { None })
            .collect()
    }
    pub fn oldest_dirty_segment(&self) -> Option<u64> {
        self.dirty.values().filter_map(|s| s.keys().next().copied()).min()
    }
    pub fn is_dirty(&self, t: &FlushTarget) -> bool {
        self.dirty.contains_key(t)
    }

    /// The bytes to write for `t` and the version they hold (pass it to `mark_flushed`
    /// once written, so changes made meanwhile stay dirty).
    pub fn flush_payload(&self, t: &FlushTarget) -> (FlushPayload, u64) {
        let v = self.dirty.get(t).and_then(|s| s.values().max().copied()).unwrap_or(self.version);
        let p = match t {
            FlushTarget::Dir(d) => match self.dirs.get(d) {
                Some(frag) => {
                    let mut set = BTreeMap::new();
                    let mut rm = Vec::new();
                    for name in frag.dirty_names.keys() {
                        match frag.dentries.get(name) {
                            Some(l) => drop(set.insert(name.clone(), encode(l))),
                            None => rm.push(name.clone()),
                        }
                    }
                    set.insert(FNODE_KEY.to_string(), encode(&Fnode { version: frag.version }));
                    FlushPayload::Dir { set, rm }
                }
                None => FlushPayload::DeleteDir,
            },
            FlushTarget::BaseInode(i) => FlushPayload::BaseInode(self.base.get(i).map(encode).unwrap_or_default()),
            FlushTarget::AnchorTable => FlushPayload::Anchors(encode(&self.anchors)),
        };
        (p, v)
    }

    /// `t` was written as of `version`: segments dirtied only up to it are clean now.
    pub fn mark_flushed(&mut self, t: &FlushTarget, version: u64) {
        if let FlushTarget::Dir(d) = t {
            if let Some(frag) = self.dirs.get_mut(d) {
                frag.dirty_names.retain(|_, v| *v > version);
            }
        }
        if let Some(s) = self.dirty.get_mut(t) {
            s.retain(|_, v| *v > version);
            if s.is_empty() {
                self.dirty.remove(t);
            }
        }
    }

    // --- storage encoding ---

    /// A fragment as omap entries: one key per dentry (value: the encoded linkage, with
    /// the inode for primaries) plus the fragment header under `FNODE_KEY`.
    pub fn dir_object_omap(&self, ino: Ino) -> Option<BTreeMap<String, Vec<u8>>> {
        let d = self.dirs.get(&ino)?;
        let mut m: BTreeMap<String, Vec<u8>> = d.dentries.iter().map(|(k, l)| (k.clone(), encode(l))).collect();
        m.insert(FNODE_KEY.to_string(), encode(&Fnode { version: d.version }));
        Some(m)
    }

    /// Installs a fragment read from RADOS. Dentries already in cache are newer (they
    /// came from the journal) and win; the fragment is complete afterwards.
    pub fn load_dir(&mut self, ino: Ino, omap: &BTreeMap<String, Vec<u8>>) -> Result<(), DecodeError> {
        let mut fresh = DirFrag { complete: true, ..Default::default() };
        for (k, v) in omap {
            if k == FNODE_KEY {
                fresh.version = decode::<Fnode>("fnode", v)?.version;
            } else {
                fresh.dentries.insert(k.clone(), decode::<Linkage>("dentry", v)?);
            }
        }
        self.version = self.version.max(fresh.version);
        let frag = self.dirs.entry(ino).or_default();
        if frag.complete {
            return Ok(());
        }
        for (k, l) in fresh.dentries {
            frag.dentries.entry(k).or_insert(l);
        }
        frag.complete = true;
        frag.version = frag.version.max(fresh.version);
        let prim: Vec<(Ino, String)> = frag
            .dentries
            .iter()
            .filter_map(|(k, l)| if let Linkage::Primary(i) = l { Some((i.ino, k.clone())) } else { None })
            .collect();
        for (i, k) in prim {
            self.parent.insert(i, (ino, k));
        }
        self.touch(ino);
        Ok(())
    }

    /// Installs a base inode read from its `.inode` object.
    pub fn load_base(&mut self, bytes: &[u8]) -> Result<Ino, DecodeError> {
        let i: Inode = decode("base inode", bytes)?;
        if !is_base(i.ino) {
            return Err(DecodeError { what: "base inode".into(), why: format!("{:#x} is not a base inode", i.ino) });
        }
        let ino = i.ino;
        self.version = self.version.max(i.version);
        self.base.entry(ino).or_insert(i);
        Ok(ino)
    }

    pub fn load_anchors(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let a: BTreeMap<Ino, (Ino, String)> = decode("anchor table", bytes)?;
        for (k, v) in a {
            self.anchors.entry(k).or_insert(v);
        }
        Ok(())
    }

    // --- memory ---

    /// Marks a fragment recently used.
    pub fn touch(&mut self, dir: Ino) {
        if !self.dirs.contains_key(&dir) {
            return;
        }
        self.tick += 1;
        if let Some(t) = self.last_used.insert(dir, self.tick) {
            self.lru.remove(&t);
        }
        self.lru.insert(self.tick, dir);
    }
    /// Keeps an inode (and so its fragment) in cache, e.g. while a client holds caps.
    pub fn pin(&mut self, ino: Ino) {
        *self.pins.entry(ino).or_default() += 1;
    }
    pub fn unpin(&mut self, ino: Ino) {
        if let Some(n) = self.pins.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                self.pins.remove(&ino);
            }
        }
    }
    pub fn set_budget(&mut self, bytes: usize) {
        self.budget = bytes;
    }
    pub fn mem_estimate(&self) -> usize {
        self.dirs.values().map(DirFrag::mem_estimate).sum::<usize>() + self.base.len() * 256
    }

    fn evictable(&self, d: Ino) -> bool {
        let Some(frag) = self.dirs.get(&d) else { return false };
        !is_base(d)
            && !self.dirty.contains_key(&FlushTarget::Dir(d))
            && !self.pins.contains_key(&d)
            && frag.dentries.values().all(|l| match l {
                Linkage::Primary(i) => !self.pins.contains_key(&i.ino) && !self.dirs.contains_key(&i.ino),
                Linkage::Remote { .. } => true,
            })
    }

    /// Evicts least recently used clean fragments until under budget; returns them.
    pub fn trim(&mut self) -> Vec<Ino> {
        let mut mem = self.mem_estimate();
        let mut out = Vec::new();
        loop {
            if mem <= self.budget {
                break;
            }
            let Some(d) = self.lru.values().copied().find(|d| self.evictable(*d)) else { break };
            let frag = self.dirs.remove(&d).unwrap_or_default();
            mem = mem.saturating_sub(frag.mem_estimate());
            for l in frag.dentries.values() {
                if let Linkage::Primary(i) = l {
                    self.parent.remove(&i.ino);
                }
            }
            if let Some(t) = self.last_used.remove(&d) {
                self.lru.remove(&t);
            }
            out.push(d);
        }
        out
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
pub(crate) mod tests;
