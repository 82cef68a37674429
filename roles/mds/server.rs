//! Server: pure handlers for client metadata requests.
//!
//! `handle` takes a request and the rank's state and either answers, or says what is
//! missing from the cache (`Need`): the actor then loads that directory fragment or
//! inode from RADOS and calls `handle` again with the same request. A handler first
//! checks everything against the unchanged cache and builds the `EMetaBlob` describing
//! the change; only when the op succeeds is the blob applied, through the same
//! `MdCache::apply` that journal replay uses, so replay rebuilds exactly what the live
//! path made. The actor journals the returned blob before sending the safe reply.
use std::collections::BTreeMap;

use super::cache::MdCache;
use super::events::{DentryUpdate, EMetaBlob, InoAlloc, InoSource, ReqRef};
use super::inotable::InoTable;
use super::sessionmap::SessionInfo;
use super::types::{is_base, Ino, Inode, Linkage, ROOT_INO};
use crate::error::Errno;
use crate::msg::mds::{Caller, ClientRequest, MdsOp, ReplyBody, S_ISVTX};

#[path = "server_ns.rs"]
mod ns;
#[path = "server_attr.rs"]
mod attr;
#[path = "server_quota.rs"]
mod vxattr;
#[path = "server_caps.rs"]
mod caps;
pub use caps::update_inode;
pub use ns::purge_stray;

/// What the cache lacks to answer a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Load the fragment object of this directory (`MdCache::load_dir`), then retry.
    Dir(Ino),
    /// This inode is not reachable from the cache: find it (open file table,
    /// backtrace) and load the fragments on its path, then retry; reply ESTALE if it
    /// cannot be found.
    Inode(Ino),
}

/// The answer to a request, and for a change the blob to journal (already applied).
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub result: Result<ReplyBody, Errno>,
    pub blob: Option<EMetaBlob>,
}

/// Why a handler stopped: a missing cache item or an error for the client.
#[derive(Debug)]
pub(crate) enum Fail {
    Need(Need),
    Errno(Errno),
}
impl From<Need> for Fail {
    fn from(n: Need) -> Self {
        Fail::Need(n)
    }
}
impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Fail::Errno(e)
    }
}
type R<T> = Result<T, Fail>;

/// What a handler decided: a read answer, or a change.
pub(crate) enum Plan {
    Read(ReplyBody),
    Write(ReplyBody, Box<EMetaBlob>),
}

/// Handles one request. See the module doc for the contract.
pub fn handle(
    cache: &mut MdCache,
    inotable: &mut InoTable,
    session: &SessionInfo,
    req: &ClientRequest,
    now: i64,
) -> Result<Outcome, Need> {
    // An async create made the inode's times in the client, which showed them already.
    let now = match &req.op {
        MdsOp::CreateIno { stamp, .. } | MdsOp::MkdirIno { stamp, .. } => *stamp,
        _ => now,
    };
    let plan = {
        let cx = Cx { cache, inotable, session, caller: &req.caller, now, tid: req.tid };
        cx.plan(&req.op)
    };
    match plan {
        Err(Fail::Need(n)) => Err(n),
        Err(Fail::Errno(e)) => Ok(Outcome { result: Err(e), blob: None }),
        Ok(Plan::Read(body)) => Ok(Outcome { result: Ok(body), blob: None }),
        Ok(Plan::Write(body, blob)) => {
            cache.apply(&blob);
            if let Some(InoAlloc { ino, from: InoSource::Table }) = blob.ino_alloc {
                inotable.take(ino);
            }
            Ok(Outcome { result: Ok(body), blob: Some(*blob) })
        }
    }
}

/// The op to answer a request that already completed (re-sent after a failover or a
/// reconnect, its change already journaled): a creating op is answered with a lookup
/// of what it made; other ops have nothing more to say (`None`: answer `Empty`).
pub fn completed_answer(op: &MdsOp) -> Option<MdsOp> {
    match op {
        MdsOp::Create { parent, name, .. }
        | MdsOp::CreateIno { parent, name, .. }
        | MdsOp::MkdirIno { parent, name, .. }
        | MdsOp::Mknod { parent, name, .. }
        | MdsOp::Mkdir { parent, name, .. }
        | MdsOp::Symlink { parent, name, .. } => Some(MdsOp::Lookup { parent: *parent, name: name.clone() }),
        MdsOp::Link { new_parent, new_name, .. } => Some(MdsOp::Lookup { parent: *new_parent, name: new_name.clone() }),
        MdsOp::Setattr { ino, .. } | MdsOp::SetSize { ino, .. } | MdsOp::Open { ino, .. } => Some(MdsOp::Getattr { ino: *ino }),
        _ => None,
    }
}

