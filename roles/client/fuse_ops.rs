//! The mount's state shared by every FUSE request, and the async bodies of the ops
//! that need more than one library call: fresh lookups (the kernel is the cache, so
//! lookups go to the MDS, not the library's dentry cache), attributes that include
//! this mount's unreported writes, truncation after flushing open handles, directory
//! listings, and handle ops made with the opener's credentials.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::file::Fh;
use super::fuse_map::{
    file_type, groups_of_pid, GroupCache, InoMap, KernelPages, ListedEntry, Listing, LookupCounts, MountOpts, OpenFiles,
};
use super::session::lock;
use super::Client;
use crate::error::{CmdError, Errno};
use crate::msg::mds::{Caller, Ino, InodeStat, MdsOp, ReplyBody, SetAttr, O_ACCMODE, S_IFDIR, S_IFMT};

/// What every request handler of one mount shares.
pub struct Shared {
    pub client: Client,
    pub map: InoMap,
    pub opts: MountOpts,
    pub open: Mutex<OpenFiles>,
    /// Listings of open directories (`None` until the first readdir at offset 0).
    dirs: Mutex<std::collections::HashMap<u64, Option<Listing>>>,
    next_dir: AtomicU64,
    pub lookups: Mutex<LookupCounts>,
    /// Supplementary groups of recent callers.
    groups: Mutex<GroupCache>,
    /// Whose kernel page caches are current.
    pages: Mutex<KernelPages>,
}

fn inode(what: &str, body: ReplyBody) -> Result<InodeStat, CmdError> {
    match body {
        ReplyBody::Inode(st) => Ok(st),
        other => Err(CmdError::new(Errno::EIO, format!("{what}: unexpected reply {other:?}"))),
    }
}

impl Shared {
    pub fn new(client: Client, opts: MountOpts) -> Shared {
        Shared {
            map: InoMap { root: client.root_ino() },
            client,
            opts,
            open: Mutex::default(),
            dirs: Mutex::default(),
            next_dir: AtomicU64::new(1),
            lookups: Mutex::default(),
            groups: Mutex::default(),
            pages: Mutex::default(),
        }
    }

    /// The credentials of a request by `uid`/`gid` from process `pid`.
    pub fn caller(&self, uid: u32, gid: u32, pid: u32) -> Caller {
        lock(&self.groups).caller(uid, gid, pid, std::time::Instant::now(), groups_of_pid)
    }

    /// Attributes the mount can answer at once, without a task or the network: cached
    /// under caps, and no handle of this mount open on `ino` (`attr` first reports
    /// what those wrote).
    pub fn cached_attr(&self, ino: Ino) -> Option<InodeStat> {
        if lock(&self.open).has_ino(ino) {
            return None;
        }
        self.client.cached_attrs(ino)
    }

    /// A lookup the mount can answer at once: the entry is in the dentry cache while
    /// the directory's caps cover it, its attributes are covered by the inode's caps
    /// (a cached entry's attributes may be older than another client's change), and
    /// no handle of this mount is open on it.
    pub fn cached_lookup(&self, parent: Ino, name: &str) -> Option<InodeStat> {
        let ino = self.client.cached_entry(parent, name)?.ino;
        self.cached_attr(ino)
    }

    /// How long the kernel may keep `ino`'s attributes: while the caps allow caching
    /// (the library invalidates them when the caps go), else the mount's attr_timeout.
    pub fn attr_ttl(&self, ino: Ino) -> Duration {
        self.client.kernel_ttl(ino).max(self.opts.attr_timeout)
    }

    /// How long the kernel may keep an entry of directory `parent`: while the
    /// directory's caps allow caching its entries, else the mount's entry_timeout.
    pub fn entry_ttl(&self, parent: Ino) -> Duration {
        self.client.kernel_ttl(parent).max(self.opts.entry_timeout)
    }

    /// Whether an open of `ino` (done) lets the kernel keep the file's cached pages.
    pub fn keep_cache(&self, ino: Ino) -> bool {
        let epoch = self.client.cache_epoch(ino);
        lock(&self.pages).open(ino, epoch)
    }

