//! Recursive statistics and directory quotas.
//!
//! Every directory inode carries `rstat` (bytes of regular files, files and
//! subdirectories below it, recursively) and an optional `quota`. The invariant is
//!
//! ```text
//! dir.rstat = Σ over dir's dentries of contribution(dentry)
//! contribution(primary dir d)   = d.rstat + one subdir
//! contribution(primary file f)  = f.size bytes (regular files only) + one file
//! contribution(remote dentry)   = one file
//! ```
//!
//! Data flow: a request handler builds its `EMetaBlob` (in `server::Tx`); before the
//! blob is applied, `propagate` compares each changed dentry's new contribution with
//! the cached one, adds the differences up the chain of primary parents to the base
//! inode (root or mdsdir), refuses the change with EDQUOT if it would push a directory
//! with a quota past its limit, and writes the new ancestor states into the blob. So
//! the journal carries the rstats and replay (a plain `MdCache::apply`) rebuilds them.
//! The walk goes to the real root whatever the session root is, so a client mounted
//! below a quota directory is still bound by it.
use std::collections::BTreeMap;

use super::cache::MdCache;
use super::events::{DentryUpdate, EMetaBlob};
use super::server::{Fail, Need};
use super::types::{is_base, Ino, Inode, Linkage, RStat};
use crate::error::Errno;
use crate::msg::mds::S_IFREG;

/// The directory xattr that limits the bytes of regular files below it.
pub const MAX_BYTES: &str = "ceph.quota.max_bytes";
/// The directory xattr that limits the entries (files and directories) below it.
pub const MAX_FILES: &str = "ceph.quota.max_files";

/// Deepest directory chain walked before the tree is declared corrupt (EIO).
const MAX_DEPTH: usize = 4096;

/// A signed change of an `RStat` (i128: the difference of two u64 always fits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub bytes: i128,
    pub files: i128,
    pub subdirs: i128,
}

impl Delta {
    /// What one dentry adds to its directory's rstat (`None`: no dentry).
    pub fn of(l: Option<&Linkage>) -> Delta {
        match l {
            None => Delta::default(),
            Some(Linkage::Remote { .. }) => Delta { files: 1, ..Default::default() },
            Some(Linkage::Primary(i)) if i.is_dir() => Delta {
                bytes: i.rstat.rbytes.into(),
                files: i.rstat.rfiles.into(),
                subdirs: i128::from(i.rstat.rsubdirs) + 1,
            },
            Some(Linkage::Primary(i)) => {
                let bytes = if i.file_type() == S_IFREG { i.size.into() } else { 0 };
                Delta { bytes, files: 1, subdirs: 0 }
            }
        }
    }
    fn plus(self, o: Delta) -> Delta {
        Delta { bytes: self.bytes + o.bytes, files: self.files + o.files, subdirs: self.subdirs + o.subdirs }
    }
    fn minus(self, o: Delta) -> Delta {
        Delta { bytes: self.bytes - o.bytes, files: self.files - o.files, subdirs: self.subdirs - o.subdirs }
    }
    pub fn is_zero(&self) -> bool {
        *self == Delta::default()
    }
    pub fn entries(&self) -> i128 {
        self.files + self.subdirs
    }
    /// `r` changed by this delta, clamped to the u64 range.
    pub fn apply(&self, r: RStat) -> RStat {
        let f = |v: u64, d: i128| (i128::from(v) + d).clamp(0, i128::from(u64::MAX)) as u64;
        RStat { rbytes: f(r.rbytes, self.bytes), rfiles: f(r.rfiles, self.files), rsubdirs: f(r.rsubdirs, self.subdirs) }
    }
}

/// Whether growing `i`'s subtree by `d` (giving `new`) breaks `i`'s quota. Only
/// growth is refused: a subtree already over a lowered quota may still shrink.
pub fn exceeds(i: &Inode, d: &Delta, new: &RStat) -> bool {
    let q = i.quota;
    (q.max_files > 0 && d.entries() > 0 && new.rentries() > q.max_files)
        || (q.max_bytes > 0 && d.bytes > 0 && new.rbytes > q.max_bytes)
}

/// Brings the rstats of every ancestor of the blob's changed dentries up to date inside
/// the blob (see the module doc), or fails with EDQUOT (nothing is changed then; only
/// with `enforce`), or with `Need` when an ancestor is not cached.
pub(crate) fn propagate(cache: &MdCache, blob: &mut EMetaBlob, enforce: bool) -> Result<(), Fail> {
    let mut total: BTreeMap<Ino, Delta> = BTreeMap::new();
    for (dir, d) in direct_deltas(cache, blob) {
        let mut cur = dir;
        for depth in 0.. {
            if depth == MAX_DEPTH {
                return Err(Errno::EIO.into());
            }
            let t = total.entry(cur).or_default();
            *t = t.plus(d);
            match parent_after(cache, blob, cur)? {
                Some(p) => cur = p,
                None => break,
            }
        }
    }
    let mut updated = Vec::new();
    for (ino, d) in total.into_iter().filter(|(_, d)| !d.is_zero()) {
        let mut i = inode_after(cache, blob, ino)?;
        let new = d.apply(i.rstat);
        if enforce && exceeds(&i, &d, &new) {
            return Err(Errno::EDQUOT.into());
        }
        i.rstat = new;
        i.version = blob.version;
        updated.push(i);
    }
    for i in updated {
        put_inode(cache, blob, i)?;
    }
    Ok(())
}