/// Whether `ino` is `root` or below it, walking primary parents (and anchors).
pub fn is_within(cache: &MdCache, ino: Ino, root: Ino) -> Result<bool, Need> {
    let mut cur = ino;
    for _ in 0..4096 {
        if cur == root {
            return Ok(true);
        }
        if is_base(cur) {
            return Ok(false);
        }
        cur = match cache.parent_of(cur).or_else(|| cache.anchor(cur)) {
            Some((d, _)) => d,
            None => return Err(Need::Inode(cur)),
        };
    }
    Ok(false)
}

/// Resolves a path (relative to `root`, `/`-separated) to an inode number, following
/// no symlinks; for opening a session at a sub-directory.
pub fn resolve_path(cache: &MdCache, root: Ino, path: &str) -> Result<Result<Ino, Errno>, Need> {
    let mut cur = root;
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let Some(i) = cache.inode(cur) else { return Err(Need::Inode(cur)) };
        if !i.is_dir() {
            return Ok(Err(Errno::ENOTDIR));
        }
        if comp == ".." {
            cur = if cur == root { root } else { cache.parent_of(cur).map(|p| p.0).ok_or(Need::Inode(cur))? };
            continue;
        }
        let d = cache.dir(cur).filter(|d| d.complete).ok_or(Need::Dir(cur))?;
        match d.dentries.get(comp) {
            Some(l) => cur = l.ino(),
            None => return Ok(Err(Errno::ENOENT)),
        }
    }
    Ok(Ok(cur))
}

pub(crate) const MAY_READ: u32 = 4;
pub(crate) const MAY_WRITE: u32 = 2;
pub(crate) const MAY_EXEC: u32 = 1;

/// Mode-bit permission check as Linux does it: owner, then group, then other bits;
/// uid 0 passes except that it needs some execute bit to execute a non-directory.
pub fn may(i: &Inode, c: &Caller, mask: u32) -> Result<(), Errno> {
    if c.may(i.mode, i.uid, i.gid, mask) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// In a sticky directory only the entry's owner, the directory's owner or root may
/// remove or rename an entry.
pub fn sticky_ok(dir: &Inode, target: &Inode, c: &Caller) -> bool {
    dir.mode & S_ISVTX == 0 || c.uid == 0 || c.uid == dir.uid || c.uid == target.uid
}

/// Read-only view of the rank's state for one request.
pub(crate) struct Cx<'a> {
    pub cache: &'a MdCache,
    pub inotable: &'a InoTable,
    pub session: &'a SessionInfo,
    pub caller: &'a Caller,
    pub now: i64,
    pub tid: u64,
}

impl<'a> Cx<'a> {
    fn plan(&self, op: &MdsOp) -> R<Plan> {
        match op {
            MdsOp::Lookup { parent, name } => self.lookup(*parent, name),
            MdsOp::LookupIno { ino } | MdsOp::Getattr { ino } => Ok(Plan::Read(ReplyBody::Inode(self.reach(*ino)?.stat()))),
            MdsOp::Setattr { ino, set } => self.setattr(*ino, set),
            MdsOp::Create { parent, name, mode, excl } => self.create(*parent, name, *mode, *excl),
            MdsOp::CreateIno { parent, name, mode, ino, .. } => self.create_ino(*parent, name, *mode, *ino),
            MdsOp::MkdirIno { parent, name, mode, ino, .. } => self.mkdir_ino(*parent, name, *mode, *ino),
            MdsOp::Mknod { parent, name, mode, rdev } => self.mknod(*parent, name, *mode, *rdev),
            MdsOp::Open { ino, flags } => self.open(*ino, *flags),
            MdsOp::Mkdir { parent, name, mode } => self.mkdir(*parent, name, *mode),
            MdsOp::Symlink { parent, name, target } => self.symlink(*parent, name, target),
            MdsOp::Readlink { ino } => self.readlink(*ino),
            MdsOp::Link { ino, new_parent, new_name } => self.link(*ino, *new_parent, new_name),
            MdsOp::Unlink { parent, name } => self.unlink(*parent, name),
            MdsOp::Rmdir { parent, name } => self.rmdir(*parent, name),
            MdsOp::Rename { src_parent, src_name, dst_parent, dst_name } => {
                self.rename(*src_parent, src_name, *dst_parent, dst_name)
            }
            MdsOp::Readdir { ino, cookie, max } => self.readdir(*ino, cookie.as_deref(), *max),
            MdsOp::Getxattr { ino, name } => self.getxattr(*ino, name),
            MdsOp::Setxattr { ino, name, value, flags } => self.setxattr(*ino, name, value, *flags),
            MdsOp::Listxattr { ino } => self.listxattr(*ino),
            MdsOp::Getxattrs { ino } => self.getxattrs(*ino),
            MdsOp::Removexattr { ino, name } => self.removexattr(*ino, name),
            MdsOp::SetSize { ino, size, mtime } => self.setsize(*ino, *size, *mtime),
            MdsOp::Statfs => Ok(Plan::Read(ReplyBody::Statfs(self.statfs()))),
        }
    }

