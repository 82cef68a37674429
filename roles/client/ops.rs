//! Namespace and attribute operations: path walk by lookups (through the dentry
//! cache, following symbolic links met mid-path), and one method per MDS op.
use super::path::{join, normalize, split_parent};
use super::session::{errno_text, lock};
use super::Client;
use crate::error::{CmdError, Errno};
use crate::msg::mds::{
    DirEntry, Ino, InodeStat, MdsOp, ReplyBody, SetAttr, StatfsReply, S_IFDIR, S_IFLNK, S_IFMT,
};

/// Symbolic links followed in one walk before giving up (Linux: 40, ELOOP).
const MAX_SYMLINKS: usize = 40;
/// Entries asked for per readdir request.
const READDIR_PAGE: u32 = 1024;

pub(super) fn unexpected(what: &str, body: &ReplyBody) -> CmdError {
    CmdError::new(Errno::EIO, format!("{what}: unexpected reply {body:?}"))
}

fn inode(what: &str, body: ReplyBody) -> Result<InodeStat, CmdError> {
    match body {
        ReplyBody::Inode(st) => Ok(st),
        other => Err(unexpected(what, &other)),
    }
}

/// Adds context to an error: `mkdir /a/b: file exists`.
pub fn ctx(what: impl std::fmt::Display) -> impl FnOnce(CmdError) -> CmdError {
    move |e| {
        let detail = if e.message == errno_text(e.errno) { String::new() } else { format!(" ({})", e.message) };
        CmdError::new(e.errno, format!("{what}: {}{detail}", errno_text(e.errno)))
    }
}

pub fn is_dir(st: &InodeStat) -> bool {
    st.mode & S_IFMT == S_IFDIR
}

impl Client {
    async fn op_inode(&self, what: &str, op: MdsOp) -> Result<InodeStat, CmdError> {
        let st = inode(what, self.request(op).await?)?;
        lock(&self.inner.dcache).update_attrs(&st);
        Ok(st)
    }

    /// Looks `name` up in directory `parent` (cache first, while the directory's `Fs`
    /// cap says its entries have not changed).
    /// A name a complete directory does not hold does not exist (answered here).
    pub async fn lookup(&self, parent: Ino, name: &str) -> Result<InodeStat, CmdError> {
        if name != "." && name != ".." && self.dir_cached(parent) {
            let d = lock(&self.inner.dcache);
            if let Some(st) = d.get(parent, name) {
                drop(d);
                return Ok(self.with_own_changes(st));
            }
            if d.known_absent(parent, name) {
                // A name the MDS would refuse gets its error, not ENOENT.
                crate::msg::mds::check_name(name).map_err(|e| CmdError::new(e, errno_text(e)))?;
                return Err(CmdError::new(Errno::ENOENT, errno_text(Errno::ENOENT)));
            }
        }
        let generation = lock(&self.inner.dcache).generation();
        let reply = match self.request(MdsOp::Lookup { parent, name: name.to_string() }).await {
            Err(e) if e.errno == Errno::ENOENT && name != "." && name != ".." => {
                // Absent at the MDS while this client holds `Fs` on the directory: it
                // stays absent until that cap is revoked (which drops the record).
                if self.dir_cached(parent) {
                    lock(&self.inner.dcache).set_negative(parent, name, generation);
                }
                return Err(e);
            }
            r => r?,
        };
        let st = inode("lookup", reply)?;
        if name != "." && name != ".." {
            lock(&self.inner.dcache).insert_since(parent, name, &st, generation);
        }
        Ok(st)
    }

    /// Walks `path` from the mount root. Symbolic links in the middle of the path are
    /// followed; the last component is not (lstat semantics).
    pub async fn lookup_path(&self, path: &str) -> Result<InodeStat, CmdError> {
        self.walk(normalize(path)?, path).await
    }