    /// The kernel dropped `n` references to `ino`; at none it forgot the inode.
    pub fn forget(&self, ino: Ino, n: u64) {
        if lock(&self.lookups).forget(ino, n) == 0 {
            lock(&self.pages).forget(ino);
        }
    }

    /// Notes that the kernel now holds one more reference to `ino`.
    pub fn held(&self, ino: Ino) {
        lock(&self.lookups).add(ino);
    }

    /// Runs `fut` as whoever opened `fh` (the request's caller if unknown).
    pub async fn as_opener<F: std::future::Future>(&self, fh: Fh, fut: F) -> F::Output {
        let opener = lock(&self.open).opener(fh);
        match opener {
            Some(c) => Client::with_caller(c, fut).await,
            None => fut.await,
        }
    }

    /// Reports what this mount's open handles of `ino` wrote, each as its opener, so
    /// that the MDS's size and mtime include it.
    pub async fn flush_ino(&self, ino: Ino) -> Result<(), CmdError> {
        self.flush_others(ino, None).await
    }

    /// `flush_ino` but for handle `except`.
    async fn flush_others(&self, ino: Ino, except: Option<Fh>) -> Result<(), CmdError> {
        let handles = lock(&self.open).of_ino(ino);
        for (fh, opener) in handles.into_iter().filter(|(f, _)| Some(*f) != except) {
            Client::with_caller(opener, self.client.fh_flush(fh)).await?;
        }
        Ok(())
    }

    /// Reads through `fh` as its opener; what other handles of this mount wrote to
    /// the file is reported first, so the size bounding the read includes it.
    pub async fn read(&self, ino: Ino, fh: Fh, off: u64, len: u64) -> Result<bytes::Bytes, CmdError> {
        self.flush_others(ino, Some(fh)).await?;
        self.as_opener(fh, self.client.fh_read_bytes(fh, off, len)).await
    }

    /// Writes through `fh` as its opener. An append first reports what other handles
    /// of this mount wrote, so it lands after their data.
    pub async fn write(&self, ino: Ino, fh: Fh, off: u64, data: &[u8], append: bool) -> Result<usize, CmdError> {
        if append {
            self.flush_others(ino, Some(fh)).await?;
        }
        self.as_opener(fh, self.client.fh_write(fh, off, data)).await
    }

    /// Attributes including this mount's writes not yet reported.
    pub async fn attr(&self, ino: Ino) -> Result<InodeStat, CmdError> {
        // Caps covering the attributes: the cache, with this mount's unreported writes
        // laid over it, is what a flush would make the MDS say.
        if let Some(st) = self.client.cached_attrs(ino) {
            return Ok(st);
        }
        self.flush_ino(ino).await?;
        self.client.getattr(ino).await
    }

    /// Looks `name` up (from the library's cache while the directory's caps allow,
    /// else at the MDS); a cached entry whose attributes the inode's caps no longer
    /// cover gets them from the MDS.
    pub async fn lookup(&self, parent: Ino, name: &str) -> Result<InodeStat, CmdError> {
        let from_cache = self.client.cached_entry(parent, name).is_some();
        let st = self.client.lookup(parent, name).await?;
        let stale = from_cache && self.client.cached_attrs(st.ino).is_none();
        if !stale && !lock(&self.open).has_ino(st.ino) {
            Ok(st)
        } else {
            self.attr(st.ino).await
        }
    }

    /// setattr: open handles of the inode are flushed first when the size changes,
    /// so that no later flush brings an old end back. ftruncate(2) through a handle
    /// open for writing needs no write permission now (it was checked at open), so
    /// a size-only change through one is made with full credentials.
    pub async fn setattr(&self, ino: Ino, set: SetAttr, fh: Option<Fh>) -> Result<InodeStat, CmdError> {
        if set.size.is_none() {
            return self.client.setattr(ino, set).await;
        }
        self.flush_ino(ino).await?;
        let size_only = SetAttr { size: set.size, ..Default::default() } == set;
        if size_only && fh.is_some_and(|f| lock(&self.open).writable(f)) {
            return Client::with_caller(Caller::root(), self.client.setattr(ino, set)).await;
        }
        self.client.setattr(ino, set).await
    }

