//! Path handling and the client's small dentry cache.
//!
//! Paths are interpreted relative to the mount root: `/a/b` and `a/b` name the same
//! entry. Normalization is lexical (`.` dropped, `..` pops a component, never above
//! the root); symbolic links met in the middle of a walk are followed by the walker.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::error::{CmdError, Errno};
use crate::msg::mds::{check_name, DirEntry, Ino, InodeStat, S_IFDIR, S_IFMT};

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
/// entries stay until that cap is revoked (`invalidate_dir`), the client's own
/// unlink/rmdir/rename makes them wrong, or the cache is full and they are the oldest.
///
/// A directory is *complete* (Ceph's `I_COMPLETE`) when every one of its entries is
/// cached: the client listed it whole, or made it itself. While it also holds `Fs` on
/// the directory, a name not cached there does not exist (a negative lookup answered
/// locally). Anything that drops an entry of a directory clears it for that directory:
/// `invalidate_dir` (the `Fs` revoke), trimming the oldest entries when the cache is
/// over `client_cache_size` or a recall asks, `set_incomplete` after an error.
pub struct DentryCache {
    max: usize,
    /// Child ino and an insertion stamp, ordered by directory (a directory's entries
    /// are one range).
    dentries: BTreeMap<(Ino, String), (Ino, u64)>,
    /// Insertion stamp → entry, oldest first: what trimming drops first.
    by_age: BTreeMap<u64, (Ino, String)>,
    /// How many entries name each ino (hard links).
    named: HashMap<Ino, u32>,
    /// The entry naming each cached directory (a directory has one).
    dir_entry: HashMap<Ino, (Ino, String)>,
    stamp: u64,
    attrs: HashMap<Ino, InodeStat>,
    /// Attributes kept only for permission checks (`forget_attrs`).
    stale: HashSet<Ino>,
    complete: HashSet<Ino>,
    /// Names the MDS answered "no such entry" for while this client held `Fs` on the
    /// directory (Ceph's negative dentries): absent like names missing from a complete
    /// directory, in directories that are not complete.
    negative: BTreeSet<(Ino, String)>,
    /// Bumped whenever entries are dropped; a listing that started at an older
    /// generation cannot make its directory complete if that directory lost an entry
    /// since (`lost`), or if entries were dropped wholesale since (`wholesale`).
    generation: u64,
    /// Directory → the generation at which it last lost an entry.
    lost: HashMap<Ino, u64>,
    wholesale: u64,
}

impl DentryCache {
    pub fn new(max: usize) -> Self {
        DentryCache {
            max: max.max(1),
            dentries: BTreeMap::new(),
            by_age: BTreeMap::new(),
            named: HashMap::new(),
            dir_entry: HashMap::new(),
            stamp: 0,
            attrs: HashMap::new(),
            stale: HashSet::new(),
            complete: HashSet::new(),
            negative: BTreeSet::new(),
            generation: 0,
            lost: HashMap::new(),
            wholesale: 0,
        }
    }

    /// The current generation (compare before and after a listing).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every entry of `dir` is cached now (if none of its entries was dropped since
    /// `generation`).
    pub fn set_complete(&mut self, dir: Ino, generation: u64) {
        if self.lost_at(dir) <= generation {
            self.complete.insert(dir);
        }
    }

    /// The generation at which `dir` last lost entries (a revoke of its `Fs`, a trim).
    fn lost_at(&self, dir: Ino) -> u64 {
        self.lost.get(&dir).copied().unwrap_or(0).max(self.wholesale)
    }

    /// The cache no longer claims to know which names `dir` holds (a rename into it,
    /// an error): as if it had lost an entry, so a listing or lookup already under way
    /// does not vouch for it either.
    pub fn set_incomplete(&mut self, dir: Ino) {
        self.note_lost(dir);
    }

    /// Records that `dir` has no entry `name` (the MDS said so while this client held
    /// `Fs` on it), unless `dir` lost entries since `generation` (its `Fs` may have
    /// been revoked in between) or the name was cached since.
    pub fn set_negative(&mut self, dir: Ino, name: &str, generation: u64) {
        let key = (dir, name.to_string());
        if self.lost_at(dir) > generation || self.dentries.contains_key(&key) {
            return;
        }
        if self.negative.len() >= self.max {
            self.negative.clear();
        }
        self.negative.insert(key);
    }

