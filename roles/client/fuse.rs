//! The FUSE mount: `fuser::Filesystem` over the client library. The FUSE loop
//! answers what needs neither the network nor a wait at once (attributes and entries
//! cached under caps, close of a handle with nothing to flush); anything else it
//! decodes and spawns onto the tokio runtime (never waiting on the network itself);
//! the body runs with the request's credentials (`Client::with_caller`) and answers
//! the kernel when done. FUSE inode 1 is the mount root, other inode
//! numbers are the MDS's. Entries and attributes are cached by the kernel for the
//! mount's TTLs (0 by default: it asks every time), and invalidations from the library
//! are applied through the session's notifier (`apply_invalidation`).
use std::ffi::OsStr;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner,
    Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

use super::file::Invalidate;
use super::fuse_map::{access_ok, attr, errno, set_time, xattr_names, xattr_reply, MountOpts, XattrReply};
use super::fuse_ops::Shared;
use super::session::lock;
use super::Client;
use crate::error::CmdError;
use crate::msg::mds::{Caller, InodeStat, SetAttr};
use crate::now_ns;

/// Largest read or write request asked of the kernel (which caps it at
/// `fs.fuse.max_pages_limit` pages: 1 MiB unless an administrator raised it).
const MAX_REQUEST: u32 = 4 << 20;
/// Asynchronous requests (read-ahead, ...) the kernel may have in flight.
const MAX_BACKGROUND: u16 = 64;

/// A reply that can carry an error.
trait Fail {
    fn fail(self, e: fuser::Errno);
}

macro_rules! fail_impl {
    ($($t:ty),*) => { $(impl Fail for $t { fn fail(self, e: fuser::Errno) { self.error(e) } })* };
}
fail_impl!(ReplyEntry, ReplyAttr, ReplyData, ReplyEmpty, ReplyOpen, ReplyWrite, ReplyCreate, ReplyStatfs, ReplyXattr, ReplyDirectory);

/// The file system a `cephr mount` serves.
pub struct CephFuse {
    sh: Arc<Shared>,
    rt: Handle,
}

fn utf8(name: &OsStr) -> Result<String, CmdError> {
    name.to_str()
        .map(str::to_string)
        .ok_or_else(|| CmdError::einval(format!("name {name:?} is not UTF-8")))
}

impl CephFuse {
    /// Serves `client` with options `opts`; request bodies run on `rt`.
    pub fn new(client: Client, rt: Handle, opts: MountOpts) -> CephFuse {
        CephFuse { sh: Arc::new(Shared::new(client, opts)), rt }
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.sh.clone()
    }

    /// Spawns `body` with the request's credentials; `ok` answers with its result.
    fn serve<R, T, F, Fut, K>(&self, req: &Request, reply: R, body: F, ok: K)
    where
        R: Fail + Send + 'static,
        T: Send + 'static,
        F: FnOnce(Arc<Shared>, Caller) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, CmdError>> + Send + 'static,
        K: FnOnce(R, &Shared, T) + Send + 'static,
    {
        let (uid, gid, pid, unique) = (req.uid(), req.gid(), req.pid(), req.unique());
        let sh = self.sh.clone();
        self.rt.spawn(async move {
            let caller = sh.caller(uid, gid, pid);
            match Client::with_caller(caller.clone(), body(sh.clone(), caller)).await {
                Ok(v) => ok(reply, &sh, v),
                Err(e) => {
                    tracing::debug!(req = unique.0, uid, "fuse op failed: {e}");
                    reply.fail(errno(&e))
                }
            }
        });
    }

