//! Attribute operations: setattr (chmod, chown, truncate, utimes), open (with
//! O_TRUNC), writer size flushes, and extended attributes (`ceph.` names go to
//! `server_quota.rs`).
use serde_bytes::ByteBuf;

use super::{may, Cx, Plan, MAY_READ, MAY_WRITE, R};
use crate::error::Errno;
use crate::msg::mds::{
    ReplyBody, SetAttr, O_ACCMODE, O_TRUNC, S_IFMT, S_IFREG, S_ISGID, S_ISUID, XATTR_CREATE, XATTR_REPLACE,
};
use crate::roles::mds::events::Truncate;
use crate::roles::mds::types::{Ino, Inode};

/// Largest xattr value (Linux XATTR_SIZE_MAX).
pub const XATTR_SIZE_MAX: usize = 65536;
/// Most bytes of names and values one inode's xattrs may hold together (Ceph's
/// `mds_max_xattr_pairs_size`, 64 KiB): a set that would pass it is refused with
/// ENOSPC, as on Ceph and on ext4 (whose xattrs share one block). Every change of an
/// inode journals all of them, so without a bound each grows the next.
pub const XATTR_PAIRS_MAX: usize = 65536;

impl<'a> Cx<'a> {
    /// Journals `n` as the new state of its inode, and answers with its attributes.
    pub(super) fn write_inode(&self, desc: String, n: Inode, truncate: Option<Truncate>) -> R<Plan> {
        let mut tx = self.tx(desc);
        let mut n = n;
        n.version = tx.blob.version;
        let stat = n.stat();
        tx.blob.truncate.extend(truncate);
        tx.put(n);
        Ok(Plan::Write(ReplyBody::Inode(stat), Box::new(tx.finish()?)))
    }

    fn is_owner(&self, i: &Inode) -> bool {
        self.caller.uid == 0 || self.caller.uid == i.uid
    }

    pub(crate) fn setattr(&self, ino: Ino, set: &SetAttr) -> R<Plan> {
        let i = self.reach(ino)?;
        if *set == SetAttr::default() {
            return Ok(Plan::Read(ReplyBody::Inode(i.stat())));
        }
        let c = self.caller;
        let mut n = i.clone();
        let mut trunc = None;
        if let Some(size) = set.size {
            if i.is_dir() {
                return Err(Errno::EISDIR.into());
            }
            if i.file_type() != S_IFREG {
                return Err(Errno::EINVAL.into());
            }
            may(i, c, MAY_WRITE)?;
            if size > self.cache.max_file_size {
                return Err(Errno::EFBIG.into());
            }
            if size < i.size {
                trunc = Some(Truncate { ino, old_size: i.size, new_size: size, layout: i.layout });
            }
            n.size = size;
            n.mtime = self.now;
        }
        let uid_change = set.uid.is_some_and(|u| u != i.uid);
        let gid_change = set.gid.is_some_and(|g| g != i.gid);
        if uid_change && c.uid != 0 {
            return Err(Errno::EPERM.into());
        }
        if gid_change && !(c.uid == 0 || (c.uid == i.uid && set.gid.is_some_and(|g| c.in_group(g)))) {
            return Err(Errno::EPERM.into());
        }
        n.uid = set.uid.unwrap_or(i.uid);
        n.gid = set.gid.unwrap_or(i.gid);
        if (uid_change || gid_change) && !i.is_dir() {
            n.mode &= !S_ISUID;
            if n.mode & 0o010 != 0 {
                n.mode &= !S_ISGID;
            }
        }
        if let Some(mode) = set.mode {
            if !self.is_owner(i) {
                return Err(Errno::EPERM.into());
            }
            let mut m = mode & 0o7777;
            if c.uid != 0 && !c.in_group(n.gid) {
                m &= !S_ISGID;
            }
            n.mode = (i.mode & S_IFMT) | m;
        }
        if (set.atime.is_some() || set.mtime.is_some()) && !self.is_owner(i) {
            // Setting them to now needs only write permission (EACCES without it).
            if !set.times_now {
                return Err(Errno::EPERM.into());
            }
            may(i, c, MAY_WRITE)?;
        }
        n.atime = set.atime.unwrap_or(n.atime);
        n.mtime = set.mtime.unwrap_or(n.mtime);
        n.ctime = self.now;
        self.write_inode(format!("setattr {ino:#x}"), n, trunc)
    }

