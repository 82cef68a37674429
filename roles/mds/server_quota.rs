//! The `ceph.` virtual xattrs of directories: `ceph.quota.max_bytes` and
//! `ceph.quota.max_files` (read, set and removed by root; a decimal number, 0 = no
//! limit) and the read-only recursive statistics `ceph.dir.rbytes`, `ceph.dir.rfiles`,
//! `ceph.dir.rsubdirs` and `ceph.dir.rentries`. They live in the inode's `quota` and
//! `rstat` fields, not in its xattr map, so listxattr does not show them (as in Ceph).
//!
//! Errors: a quota on a non-directory or a value that is not a decimal u64 → EINVAL; a
//! non-root caller setting one → EPERM; writing a statistic → ENOTSUP (as the Linux
//! Ceph client answers); reading a quota a directory does not have, or any `ceph.`
//! name of a non-directory → ENODATA.
use serde_bytes::ByteBuf;

use super::{Cx, Plan, R};
use crate::error::Errno;
use crate::msg::mds::{ReplyBody, XATTR_CREATE, XATTR_REPLACE};
use crate::roles::mds::quota::{parse_quota_value, MAX_BYTES, MAX_FILES};
use crate::roles::mds::types::{Inode, Quota};

/// Which quota field a name is, if it is one.
fn quota_field(name: &str) -> Option<fn(&mut Quota) -> &mut u64> {
    match name {
        MAX_BYTES => Some(|q| &mut q.max_bytes),
        MAX_FILES => Some(|q| &mut q.max_files),
        _ => None,
    }
}

/// The value of a read-only statistic or a whole-quota summary.
fn read_only_value(i: &Inode, name: &str) -> Option<String> {
    let r = &i.rstat;
    Some(match name {
        "ceph.dir.rbytes" => r.rbytes.to_string(),
        "ceph.dir.rfiles" => r.rfiles.to_string(),
        "ceph.dir.rsubdirs" => r.rsubdirs.to_string(),
        "ceph.dir.rentries" => r.rentries().to_string(),
        _ => return None,
    })
}

impl<'a> Cx<'a> {
    pub(crate) fn get_vxattr(&self, i: &Inode, name: &str) -> R<Plan> {
        if !i.is_dir() {
            return Err(Errno::ENODATA.into());
        }
        let v = if let Some(v) = read_only_value(i, name) {
            v
        } else if let Some(field) = quota_field(name) {
            if !i.quota.is_set() {
                return Err(Errno::ENODATA.into());
            }
            let mut q = i.quota;
            field(&mut q).to_string()
        } else if name == "ceph.quota" && i.quota.is_set() {
            format!("max_bytes={} max_files={}", i.quota.max_bytes, i.quota.max_files)
        } else {
            return Err(Errno::ENODATA.into());
        };
        Ok(Plan::Read(ReplyBody::Xattr(ByteBuf::from(v.into_bytes()))))
    }

    /// Checks common to setting and removing a quota; returns the field.
    fn quota_target(&self, i: &Inode, name: &str) -> R<fn(&mut Quota) -> &mut u64> {
        if read_only_value(i, name).is_some() {
            return Err(Errno::ENOTSUP.into());
        }
        let field = quota_field(name).ok_or(Errno::EINVAL)?;
        if !i.is_dir() {
            return Err(Errno::EINVAL.into());
        }
        if self.caller.uid != 0 {
            return Err(Errno::EPERM.into());
        }
        Ok(field)
    }

    pub(crate) fn set_vxattr(&self, i: &Inode, name: &str, value: &ByteBuf, flags: u32) -> R<Plan> {
        let field = self.quota_target(i, name)?;
        let v = parse_quota_value(value)?;
        let mut n = i.clone();
        let cur = field(&mut n.quota);
        if flags & XATTR_CREATE != 0 && *cur != 0 {
            return Err(Errno::EEXIST.into());
        }
        if flags & XATTR_REPLACE != 0 && *cur == 0 {
            return Err(Errno::ENODATA.into());
        }
        *cur = v;
        n.ctime = self.now;
        self.write_inode(format!("setxattr {:#x} {name}={v}", i.ino), n, None)
    }

    pub(crate) fn remove_vxattr(&self, i: &Inode, name: &str) -> R<Plan> {
        if quota_field(name).is_none() && read_only_value(i, name).is_none() {
            return Err(Errno::ENODATA.into());
        }
        let field = self.quota_target(i, name)?;
        let mut n = i.clone();
        let cur = field(&mut n.quota);
        if *cur == 0 {
            return Err(Errno::ENODATA.into());
        }
        *cur = 0;
        n.ctime = self.now;
        self.write_inode(format!("removexattr {:#x} {name}", i.ino), n, None)
    }
}
