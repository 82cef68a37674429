//! Extended attributes. While this client holds `Xs` on an inode it caches all of the
//! inode's xattrs (fetched whole with `Getxattrs`) and answers getxattr and listxattr
//! from that cache, applying Linux's namespace rules itself (`Caller::xattr_allowed`),
//! as Ceph's clients keep an inode's xattr blob under `Xs`. This matters for every
//! write to a file through the mount: the kernel asks for `security.capability`
//! before each one.
//!
//! Coherence: another client's setxattr needs the MDS's xattr lock exclusively, so
//! the MDS revokes `Xs` from this client first; losing `Xs` drops the cache. A fetch
//! is cached only if `Xs` was held from before it was sent until its reply and no
//! `Xs` changed meanwhile (`CapTable::xattr_gen`), so an answer that crossed a
//! revoke and a new grant is used once but not kept. This client's own set/remove
//! drops the cache when it returns. `ceph.` virtual xattrs always go to the MDS.
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_bytes::ByteBuf;

use super::caps::{CapTable, InodeCaps};
use super::ops::unexpected;
use super::session::lock;
use super::Client;
use crate::error::{CmdError, Errno};
use crate::msg::caps::Caps;
use crate::msg::mds::{Ino, MdsOp, ReplyBody};

/// An inode's xattrs as the MDS keeps them.
pub type Xattrs = Arc<BTreeMap<String, ByteBuf>>;

/// Whether the MDS issued `Xs` on the inode (not only assumed it for an async
/// create) and it may be used now: its xattrs may be cached.
fn under_xs(t: &CapTable, c: &InodeCaps) -> bool {
    c.seq > 0 && t.live(c).contains(Caps::XATTR_SHARED)
}

impl Client {
    pub async fn getxattr(&self, ino: Ino, name: &str) -> Result<Vec<u8>, CmdError> {
        if !name.starts_with("ceph.") {
            if let Some(v) = self.getxattr_cached(ino, name).await? {
                return v.map_err(|e| CmdError::new(e, format!("getxattr {ino:#x} {name:?}")));
            }
        }
        match self.request(MdsOp::Getxattr { ino, name: name.to_string() }).await? {
            ReplyBody::Xattr(v) => Ok(v.into_vec()),
            other => Err(unexpected("getxattr", &other)),
        }
    }

    /// getxattr answered from the cache (`None`: ask the MDS; the caps do not allow
    /// caching, or a `user.` name needs attributes not cached for its permission check).
    async fn getxattr_cached(&self, ino: Ino, name: &str) -> Result<Option<Result<Vec<u8>, Errno>>, CmdError> {
        // Only `user.` names depend on the file's type, mode and owner for a read.
        let attrs = if name.starts_with("user.") {
            match self.cached_auth(ino) {
                Some(a) => a,
                None => return Ok(None),
            }
        } else {
            (0, 0, 0)
        };
        let Some(all) = self.xattrs(ino).await? else { return Ok(None) };
        let c = self.inner.current_caller();
        Ok(Some(c.xattr_allowed(name, false, attrs.0, attrs.1, attrs.2).and_then(|()| {
            all.get(name).map(|v| v.to_vec()).ok_or(Errno::ENODATA)
        })))
    }

    pub async fn listxattr(&self, ino: Ino) -> Result<Vec<String>, CmdError> {
        if let Some(all) = self.xattrs(ino).await? {
            return Ok(self.inner.current_caller().listable(all.keys()));
        }
        match self.request(MdsOp::Listxattr { ino }).await? {
            ReplyBody::XattrNames(v) => Ok(v),
            other => Err(unexpected("listxattr", &other)),
        }
    }

    /// `flags`: 0, `XATTR_CREATE` or `XATTR_REPLACE`.
    pub async fn setxattr(&self, ino: Ino, name: &str, value: &[u8], flags: u32) -> Result<(), CmdError> {
        let op = MdsOp::Setxattr { ino, name: name.to_string(), value: ByteBuf::from(value.to_vec()), flags };
        let r = self.request(op).await.map(|_| ());
        self.xattrs_changed(ino);
        r
    }

    pub async fn removexattr(&self, ino: Ino, name: &str) -> Result<(), CmdError> {
        // The kernel removes `security.capability` on every chown: a name the cache
        // says is absent (nobody can add it while this client holds `Xs`) is ENODATA
        // here, once the caller passes the same checks the MDS would make first.
        if let Some(e) = self.absent_xattr(ino, name) {
            return Err(CmdError::new(e, format!("removexattr {ino:#x} {name:?}")));
        }
        let r = self.request(MdsOp::Removexattr { ino, name: name.to_string() }).await.map(|_| ());
        self.xattrs_changed(ino);
        r
    }

    /// The error a removal of `name` gets when the cached xattrs lack it.
    fn absent_xattr(&self, ino: Ino, name: &str) -> Option<Errno> {
        if name.starts_with("ceph.") {
            return None;
        }
        let (mode, uid, gid) = self.cached_auth(ino)?;
        let t = &self.inner.caps;
        let cached = lock(&t.map).get(&ino).filter(|c| under_xs(t, c)).and_then(|c| c.xattrs.clone())?;
        if cached.contains_key(name) {
            return None;
        }
        Some(self.inner.current_caller().xattr_allowed(name, true, mode, uid, gid).err().unwrap_or(Errno::ENODATA))
    }

    /// The xattrs of `ino` while this client holds `Xs` on it: cached, or fetched
    /// (and cached if nothing changed meanwhile). `None` without `Xs`.
    pub async fn xattrs(&self, ino: Ino) -> Result<Option<Xattrs>, CmdError> {
        let gen = {
            let t = &self.inner.caps;
            let map = lock(&t.map);
            match map.get(&ino) {
                Some(c) if under_xs(t, c) => {
                    if let Some(x) = &c.xattrs {
                        return Ok(Some(x.clone()));
                    }
                    self.inner.caps.xattr_gen.load(Ordering::Relaxed)
                }
                _ => return Ok(None),
            }
        };
        let all: Xattrs = match self.request(MdsOp::Getxattrs { ino }).await? {
            ReplyBody::Xattrs(x) => Arc::new(x),
            other => return Err(unexpected("getxattrs", &other)),
        };
        let t = &self.inner.caps;
        let mut map = lock(&t.map);
        if let Some(c) = map.get_mut(&ino).filter(|c| under_xs(t, c)) {
            if self.inner.caps.xattr_gen.load(Ordering::Relaxed) == gen {
                c.xattrs = Some(all.clone());
            }
        }
        Ok(Some(all))
    }

    /// Whether the xattrs of `ino` are cached (for tests).
    pub fn xattrs_cached(&self, ino: Ino) -> bool {
        lock(&self.inner.caps.map).get(&ino).is_some_and(|c| c.xattrs.is_some())
    }

    /// This client changed (or tried to change) the xattrs of `ino`: the cached ones
    /// go, and fetches under way are not kept.
    fn xattrs_changed(&self, ino: Ino) {
        let mut map = lock(&self.inner.caps.map);
        self.inner.caps.xattr_gen.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = map.get_mut(&ino) {
            c.xattrs = None;
        }
    }
}