    /// fallocate(2) through `fh`, with Ceph's FUSE client's modes: 0 grows the file to
    /// `offset + length` (a size change like ftruncate's, with its quota check; no
    /// space is reserved, objects are sparse), `KEEP_SIZE` alone changes nothing, and
    /// `PUNCH_HOLE | KEEP_SIZE` writes zeros over the part of the range inside the file.
    /// Any other mode (zero range, collapse, insert, unshare) is EOPNOTSUPP.
    pub async fn fallocate(&self, ino: Ino, fh: Fh, offset: u64, length: u64, mode: i32) -> Result<(), CmdError> {
        let (keep, punch) = (libc::FALLOC_FL_KEEP_SIZE, libc::FALLOC_FL_PUNCH_HOLE);
        if mode & !(keep | punch) != 0 || (mode & punch != 0 && mode & keep == 0) {
            return Err(CmdError::new(Errno::ENOTSUP, format!("fallocate mode {mode:#x} is not supported (only 0, KEEP_SIZE and PUNCH_HOLE|KEEP_SIZE)")));
        }
        let end = offset
            .checked_add(length)
            .filter(|e| i64::try_from(*e).is_ok())
            .ok_or_else(|| CmdError::new(Errno::EFBIG, format!("fallocate past the largest file size ({offset} + {length})")))?;
        if mode & keep != 0 && mode & punch == 0 {
            return Ok(());
        }
        if mode & punch == 0 {
            self.client.inner.check_file_end(end)?;
        }
        let size = self.attr(ino).await?.size;
        if mode & punch == 0 {
            if end > size {
                self.setattr(ino, SetAttr { size: Some(end), ..Default::default() }, Some(fh)).await?;
            }
            return Ok(());
        }
        const ZEROS: usize = 1 << 20;
        let zeros = vec![0u8; ZEROS];
        let (mut off, stop) = (offset, end.min(size));
        while off < stop {
            let n = usize::try_from(stop - off).map_or(ZEROS, |n| n.min(ZEROS));
            self.write(ino, fh, off, &zeros[..n], false).await?;
            off += n as u64;
        }
        Ok(())
    }

    /// Runs a namespace change of the entries in `dirs` (and of inodes `also`), then
    /// forgets their cached attributes: the MDS changed the directories' mtime/ctime
    /// (and a renamed or relinked inode's ctime) but replies only with the target.
    pub async fn changing<T>(
        &self,
        dirs: &[Ino],
        fut: impl std::future::Future<Output = Result<T, CmdError>>,
    ) -> Result<T, CmdError> {
        let r = fut.await;
        if r.is_ok() {
            for d in dirs {
                self.client.attrs_changed(*d);
            }
        }
        r
    }

    /// Opens `ino` and remembers the handle with its opener.
    pub async fn open(&self, ino: Ino, flags: u32, caller: Caller) -> Result<(InodeStat, Fh), CmdError> {
        let (st, fh) = self.client.open(ino, flags).await?;
        lock(&self.open).insert(fh, st.ino, caller, flags & O_ACCMODE != 0);
        Ok((st, fh))
    }

    /// Creates and opens `parent/name`.
    pub async fn create(
        &self,
        parent: Ino,
        name: &str,
        mode: u32,
        flags: u32,
        caller: Caller,
    ) -> Result<(InodeStat, Fh), CmdError> {
        let excl = flags & libc::O_EXCL as u32 != 0;
        let (st, fh) = self.changing(&[parent], self.client.create_open(parent, name, mode, flags, excl)).await?;
        lock(&self.open).insert(fh, st.ino, caller, flags & O_ACCMODE != 0);
        Ok((st, fh))
    }

    /// `create` when the client creates without waiting (`Client::create_now`); run
    /// as `caller`. `None`: it would wait.
    pub fn create_now(&self, parent: Ino, name: &str, mode: u32, flags: u32, caller: Caller) -> Option<Result<(InodeStat, Fh), CmdError>> {
        let r = self.client.create_open_now(parent, name, mode, flags)?;
        Some(r.map(|(st, fh)| {
            self.client.attrs_changed(parent);
            lock(&self.open).insert(fh, st.ino, caller, flags & O_ACCMODE != 0);
            (st, fh)
        }))
    }