    /// An inode by number: from cache, or through the anchor table for hard links.
    pub fn inode(&self, ino: Ino) -> R<&'a Inode> {
        if let Some(i) = self.cache.inode(ino) {
            return Ok(i);
        }
        match self.cache.anchor(ino) {
            Some((d, _)) if self.cache.dir(d).is_none_or(|f| !f.complete) => Err(Need::Dir(d).into()),
            Some(_) => Err(Errno::ESTALE.into()),
            None => Err(Need::Inode(ino).into()),
        }
    }

    /// An inode the session may see: inside its root, or a stray (an unlinked inode
    /// still reachable through a hard link or an open handle).
    pub fn reach(&self, ino: Ino) -> R<&'a Inode> {
        let i = self.inode(ino)?;
        if ino == self.cache.mdsdir() {
            return Err(Errno::EPERM.into());
        }
        if self.session.root == ROOT_INO || is_within(self.cache, ino, self.session.root)? {
            return Ok(i);
        }
        if is_within(self.cache, ino, self.cache.mdsdir())? {
            return Ok(i);
        }
        Err(Errno::EPERM.into())
    }

    /// The inode a dentry points at.
    pub fn target(&self, l: &'a Linkage) -> R<&'a Inode> {
        match l {
            Linkage::Primary(i) => Ok(i),
            Linkage::Remote { ino, .. } => self.inode(*ino),
        }
    }

    /// A directory to look in: it must exist, be a directory inside the session root,
    /// and the caller needs search permission on it and every directory above it.
    pub fn search_dir(&self, dir: Ino) -> R<&'a Inode> {
        let d = self.inode(dir)?;
        if !d.is_dir() {
            return Err(Errno::ENOTDIR.into());
        }
        let mut cur = dir;
        for _ in 0..4096 {
            may(self.inode(cur)?, self.caller, MAY_EXEC)?;
            if cur == self.session.root {
                return Ok(d);
            }
            if is_base(cur) {
                return Err(Errno::EPERM.into());
            }
            cur = self.cache.parent_of(cur).map(|p| p.0).ok_or(Need::Inode(cur))?;
        }
        Err(Errno::EIO.into())
    }

    /// The dentries of a directory (which must be in cache and complete).
    pub fn dentries(&self, dir: Ino) -> R<&'a BTreeMap<String, Linkage>> {
        match self.cache.dir(dir) {
            Some(f) if f.complete => Ok(&f.dentries),
            _ => Err(Need::Dir(dir).into()),
        }
    }

    pub fn lookup_in(&self, dir: Ino, name: &str) -> R<Option<&'a Linkage>> {
        Ok(self.dentries(dir)?.get(name))
    }

    fn lookup(&self, parent: Ino, name: &str) -> R<Plan> {
        if name.len() > crate::msg::mds::NAME_MAX {
            return Err(Errno::ENAMETOOLONG.into());
        }
        self.search_dir(parent)?;
        let i = match name {
            "." => self.inode(parent)?,
            ".." if parent == self.session.root => self.inode(parent)?,
            ".." => self.inode(self.cache.parent_of(parent).map(|p| p.0).ok_or(Need::Inode(parent))?)?,
            _ => {
                crate::msg::mds::check_name(name)?;
                self.target(self.lookup_in(parent, name)?.ok_or(Errno::ENOENT)?)?
            }
        };
        Ok(Plan::Read(ReplyBody::Inode(i.stat())))
    }

    fn statfs(&self) -> crate::msg::mds::StatfsReply {
        crate::msg::mds::StatfsReply {
            files: self.inotable.allocated,
            namemax: crate::msg::mds::NAME_MAX as u32,
            bsize: 4 << 20,
            blocks: 0,
            bfree: 0,
        }
    }

    /// An async create: exclusive, with the inode number the client chose from those
    /// delegated to its session (`SessionInfo::delegated`, checked by the caller).
    fn create_ino(&self, parent: Ino, name: &str, mode: u32, ino: Ino) -> R<Plan> {
        if self.session.delegated != Some(ino) {
            return Err(Errno::EINVAL.into());
        }
        self.create(parent, name, mode, true)
    }

    /// An async mkdir, with a delegated inode number like `create_ino`.
    fn mkdir_ino(&self, parent: Ino, name: &str, mode: u32, ino: Ino) -> R<Plan> {
        if self.session.delegated != Some(ino) {
            return Err(Errno::EINVAL.into());
        }
        self.mkdir(parent, name, mode)
    }

    /// The inode number for a new inode: an async create's delegated one, else the
    /// session's preallocated one, else the table's.
    pub fn alloc_ino(&self) -> R<InoAlloc> {
        if let Some(ino) = self.session.delegated {
            return Ok(InoAlloc { ino, from: InoSource::Delegated });
        }
        if let Some(ino) = self.session.next_prealloc {
            return Ok(InoAlloc { ino, from: InoSource::Prealloc });
        }
        let ino = self.inotable.project().ok_or(Errno::ENOSPC)?;
        Ok(InoAlloc { ino, from: InoSource::Table })
    }

    pub fn tx(&self, desc: String) -> Tx<'a> {
        Tx {
            cache: self.cache,
            blob: EMetaBlob {
                desc,
                reqid: Some(ReqRef { client: self.session.client.clone(), tid: self.tid }),
                version: self.cache.version() + 1,
                ..Default::default()
            },
            staged: BTreeMap::new(),
            placed: BTreeMap::new(),
        }
    }
}