    pub(crate) fn open(&self, ino: Ino, flags: u32) -> R<Plan> {
        let i = self.reach(ino)?;
        let acc = flags & O_ACCMODE;
        let mask = match acc {
            0 => MAY_READ,
            1 => MAY_WRITE,
            2 => MAY_READ | MAY_WRITE,
            _ => return Err(Errno::EINVAL.into()),
        };
        if i.is_dir() && (acc != 0 || flags & O_TRUNC != 0) {
            return Err(Errno::EISDIR.into());
        }
        may(i, self.caller, mask)?;
        if flags & O_TRUNC != 0 && acc != 0 && i.file_type() == S_IFREG && i.size > 0 {
            let mut n = i.clone();
            n.size = 0;
            n.mtime = self.now;
            n.ctime = self.now;
            let t = Truncate { ino, old_size: i.size, new_size: 0, layout: i.layout };
            return self.write_inode(format!("open O_TRUNC {ino:#x}"), n, Some(t));
        }
        Ok(Plan::Read(ReplyBody::Inode(i.stat())))
    }

    /// A writer's flush: the size only grows here (shrinking is setattr's job, which
    /// also cuts the data), and mtime never goes back.
    pub(crate) fn setsize(&self, ino: Ino, size: u64, mtime: i64) -> R<Plan> {
        let i = self.reach(ino)?;
        if i.is_dir() {
            return Err(Errno::EISDIR.into());
        }
        if i.file_type() != S_IFREG {
            return Err(Errno::EINVAL.into());
        }
        may(i, self.caller, MAY_WRITE)?;
        if size > self.cache.max_file_size {
            return Err(Errno::EFBIG.into());
        }
        if size <= i.size && mtime <= i.mtime {
            return Ok(Plan::Read(ReplyBody::Inode(i.stat())));
        }
        let mut n = i.clone();
        n.size = n.size.max(size);
        n.mtime = n.mtime.max(mtime);
        n.ctime = self.now.max(n.mtime);
        self.write_inode(format!("setsize {ino:#x} {size}"), n, None)
    }

    fn xattr_allowed(&self, i: &Inode, name: &str, write: bool) -> R<()> {
        Ok(self.caller.xattr_allowed(name, write, i.mode, i.uid, i.gid)?)
    }

    pub(crate) fn getxattr(&self, ino: Ino, name: &str) -> R<Plan> {
        let i = self.reach(ino)?;
        if name.starts_with("ceph.") {
            return self.get_vxattr(i, name);
        }
        self.xattr_allowed(i, name, false)?;
        let v = i.xattrs.get(name).ok_or(Errno::ENODATA)?;
        Ok(Plan::Read(ReplyBody::Xattr(v.clone())))
    }

    pub(crate) fn listxattr(&self, ino: Ino) -> R<Plan> {
        let i = self.reach(ino)?;
        Ok(Plan::Read(ReplyBody::XattrNames(self.caller.listable(i.xattrs.keys()))))
    }

    pub(crate) fn getxattrs(&self, ino: Ino) -> R<Plan> {
        Ok(Plan::Read(ReplyBody::Xattrs(self.reach(ino)?.xattrs.clone())))
    }

    pub(crate) fn setxattr(&self, ino: Ino, name: &str, value: &ByteBuf, flags: u32) -> R<Plan> {
        if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 || flags == XATTR_CREATE | XATTR_REPLACE {
            return Err(Errno::EINVAL.into());
        }
        let i = self.reach(ino)?;
        if name.starts_with("ceph.") {
            return self.set_vxattr(i, name, value, flags);
        }
        self.xattr_allowed(i, name, true)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(Errno::ERANGE.into());
        }
        let exists = i.xattrs.contains_key(name);
        if flags & XATTR_CREATE != 0 && exists {
            return Err(Errno::EEXIST.into());
        }
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(Errno::ENODATA.into());
        }
        let total: usize = i.xattrs.iter().map(|(k, v)| k.len() + v.len()).sum();
        let after = total - i.xattrs.get(name).map_or(0, |v| name.len() + v.len()) + name.len() + value.len();
        if after > XATTR_PAIRS_MAX && after > total {
            return Err(Errno::ENOSPC.into());
        }
        let mut n = i.clone();
        n.xattrs.insert(name.to_string(), value.clone());
        n.ctime = self.now;
        self.write_inode(format!("setxattr {ino:#x} {name:?}"), n, None)
    }

    pub(crate) fn removexattr(&self, ino: Ino, name: &str) -> R<Plan> {
        let i = self.reach(ino)?;
        if name.starts_with("ceph.") {
            return self.remove_vxattr(i, name);
        }
        self.xattr_allowed(i, name, true)?;
        if !i.xattrs.contains_key(name) {
            return Err(Errno::ENODATA.into());
        }
        let mut n = i.clone();
        n.xattrs.remove(name);
        n.ctime = self.now;
        self.write_inode(format!("removexattr {ino:#x} {name:?}"), n, None)
    }
}
