//! Namespace operations: create, mknod, mkdir, symlink, link, unlink, rmdir, rename,
//! readdir, readlink. Errors are checked in the order Linux checks them, so a client
//! sees the same errno a local file system would give.
use std::ops::Bound;

use super::{may, sticky_ok, Cx, Fail, MdCache, Need, Plan, SessionInfo, Tx, MAY_EXEC, MAY_READ, MAY_WRITE, R};
use crate::msg::mds::Caller;
use crate::roles::mds::events::EMetaBlob;
use crate::roles::mds::inotable::InoTable;
use crate::error::Errno;
use crate::msg::mds::{
    check_name, is_dot, DirEntry, ReplyBody, NAME_MAX, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG,
    S_IFSOCK, S_ISGID,
};
use crate::roles::mds::events::Purge;
use crate::roles::mds::types::{stray_name, Ino, Inode, Linkage, ROOT_INO};

/// Most names one inode may have (ext4's limit).
pub const LINK_MAX: u32 = 65000;
/// Longest symlink target (Linux PATH_MAX - 1).
pub const SYMLINK_MAX: usize = 4095;
/// Entries per readdir reply when the client asks for 0.
pub const READDIR_DEFAULT: usize = 1024;

impl<'a> Cx<'a> {
    /// Checks for adding `name` to `parent` and returns the parent.
    fn prepare_new(&self, parent: Ino, name: &str) -> R<&'a Inode> {
        check_name(name)?;
        let p = self.search_dir(parent)?;
        if is_dot(name) || self.lookup_in(parent, name)?.is_some() {
            return Err(Errno::EEXIST.into());
        }
        may(p, self.caller, MAY_WRITE | MAY_EXEC)?;
        Ok(p)
    }

    /// A new inode owned by the caller; a set-group-id directory passes on its group
    /// (and to subdirectories its set-group-id bit).
    fn new_inode(&self, p: &Inode, ino: Ino, mut mode: u32) -> Inode {
        let mut gid = self.caller.gid;
        if p.mode & S_ISGID != 0 {
            gid = p.gid;
            if mode & S_IFMT == S_IFDIR {
                mode |= S_ISGID;
            }
        }
        Inode::new(ino, mode, self.caller.uid, gid, self.now, p.layout)
    }

    /// Adds a new inode named `parent/name`; `fill` sets type-specific fields.
    fn add_new(&self, parent: Ino, name: &str, mode: u32, op: &str, fill: impl FnOnce(&mut Inode)) -> R<Plan> {
        let p = self.prepare_new(parent, name)?;
        let alloc = self.alloc_ino()?;
        let mut i = self.new_inode(p, alloc.ino, mode);
        fill(&mut i);
        let mut tx = self.tx(format!("{op} {parent:#x}/{name:?}"));
        tx.blob.ino_alloc = Some(alloc);
        let mut pi = tx.get(parent)?;
        pi.mtime = self.now;
        pi.ctime = self.now;
        if i.is_dir() {
            pi.nlink += 1;
            tx.blob.new_dirs.push(i.ino);
        }
        tx.put(pi);
        tx.place(i.ino, parent, name);
        i.version = tx.blob.version;
        let stat = i.stat();
        tx.put(i);
        Ok(Plan::Write(ReplyBody::Inode(stat), Box::new(tx.finish()?)))
    }

    pub(crate) fn create(&self, parent: Ino, name: &str, mode: u32, excl: bool) -> R<Plan> {
        if is_dot(name) {
            self.search_dir(parent)?;
            return Err(if excl { Errno::EEXIST } else { Errno::EISDIR }.into());
        }
        check_name(name)?;
        self.search_dir(parent)?;
        if let Some(l) = self.lookup_in(parent, name)? {
            if excl {
                return Err(Errno::EEXIST.into());
            }
            let t = self.target(l)?;
            if t.is_dir() {
                return Err(Errno::EISDIR.into());
            }
            return Ok(Plan::Read(ReplyBody::Inode(t.stat())));
        }
        self.add_new(parent, name, S_IFREG | (mode & 0o7777), "create", |_| {})
    }

    pub(crate) fn mknod(&self, parent: Ino, name: &str, mode: u32, rdev: u64) -> R<Plan> {
        let ty = match mode & S_IFMT {
            0 => S_IFREG,
            t @ (S_IFREG | S_IFIFO | S_IFSOCK) => t,
            t @ (S_IFCHR | S_IFBLK) if self.caller.uid == 0 => t,
            S_IFCHR | S_IFBLK => return Err(Errno::EPERM.into()),
            _ => return Err(Errno::EINVAL.into()),
        };
        let dev = ty == S_IFCHR || ty == S_IFBLK;
        self.add_new(parent, name, ty | (mode & 0o7777), "mknod", |i| {
            if dev {
                i.rdev = rdev;
            }
        })
    }

    pub(crate) fn mkdir(&self, parent: Ino, name: &str, mode: u32) -> R<Plan> {
        self.add_new(parent, name, S_IFDIR | (mode & 0o7777), "mkdir", |_| {})
    }

    pub(crate) fn symlink(&self, parent: Ino, name: &str, target: &str) -> R<Plan> {
        if target.is_empty() {
            return Err(Errno::ENOENT.into());
        }
        if target.len() > SYMLINK_MAX {
            return Err(Errno::ENAMETOOLONG.into());
        }
        self.add_new(parent, name, S_IFLNK | 0o777, "symlink", |i| {
            i.size = target.len() as u64;
            i.symlink = Some(target.to_string());
        })
    }

    pub(crate) fn readlink(&self, ino: Ino) -> R<Plan> {
        let i = self.reach(ino)?;
        match (&i.symlink, i.is_symlink()) {
            (Some(t), true) => Ok(Plan::Read(ReplyBody::Readlink(t.clone()))),
            _ => Err(Errno::EINVAL.into()),
        }
    }

    pub(crate) fn link(&self, ino: Ino, new_parent: Ino, new_name: &str) -> R<Plan> {
        let t = self.reach(ino)?;
        if t.is_dir() {
            return Err(Errno::EPERM.into());
        }
        self.prepare_new(new_parent, new_name)?;
        if t.nlink >= LINK_MAX {
            return Err(Errno::EMLINK.into());
        }
        let mut tx = self.tx(format!("link {ino:#x} -> {new_parent:#x}/{new_name:?}"));
        let loc = tx.location(ino).ok_or(Errno::EIO)?;
        let mut ti = t.clone();
        ti.nlink += 1;
        ti.ctime = self.now;
        tx.dentry(new_parent, new_name, Some(Linkage::Remote { ino, d_type: t.file_type() }));
        if !tx.has_anchor(ino) {
            tx.anchor(ino, Some(loc));
        }
        let mut p = tx.get(new_parent)?;
        p.mtime = self.now;
        p.ctime = self.now;
        tx.put(p);
        ti.version = tx.blob.version;
        let stat = ti.stat();
        tx.put(ti);
        Ok(Plan::Write(ReplyBody::Inode(stat), Box::new(tx.finish()?)))
    }

    /// Removes the entry `dir/name` (linkage `l`) within `tx`: a directory goes with its
    /// fragment; a file loses a link and is destroyed (and purged) at the last one; a
    /// file whose primary name goes while other names remain moves to the stray dir.
    fn remove_entry(&self, tx: &mut Tx<'a>, dir: Ino, name: &str, l: &Linkage) -> R<()> {
        tx.dentry(dir, name, None);
        let mut t = tx.get(l.ino())?;
        t.ctime = self.now;
        if t.is_dir() {
            tx.destroy(t.ino);
            tx.blob.removed_dirs.push(t.ino);
            let mut d = tx.get(dir)?;
            d.nlink = d.nlink.saturating_sub(1);
            tx.put(d);
            return Ok(());
        }
        t.nlink = t.nlink.saturating_sub(1);
        let primary = matches!(l, Linkage::Primary(_));
        let mdsdir = self.cache.mdsdir();
        if t.nlink == 0 {
            return self.to_stray(tx, t);
        }
        if primary {
            self.dentries(mdsdir)?;
            let sn = stray_name(t.ino);
            tx.place(t.ino, mdsdir, &sn);
            tx.anchor(t.ino, Some((mdsdir, sn)));
        } else if t.nlink == 1 && tx.location(t.ino).is_some_and(|(d, _)| d != mdsdir) && tx.has_anchor(t.ino) {
            tx.anchor(t.ino, None); // only the primary name is left: no remote needs it
        }
        tx.put(t);
        Ok(())
    }

    /// The last name of `t` (nlink now 0) is gone: the inode moves to (or stays in) the
    /// rank's stray directory with nlink 0, no longer anchored. The rank purges it once
    /// no client holds it open (`rank_strays.rs`), so an open descriptor keeps working.
    fn to_stray(&self, tx: &mut Tx<'a>, t: Inode) -> R<()> {
        let mdsdir = self.cache.mdsdir();
        self.dentries(mdsdir)?;
        let sn = stray_name(t.ino);
        match tx.location(t.ino) {
            Some((d, n)) if d == mdsdir && n == sn => {}
            Some((d, n)) => {
                tx.dentry(d, &n, None);
                tx.place(t.ino, mdsdir, &sn);
            }
            None => tx.place(t.ino, mdsdir, &sn),
        }
        if tx.has_anchor(t.ino) {
            tx.anchor(t.ino, None);
        }
        tx.put(t);
        Ok(())
    }

    /// Destroys the unlinked stray `ino` (nlink 0, in the stray directory): its dentry
    /// and inode go and its data objects are to be purged. Its inode number is not
    /// handed out again (as in Ceph): clients may still know it from attributes they
    /// cached, which a reused number would mix up. Not a client request: no reqid.
    fn purge_stray(&self, ino: Ino) -> R<Plan> {
        let mdsdir = self.cache.mdsdir();
        let sn = stray_name(ino);
        let i = self.cache.inode(ino).ok_or(Errno::ESTALE)?;
        if i.nlink != 0 || self.cache.parent_of(ino) != Some((mdsdir, sn.as_str())) {
            return Err(Errno::EINVAL.into());
        }
        let mut tx = self.tx(format!("purge stray {ino:#x}"));
        tx.blob.reqid = None;
        tx.dentry(mdsdir, &sn, None);
        tx.destroy(ino);
        if tx.has_anchor(ino) {
            tx.anchor(ino, None);
        }
        if i.file_type() == S_IFREG {
            tx.blob.purge.push(Purge { ino, size: i.size, layout: i.layout });
        }
        Ok(Plan::Write(ReplyBody::Empty, Box::new(tx.finish()?)))
    }

    /// Parent mtime/ctime after an entry change.
    fn touch_parent(&self, tx: &mut Tx<'a>, dir: Ino) -> R<()> {
        let mut p = tx.get(dir)?;
        p.mtime = self.now;
        p.ctime = self.now;
        tx.put(p);
        Ok(())
    }

    pub(crate) fn unlink(&self, parent: Ino, name: &str) -> R<Plan> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG.into());
        }
        let p = self.search_dir(parent)?;
        if is_dot(name) {
            return Err(Errno::EISDIR.into());
        }
        check_name(name)?;
        let l = self.lookup_in(parent, name)?.ok_or(Errno::ENOENT)?;
        if l.is_dir() {
            return Err(Errno::EISDIR.into());
        }
        may(p, self.caller, MAY_WRITE | MAY_EXEC)?;
        let t = self.target(l)?;
        if !sticky_ok(p, t, self.caller) {
            return Err(Errno::EPERM.into());
        }
        let mut tx = self.tx(format!("unlink {parent:#x}/{name:?}"));
        self.remove_entry(&mut tx, parent, name, l)?;
        self.touch_parent(&mut tx, parent)?;
        Ok(Plan::Write(ReplyBody::Empty, Box::new(tx.finish()?)))
    }

    pub(crate) fn rmdir(&self, parent: Ino, name: &str) -> R<Plan> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG.into());
        }
        let p = self.search_dir(parent)?;
        match name {
            "." => return Err(Errno::EINVAL.into()),
            ".." => return Err(Errno::ENOTEMPTY.into()),
            _ => check_name(name)?,
        }
        let l = self.lookup_in(parent, name)?.ok_or(Errno::ENOENT)?;
        if !l.is_dir() {
            return Err(Errno::ENOTDIR.into());
        }
        may(p, self.caller, MAY_WRITE | MAY_EXEC)?;
        let t = self.target(l)?;
        if !sticky_ok(p, t, self.caller) {
            return Err(Errno::EPERM.into());
        }
        if t.ino == self.session.root || t.ino == ROOT_INO {
            return Err(Errno::EBUSY.into());
        }
        if !self.dentries(t.ino)?.is_empty() {
            return Err(Errno::ENOTEMPTY.into());
        }
        let mut tx = self.tx(format!("rmdir {parent:#x}/{name:?}"));
        self.remove_entry(&mut tx, parent, name, l)?;
        self.touch_parent(&mut tx, parent)?;
        Ok(Plan::Write(ReplyBody::Empty, Box::new(tx.finish()?)))
    }

    pub(crate) fn rename(&self, sp: Ino, sn: &str, dp: Ino, dn: &str) -> R<Plan> {
        for n in [sn, dn] {
            if n.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG.into());
            }
        }
        let (spi, dpi) = (self.search_dir(sp)?, self.search_dir(dp)?);
        if is_dot(sn) || is_dot(dn) {
            return Err(Errno::EINVAL.into());
        }
        check_name(sn)?;
        check_name(dn)?;
        let sl = self.lookup_in(sp, sn)?.ok_or(Errno::ENOENT)?;
        let dl = self.lookup_in(dp, dn)?;
        let s = self.target(sl)?;
        if dl.is_some_and(|d| d.ino() == sl.ino()) {
            return Ok(Plan::Read(ReplyBody::Empty)); // two names of one inode: nothing to do
        }
        let d = dl.map(|l| self.target(l)).transpose()?;
        if let Some(d) = d {
            match (s.is_dir(), d.is_dir()) {
                (true, false) => return Err(Errno::ENOTDIR.into()),
                (false, true) => return Err(Errno::EISDIR.into()),
                _ => {}
            }
        }
        if s.is_dir() && sp != dp && super::is_within(self.cache, dp, s.ino)? {
            return Err(Errno::EINVAL.into());
        }
        may(spi, self.caller, MAY_WRITE | MAY_EXEC)?;
        may(dpi, self.caller, MAY_WRITE | MAY_EXEC)?;
        if !sticky_ok(spi, s, self.caller) || d.is_some_and(|d| !sticky_ok(dpi, d, self.caller)) {
            return Err(Errno::EPERM.into());
        }
        if s.is_dir() && sp != dp {
            may(s, self.caller, MAY_WRITE)?;
        }
        for i in [Some(s), d].into_iter().flatten() {
            if i.ino == self.session.root || i.ino == ROOT_INO {
                return Err(Errno::EBUSY.into());
            }
        }
        if let Some(d) = d.filter(|d| d.is_dir()) {
            if !self.dentries(d.ino)?.is_empty() {
                return Err(Errno::ENOTEMPTY.into());
            }
        }
        let mut tx = self.tx(format!("rename {sp:#x}/{sn:?} -> {dp:#x}/{dn:?}"));
        if let Some(dl) = dl {
            self.remove_entry(&mut tx, dp, dn, dl)?;
        }
        tx.dentry(sp, sn, None);
        let mut si = tx.get(s.ino)?;
        si.ctime = self.now;
        match sl {
            Linkage::Primary(_) => {
                tx.place(s.ino, dp, dn);
                if tx.has_anchor(s.ino) {
                    tx.anchor(s.ino, Some((dp, dn.to_string())));
                }
            }
            Linkage::Remote { ino, d_type } => tx.dentry(dp, dn, Some(Linkage::Remote { ino: *ino, d_type: *d_type })),
        }
        tx.put(si);
        if s.is_dir() && sp != dp {
            let mut a = tx.get(sp)?;
            a.nlink = a.nlink.saturating_sub(1);
            tx.put(a);
            let mut b = tx.get(dp)?;
            b.nlink += 1;
            tx.put(b);
        }
        self.touch_parent(&mut tx, sp)?;
        self.touch_parent(&mut tx, dp)?;
        Ok(Plan::Write(ReplyBody::Empty, Box::new(tx.finish()?)))
    }

    pub(crate) fn readdir(&self, ino: Ino, cookie: Option<&str>, max: u32) -> R<Plan> {
        let d = self.reach(ino)?;
        if !d.is_dir() {
            return Err(Errno::ENOTDIR.into());
        }
        may(d, self.caller, MAY_READ)?;
        let ents = self.dentries(ino)?;
        let max = if max == 0 { READDIR_DEFAULT } else { max as usize };
        let from = cookie.map_or(Bound::Unbounded, Bound::Excluded);
        let mut it = ents.range::<str, _>((from, Bound::Unbounded));
        let mut entries = Vec::new();
        for (name, l) in it.by_ref().take(max) {
            let stat = match l {
                Linkage::Primary(i) => Some(i.stat()),
                Linkage::Remote { ino, .. } => self.cache.inode(*ino).map(Inode::stat),
            };
            entries.push(DirEntry { name: name.clone(), ino: l.ino(), d_type: l.d_type(), stat });
        }
        let end = it.next().is_none();
        Ok(Plan::Read(ReplyBody::Dir { entries, end }))
    }
}

/// Purges the unlinked stray `ino` (see `Cx::purge_stray`): applies the change to the
/// cache and returns the blob to journal. `Ok(None)`: it is not an
/// unlinked stray (relinked, already purged). `Err`: the cache lacks something.
pub fn purge_stray(cache: &mut MdCache, inotable: &InoTable, ino: Ino, now: i64) -> Result<Option<EMetaBlob>, Need> {
    let session = SessionInfo { client: "mds".into(), root: ROOT_INO, next_prealloc: None, delegated: None };
    let plan = {
        let cx = Cx { cache, inotable, session: &session, caller: &Caller::root(), now, tid: 0 };
        cx.purge_stray(ino)
    };
    match plan {
        Ok(Plan::Write(_, blob)) => {
            cache.apply(&blob);
            Ok(Some(*blob))
        }
        Ok(Plan::Read(_)) | Err(Fail::Errno(_)) => Ok(None),
        Err(Fail::Need(n)) => Err(n),
    }
}
