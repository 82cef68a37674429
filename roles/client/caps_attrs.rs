//! Attributes under caps: served from the cache while the caps allow it, with this
//! client's own changes laid over (the size and mtime of its writes, attributes it
//! changed under exclusive caps and the MDS has not acknowledged), and setattr without
//! the MDS under `Ax`/`Fx` (Ceph's client does the same).
use super::{attr_caps, lock, CapAttrs, Caps, Client, Ino, InodeStat};
use crate::msg::mds::{SetAttr, S_IFDIR, S_IFMT, S_ISGID, S_ISUID};
use crate::now_ns;

/// Lays this client's unreported size/mtime (`dirty`, from writes) and then its
/// unacknowledged attribute changes over attributes from the MDS.
pub(super) fn overlay_attrs(st: &mut InodeStat, dirty: Option<(u64, i64)>, attrs: Option<CapAttrs>) {
    if let Some((end, mtime)) = dirty {
        st.size = st.size.max(end);
        st.mtime = st.mtime.max(mtime);
        st.blocks = st.size.div_ceil(512);
    }
    if let Some(a) = attrs {
        a.apply(st);
    }
}

impl Client {
    /// Attributes served from the cache while the caps allow it (with this client's
    /// unreported size/mtime on top).
    pub(in crate::roles::client) fn cached_attrs(&self, ino: Ino) -> Option<InodeStat> {
        let t = &self.inner.caps;
        let (caps, dirty, attrs) = lock(&t.map).get(&ino).map(|c| (t.live(c), c.unreported(), c.attrs_unacked()))?;
        if !caps.contains(attr_caps()) {
            return None;
        }
        let mut st = lock(&self.inner.dcache).attrs_of(ino)?;
        overlay_attrs(&mut st, dirty, attrs);
        Some(st)
    }

    /// Mode, owner and group from the cache while `As` allows it (with this client's
    /// unacknowledged changes laid over): what permission checks need.
    pub(in crate::roles::client) fn cached_auth(&self, ino: Ino) -> Option<(u32, u32, u32)> {
        let t = &self.inner.caps;
        let attrs = lock(&t.map).get(&ino).filter(|c| t.live(c).contains(Caps::AUTH_SHARED)).map(|c| c.attrs_unacked())?;
        let mut st = lock(&self.inner.dcache).attrs_of(ino)?;
        overlay_attrs(&mut st, None, attrs);
        Some((st.mode, st.uid, st.gid))
    }

    /// `st` (cached attributes) with this client's unreported size/mtime and its
    /// unacknowledged attribute changes laid over, as `cached_attrs` gives them: a
    /// lookup answered from the dentry cache must not tell the kernel older ones.
    pub(in crate::roles::client) fn with_own_changes(&self, mut st: InodeStat) -> InodeStat {
        let own = lock(&self.inner.caps.map).get(&st.ino).map(|c| (c.unreported(), c.attrs_unacked()));
        if let Some((dirty, attrs)) = own {
            overlay_attrs(&mut st, dirty, attrs);
        }
        st
    }

    /// setattr without the MDS, when this client holds the exclusive caps covering
    /// every change (`Ax` for mode/uid/gid, `Fx` for times) and the caller is the
    /// owner (or root) with a change the MDS would allow (Ceph's client does the
    /// same). The change is applied to the cached attributes and reaches the MDS in
    /// a cap flush: before any request of this client, on fsync and close, and when
    /// the MDS revokes the caps (so every other client sees it). `None`: ask the MDS
    /// (a size change, caps not held, or a change needing its permission checks).
    pub(in crate::roles::client) fn local_setattr(&self, ino: Ino, set: &SetAttr) -> Option<InodeStat> {
        if set.size.is_some() {
            return None;
        }
        let base = lock(&self.inner.dcache).attrs_of(ino)?;
        let c = self.inner.current_caller();
        let now = now_ns();
        let mut map = lock(&self.inner.caps.map);
        let ic = map.get_mut(&ino).filter(|ic| ic.seq > 0)?;
        let auth = set.mode.is_some() || set.uid.is_some() || set.gid.is_some();
        let mut change = CapAttrs { atime: set.atime, mtime: set.mtime, ctime: now, ..Default::default() };
        let need = if auth { Caps::AUTH_EXCL } else { Caps::NONE } | change.needs();
        if !self.inner.caps.live(ic).contains(attr_caps() | need) {
            return None;
        }
        let mut st = base;
        overlay_attrs(&mut st, ic.unreported(), ic.attrs_unacked());
        if !(c.uid == 0 || c.uid == st.uid) {
            return None;
        }
        let uid_change = set.uid.is_some_and(|u| u != st.uid);
        let gid_change = set.gid.is_some_and(|g| g != st.gid);
        let may_chgrp = c.uid == 0 || set.gid.is_some_and(|g| c.in_group(g));
        if (uid_change && c.uid != 0) || (gid_change && !may_chgrp) {
            return None;
        }
        if auth {
            // As the MDS's setattr: a new owner or group drops set-id bits of a
            // non-directory; a mode set by a non-member of the group drops set-gid.
            let (uid, gid) = (set.uid.unwrap_or(st.uid), set.gid.unwrap_or(st.gid));
            let mut mode = st.mode;
            if (uid_change || gid_change) && st.mode & S_IFMT != S_IFDIR {
                mode &= !S_ISUID;
                if mode & 0o010 != 0 {
                    mode &= !S_ISGID;
                }
            }
            if let Some(m) = set.mode {
                let mut m = m & 0o7777;
                if c.uid != 0 && !c.in_group(gid) {
                    m &= !S_ISGID;
                }
                mode = (st.mode & S_IFMT) | m;
            }
            (change.mode, change.uid, change.gid) = (Some(mode & 0o7777), Some(uid), Some(gid));
        }
        if change.mtime.is_some() {
            // The set mtime replaces the one of earlier writes (here and at the MDS).
            if let Some(d) = ic.dirty.as_mut() {
                d.1 = 0;
            }
        }
        ic.attrs = Some(ic.attrs.map_or(change, |a| a.then(change)));
        change.apply(&mut st);
        drop(map);
        lock(&self.inner.attrs_dirty).insert(ino);
        Some(st)
    }
}
