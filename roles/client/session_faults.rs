//! The client's side of session faults: MDS failover (reconnect), eviction and
//! cache pressure.
//!
//! Failover: when the FSMap names a new daemon for our rank in `up:reconnect` (or
//! later), the client sends it `MClientReconnect` with its cap table (issued, wanted,
//! seq, size, writable range, open or not, a path hint per inode) instead of opening
//! a session; accepted, it keeps its caps and cached state, then re-sends its unsafe
//! requests and unacknowledged cap flushes. Refused (too late, unknown), it drops its
//! caps and opens a new session.
//!
//! Evicted: the MDS says so (`Rejected` with EBLOCKLISTED, on a renewal, a reopen or
//! one-way when it evicts), or the OSDMap lists this instance. From then on the mount
//! is dead, as a blocklisted Ceph client: pending and new metadata requests fail with
//! EBLOCKLISTED, the session is not reopened, and the OSDs refuse its data I/O.
//!
//! Recall: the MDS asks the client to keep at most N caps and dentries; the client
//! trims its dentry cache, releases the caps of inodes it does not have open (least
//! recently looked up first) and answers with what it still holds.
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{lock, rank0, Inner, MdsTarget};
use crate::error::{CmdError, Errno};
use crate::maps::{FsMap, MdsState};
use crate::ids::EntityName;
use crate::msg::caps::{CapOp, CapReconnect, Caps, ClientCaps, ClientReconnect};
use crate::msg::mds::{Ino, SessionOp};
use crate::msg::Message;
use crate::net::ConnHandle;
use crate::roles::client::caps::InodeCaps;
use crate::roles::client::Client;

impl Inner {
    /// The mount is evicted: fail what waits, stop reopening the session.
    pub(super) fn on_blocklisted(&self, why: &str) {
        {
            let mut b = lock(&self.blocklisted);
            if b.is_some() {
                return;
            }
            *b = Some(why.to_string());
        }
        tracing::error!(fs = %self.fs_name, "client evicted: {why}; the mount is unusable (remount)");
        let failed: Vec<_> = std::mem::take(&mut *lock(&self.pending)).into_values().collect();
        for p in failed {
            if let Some(w) = p.waiter {
                let _ = w.send(Err(Errno::EBLOCKLISTED));
            }
        }
        self.safe_changed.notify_waiters();
        *lock(&self.conn) = None;
        self.kick.notify_one();
    }

    /// EBLOCKLISTED once the mount is evicted.
    pub(in crate::roles::client) fn blocklisted_error(&self) -> Option<CmdError> {
        lock(&self.blocklisted)
            .as_ref()
            .map(|why| CmdError::new(Errno::EBLOCKLISTED, format!("client is blocklisted ({why})")))
    }

    /// Whether the mount is evicted, noticing it from the newest OSDMap as well.
    pub(in crate::roles::client) fn check_blocklisted(&self) -> bool {
        if lock(&self.blocklisted).is_some() {
            return true;
        }
        let me = self.msgr.entity_addr();
        let listed = self.monc.current().osdmap.is_some_and(|m| m.is_blocklisted(&me, crate::now_ms()));
        if listed {
            self.on_blocklisted(&format!("the OSDMap blocklists {me}"));
        }
        listed
    }

    /// A `SessionReply::Rejected`: eviction ends the mount, anything else reopens.
    pub(super) fn on_rejected(&self, errno: Errno, reason: &str) {
        if errno == Errno::EBLOCKLISTED {
            self.on_blocklisted(reason);
        } else {
            tracing::warn!(fs = %self.fs_name, "MDS closed our session ({reason}); reopening");
            *lock(&self.conn) = None;
            self.kick.notify_one();
        }
    }

    /// A recall: trims the dentry cache to `max_caps`, releases the caps of inodes not
    /// open beyond `max_caps` (least recently looked up first) and answers with what
    /// remains.
    pub(super) fn on_recall(self: &Arc<Self>, conn: &ConnHandle, seq: u64, max_caps: u64) {
        let keep = usize::try_from(max_caps).unwrap_or(usize::MAX);
        let victims = {
            let stamps = lock(&self.dcache).stamps();
            recall_victims(&lock(&self.caps.map), &stamps, self.root_ino.load(Ordering::Relaxed), keep)
        };
        let client = Client { inner: self.clone() };
        for ino in &victims {
            client.release_cap(*ino);
        }
        let dentries = lock(&self.dcache).trim_to(keep) as u64;
        let caps = lock(&self.caps.map).values().filter(|c| !c.caps.is_empty()).count() as u64;
        tracing::debug!(seq, max_caps, released = victims.len(), caps, dentries, "recall answered");
        let ack = SessionOp::RecallAck { seq, caps, dentries };
        if let Err(e) = conn.send(Message::MClientSession(ack)) {
            tracing::debug!("recall answer not sent: {e}");
        }
    }