    fn drop_negatives(&mut self, dir: Ino) {
        let keys: Vec<(Ino, String)> =
            self.negative.range((dir, String::new())..).take_while(|(p, _)| *p == dir).cloned().collect();
        for k in keys {
            self.negative.remove(&k);
        }
    }

    pub fn is_complete(&self, dir: Ino) -> bool {
        self.complete.contains(&dir)
    }

    /// Whether `dir` is complete and has no entry `name` (it does not exist, as far as
    /// the cache knows; the caller checks the caps).
    pub fn known_absent(&self, dir: Ino, name: &str) -> bool {
        let key = (dir, name.to_string());
        (self.complete.contains(&dir) && !self.dentries.contains_key(&key)) || self.negative.contains(&key)
    }

    /// The cached child of `parent` named `name` with its attributes.
    pub fn get(&self, parent: Ino, name: &str) -> Option<InodeStat> {
        let (ino, _) = self.dentries.get(&(parent, name.to_string()))?;
        if self.stale.contains(ino) {
            return None;
        }
        self.attrs.get(ino).cloned()
    }

    /// The keys of directory `dir`'s cached entries.
    fn keys_in(&self, dir: Ino) -> impl Iterator<Item = &(Ino, String)> {
        self.dentries.range((dir, String::new())..).map(|(k, _)| k).take_while(move |(p, _)| *p == dir)
    }

    /// The names cached under directory `dir`.
    pub fn names_in(&self, dir: Ino) -> Vec<String> {
        self.keys_in(dir).map(|(_, n)| n.clone()).collect()
    }

    pub fn insert(&mut self, parent: Ino, name: &str, st: &InodeStat) {
        let key = (parent, name.to_string());
        self.remove_entry(&key);
        self.negative.remove(&key);
        self.stamp += 1;
        self.by_age.insert(self.stamp, key.clone());
        if st.mode & S_IFMT == S_IFDIR {
            self.dir_entry.insert(st.ino, key.clone());
        }
        self.dentries.insert(key, (st.ino, self.stamp));
        *self.named.entry(st.ino).or_default() += 1;
        self.update_attrs(st);
        while self.dentries.len() > self.max {
            self.drop_oldest();
        }
        if self.attrs.len() > self.max.saturating_mul(2) {
            // Attributes of inodes no entry names (getattr by inode number, directories
            // whose entries went) are bounded too: directories' stay while they fit
            // (permission checks and async creates in them need them).
            self.drop_unnamed_attrs(true);
            if self.attrs.len() > self.max.saturating_mul(2) {
                self.drop_unnamed_attrs(false);
            }
        }
    }

    /// `insert` of an entry the MDS sent in answer to a request sent at `generation`:
    /// if `parent` lost entries since (its `Fs` was revoked meanwhile, so the entry may
    /// already be out of date), only the attributes are kept.
    pub fn insert_since(&mut self, parent: Ino, name: &str, st: &InodeStat, generation: u64) {
        if self.lost_at(parent) > generation {
            self.update_attrs(st);
        } else {
            self.insert(parent, name, st);
        }
    }