    /// mkdir without waiting (`Client::mkdir_now`), like `create_now`.
    pub fn mkdir_now(&self, parent: Ino, name: &str, mode: u32) -> Option<Result<InodeStat, CmdError>> {
        let r = self.client.mkdir_now(parent, name, mode)?;
        Some(r.inspect(|_| self.client.attrs_changed(parent)))
    }

    /// unlink without waiting (`Client::unlink_now`), like `create_now`.
    pub fn unlink_now(&self, parent: Ino, name: &str) -> Option<Result<(), CmdError>> {
        let r = self.client.unlink_now(parent, name)?;
        Some(r.inspect(|_| self.client.attrs_changed(parent)))
    }

    /// A close(2) of `fh` that has nothing to flush: answered at once.
    pub fn flush_clean(&self, fh: Fh) -> bool {
        self.client.fh_ino(fh).is_some_and(|ino| self.client.is_clean(ino))
    }

    /// Closes handle `fh` at once if nothing needs flushing (within the runtime).
    pub fn release_clean(&self, fh: Fh) -> bool {
        let done = self.client.fh_release_clean(fh);
        if done {
            lock(&self.open).remove(fh);
        }
        done
    }

    /// Closes handle `fh` (flushing it as its opener).
    pub async fn release(&self, fh: Fh) -> Result<(), CmdError> {
        let r = self.as_opener(fh, self.client.fh_release(fh)).await;
        lock(&self.open).remove(fh);
        r
    }

    /// A directory handle; the caller must be allowed to read the directory.
    pub async fn opendir(&self, ino: Ino, caller: &Caller) -> Result<u64, CmdError> {
        let st = self.client.getattr(ino).await?;
        if st.mode & S_IFMT != S_IFDIR {
            return Err(CmdError::new(Errno::ENOTDIR, format!("inode {ino:#x} is not a directory")));
        }
        super::fuse_map::access_ok(&st, caller, libc::R_OK as u32)
            .map_err(|e| CmdError::new(e, format!("opendir {ino:#x}")))?;
        let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
        lock(&self.dirs).insert(fh, None);
        Ok(fh)
    }

    pub fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }

    /// Entries of directory handle `fh` from `offset` on; the listing is read on the
    /// first call and again at offset 0 (rewinddir), and served from memory otherwise.
    pub async fn readdir(&self, ino: Ino, fh: u64, offset: u64) -> Result<Vec<(u64, ListedEntry)>, CmdError> {
        let have = lock(&self.dirs).get(&fh).map(Option::is_some);
        match have {
            None => return Err(CmdError::einval(format!("no open directory handle {fh}"))),
            Some(true) if offset != 0 => {}
            Some(_) => {
                let listing = self.list(ino).await?;
                lock(&self.dirs).insert(fh, Some(listing));
            }
        }
        let dirs = lock(&self.dirs);
        let Some(Some(l)) = dirs.get(&fh) else { return Err(CmdError::einval(format!("directory handle {fh} closed"))) };
        Ok(l.from_offset(offset).map(|(o, e)| (o, e.clone())).collect())
    }

    async fn list(&self, ino: Ino) -> Result<Listing, CmdError> {
        let parent = if ino == self.map.root {
            ino
        } else if let Some(p) = self.client.cached_parent(ino) {
            p
        } else {
            inode("lookup ..", self.client.request(MdsOp::Lookup { parent: ino, name: "..".into() }).await?)?.ino
        };
        let dot = |name: &str, i: Ino| ListedEntry { ino: self.map.to_fuse(i), kind: file_type(S_IFDIR), name: name.into() };
        let mut entries = vec![dot(".", ino), dot("..", parent)];
        for e in self.client.readdir(ino).await? {
            entries.push(ListedEntry { ino: self.map.to_fuse(e.ino), kind: file_type(e.d_type), name: e.name });
        }
        Ok(Listing { entries })
    }
}