    async fn walk(&self, comps: Vec<String>, shown: &str) -> Result<InodeStat, CmdError> {
        let root = self.root_ino();
        let mut todo: std::collections::VecDeque<String> = comps.into();
        let mut stack: Vec<InodeStat> = vec![self.getattr(root).await.map_err(ctx(shown))?];
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let parent = stack.last().cloned().unwrap_or_else(|| unreachable!("stack starts with the root"));
            if !is_dir(&parent) {
                return Err(CmdError::new(Errno::ENOTDIR, format!("{shown}: not a directory")));
            }
            let st = self.lookup(parent.ino, &name).await.map_err(ctx(shown))?;
            if st.mode & S_IFMT == S_IFLNK && !todo.is_empty() {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(CmdError::new(Errno::EINVAL, format!("{shown}: too many levels of symbolic links")));
                }
                let target = match &st.symlink {
                    Some(t) => t.clone(),
                    None => self.readlink(st.ino).await?,
                };
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                for (i, c) in target.split('/').filter(|c| !c.is_empty() && *c != ".").enumerate() {
                    todo.insert(i, c.to_string());
                }
                continue;
            }
            stack.push(st);
        }
        Ok(stack.pop().unwrap_or_else(|| unreachable!("stack starts with the root")))
    }

    /// The directory that holds `path`'s last component, and that name.
    pub async fn lookup_parent(&self, path: &str) -> Result<(InodeStat, String), CmdError> {
        let (parent, name) = split_parent(path)?;
        let dir = self.walk(parent.clone(), &join(&parent)).await?;
        if !is_dir(&dir) {
            return Err(CmdError::new(Errno::ENOTDIR, format!("{}: not a directory", join(&parent))));
        }
        Ok((dir, name))
    }

    /// Attributes: from the cache while `As`, `Ls` and `Fs` are held, else the MDS's.
    pub async fn getattr(&self, ino: Ino) -> Result<InodeStat, CmdError> {
        if let Some(st) = self.cached_attrs(ino) {
            return Ok(st);
        }
        self.op_inode("getattr", MdsOp::Getattr { ino }).await
    }

    /// Changes attributes; a smaller size also cuts the data objects past the new end.
    pub async fn setattr(&self, ino: Ino, set: SetAttr) -> Result<InodeStat, CmdError> {
        if let Some(size) = set.size {
            self.inner.check_file_end(size)?;
        }
        if let Some(st) = self.local_setattr(ino, &set) {
            return Ok(st);
        }
        let old = match set.size {
            Some(_) => {
                // A size change: buffered writes and unreported sizes go first, and the
                // truncated tail must not come back from this client.
                self.flush_ino(ino).await?;
                if let Some(c) = super::session::lock(&self.inner.caps.map).get_mut(&ino) {
                    c.clear_pages();
                }
                Some(self.getattr(ino).await?)
            }
            None => None,
        };
        let st = self.op_inode("setattr", MdsOp::Setattr { ino, set: set.clone() }).await?;
        if let (Some(old), Some(new)) = (old, set.size) {
            if new < old.size {
                self.cut_objects(&old, new).await?;
            }
            // Pages fetched while the size changed may hold the cut tail.
            if let Some(c) = super::session::lock(&self.inner.caps.map).get_mut(&ino) {
                c.clear_pages();
            }
        }
        Ok(st)
    }

    pub async fn chmod(&self, ino: Ino, mode: u32) -> Result<InodeStat, CmdError> {
        self.setattr(ino, SetAttr { mode: Some(mode & 0o7777), ..Default::default() }).await
    }

    pub async fn chown(&self, ino: Ino, uid: Option<u32>, gid: Option<u32>) -> Result<InodeStat, CmdError> {
        self.setattr(ino, SetAttr { uid, gid, ..Default::default() }).await
    }

    pub async fn truncate(&self, ino: Ino, size: u64) -> Result<InodeStat, CmdError> {
        self.setattr(ino, SetAttr { size: Some(size), ..Default::default() }).await
    }

    /// Sets access and modification times (nanoseconds since the epoch).
    pub async fn utimes(&self, ino: Ino, atime: Option<i64>, mtime: Option<i64>) -> Result<InodeStat, CmdError> {
        self.setattr(ino, SetAttr { atime, mtime, ..Default::default() }).await
    }

    fn remember(&self, parent: Ino, name: &str, st: &InodeStat) {
        lock(&self.inner.dcache).insert(parent, name, st);
    }

    /// Creates a regular file (`excl`: fail with EEXIST if it exists; else open it).
    /// In a directory where the client may (`async_ops.rs`), the create is answered at
    /// once and sent to the MDS without waiting.
    pub async fn create(&self, parent: Ino, name: &str, mode: u32, excl: bool) -> Result<InodeStat, CmdError> {
        if let Some(r) = self.create_now(parent, name, mode) {
            // Unless a handle is opened on it meanwhile, the write caps go back shortly.
            return r.inspect(|st| self.send_wanted_later(st.ino));
        }
        let op = MdsOp::Create { parent, name: name.to_string(), mode, excl };
        let st = self.op_inode("create", op).await.inspect_err(|e| self.unsure_of(parent, name, e.errno))?;
        self.remember(parent, name, &st);
        // The MDS takes a create as a read-write open: unless a handle is opened on it
        // meanwhile, the write caps go back shortly.
        self.send_wanted_later(st.ino);
        Ok(st)
    }

    pub async fn mknod(&self, parent: Ino, name: &str, mode: u32, rdev: u64) -> Result<InodeStat, CmdError> {
        let st = self.op_inode("mknod", MdsOp::Mknod { parent, name: name.to_string(), mode, rdev }).await.inspect_err(|e| self.unsure_of(parent, name, e.errno))?;
        self.remember(parent, name, &st);
        Ok(st)
    }

    /// A new directory is complete (empty) from the start when the reply gave `Fs` on it.
    /// Asynchronous like `create` where the client may.
    pub async fn mkdir(&self, parent: Ino, name: &str, mode: u32) -> Result<InodeStat, CmdError> {
        if let Some(r) = self.mkdir_now(parent, name, mode) {
            return r;
        }
        let gen = lock(&self.inner.dcache).generation();
        let st = self.op_inode("mkdir", MdsOp::Mkdir { parent, name: name.to_string(), mode }).await.inspect_err(|e| self.unsure_of(parent, name, e.errno))?;
        self.remember(parent, name, &st);
        if self.dir_cached(st.ino) {
            lock(&self.inner.dcache).set_complete(st.ino, gen);
        }
        Ok(st)
    }

    pub async fn symlink(&self, parent: Ino, name: &str, target: &str) -> Result<InodeStat, CmdError> {
        let op = MdsOp::Symlink { parent, name: name.to_string(), target: target.to_string() };
        let st = self.op_inode("symlink", op).await.inspect_err(|e| self.unsure_of(parent, name, e.errno))?;
        self.remember(parent, name, &st);
        Ok(st)
    }

    pub async fn readlink(&self, ino: Ino) -> Result<String, CmdError> {
        match self.request(MdsOp::Readlink { ino }).await? {
            ReplyBody::Readlink(t) => Ok(t),
            other => Err(unexpected("readlink", &other)),
        }
    }

    /// Makes `new_parent/new_name` another name of `ino`.
    pub async fn link(&self, ino: Ino, new_parent: Ino, new_name: &str) -> Result<InodeStat, CmdError> {
        let op = MdsOp::Link { ino, new_parent, new_name: new_name.to_string() };
        lock(&self.inner.dcache).forget_attrs(ino);
        let st = self.op_inode("link", op).await.inspect_err(|e| self.unsure_of(new_parent, new_name, e.errno))?;
        self.remember(new_parent, new_name, &st);
        Ok(st)
    }

    /// Asynchronous like `create` where the client may.
    pub async fn unlink(&self, parent: Ino, name: &str) -> Result<(), CmdError> {
        if let Some(r) = self.unlink_now(parent, name) {
            return r;
        }
        lock(&self.inner.dcache).invalidate(parent, name);
        let r = self.request(MdsOp::Unlink { parent, name: name.to_string() }).await;
        self.after_removal(parent, name, r.is_err());
        r.map(|_| ())
    }

    /// After a failed create, mknod, mkdir, symlink or link of `dir/name`: unless the
    /// MDS refused it for a reason that made nothing, the cache no longer claims to know
    /// which names `dir` holds (the MDS may have made the entry before a timeout or a
    /// lost connection, or an EEXIST names an entry the cache did not know of).
    fn unsure_of(&self, dir: Ino, name: &str, errno: Errno) {
        let mut d = lock(&self.inner.dcache);
        let refused = match errno {
            Errno::EEXIST => d.get(dir, name).is_some(),
            Errno::ETIMEDOUT | Errno::EIO | Errno::ENOTCONN | Errno::EAGAIN | Errno::ESTALE | Errno::EBLOCKLISTED => false,
            _ => true,
        };
        if !refused {
            d.set_incomplete(dir);
        }
    }

    /// After an unlink/rmdir: the entry is gone from the cache, and if the MDS refused
    /// the directory is no longer known whole (the entry may still be there).
    fn after_removal(&self, parent: Ino, name: &str, failed: bool) {
        let mut d = lock(&self.inner.dcache);
        d.invalidate(parent, name);
        if failed {
            d.set_incomplete(parent);
        }
    }

    pub async fn rmdir(&self, parent: Ino, name: &str) -> Result<(), CmdError> {
        let child = lock(&self.inner.dcache).get(parent, name).map(|s| s.ino);
        lock(&self.inner.dcache).invalidate(parent, name);
        let r = self.request(MdsOp::Rmdir { parent, name: name.to_string() }).await;
        self.after_removal(parent, name, r.is_err());
        r?;
        let mut c = lock(&self.inner.dcache);
        if let Some(d) = child {
            c.invalidate_dir(d);
        }
        Ok(())
    }

    pub async fn rename(&self, src_parent: Ino, src_name: &str, dst_parent: Ino, dst_name: &str) -> Result<(), CmdError> {
        // The destination now holds an entry the cache lacks: not complete any more.
        let drop_both = |c: &mut super::path::DentryCache| {
            c.invalidate(src_parent, src_name);
            c.invalidate(dst_parent, dst_name);
            c.set_incomplete(dst_parent);
            c.set_incomplete(src_parent);
        };
        drop_both(&mut lock(&self.inner.dcache));
        let op = MdsOp::Rename {
            src_parent,
            src_name: src_name.to_string(),
            dst_parent,
            dst_name: dst_name.to_string(),
        };
        self.request(op).await?;
        drop_both(&mut lock(&self.inner.dcache));
        Ok(())
    }

    /// Every entry of directory `ino` (all pages), in name order, without `.`/`..`.
    /// A listing read whole under `Fs`, every entry with its attributes, makes the
    /// directory complete (negative lookups and async ops are answered locally).
    /// A complete directory whose `Fs` this client holds is listed from the dentry
    /// cache (Ceph's client does the same): no other client can change its entries
    /// without the MDS revoking `Fs` first, which drops them.
    pub async fn readdir(&self, ino: Ino) -> Result<Vec<DirEntry>, CmdError> {
        if let Some(entries) = self.cached_listing(ino) {
            return Ok(entries);
        }
        let mut out: Vec<DirEntry> = Vec::new();
        let mut cookie: Option<String> = None;
        let gen = lock(&self.inner.dcache).generation();
        loop {
            let op = MdsOp::Readdir { ino, cookie: cookie.clone(), max: READDIR_PAGE };
            match self.request(op).await? {
                ReplyBody::Dir { entries, end } => {
                    let next = entries.last().map(|e| e.name.clone());
                    {
                        let mut c = lock(&self.inner.dcache);
                        for e in &entries {
                            if let Some(st) = &e.stat {
                                c.insert_since(ino, &e.name, st, gen);
                            }
                        }
                    }
                    out.extend(entries.into_iter().filter(|e| e.name != "." && e.name != ".."));
                    if end || next.is_none() || next == cookie {
                        if out.iter().all(|e| e.stat.is_some()) && self.dir_cached(ino) {
                            lock(&self.inner.dcache).set_complete(ino, gen);
                        }
                        return Ok(out);
                    }
                    cookie = next;
                }
                other => return Err(unexpected("readdir", &other)),
            }
        }
    }

    pub async fn statfs(&self) -> Result<StatfsReply, CmdError> {
        match self.request(MdsOp::Statfs).await? {
            ReplyBody::Statfs(s) => Ok(s),
            other => Err(unexpected("statfs", &other)),
        }
    }

    /// `readdir` from the dentry cache, if the caps and the cache allow it.
    fn cached_listing(&self, ino: Ino) -> Option<Vec<DirEntry>> {
        if !self.dir_cached(ino) {
            return None;
        }
        let mut entries = lock(&self.inner.dcache).listing(ino)?;
        for e in &mut entries {
            e.stat = e.stat.take().map(|st| self.with_own_changes(st));
        }
        Some(entries)
    }

    /// Whether `readdir(ino)` would be answered from the cache (for tests).
    pub fn listing_cached(&self, ino: Ino) -> bool {
        self.cached_listing(ino).is_some()
    }

    /// The parent of directory `dir` as the dentry cache knows it, while this client
    /// holds `Fs` on that parent (a rename elsewhere revokes it, dropping the entry).
    pub fn cached_parent(&self, dir: Ino) -> Option<Ino> {
        let p = lock(&self.inner.dcache).parent_of(dir)?;
        self.dir_cached(p).then_some(p)
    }

    // --- path-level helpers used by the CLI ---

    /// `mkdir -p`: creates every missing directory of `path`; returns the last.
    pub async fn mkdirs(&self, path: &str, mode: u32) -> Result<InodeStat, CmdError> {
        let mut cur = self.getattr(self.root_ino()).await?;
        let comps = normalize(path)?;
        for (i, name) in comps.iter().enumerate() {
            let shown = join(&comps[..=i]);
            cur = match self.lookup(cur.ino, name).await {
                Ok(st) => st,
                Err(e) if e.errno == Errno::ENOENT => match self.mkdir(cur.ino, name, mode).await {
                    Ok(st) => st,
                    Err(e) if e.errno == Errno::EEXIST => self.lookup(cur.ino, name).await.map_err(ctx(&shown))?,
                    Err(e) => return Err(ctx(format!("mkdir {shown}"))(e)),
                },
                Err(e) => return Err(ctx(&shown)(e)),
            };
            if !is_dir(&cur) {
                return Err(CmdError::new(Errno::ENOTDIR, format!("{shown}: not a directory")));
            }
        }
        Ok(cur)
    }

    /// Removes `name` in `parent` and, when it is a directory, everything under it.
    pub async fn remove_tree(&self, parent: Ino, name: &str) -> Result<(), CmdError> {
        let st = self.lookup(parent, name).await?;
        if is_dir(&st) {
            for e in self.readdir(st.ino).await? {
                Box::pin(self.remove_tree(st.ino, &e.name)).await?;
            }
            self.rmdir(parent, name).await
        } else {
            self.unlink(parent, name).await
        }
    }
}