    /// Answers at once, in this thread, when `now` can (it runs as the request's
    /// caller inside the runtime and must not wait; `None`: it would); else `serve`s
    /// `body`.
    fn now_or_serve<R, T, N, F, Fut, K>(&self, req: &Request, reply: R, now: N, body: F, ok: K)
    where
        R: Fail + Send + 'static,
        T: Send + 'static,
        N: FnOnce(&Shared, Caller) -> Option<Result<T, CmdError>>,
        F: FnOnce(Arc<Shared>, Caller) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, CmdError>> + Send + 'static,
        K: FnOnce(R, &Shared, T) + Send + 'static,
    {
        let caller = self.sh.caller(req.uid(), req.gid(), req.pid());
        let answered = {
            let _rt = self.rt.enter();
            Client::with_caller_sync(caller.clone(), || now(&self.sh, caller))
        };
        match answered {
            Some(Ok(v)) => ok(reply, &self.sh, v),
            Some(Err(e)) => reply.fail(errno(&e)),
            None => self.serve(req, reply, body, ok),
        }
    }

    /// How ops that make an entry answer (lookup, mknod, mkdir, ...).
    fn entry_reply(parent: crate::msg::mds::Ino) -> impl FnOnce(ReplyEntry, &Shared, InodeStat) + Send + 'static {
        move |reply, sh, st| {
            sh.held(st.ino);
            reply.entry_with_ttls(&sh.attr_ttl(st.ino), &sh.entry_ttl(parent), &attr(&st, &sh.map), Generation(0));
        }
    }

    /// `serve` for ops that answer with a new entry (lookup, mknod, mkdir, ...).
    fn entry<F, Fut>(&self, req: &Request, reply: ReplyEntry, parent: crate::msg::mds::Ino, body: F)
    where
        F: FnOnce(Arc<Shared>, Caller) -> Fut + Send + 'static,
        Fut: Future<Output = Result<InodeStat, CmdError>> + Send + 'static,
    {
        self.serve(req, reply, body, Self::entry_reply(parent));
    }

    /// `serve` for ops that answer with nothing.
    fn empty<F, Fut>(&self, req: &Request, reply: ReplyEmpty, body: F)
    where
        F: FnOnce(Arc<Shared>, Caller) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), CmdError>> + Send + 'static,
    {
        self.serve(req, reply, body, |reply, _, ()| reply.ok());
    }

    fn attr_reply<F, Fut>(&self, req: &Request, reply: ReplyAttr, body: F)
    where
        F: FnOnce(Arc<Shared>, Caller) -> Fut + Send + 'static,
        Fut: Future<Output = Result<InodeStat, CmdError>> + Send + 'static,
    {
        self.serve(req, reply, body, |reply, sh, st| reply.attr(&sh.attr_ttl(st.ino), &attr(&st, &sh.map)));
    }

    fn xattr_data(&self, req: &Request, reply: ReplyXattr, size: u32, body: impl XattrBody) {
        self.serve(req, reply, |sh, _| body.run(sh), move |reply, _, data: Vec<u8>| match xattr_reply(data.len(), size) {
            XattrReply::Size(n) => reply.size(n),
            XattrReply::Data => reply.data(&data),
            XattrReply::TooSmall => reply.error(fuser::Errno::ERANGE),
        });
    }
}

/// The async body of getxattr or listxattr: produces the bytes to return.
trait XattrBody: Send + 'static {
    fn run(self, sh: Arc<Shared>) -> impl Future<Output = Result<Vec<u8>, CmdError>> + Send + 'static;
}

struct GetX(u64, String);
struct ListX(u64);

impl XattrBody for GetX {
    fn run(self, sh: Arc<Shared>) -> impl Future<Output = Result<Vec<u8>, CmdError>> + Send + 'static {
        async move { sh.client.getxattr(self.0, &self.1).await }
    }
}

impl XattrBody for ListX {
    fn run(self, sh: Arc<Shared>) -> impl Future<Output = Result<Vec<u8>, CmdError>> + Send + 'static {
        async move { Ok(xattr_names(&sh.client.listxattr(self.0).await?)) }
    }
}

