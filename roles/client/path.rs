//! Path handling and the client's small dentry cache.
//!
//! Paths are interpreted relative to the mount root: `/a/b` and `a/b` name the same
//! entry. Normalization is lexical (`.` dropped, `..` pops a component, never above
//! the root); symbolic links met in the middle of a walk are followed by the walker.
use std::collections::HashMap;

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
pub struct DentryCache {
    max: usize,
    /// Child ino and an insertion stamp (for trimming oldest first).
    dentries: HashMap<(Ino, String), (Ino, u64)>,
    stamp: u64,
    attrs: HashMap<Ino, InodeStat>,
}

impl DentryCache {
    pub fn new(max: usize) -> Self {
        DentryCache { max: max.max(1), dentries: HashMap::new(), stamp: 0, attrs: HashMap::new() }
    }

    /// The cached child of `parent` named `name` with its attributes.
    pub fn get(&self, parent: Ino, name: &str) -> Option<InodeStat> {
        let (ino, _) = self.dentries.get(&(parent, name.to_string()))?;
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
                self.attrs.insert(st.ino, st.clone());
            }
        }
    }

    /// Forgets one entry (after unlink, rmdir, or as a rename's source or target).
    pub fn invalidate(&mut self, parent: Ino, name: &str) {
        if let Some((ino, _)) = self.dentries.remove(&(parent, name.to_string())) {
            // Hard links may still name it; attributes (nlink) changed anyway.
            self.attrs.remove(&ino);
        }
    }

    /// Forgets every entry under directory `dir` (after renaming a directory the
    /// entries stay valid, but a removed directory's children must not be found).
    pub fn invalidate_dir(&mut self, dir: Ino) {
        self.dentries.retain(|(p, _), _| *p != dir);
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
        self.attrs.get(&ino).cloned()
    }

    pub fn forget_attrs(&mut self, ino: Ino) {
        self.attrs.remove(&ino);
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
        }
        let named: std::collections::HashSet<Ino> = self.dentries.values().map(|(i, _)| *i).collect();
        self.attrs.retain(|ino, _| named.contains(ino));
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
}
