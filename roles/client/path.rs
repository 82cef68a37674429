//! Path handling and the client's small dentry cache.
//!
//! Paths are interpreted relative to the mount root: `/a/b` and `a/b` name the same
//! entry. Normalization is lexical (`.` dropped, `..` pops a component, never above
//! the root); symbolic links met in the middle of a walk are followed by the walker.
use std::collections::{HashMap, HashSet};

use crate::error::{CmdError, Errno};
use crate::msg::mds::{check_name, Ino, InodeStat};

/// The components of `path` after lexical normalization; empty for the root.
pub fn normalize(path: &str) -> Result<Vec<String>, CmdError> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            name => {
                check_name(name).map_err(|e| CmdError::new(e, format!("bad path component '{name}' in '{path}'")))?;
                out.push(name.to_string());
            }
        }
    }
    Ok(out)
}

/// Splits a path into its parent's components and the final name.
pub fn split_parent(path: &str) -> Result<(Vec<String>, String), CmdError> {
    let mut comps = normalize(path)?;
    match comps.pop() {
        Some(name) => Ok((comps, name)),
        None => Err(CmdError::new(Errno::EINVAL, format!("'{path}' names the root, which has no parent"))),
    }
}

/// Joins components back into an absolute path, for messages.
pub fn join(comps: &[String]) -> String {
    format!("/{}", comps.join("/"))
}

/// (parent, name) → child ino, plus the newest attributes seen per ino. Whether an
/// entry may be used is the caps' call (the parent directory's `Fs`, see `caps.rs`):
/// entries stay until that cap is revoked (`invalidate_dir`) or the client's own
/// unlink/rmdir/rename makes them wrong.
///
/// A directory is *complete* (Ceph's `I_COMPLETE`) when every one of its entries is
/// cached: the client listed it whole, or made it itself. While it also holds `Fs` on
/// the directory, a name not cached there does not exist (a negative lookup answered
/// locally). Anything that may have dropped an entry clears it: `invalidate_dir` (the
/// `Fs` revoke), trimming, the overflow reset, `set_incomplete` after an error.
pub struct DentryCache {
    max: usize,
    /// Child ino and an insertion stamp (for trimming oldest first).
    dentries: HashMap<(Ino, String), (Ino, u64)>,
    stamp: u64,
    attrs: HashMap<Ino, InodeStat>,
    /// Attributes kept only for permission checks (`forget_attrs`).
    stale: HashSet<Ino>,
    complete: HashSet<Ino>,
    /// Bumped whenever entries may have been dropped wholesale (a listing that started
    /// before cannot make its directory complete).
    generation: u64,
}

impl DentryCache {
    pub fn new(max: usize) -> Self {
        DentryCache {
            max: max.max(1),
            dentries: HashMap::new(),
            stamp: 0,
            attrs: HashMap::new(),
            stale: HashSet::new(),
            complete: HashSet::new(),
            generation: 0,
        }
    }

    /// The current generation (compare before and after a listing).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every entry of `dir` is cached now (if nothing was dropped since `generation`).
    pub fn set_complete(&mut self, dir: Ino, generation: u64) {
        if generation == self.generation {
            self.complete.insert(dir);
        }
    }

    pub fn set_incomplete(&mut self, dir: Ino) {
        self.complete.remove(&dir);
    }

    pub fn is_complete(&self, dir: Ino) -> bool {
        self.complete.contains(&dir)
    }

    /// Whether `dir` is complete and has no entry `name` (it does not exist, as far as
    /// the cache knows; the caller checks the caps).
    pub fn known_absent(&self, dir: Ino, name: &str) -> bool {
        self.complete.contains(&dir) && !self.dentries.contains_key(&(dir, name.to_string()))
    }

    /// The cached child of `parent` named `name` with its attributes.
    pub fn get(&self, parent: Ino, name: &str) -> Option<InodeStat> {
        let (ino, _) = self.dentries.get(&(parent, name.to_string()))?;
        if self.stale.contains(ino) {
            return None;
        }
        self.attrs.get(ino).cloned()
    }

    /// The names cached under directory `dir`.
    pub fn names_in(&self, dir: Ino) -> Vec<String> {
        self.dentries.keys().filter(|(p, _)| *p == dir).map(|(_, n)| n.clone()).collect()
    }

    pub fn insert(&mut self, parent: Ino, name: &str, st: &InodeStat) {
        if self.dentries.len() >= self.max {
            // Crude but bounded: start over rather than track recency.
            self.dentries.clear();
            self.attrs.clear();
            self.stale.clear();
            self.complete.clear();
            self.generation += 1;
        }
        self.stamp += 1;
        self.dentries.insert((parent, name.to_string()), (st.ino, self.stamp));
        self.update_attrs(st);
    }