/// Applies one library invalidation to the kernel's caches (inodes the kernel does
/// not hold are skipped; the kernel forgetting an entry meanwhile is harmless).
pub fn apply_invalidation(sh: &Shared, notifier: &Notifier, inv: &Invalidate) -> std::io::Result<()> {
    match inv {
        Invalidate::Inode(ino) if lock(&sh.lookups).held(*ino) || *ino == sh.map.root => {
            notifier.inval_inode(sh.map.to_fuse(*ino), 0, 0)
        }
        Invalidate::Inode(_) => Ok(()),
        Invalidate::Entry { parent, name } => notifier.inval_entry(sh.map.to_fuse(*parent), OsStr::new(name)),
    }
}

/// Replies `EINVAL` for a name that is not UTF-8; otherwise yields it.
macro_rules! name_or_fail {
    ($reply:expr, $name:expr) => {
        match utf8($name) {
            Ok(n) => n,
            Err(e) => return $reply.fail(errno(&e)),
        }
    };
}

impl Filesystem for CephFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_time_granularity(Duration::from_nanos(1));
        // Big requests (the kernel caps them at fs.fuse.max_pages_limit pages, 1 MiB by
        // default), the largest read-ahead the kernel offers (the mount raises the
        // device's read_ahead_kb after mounting), and room for that read-ahead's
        // requests in flight at once.
        let _ = config.set_max_write(MAX_REQUEST);
        if let Err(max) = config.set_max_readahead(MAX_REQUEST) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.set_max_background(MAX_BACKGROUND);
        tracing::info!(root = format!("{:#x}", self.sh.map.root), fs = self.sh.client.fs_name(), "fuse session ready");
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name_or_fail!(reply, name);
        let p = self.sh.map.to_mds(parent);
        if let Some(st) = self.sh.cached_lookup(p, &name) {
            let sh = &self.sh;
            sh.held(st.ino);
            return reply.entry_with_ttls(&sh.attr_ttl(st.ino), &sh.entry_ttl(p), &attr(&st, &sh.map), Generation(0));
        }
        if self.sh.client.known_absent(p, &name) {
            return reply.error(fuser::Errno::ENOENT);
        }
        self.entry(req, reply, p, move |sh, _| async move { sh.lookup(p, &name).await });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.sh.forget(self.sh.map.to_mds(ino), nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ino = self.sh.map.to_mds(ino);
        if let Some(st) = self.sh.cached_attr(ino) {
            return reply.attr(&self.sh.attr_ttl(ino), &attr(&st, &self.sh.map));
        }
        self.attr_reply(req, reply, move |sh, _| async move { sh.attr(ino).await });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ino = self.sh.map.to_mds(ino);
        let now = now_ns();
        let times = [&atime, &mtime];
        let times_now = times.iter().any(|t| t.is_some()) && times.iter().all(|t| matches!(t, None | Some(TimeOrNow::Now)));
        let set = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(|t| set_time(t, now)),
            mtime: mtime.map(|t| set_time(t, now)),
            times_now,
        };
        let fh = fh.map(|f| f.0);
        self.attr_reply(req, reply, move |sh, _| async move { sh.setattr(ino, set, fh).await });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let ino = self.sh.map.to_mds(ino);
        self.serve(req, reply, move |sh, _| async move { sh.client.readlink(ino).await }, |r, _, t: String| {
            r.data(t.as_bytes())
        });
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, rdev: u32, reply: ReplyEntry) {
        let name = name_or_fail!(reply, name);
        let p = self.sh.map.to_mds(parent);
        self.entry(req, reply, p, move |sh, _| async move { sh.changing(&[p], sh.client.mknod(p, &name, mode, rdev.into())).await });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, _umask: u32, reply: ReplyEntry) {
        let name = name_or_fail!(reply, name);
        let p = self.sh.map.to_mds(parent);
        let now = |sh: &Shared, _| sh.mkdir_now(p, &name, mode);
        let name = name.clone();
        let body = move |sh: Arc<Shared>, _| async move { sh.changing(&[p], sh.client.mkdir(p, &name, mode)).await };
        self.now_or_serve(req, reply, now, body, Self::entry_reply(p));
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_fail!(reply, name);
        let p = self.sh.map.to_mds(parent);
        let now = |sh: &Shared, _| sh.unlink_now(p, &name);
        let name = name.clone();
        let body = move |sh: Arc<Shared>, _| async move { sh.changing(&[p], sh.client.unlink(p, &name)).await };
        self.now_or_serve(req, reply, now, body, |reply, _, ()| reply.ok());
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_fail!(reply, name);
        let p = self.sh.map.to_mds(parent);
        self.empty(req, reply, move |sh, _| async move { sh.changing(&[p], sh.client.rmdir(p, &name)).await });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let name = name_or_fail!(reply, link_name);
        let target = name_or_fail!(reply, target.as_os_str());
        let p = self.sh.map.to_mds(parent);
        self.entry(req, reply, p, move |sh, _| async move { sh.changing(&[p], sh.client.symlink(p, &name, &target)).await });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            return reply.error(fuser::Errno::EINVAL);
        }
        let (name, newname) = (name_or_fail!(reply, name), name_or_fail!(reply, newname));
        let (p, np) = (self.sh.map.to_mds(parent), self.sh.map.to_mds(newparent));
        self.empty(req, reply, move |sh, _| async move {
            // The moved inode's ctime changes too.
            let moved = sh.client.cached_entry(p, &name).map(|st| st.ino);
            let dirs: Vec<u64> = [p, np].into_iter().chain(moved).collect();
            sh.changing(&dirs, sh.client.rename(p, &name, np, &newname)).await
        });
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let name = name_or_fail!(reply, newname);
        let (ino, np) = (self.sh.map.to_mds(ino), self.sh.map.to_mds(newparent));
        self.entry(req, reply, np, move |sh, _| async move { sh.changing(&[np, ino], sh.client.link(ino, np, &name)).await });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let ino = self.sh.map.to_mds(ino);
        let direct = flags.0 & libc::O_DIRECT != 0;
        let body = move |sh: Arc<Shared>, c| async move { sh.open(ino, flags.0 as u32, c).await };
        self.serve(req, reply, body, move |r, sh, (_, fh)| r.opened(FileHandle(fh), fopen(direct, sh.keep_cache(ino))));
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let ino = self.sh.map.to_mds(ino);
        let body = move |sh: Arc<Shared>, _| async move { sh.read(ino, fh.0, offset, size.into()).await };
        self.serve(req, reply, body, |r, _, data: bytes::Bytes| r.data(&data));
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let ino = self.sh.map.to_mds(ino);
        let append = flags.0 & libc::O_APPEND != 0;
        if !append {
            // Most buffered writes: straight into the buffer from fuser's (one copy).
            let done = {
                let _rt = self.rt.enter();
                self.sh.client.fh_write_now(fh.0, offset, data)
            };
            if let Some(n) = done {
                return reply.written(u32::try_from(n).unwrap_or(u32::MAX));
            }
        }
        let data = data.to_vec();
        let body = move |sh: Arc<Shared>, _| async move { sh.write(ino, fh.0, offset, &data, append).await };
        self.serve(req, reply, body, |r, _, n: usize| r.written(u32::try_from(n).unwrap_or(u32::MAX)));
    }

    fn flush(&self, req: &Request, _ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        if self.sh.flush_clean(fh.0) {
            return reply.ok();
        }
        self.empty(req, reply, move |sh, _| async move { sh.as_opener(fh.0, sh.client.fh_flush(fh.0)).await });
    }

    fn release(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let clean = {
            let _rt = self.rt.enter();
            self.sh.release_clean(fh.0)
        };
        if clean {
            return reply.ok();
        }
        self.empty(req, reply, move |sh, _| async move { sh.release(fh.0).await });
    }

    fn fsync(&self, req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.empty(req, reply, move |sh, _| async move { sh.as_opener(fh.0, sh.client.fh_fsync(fh.0, datasync)).await });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let ino = self.sh.map.to_mds(ino);
        let body = move |sh: Arc<Shared>, c: Caller| async move { sh.opendir(ino, &c).await };
        self.serve(req, reply, body, |r, _, fh| r.opened(FileHandle(fh), FopenFlags::empty()));
    }

    fn readdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        let ino = self.sh.map.to_mds(ino);
        let body = move |sh: Arc<Shared>, _| async move { sh.readdir(ino, fh.0, offset).await };
        self.serve(req, reply, body, |mut r, _, entries| {
            for (next, e) in entries {
                if r.add(e.ino, next, e.kind, &e.name) {
                    break;
                }
            }
            r.ok()
        });
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.sh.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let dir = self.sh.map.to_mds(ino);
        self.empty(req, reply, move |sh, _| async move { sh.client.sync_ino(dir).await });
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.serve(req, reply, |sh, _| async move { sh.client.statfs().await }, |r, _, s| {
            // Like CephFS: inodes in use are known, free inodes are unlimited (-1).
            r.statfs(s.blocks, s.bfree, s.bfree, s.files, u64::MAX, s.bsize, s.namemax, s.bsize)
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        if position != 0 {
            return reply.error(fuser::Errno::EINVAL);
        }
        let name = name_or_fail!(reply, name);
        let (ino, value) = (self.sh.map.to_mds(ino), value.to_vec());
        let flags = u32::try_from(flags).unwrap_or(u32::MAX);
        self.empty(req, reply, move |sh, _| async move { sh.client.setxattr(ino, &name, &value, flags).await });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name_or_fail!(reply, name);
        self.xattr_data(req, reply, size, GetX(self.sh.map.to_mds(ino), name));
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.xattr_data(req, reply, size, ListX(self.sh.map.to_mds(ino)));
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_fail!(reply, name);
        let ino = self.sh.map.to_mds(ino);
        self.empty(req, reply, move |sh, _| async move { sh.client.removexattr(ino, &name).await });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let ino = self.sh.map.to_mds(ino);
        let mask = u32::try_from(mask.bits()).unwrap_or(0);
        self.empty(req, reply, move |sh, c| async move {
            let st = sh.client.getattr(ino).await?;
            access_ok(&st, &c, mask).map_err(|e| CmdError::new(e, format!("access {ino:#x}")))
        });
    }

    /// Like Ceph's FUSE client: allocation (mode 0) grows the size, KEEP_SIZE alone has
    /// nothing to do (objects are sparse and nothing reserves space on the OSDs), and
    /// PUNCH_HOLE|KEEP_SIZE zeroes the range; other modes are EOPNOTSUPP.
    fn fallocate(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let ino = self.sh.map.to_mds(ino);
        self.empty(req, reply, move |sh, _| async move { sh.fallocate(ino, fh.0, offset, length, mode).await });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = name_or_fail!(reply, name);
        let p = self.sh.map.to_mds(parent);
        let direct = flags & libc::O_DIRECT != 0;
        let now = |sh: &Shared, c| sh.create_now(p, &name, mode, flags as u32, c);
        let name = name.clone();
        let body = move |sh: Arc<Shared>, c| async move { sh.create(p, &name, mode, flags as u32, c).await };
        self.now_or_serve(req, reply, now, body, move |r, sh, (st, fh)| {
            sh.held(st.ino);
            let a = attr(&st, &sh.map);
            let ttl = sh.attr_ttl(st.ino).min(sh.entry_ttl(p));
            r.created(&ttl, &a, Generation(0), FileHandle(fh), fopen(direct, sh.keep_cache(st.ino)))
        });
    }
}

/// Open flags for the kernel: `O_DIRECT` opens bypass the page cache; `keep` lets the
/// kernel keep the pages it cached under the client's current `Fc` (a revoke drops
/// them through the notifier).
fn fopen(direct: bool, keep: bool) -> FopenFlags {
    if direct {
        FopenFlags::FOPEN_DIRECT_IO
    } else if keep {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    }
}