    /// The file system's `max_file_size` (Ceph's default until the FSMap shows it).
    pub(crate) fn max_file_size(&self) -> u64 {
        let map = self.monc.current().fsmap;
        map.and_then(|m| m.by_name(&self.fs_name).map(|f| f.mdsmap.max_file_size))
            .unwrap_or(crate::maps::fsmap::DEFAULT_MAX_FILE_SIZE)
    }

    /// EFBIG when a file would end at `end`, past `max_file_size` (what Ceph's client
    /// checks before a write, a truncate or an fallocate).
    pub(crate) fn check_file_end(&self, end: u64) -> Result<(), CmdError> {
        let max = self.max_file_size();
        if end > max {
            return Err(CmdError::new(Errno::EFBIG, format!("{end} bytes is past the file system's max_file_size ({max})")));
        }
        Ok(())
    }

    /// Where our session should be: rank 0's active daemon, or a new daemon taking
    /// over our rank that is in reconnect or later (it waits for our reconnect).
    pub(super) fn session_target(&self, map: &FsMap) -> Option<MdsTarget> {
        if let Ok(Some(t)) = rank0(map, &self.fs_name) {
            return Some(t);
        }
        let had = (*lock(&self.session_gid))?;
        let info = map.by_name(&self.fs_name)?.mdsmap.rank_holder(0)?;
        let recovering = matches!(info.state, MdsState::Reconnect | MdsState::Rejoin | MdsState::ClientReplay);
        let addr = info.addr?;
        (recovering && info.gid != had).then(|| MdsTarget { gid: info.gid, peer: EntityName::mds(&info.name), addr: addr.addr })
    }

    /// Connects to `t`: a reconnect when it replaced the daemon our session was with
    /// (falling back to a new session if refused), else a session open.
    pub(super) async fn connect_session(&self, t: &MdsTarget) -> Result<(), CmdError> {
        let had = *lock(&self.session_gid);
        if had.is_none_or(|g| g == t.gid) {
            return self.open_session(t).await;
        }
        match self.reconnect_session(t).await {
            Ok(()) => Ok(()),
            Err(e) if e.errno == Errno::ESTALE => {
                tracing::warn!(mds = %t.peer, "{e}; our caps are gone, opening a new session");
                self.forget_all_caps();
                self.open_session(t).await
            }
            Err(e) => Err(e),
        }
    }

    async fn reconnect_session(&self, t: &MdsTarget) -> Result<(), CmdError> {
        let m = self.reconnect_message();
        let n = m.caps.len();
        let conn = self.session_handshake(t, Message::MClientReconnect(m), "reconnect").await?;
        tracing::info!(mds = %t.peer, caps = n, "reconnected: session and caps kept");
        self.install_session(t, conn, "client session reconnected");
        Ok(())
    }

    /// The session with `t` is up on `conn`: make it current and re-send every request
    /// still waiting for an answer or a safe reply.
    pub(super) fn install_session(&self, t: &MdsTarget, conn: ConnHandle, what: &str) {
        let pending = lock(&self.pending);
        *lock(&self.conn) = Some((t.clone(), conn.clone()));
        *lock(&self.session_gid) = Some(t.gid);
        for p in pending.values() {
            let _ = conn.send(Message::MClientRequest(p.req.clone()));
        }
        tracing::info!(mds = %t.peer, resent = pending.len(), fs = %self.fs_name, "{what}");
        drop(pending);
        // Cap flushes the old MDS may not have journaled; and after a stale session's
        // reopen, those sent in answer to its revokes to `p`, which can come before
        // the connection is installed here (the same flush tid: applied once).
        self.resend_flushes();
        // The caps' lease starts (or runs on) with this renewal's acknowledgement.
        self.renew();
    }

    /// Our cap table as a reconnect message.
    fn reconnect_message(&self) -> ClientReconnect {
        let (hints, attrs) = {
            let d = lock(&self.dcache);
            let hints = d.path_hints();
            let attrs: HashMap<Ino, u64> = hints.keys().filter_map(|i| d.attrs_of(*i).map(|st| (*i, st.size))).collect();
            (hints, attrs)
        };
        let map = lock(&self.caps.map);
        let caps = map
            .iter()
            .filter(|(_, c)| !c.caps.is_empty() || c.opens != (0, 0))
            .map(|(ino, c)| {
                let known = [attrs.get(ino).copied(), c.dirty.map(|d| d.0), c.flushing.map(|f| f.0)];
                CapReconnect {
                    ino: *ino,
                    // Caps assumed on an inode still being created were never issued.
                    issued: if c.seq == 0 { Caps::NONE } else { c.caps },
                    wanted: c.wanted(),
                    seq: c.seq,
                    is_dir: c.is_dir,
                    size: known.into_iter().flatten().max().unwrap_or(0),
                    max_size: c.max_size,
                    open: c.opens != (0, 0),
                    path: hints.get(ino).cloned(),
                }
            })
            .collect();
        ClientReconnect { caps }
    }