/// Builds the blob of one change: staged inode states, explicit dentry changes, and
/// where moved or new inodes are placed. `finish` turns staged inodes into dentry
/// updates at their (new) primary location, after the explicit changes.
pub(crate) struct Tx<'a> {
    cache: &'a MdCache,
    pub blob: EMetaBlob,
    staged: BTreeMap<Ino, Option<Inode>>,
    placed: BTreeMap<Ino, (Ino, String)>,
}

impl<'a> Tx<'a> {
    /// The current state of an inode within this change.
    pub fn get(&self, ino: Ino) -> R<Inode> {
        match self.staged.get(&ino) {
            Some(Some(i)) => Ok(i.clone()),
            Some(None) => Err(Errno::ESTALE.into()),
            None => self.cache.inode(ino).cloned().ok_or_else(|| Need::Inode(ino).into()),
        }
    }
    pub fn put(&mut self, mut i: Inode) {
        i.version = self.blob.version;
        self.staged.insert(i.ino, Some(i));
    }
    /// Puts the inode's primary dentry at `dir/name` (new or moved inodes).
    pub fn place(&mut self, ino: Ino, dir: Ino, name: &str) {
        self.placed.insert(ino, (dir, name.to_string()));
    }
    /// The inode is gone; the caller removes its dentries.
    pub fn destroy(&mut self, ino: Ino) {
        self.staged.insert(ino, None);
        self.placed.remove(&ino);
    }
    pub fn dentry(&mut self, dir: Ino, name: &str, linkage: Option<Linkage>) {
        self.blob.dentries.push(DentryUpdate { dir, name: name.to_string(), linkage });
    }
    pub fn anchor(&mut self, ino: Ino, a: Option<(Ino, String)>) {
        self.blob.anchors.retain(|(i, _)| *i != ino);
        self.blob.anchors.push((ino, a));
    }
    pub fn has_anchor(&self, ino: Ino) -> bool {
        match self.blob.anchors.iter().find(|(i, _)| *i == ino) {
            Some((_, a)) => a.is_some(),
            None => self.cache.anchor(ino).is_some(),
        }
    }
    /// Where the inode's primary dentry is (after this change's moves).
    pub fn location(&self, ino: Ino) -> Option<(Ino, String)> {
        self.placed.get(&ino).cloned().or_else(|| self.cache.parent_of(ino).map(|(d, n)| (d, n.to_string())))
    }
    pub fn finish(self) -> R<EMetaBlob> {
        self.finish_with(true)
    }

    /// `finish`, with quotas enforced (EDQUOT) or, for a change a client was already
    /// allowed to make (a size inside its granted writable range), only accounted.
    pub fn finish_with(mut self, enforce_quota: bool) -> R<EMetaBlob> {
        for (ino, i) in std::mem::take(&mut self.staged) {
            let Some(i) = i else { continue };
            if is_base(ino) {
                self.blob.base_inodes.push(i);
            } else {
                let (d, n) = self.location(ino).ok_or(Errno::EIO)?;
                self.dentry(d, &n, Some(Linkage::Primary(i)));
            }
        }
        super::quota::propagate(self.cache, &mut self.blob, enforce_quota)?;
        Ok(self.blob)
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
pub(crate) mod tests;
