//! Path handling and the client's small dentry cache.
//!
//! Paths are interpreted relative to the mount root: `/a/b` and `a/b` name the same
//! entry. Normalization is lexical (`.` dropped, `..` pops a component, never above
//! the root); symbolic links met in the middle of a walk are followed by the walker.
use std::collections::HashMap;
use std::time::{Duration, Instant};

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

/// (parent, name) → child ino, plus the newest attributes seen per ino. Entries expire
/// after `ttl` (other clients may change the namespace: this client holds no leases),
/// and the client drops the ones its own unlink/rmdir/rename make wrong.
pub struct DentryCache {
    ttl: Duration,
    max: usize,
    dentries: HashMap<(Ino, String), (Ino, Instant)>,
    attrs: HashMap<Ino, InodeStat>,
}

impl DentryCache {
    pub fn new(ttl: Duration, max: usize) -> Self {
        DentryCache { ttl, max: max.max(1), dentries: HashMap::new(), attrs: HashMap::new() }
    }

    /// The cached child of `parent` named `name` with its attributes, if fresh.
    pub fn get(&self, parent: Ino, name: &str) -> Option<InodeStat> {
        let (ino, at) = self.dentries.get(&(parent, name.to_string()))?;
        if at.elapsed() > self.ttl {
            return None;
        }
        self.attrs.get(ino).cloned()
    }

    pub fn insert(&mut self, parent: Ino, name: &str, st: &InodeStat) {
        if self.dentries.len() >= self.max {
            // Crude but bounded: start over rather than track recency.
            self.dentries.clear();
            self.attrs.clear();
        }
        self.dentries.insert((parent, name.to_string()), (st.ino, Instant::now()));
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

    /// Cache pressure: keeps at most `max` dentries, dropping expired then least
    /// recently cached ones, and the attributes no remaining dentry names (attributes
    /// are refetched on demand). Returns how many dentries remain.
    pub fn trim_to(&mut self, max: usize) -> usize {
        let ttl = self.ttl;
        self.dentries.retain(|_, (_, at)| at.elapsed() <= ttl);
        if self.dentries.len() > max {
            let mut ages: Vec<((Ino, String), Instant)> = self.dentries.iter().map(|(k, (_, at))| (k.clone(), *at)).collect();
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

    pub fn is_empty(&self) -> bool {
        self.dentries.is_empty()
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

    /// That the cache answers hits, drops invalidated entries, expires old ones,
    /// keeps only the newest attributes, and trims to a recall target oldest first.
    #[test]
    fn dentry_cache_invalidation() {
        let mut c = DentryCache::new(Duration::from_secs(60), 100);
        c.insert(1, "a", &st(10, 1));
        c.insert(10, "b", &st(11, 1));
        assert_eq!(c.get(1, "a").map(|s| s.ino), Some(10));
        c.update_attrs(&st(10, 0));
        assert_eq!(c.get(1, "a").map(|s| s.version), Some(1));
        c.update_attrs(&st(10, 5));
        assert_eq!(c.get(1, "a").map(|s| s.version), Some(5));
        c.invalidate(1, "a");
        assert!(c.get(1, "a").is_none());
        c.invalidate_dir(10);
        assert!(c.get(10, "b").is_none());
        assert!(c.is_empty());

        let mut short = DentryCache::new(Duration::from_millis(0), 100);
        short.insert(1, "x", &st(12, 1));
        std::thread::sleep(Duration::from_millis(2));
        assert!(short.get(1, "x").is_none());

        let mut many = DentryCache::new(Duration::from_secs(60), 100);
        for i in 0..10u64 {
            many.insert(1, &format!("f{i}"), &st(100 + i, 1));
            std::thread::sleep(Duration::from_millis(1));
        }
        many.update_attrs(&st(500, 1));
        assert_eq!(many.trim_to(4), 4);
        assert!(many.get(1, "f0").is_none(), "the oldest go first");
        assert!(many.get(1, "f9").is_some(), "the newest stay");
        assert!(many.attrs_of(500).is_none() && many.attrs_of(100).is_none(), "unnamed attributes go");
        assert_eq!(many.trim_to(0), 0);
        assert!(many.is_empty());

        let mut small = DentryCache::new(Duration::from_secs(60), 2);
        small.insert(1, "p", &st(20, 1));
        small.insert(1, "q", &st(21, 1));
        small.insert(1, "r", &st(22, 1));
        assert!(small.len() <= 2);
        assert!(small.get(1, "r").is_some());
    }
}