    /// Removes one entry and returns the ino it named and whether nothing else names it.
    fn remove_entry(&mut self, key: &(Ino, String)) -> Option<(Ino, bool)> {
        let (ino, at) = self.dentries.remove(key)?;
        self.by_age.remove(&at);
        self.forget_dir_entry(ino, key);
        let last = match self.named.get_mut(&ino) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.named.remove(&ino);
                true
            }
        };
        Some((ino, last))
    }

    fn forget_dir_entry(&mut self, ino: Ino, key: &(Ino, String)) {
        if self.dir_entry.get(&ino) == Some(key) {
            self.dir_entry.remove(&ino);
        }
    }

    /// The directory holding cached directory `dir` (for its `..`).
    pub fn parent_of(&self, dir: Ino) -> Option<Ino> {
        self.dir_entry.get(&dir).map(|(p, _)| *p)
    }

    /// Every entry of `dir` in name order, as a readdir from the MDS gives them, if
    /// `dir` is complete and each entry's inode type is known (the caller checks the
    /// caps); `stat` where the cached attributes are current.
    pub fn listing(&self, dir: Ino) -> Option<Vec<DirEntry>> {
        if !self.complete.contains(&dir) {
            return None;
        }
        self.dentries
            .range((dir, String::new())..)
            .take_while(|((p, _), _)| *p == dir)
            .map(|((_, name), (ino, _))| {
                let a = self.attrs.get(ino)?;
                let stat = (!self.stale.contains(ino)).then(|| a.clone());
                Some(DirEntry { name: name.clone(), ino: *ino, d_type: a.mode & S_IFMT, stat })
            })
            .collect()
    }

    /// Records that `dir` lost an entry: it is no longer complete, and a listing of it
    /// that started before cannot make it so.
    fn note_lost(&mut self, dir: Ino) {
        self.complete.remove(&dir);
        self.drop_negatives(dir);
        self.generation += 1;
        if self.lost.len() >= self.max {
            self.lost.clear();
            self.wholesale = self.generation;
        } else {
            self.lost.insert(dir, self.generation);
        }
    }

    /// Drops the oldest entry, and its inode's attributes when nothing else names it
    /// and it is not a directory (a directory's attributes serve permission checks and
    /// async creates in it, and its own entry is often the oldest of those in use).
    fn drop_oldest(&mut self) {
        let Some((_, key)) = self.by_age.pop_first() else { return };
        let Some((ino, _)) = self.dentries.remove(&key) else { return };
        self.forget_dir_entry(ino, &key);
        match self.named.get_mut(&ino) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.named.remove(&ino);
                if self.attrs.get(&ino).is_some_and(|a| a.mode & S_IFMT != S_IFDIR) {
                    self.attrs.remove(&ino);
                    self.stale.remove(&ino);
                }
            }
        }
        self.note_lost(key.0);
    }

    /// Drops attributes of inodes no entry names (`keep_dirs`: except directories').
    fn drop_unnamed_attrs(&mut self, keep_dirs: bool) {
        let named = &self.named;
        self.attrs.retain(|ino, a| named.contains_key(ino) || (keep_dirs && a.mode & S_IFMT == S_IFDIR));
        let attrs = &self.attrs;
        self.stale.retain(|ino| attrs.contains_key(ino));
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
        let key = (parent, name.to_string());
        self.negative.remove(&key);
        if let Some((ino, _)) = self.remove_entry(&key) {
            // Hard links may still name it; attributes (nlink) changed anyway.
            self.attrs.remove(&ino);
            self.stale.remove(&ino);
        }
    }

    /// Forgets every entry under directory `dir` (after renaming a directory the
    /// entries stay valid, but a removed directory's children must not be found).
    pub fn invalidate_dir(&mut self, dir: Ino) {
        let keys: Vec<(Ino, String)> = self.keys_in(dir).cloned().collect();
        for k in &keys {
            self.remove_entry(k);
        }
        self.note_lost(dir);
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
        while self.dentries.len() > max {
            self.drop_oldest();
        }
        self.drop_unnamed_attrs(false);
        if max == 0 {
            self.negative.clear();
        }
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
    /// that a revoke, a trim, an entry dropped from a full cache or a listing overtaken
    /// by an invalidation of the same directory leave it incomplete.
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
        c.invalidate_dir(1);
        c.set_complete(1, g);
        assert!(!c.is_complete(1), "a listing overtaken by an invalidation");
        let g = c.generation();
        c.invalidate_dir(7);
        c.set_complete(1, g);
        assert!(c.is_complete(1), "another directory's invalidation does not matter");
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
        assert!(!small.is_complete(1), "an entry dropped when the cache is full");
    }

    /// That a complete directory lists its cached entries in name order with their
    /// types (stat only where current), and nothing otherwise; and that a cached
    /// directory's parent follows its entry.
    #[test]
    fn listings_and_parents() {
        let mut c = DentryCache::new(100);
        let dir = |ino| InodeStat { mode: S_IFDIR | 0o755, ..st(ino, 1) };
        assert!(c.listing(1).is_none(), "not complete");
        c.set_complete(1, c.generation());
        assert_eq!(c.listing(1), Some(vec![]), "complete and empty");
        c.insert(1, "b", &st(11, 1));
        c.insert(1, "a", &dir(10));
        c.insert(10, "inner", &st(12, 1));
        c.forget_attrs(11);
        let l = c.listing(1).expect("complete");
        let names: Vec<(&str, Ino, u32)> = l.iter().map(|e| (e.name.as_str(), e.ino, e.d_type)).collect();
        assert_eq!(names, vec![("a", 10, S_IFDIR), ("b", 11, S_IFREG)]);
        assert!(l[0].stat.is_some() && l[1].stat.is_none(), "stale attributes give the type only");
        assert_eq!(c.parent_of(10), Some(1));
        assert_eq!(c.parent_of(11), None, "files are not tracked");
        c.insert(7, "moved", &dir(10));
        c.invalidate(1, "a");
        assert_eq!(c.parent_of(10), Some(7), "renamed: the new entry");
        c.invalidate_dir(7);
        assert_eq!(c.parent_of(10), None);
        c.invalidate_dir(1);
        assert!(c.listing(1).is_none(), "a revoke makes it incomplete");
    }

    /// That a full cache drops its oldest entries one by one, and only the directories
    /// that lost one stop being complete: a listing of another directory that started
    /// before still completes, one of a directory that lost an entry does not.
    #[test]
    fn full_cache_drops_oldest() {
        let mut c = DentryCache::new(4);
        let g = c.generation();
        c.insert(1, "a", &st(10, 1));
        c.insert(2, "b", &st(20, 1));
        c.insert(2, "c", &st(21, 1));
        c.set_complete(1, g);
        c.set_complete(2, g);
        let listing = c.generation();
        c.insert(3, "d", &st(30, 1));
        c.insert(3, "e", &st(31, 1));
        assert!(c.get(1, "a").is_none() && c.attrs_of(10).is_none(), "the oldest went, with its attributes");
        assert!(!c.is_complete(1), "it lost an entry");
        assert!(c.is_complete(2) && c.known_absent(2, "zz"), "untouched, still complete");
        assert_eq!(c.len(), 4);
        c.set_complete(3, listing);
        assert!(c.is_complete(3), "a listing of a directory that lost nothing completes");
        c.set_complete(1, listing);
        assert!(!c.is_complete(1), "a listing overtaken by a drop in its directory does not");
        c.set_complete(1, c.generation());
        assert!(c.is_complete(1));
        // Re-inserting refreshes an entry: it is no longer the oldest.
        c.insert(2, "b", &st(20, 2));
        c.insert(4, "f", &st(40, 1));
        assert!(c.get(2, "b").is_some() && c.get(2, "c").is_none());
        assert_eq!(c.names_in(2), vec!["b".to_string()]);
        // A hard link keeps the attributes while another entry names the inode.
        let mut h = DentryCache::new(2);
        h.insert(1, "x", &st(9, 1));
        h.insert(1, "y", &st(9, 1));
        h.insert(1, "z", &st(8, 1));
        assert!(h.attrs_of(9).is_some() && h.get(1, "y").is_some());
        h.insert(1, "w", &st(7, 1));
        assert!(h.attrs_of(9).is_none(), "the last name of it went");
    }

    /// That a name the MDS said is absent is known absent in an incomplete directory
    /// until the name is cached, the directory loses entries (a revoke) or is marked
    /// incomplete; and that a record from a lookup overtaken by a revoke is not kept.
    #[test]
    fn negative_entries() {
        let mut c = DentryCache::new(100);
        let g = c.generation();
        c.set_negative(1, "n", g);
        assert!(!c.is_complete(1) && c.known_absent(1, "n") && !c.known_absent(1, "m"));
        c.insert(1, "n", &st(10, 1));
        assert!(!c.known_absent(1, "n"), "made since");
        c.invalidate(1, "n");
        assert!(!c.known_absent(1, "n"), "an incomplete directory's own unlink proves nothing");
        c.set_negative(1, "n", c.generation());
        c.set_negative(2, "n", c.generation());
        c.invalidate_dir(1);
        assert!(!c.known_absent(1, "n") && c.known_absent(2, "n"), "the revoke drops its directory's records");
        let before = c.generation();
        c.invalidate_dir(1);
        c.set_negative(1, "x", before);
        assert!(!c.known_absent(1, "x"), "the lookup started before the revoke");
        c.set_incomplete(2);
        assert!(!c.known_absent(2, "n"));
        // Entries answered to a request overtaken by a revoke are not cached either.
        let before = c.generation();
        c.invalidate_dir(5);
        c.insert_since(5, "old", &st(50, 3), before);
        assert!(c.get(5, "old").is_none() && c.attrs_of(50).map(|a| a.version) == Some(3));
        c.insert_since(5, "new", &st(51, 1), c.generation());
        assert!(c.get(5, "new").is_some());
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