    /// Records newer attributes of an inode (older versions are ignored).
    pub fn update_attrs(&mut self, st: &InodeStat) {
        match self.attrs.get(&st.ino) {
            Some(old) if old.version > st.version => {}
            _ => {
                self.stale.remove(&st.ino);
                self.attrs.insert(st.ino, st.clone());
            }
        }
    }

    /// Forgets one entry (after unlink, rmdir, or as a rename's source or target).
    pub fn invalidate(&mut self, parent: Ino, name: &str) {
        if let Some((ino, _)) = self.dentries.remove(&(parent, name.to_string())) {
            // Hard links may still name it; attributes (nlink) changed anyway.
            self.attrs.remove(&ino);
            self.stale.remove(&ino);
        }
    }

    /// Forgets every entry under directory `dir` (after renaming a directory the
    /// entries stay valid, but a removed directory's children must not be found).
    pub fn invalidate_dir(&mut self, dir: Ino) {
        self.dentries.retain(|(p, _), _| *p != dir);
        self.complete.remove(&dir);
        self.generation += 1;
    }

    /// For each cached inode, when its newest entry was cached (a larger stamp is
    /// more recent): the recall releases the caps of the oldest first.
    pub fn stamps(&self) -> HashMap<Ino, u64> {
        let mut out: HashMap<Ino, u64> = HashMap::new();
        for (i, at) in self.dentries.values() {
            let e = out.entry(*i).or_default();
            *e = (*e).max(*at);
        }
        out
    }

    /// Where each cached inode was seen (a parent and name), for reconnect path hints.
    pub fn path_hints(&self) -> HashMap<Ino, (Ino, String)> {
        self.dentries.iter().map(|((p, n), (i, _))| (*i, (*p, n.clone()))).collect()
    }

    /// The newest attributes seen of `ino` (not bounded by the TTL: for the layout).
    pub fn attrs_of(&self, ino: Ino) -> Option<InodeStat> {
        if self.stale.contains(&ino) {
            return None;
        }
        self.attrs.get(&ino).cloned()
    }

    /// Marks the attributes of `ino` stale: `attrs_of` no longer serves them (times or
    /// link count changed at the MDS), `perm_attrs_of` still does.
    pub fn forget_attrs(&mut self, ino: Ino) {
        if self.attrs.contains_key(&ino) {
            self.stale.insert(ino);
        }
    }

    /// The last attributes known for `ino`, stale or not: enough for what a namespace
    /// change inside a directory leaves alone (mode, owner, layout) — permission checks
    /// and the attributes async creates inherit.
    pub fn perm_attrs_of(&self, ino: Ino) -> Option<InodeStat> {
        self.attrs.get(&ino).cloned()
    }

    pub fn len(&self) -> usize {
        self.dentries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dentries.is_empty()
    }

