//! The MDS's `MClientCaps` at the client: grants apply at once (in message order), a
//! revoke narrows the caps, drops the caches the lost bits covered and, in a task,
//! waits for I/O, flushes what the lost bits covered and acks (`caps.rs` holds the
//! per-inode state these act on).
use std::time::Duration;

use super::{attr_caps, is_transient};
use crate::msg::caps::{CapOp, Caps, ClientCaps};
use crate::msg::mds::{Ino, S_IFDIR, S_IFMT};
use crate::roles::client::file::Invalidate;
use crate::roles::client::session::lock;
use crate::roles::client::Client;
use std::sync::atomic::Ordering;

impl Client {
    /// An `MClientCaps` from the MDS (called in message order by the receive loop).
    pub(in crate::roles::client) fn handle_caps(&self, m: ClientCaps) {
        match m.op {
            CapOp::Grant | CapOp::Revoke => self.grant_or_revoke(m),
            CapOp::FlushAck => {
                if let Some(st) = &m.stat {
                    lock(&self.inner.dcache).update_attrs(st);
                }
                if let Some(c) = lock(&self.inner.caps.map).get_mut(&m.ino) {
                    c.flush_acked = c.flush_acked.max(m.flush_tid);
                    if c.flush_acked >= c.attrs_tid {
                        c.attrs_flushing = None;
                    }
                }
                self.inner.caps.changed.notify_waiters();
            }
            CapOp::Ack | CapOp::Update | CapOp::Flush | CapOp::Release => {
                tracing::debug!(op = ?m.op, "MDS sent a client-only cap op; ignored");
            }
        }
    }

    fn grant_or_revoke(&self, m: ClientCaps) {
        if let Some(st) = &m.stat {
            lock(&self.inner.dcache).update_attrs(st);
        }
        if m.op == CapOp::Grant && m.seq == 0 && m.want_max > 0 {
            // Not a grant: the MDS will not grow the writable range to `want_max`.
            if let Some(c) = lock(&self.inner.caps.map).get_mut(&m.ino) {
                c.refused_max = c.refused_max.max(m.want_max);
            }
            self.inner.caps.changed.notify_waiters();
            return;
        }
        let lost = {
            let mut map = lock(&self.inner.caps.map);
            let c = map.entry(m.ino).or_default();
            if m.seq <= c.seq {
                return;
            }
            let lost = c.caps.minus(m.caps);
            if m.caps.contains(Caps::FILE_CACHE) && !c.caps.contains(Caps::FILE_CACHE) {
                c.cache_epoch += 1;
            }
            if (lost | m.caps.minus(c.caps)).intersects(Caps::XATTR_SHARED) {
                c.xattrs = None;
                self.inner.caps.xattr_gen.fetch_add(1, Ordering::Relaxed);
            }
            (c.caps, c.seq) = (m.caps, m.seq);
            if m.max_size > 0 {
                c.max_size = m.max_size;
            }
            if let Some(st) = &m.stat {
                c.is_dir = st.mode & S_IFMT == S_IFDIR;
            }
            lost
        };
        self.inner.caps.changed.notify_waiters();
        // What the lost bits covered goes now, in message order: a grant right after
        // (the MDS's revoke to `p` and new grant of a renewed stale session) must not
        // find pages or entries cached under the old caps.
        if !lost.is_empty() {
            self.drop_caches(m.ino, lost);
        }
        if m.op == CapOp::Revoke {
            let me = self.clone();
            tokio::spawn(async move { me.finish_revoke(m, lost).await });
        }
    }

    /// After a revoke narrowed the caps (and dropped the caches they covered): wait
    /// for I/O, flush, ack.
    async fn finish_revoke(&self, m: ClientCaps, lost: Caps) {
        let ino = m.ino;
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        loop {
            let notified = self.inner.caps.changed.notified();
            if lock(&self.inner.caps.map).get(&ino).is_none_or(|c| c.users == 0) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(ino = format!("{ino:#x}"), "I/O still in flight at revoke; acking anyway");
                break;
            }
        }
        let purged = m.caps.is_empty() && lock(&self.inner.caps.map).get_mut(&ino).is_some_and(|c| c.discard_unsent_of_purged());
        if purged {
            tracing::debug!(ino = format!("{ino:#x}"), "unsent data of a purged inode dropped");
        } else if lost.intersects(Caps::FILE_BUFFER | Caps::FILE_WR | Caps::FILE_EXCL | Caps::AUTH_EXCL) {
            self.flush_for_revoke(ino).await;
            let _ = self.cap_flush(ino, false).await;
        }
        let wanted = lock(&self.inner.caps.map).get(&ino).map_or(Caps::NONE, |c| c.wanted());
        let mut ack = ClientCaps::new(CapOp::Ack, ino, m.caps, m.seq);
        ack.wanted = wanted;
        self.send_caps(ack);
        if m.caps.is_empty() {
            self.forget_if_idle(ino);
        }
    }

    /// Writes the buffered data of `ino` for a revoke that takes `Fb`/`Fw`. The MDS
    /// lets other clients at the file only once this one acks, so, as a Ceph client,
    /// this one acks only once its data is on the OSDs: a write that failed for a
    /// passing reason (an OSD slow to answer, a PG peering: ETIMEDOUT and the like) is
    /// tried again, for as long as it takes. Acked with the data still here, it would
    /// be written later without the caps, under another client's writes or after the
    /// file's purge (leaked objects). Data the OSDs refuse for good (this client
    /// blocklisted, a full cluster, ...) is dropped, and the error is kept for the
    /// file's next fsync or close (`InodeCaps::write_error`).
    async fn flush_for_revoke(&self, ino: Ino) {
        let mut pause = Duration::from_millis(50);
        loop {
            let e = match self.flush_buffer(ino).await {
                Ok(()) => return,
                Err(e) => e,
            };
            let gone = if self.inner.check_blocklisted() { self.inner.blocklisted_error() } else { None };
            if gone.is_none() && is_transient(e.errno) {
                tracing::warn!(ino = format!("{ino:#x}"), "flushing buffered data on revoke: {e}; trying again (the revoke waits)");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
            let e = gone.unwrap_or(e);
            tracing::error!(ino = format!("{ino:#x}"), "buffered data dropped at revoke, the OSDs refuse it: {e}");
            if let Some(c) = lock(&self.inner.caps.map).get_mut(&ino) {
                c.drop_buffer();
                c.write_error = Some(e);
            }
            return;
        }
    }

    /// Drops what the lost caps covered, and tells the mount.
    pub(in crate::roles::client) fn drop_caches(&self, ino: Ino, lost: Caps) {
        let is_dir = {
            let mut map = lock(&self.inner.caps.map);
            let Some(c) = map.get_mut(&ino) else { return };
            if lost.contains(Caps::FILE_CACHE) {
                c.clear_pages();
            }
            c.is_dir
        };
        if lost.intersects(attr_caps() | Caps::FILE_CACHE) {
            self.inner.files.invalidate(Invalidate::Inode(ino));
        }
        if is_dir && lost.contains(Caps::FILE_SHARED) {
            let names = {
                let mut d = lock(&self.inner.dcache);
                let names = d.names_in(ino);
                d.invalidate_dir(ino);
                names
            };
            for name in names {
                self.inner.files.invalidate(Invalidate::Entry { parent: ino, name });
            }
        }
    }
}