    /// Re-sends cap flushes the old MDS may not have journaled (same flush tid).
    fn resend_flushes(&self) {
        let msgs: Vec<ClientCaps> = lock(&self.caps.map)
            .iter()
            .filter(|(_, c)| c.flush_acked < c.flush_tid)
            .filter_map(|(ino, c)| {
                let attrs = c.attrs_in_flight();
                if c.flushing.is_none() && attrs.is_none() {
                    return None;
                }
                Some(c.flush_message(*ino, c.flushing, attrs))
            })
            .collect();
        if let Some((_, conn)) = lock(&self.conn).as_ref() {
            for m in msgs {
                let _ = conn.send(Message::MClientCaps(m));
            }
        }
    }

    /// A refused reconnect: the MDS knows none of our caps; cached data goes.
    fn forget_all_caps(&self) {
        let mut map = lock(&self.caps.map);
        self.caps.xattr_gen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for c in map.values_mut() {
            c.caps = Caps::NONE;
            c.xattrs = None;
            c.clear_pages();
        }
        drop(map);
        lock(&self.dcache).trim_to(0);
        self.caps.changed.notify_waiters();
    }

    /// Whether the mount has been closed or evicted (the manager then stops).
    pub(super) fn finished(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.check_blocklisted()
    }
}

impl Client {
    /// The MDS took every cap on `ino` (e.g. a purged stray): unless a handle still has
    /// it open, forget it, so a later cap on that number starts afresh (its seqs anew).
    pub(crate) fn forget_if_idle(&self, ino: Ino) {
        let mut map = lock(&self.inner.caps.map);
        let idle = map.get(&ino).is_some_and(|c| {
            c.caps.is_empty() && c.opens == (0, 0) && c.users == 0 && c.nothing_unsent()
        });
        if idle {
            map.remove(&ino);
        }
    }

    /// Gives up the cap on `ino` (not open, nothing buffered): forgets it, drops what
    /// it covered and tells the MDS.
    pub(super) fn release_cap(&self, ino: Ino) {
        let Some(c) = lock(&self.inner.caps.map).remove(&ino) else { return };
        self.inner.caps.xattr_gen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.caps.changed.notify_waiters();
        lock(&self.inner.dcache).forget_attrs(ino);
        if c.is_dir && c.caps.contains(Caps::FILE_SHARED) {
            lock(&self.inner.dcache).invalidate_dir(ino);
        }
        self.inner.files.invalidate(super::super::file::Invalidate::Inode(ino));
        if let Some((_, conn)) = lock(&self.inner.conn).as_ref() {
            let _ = conn.send(Message::MClientCaps(ClientCaps::new(CapOp::Release, ino, c.caps, c.seq)));
        }
    }
}

/// The inodes whose caps a recall releases so that at most `keep` remain: only ones
/// not open, with no I/O, buffered data or unreported size, never the mount root;
/// least recently looked up (`stamps`) first.
pub(super) fn recall_victims(caps: &HashMap<Ino, InodeCaps>, stamps: &HashMap<Ino, u64>, root: Ino, keep: usize) -> Vec<Ino> {
    let held = caps.values().filter(|c| !c.caps.is_empty()).count();
    if held <= keep {
        return Vec::new();
    }
    let mut idle: Vec<(u64, Ino)> = caps
        .iter()
        .filter(|(ino, c)| {
            **ino != root
                && !c.caps.is_empty()
                && c.opens == (0, 0)
                && c.users == 0
                && c.nothing_unsent()
                && c.flush_acked >= c.flush_tid
        })
        .map(|(ino, _)| (stamps.get(ino).copied().unwrap_or(0), *ino))
        .collect();
    idle.sort_unstable();
    idle.into_iter().take(held - keep).map(|(_, ino)| ino).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(caps: &str) -> InodeCaps {
        InodeCaps { caps: Caps::parse(caps).unwrap(), ..Default::default() }
    }

    /// That a recall releases only idle caps (not open, no buffered data or
    /// unreported size, not the root), oldest looked-up first, down to the target,
    /// and releases nothing when the client is already within it.
    #[test]
    fn recall_releases_oldest_idle_caps() {
        let mut t: HashMap<Ino, InodeCaps> = HashMap::new();
        for ino in 1..=6 {
            t.insert(ino, held("pAsLsFs"));
        }
        t.get_mut(&2).unwrap().opens = (1, 0);
        t.get_mut(&3).unwrap().dirty = Some((10, 1));
        t.insert(7, held("-"));
        let stamps: HashMap<Ino, u64> = [(4, 30), (5, 10), (6, 20)].into_iter().collect();
        assert_eq!(recall_victims(&t, &stamps, 1, 4), vec![5, 6], "6 held, keep 4: the two oldest idle");
        assert_eq!(recall_victims(&t, &stamps, 1, 0), vec![5, 6, 4], "open, dirty and root stay");
        assert!(recall_victims(&t, &stamps, 1, 6).is_empty());
        let mut unstamped = stamps.clone();
        unstamped.remove(&4);
        assert_eq!(recall_victims(&t, &unstamped, 1, 5), vec![4], "never looked up counts as oldest");
    }
}