    /// Trims to at most `max` entries, oldest first, and drops attributes no entry
    /// names any more (a cache-pressure recall); returns the entries left.
    pub fn trim_to(&mut self, max: usize) -> usize {
        if self.dentries.len() > max {
            let mut ages: Vec<((Ino, String), u64)> = self.dentries.iter().map(|(k, (_, at))| (k.clone(), *at)).collect();
            ages.sort_by_key(|(_, at)| *at);
            let excess = self.dentries.len() - max;
            for (k, _) in ages.into_iter().take(excess) {
                self.dentries.remove(&k);
            }
            self.complete.clear();
            self.generation += 1;
        }
        let named: std::collections::HashSet<Ino> = self.dentries.values().map(|(i, _)| *i).collect();
        self.attrs.retain(|ino, _| named.contains(ino));
        self.stale.retain(|ino| named.contains(ino));
        self.dentries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::mds::{FileLayout, S_IFREG};

    fn st(ino: Ino, version: u64) -> InodeStat {
        InodeStat {
            ino,
            mode: S_IFREG | 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            nlink: 1,
            atime: 0,
            mtime: 0,
            ctime: 0,
            rdev: 0,
            blocks: 0,
            layout: FileLayout::default_for(1),
            symlink: None,
            version,
        }
    }

    /// That normalization is lexical and relative to the mount root.
    #[test]
    fn normalize_paths() {
        assert!(normalize("/").unwrap().is_empty());
        assert!(normalize("").unwrap().is_empty());
        assert_eq!(normalize("/a//b/./c/").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(normalize("a/b/../c").unwrap(), vec!["a", "c"]);
        assert_eq!(normalize("/../../a").unwrap(), vec!["a"]);
        assert_eq!(normalize(&format!("/{}", "x".repeat(256))).unwrap_err().errno, Errno::ENAMETOOLONG);
        assert_eq!(split_parent("/a/b").unwrap(), (vec!["a".to_string()], "b".to_string()));
        assert_eq!(split_parent("/").unwrap_err().errno, Errno::EINVAL);
        assert_eq!(join(&["a".into(), "b".into()]), "/a/b");
    }

    /// That the cache answers hits, drops invalidated entries (one, or a whole
    /// directory's), lists a directory's names and keeps only the newest attributes.
    #[test]
    fn dentry_cache_invalidation() {
        let mut c = DentryCache::new(100);
        c.insert(1, "a", &st(10, 1));
        c.insert(10, "b", &st(11, 1));
        assert_eq!(c.get(1, "a").map(|s| s.ino), Some(10));
        c.update_attrs(&st(10, 0));
        assert_eq!(c.get(1, "a").map(|s| s.version), Some(1));
        c.update_attrs(&st(10, 5));
        assert_eq!(c.get(1, "a").map(|s| s.version), Some(5));
        c.invalidate(1, "a");
        assert!(c.get(1, "a").is_none());
        assert_eq!(c.names_in(10), vec!["b".to_string()]);
        c.invalidate_dir(10);
        assert!(c.get(10, "b").is_none());
        assert!(c.is_empty());

        let mut small = DentryCache::new(2);
        small.insert(1, "p", &st(20, 1));
        small.insert(1, "q", &st(21, 1));
        small.insert(1, "r", &st(22, 1));
        assert!(small.len() <= 2);
        assert!(small.get(1, "r").is_some());
    }

    /// That a complete directory answers "absent" only for names it does not hold, and
    /// that a revoke, a trim, the overflow reset or a listing overtaken by an
    /// invalidation leave it incomplete.
    #[test]
    fn complete_directories() {
        let mut c = DentryCache::new(100);
        let g = c.generation();
        c.insert(1, "a", &st(10, 1));
        c.set_complete(1, g);
        assert!(c.is_complete(1) && c.known_absent(1, "b") && !c.known_absent(1, "a"));
        assert!(!c.known_absent(2, "b"), "an incomplete directory knows nothing");
        c.invalidate(1, "a");
        assert!(c.known_absent(1, "a"), "the client's own unlink keeps it complete");
        c.invalidate_dir(1);
        assert!(!c.is_complete(1));
        let g = c.generation();
        c.invalidate_dir(7);
        c.set_complete(1, g);
        assert!(!c.is_complete(1), "a listing overtaken by an invalidation");
        c.set_complete(1, c.generation());
        c.set_incomplete(1);
        assert!(!c.is_complete(1));
        c.set_complete(1, c.generation());
        for i in 0..10u64 {
            c.insert(1, &format!("f{i}"), &st(100 + i, 1));
        }
        c.trim_to(5);
        assert!(!c.is_complete(1), "trimmed entries");
        let mut small = DentryCache::new(1);
        small.set_complete(1, small.generation());
        small.insert(1, "x", &st(5, 1));
        small.insert(1, "y", &st(6, 1));
        assert!(!small.is_complete(1), "the overflow reset");
    }

    /// That a recall trims the oldest entries first and forgets attributes no entry
    /// names any more.
    #[test]
    fn dentry_cache_trim() {
        let mut many = DentryCache::new(100);
        for i in 0..10u64 {
            many.insert(1, &format!("f{i}"), &st(100 + i, 1));
        }
        many.update_attrs(&st(500, 1));
        assert_eq!(many.trim_to(4), 4);
        assert!(many.get(1, "f0").is_none(), "the oldest go first");
        assert!(many.get(1, "f9").is_some(), "the newest stay");
        assert!(many.attrs_of(500).is_none() && many.attrs_of(100).is_none(), "unnamed attributes go");
        assert_eq!(many.trim_to(0), 0);
        assert!(many.is_empty());
    }

    /// That forgotten (stale) attributes are no longer served as current, neither
    /// directly nor through their entry, yet stay usable for permission checks until
    /// fresh ones arrive.
    #[test]
    fn stale_attributes_serve_permissions_only() {
        let mut c = DentryCache::new(16);
        let st = InodeStat { mode: 0o40755, nlink: 2, ..st(7, 1) };
        c.insert(1, "d", &st);
        c.forget_attrs(7);
        assert!(c.attrs_of(7).is_none() && c.get(1, "d").is_none());
        assert_eq!(c.perm_attrs_of(7).map(|s| s.mode), Some(0o40755));
        c.update_attrs(&InodeStat { nlink: 3, version: 2, ..st });
        assert_eq!(c.attrs_of(7).map(|s| s.nlink), Some(3));
        assert_eq!(c.get(1, "d").map(|s| s.nlink), Some(3));
    }
}
