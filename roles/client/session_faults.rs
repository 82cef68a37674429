//! The client's side of session faults: eviction and cache pressure.
//!
//! Evicted: the MDS says so (`Rejected` with EBLOCKLISTED, on a renewal, a reopen or
//! one-way when it evicts), or the OSDMap lists this instance. From then on the mount
//! is dead, as a blocklisted Ceph client: pending and new metadata requests fail with
//! EBLOCKLISTED, the session is not reopened, and the OSDs refuse its data I/O.
//!
//! Recall: the MDS asks the client to keep at most N caps and dentries; the client
//! trims its dentry cache, releases what it can and answers with what it still holds.
use std::sync::atomic::Ordering;

use super::{lock, Inner};
use crate::error::{CmdError, Errno};
use crate::msg::mds::SessionOp;
use crate::msg::Message;
use crate::net::ConnHandle;

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
    pub(super) fn blocklisted_error(&self) -> Option<CmdError> {
        lock(&self.blocklisted)
            .as_ref()
            .map(|why| CmdError::new(Errno::EBLOCKLISTED, format!("client is blocklisted ({why})")))
    }

    /// Whether the mount is evicted, noticing it from the newest OSDMap as well.
    pub(super) fn check_blocklisted(&self) -> bool {
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

    /// A recall: trims the dentry cache to `max_caps` and answers with what remains.
    // CAPS: also release caps beyond `max_caps` (least recently used, unused ones
    // first) and report the caps still held instead of 0.
    pub(super) fn on_recall(&self, conn: &ConnHandle, seq: u64, max_caps: u64) {
        let keep = usize::try_from(max_caps).unwrap_or(usize::MAX);
        let dentries = lock(&self.dcache).trim_to(keep) as u64;
        tracing::debug!(seq, max_caps, dentries, "recall: dentry cache trimmed");
        let ack = SessionOp::RecallAck { seq, caps: 0, dentries };
        if let Err(e) = conn.send(Message::MClientSession(ack)) {
            tracing::debug!("recall answer not sent: {e}");
        }
    }

    /// Whether the mount has been closed or evicted (the manager then stops).
    pub(super) fn finished(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.check_blocklisted()
    }
}