/// Per directory, the change of the sum of its dentries' contributions, comparing the
/// last update of each changed dentry with what the cache holds now.
fn direct_deltas(cache: &MdCache, blob: &EMetaBlob) -> BTreeMap<Ino, Delta> {
    let mut last: BTreeMap<(Ino, &str), Option<&Linkage>> = BTreeMap::new();
    for u in &blob.dentries {
        last.insert((u.dir, u.name.as_str()), u.linkage.as_ref());
    }
    let mut out: BTreeMap<Ino, Delta> = BTreeMap::new();
    for ((dir, name), new) in last {
        let old = cache.dir(dir).and_then(|f| f.dentries.get(name));
        let d = Delta::of(new).minus(Delta::of(old));
        if !d.is_zero() {
            let e = out.entry(dir).or_default();
            *e = e.plus(d);
        }
    }
    out
}

/// The directory holding `ino`'s primary dentry once the blob is applied; `None` for a
/// base inode or one the blob unlinks for good.
fn parent_after(cache: &MdCache, blob: &EMetaBlob, ino: Ino) -> Result<Option<Ino>, Fail> {
    if is_base(ino) {
        return Ok(None);
    }
    if let Some(u) = blob.dentries.iter().rev().find(|u| is_primary_of(&u.linkage, ino)) {
        return Ok(Some(u.dir));
    }
    let (dir, name) = cache.parent_of(ino).ok_or(Need::Inode(ino))?;
    let gone = blob.dentries.iter().any(|u| u.dir == dir && u.name == name);
    Ok(if gone { None } else { Some(dir) })
}

fn is_primary_of(l: &Option<Linkage>, ino: Ino) -> bool {
    matches!(l, Some(Linkage::Primary(i)) if i.ino == ino)
}

/// The state `ino` will have once the blob is applied (before rstat changes).
fn inode_after(cache: &MdCache, blob: &EMetaBlob, ino: Ino) -> Result<Inode, Fail> {
    if is_base(ino) {
        if let Some(i) = blob.base_inodes.iter().rev().find(|i| i.ino == ino) {
            return Ok(i.clone());
        }
    } else if let Some(Some(Linkage::Primary(i))) =
        blob.dentries.iter().rev().map(|u| &u.linkage).find(|l| is_primary_of(l, ino))
    {
        return Ok(i.clone());
    }
    cache.inode(ino).cloned().ok_or_else(|| Need::Inode(ino).into())
}

/// Writes `i` into the blob: over its last state there, else as a new update.
fn put_inode(cache: &MdCache, blob: &mut EMetaBlob, i: Inode) -> Result<(), Fail> {
    if is_base(i.ino) {
        blob.base_inodes.retain(|b| b.ino != i.ino);
        blob.base_inodes.push(i);
        return Ok(());
    }
    if let Some(u) = blob.dentries.iter_mut().rev().find(|u| is_primary_of(&u.linkage, i.ino)) {
        u.linkage = Some(Linkage::Primary(i));
        return Ok(());
    }
    let (dir, name) = cache.parent_of(i.ino).ok_or(Need::Inode(i.ino))?;
    let name = name.to_string();
    blob.dentries.push(DentryUpdate { dir, name, linkage: Some(Linkage::Primary(i)) });
    Ok(())
}

/// Bytes that may still be added below `ino` (a directory, or the directory of a
/// file's primary dentry) under the tightest `max_bytes` of it and its ancestors;
/// `None` when no quota applies. For the caps Locker's `max_size` grants.
pub fn quota_room(cache: &MdCache, ino: Ino) -> Option<u64> {
    let start = match cache.inode(ino) {
        Some(i) if i.is_dir() => ino,
        _ => cache.parent_of(ino).or_else(|| cache.anchor(ino)).map(|(d, _)| d)?,
    };
    let mut room: Option<u64> = None;
    let mut cur = start;
    for _ in 0..MAX_DEPTH {
        let Some(i) = cache.inode(cur) else { break };
        if i.quota.max_bytes > 0 {
            let r = i.quota.max_bytes.saturating_sub(i.rstat.rbytes);
            room = Some(room.map_or(r, |x| x.min(r)));
        }
        match cache.parent_of(cur) {
            Some((d, _)) if !is_base(cur) => cur = d,
            _ => break,
        }
    }
    room
}

/// Directories of the cache whose rstat differs from the sum over their (complete)
/// fragment, as `ino: stored != computed` lines; empty when the invariant holds.
pub fn rstat_mismatches(cache: &MdCache) -> Vec<String> {
    let view = cache.view();
    let mut out = Vec::new();
    for (ino, (complete, dentries)) in &view.dirs {
        let Some(i) = cache.inode(*ino).filter(|_| *complete) else { continue };
        let sum = dentries.values().fold(Delta::default(), |acc, l| acc.plus(Delta::of(Some(l))));
        let computed = sum.apply(RStat::default());
        if computed != i.rstat {
            out.push(format!("{ino:#x}: {:?} != {computed:?}", i.rstat));
        }
    }
    out
}

/// A quota value: ASCII decimal digits, surrounding blanks and a trailing NUL allowed.
pub fn parse_quota_value(v: &[u8]) -> Result<u64, Errno> {
    let s = std::str::from_utf8(v).map_err(|_| Errno::EINVAL)?;
    let s = s.trim_end_matches('\0').trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Errno::EINVAL);
    }
    s.parse::<u64>().map_err(|_| Errno::EINVAL)
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
