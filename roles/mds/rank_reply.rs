//! The rank's replies beyond the plain answer: caps issued inside the reply (the pure
//! split is `reply_caps.rs`), inode numbers delegated to a session for async creates
//! (journaled as `SessionEvent::Delegate`, announced in the safe reply of a create), and
//! the answer to a request that already completed before a failover or reconnect.
use super::events::{EMetaBlob, LogEvent, SessionEvent};
use super::rank::MdsRank;
use super::rank_client::reply;
use super::reply_caps::{split_for_reply, Split};
use super::server::{self, Need};
use crate::error::Errno;
use crate::msg::mds::{ClientRequest, Ino, MdsOp, MdsReply, ReplyBody};
use crate::net::ConnHandle;

/// Inode numbers delegated to a session at a time (Ceph: `mds_client_prealloc_inos`).
pub const DELEG_BATCH: u64 = 4096;
/// A session holding fewer delegated numbers than this gets another batch (Ceph:
/// `mds_client_delegate_inos_pct` of the preallocation, 50%).
pub const DELEG_LOW: usize = (DELEG_BATCH / 2) as usize;

/// The inodes a reply returns (the ones caps in it may be about).
fn reply_inos(op: &MdsOp, result: &Result<ReplyBody, Errno>) -> Vec<Ino> {
    match (result, op) {
        (Ok(ReplyBody::Inode(st)), MdsOp::Lookup { parent, .. }) => vec![st.ino, *parent],
        (Ok(ReplyBody::Inode(st)), _) => vec![st.ino],
        (Ok(ReplyBody::Dir { .. }), MdsOp::Readdir { ino, .. }) => vec![*ino],
        _ => Vec::new(),
    }
}

impl MdsRank {
    /// Issues `client` caps on what the reply returns and splits the Locker's commands:
    /// grants that ride in the reply, writable ranges folded into `blob` (and into the
    /// cache), and the rest for `exec_caps`.
    pub(super) fn reply_caps(
        &mut self,
        client: &str,
        op: &MdsOp,
        result: &Result<ReplyBody, Errno>,
        mut blob: Option<&mut EMetaBlob>,
    ) -> Split {
        let cmds = self.issue_cmds_for_reply(client, op, result);
        let version = blob.as_ref().map_or(0, |b| b.version);
        let split = split_for_reply(client, &reply_inos(op, result), blob.as_deref_mut(), cmds);
        if !split.changed.is_empty() {
            if let Some(rs) = self.rs.as_mut() {
                // Same version as the request's blob: the cache holds what the journal will.
                rs.cache.apply(&EMetaBlob { desc: String::new(), version, dentries: split.changed.clone(), ..Default::default() });
            }
        }
        split
    }

    /// The reply to send, with the grants of `split` inside.
    pub(super) fn reply_with(&self, tid: u64, result: Result<ReplyBody, Errno>, safe: bool, split: &Split) -> MdsReply {
        let mut r = MdsReply::new(tid, result, safe);
        r.caps = split.grants.iter().map(|g| self.caps_message(g.ino, false, g.caps, g.wanted, g.seq, g.max_size)).collect();
        r
    }

    /// After a successful create: delegates another batch of inode numbers to the
    /// session when it runs low (journaled before the create's own blob, so a safe reply
    /// implies the delegation is durable too). Returns the session's delegated set for
    /// the safe reply when it changed, or when a synchronous create asked (a client that
    /// reconnected learns its set again).
    pub(super) fn maybe_delegate(&mut self, client: &str, op: &MdsOp, result: &Result<ReplyBody, Errno>) -> Option<Vec<(Ino, u64)>> {
        if result.is_err() || !matches!(op, MdsOp::Create { .. } | MdsOp::CreateIno { .. } | MdsOp::MkdirIno { .. }) {
            return None;
        }
        let rs = self.rs.as_mut()?;
        let have = rs.sessions.get(client)?.delegated.len();
        let mut changed = false;
        if have < DELEG_LOW {
            if let Some((start, len)) = rs.inotable.project_range(DELEG_BATCH) {
                let ev = LogEvent::Session(SessionEvent::Delegate { client: client.to_string(), start, len });
                rs.apply_event(&ev);
                let _durable = self.journal(ev, false);
                changed = true;
            }
        }
        let announce = changed || matches!(op, MdsOp::Create { .. });
        let rs = self.rs.as_ref()?;
        announce.then(|| rs.sessions.get(client).map(|s| s.delegated_ranges()).unwrap_or_default())
    }

    /// A request whose change is already journaled (the client re-sent it after a
    /// failover or reconnect): answered safe, a creating op with what it made, instead
    /// of being run twice.
    pub(super) fn answer_completed(&mut self, client: &str, conn: &ConnHandle, req: &ClientRequest) -> Option<Need> {
        let result = match server::completed_answer(&req.op) {
            None => Ok(ReplyBody::Empty),
            Some(op) => {
                let rs = self.rs.as_mut()?;
                let info = rs.sessions.get(client).map(|s| s.info()).unwrap_or_default();
                let again = ClientRequest { tid: req.tid, op, caller: req.caller.clone(), oldest_tid: req.oldest_tid };
                match server::handle(&mut rs.cache, &mut rs.inotable, &info, &again, crate::now_ns()) {
                    Err(n) => return Some(n),
                    Ok(o) => o.result,
                }
            }
        };
        tracing::debug!(tid = req.tid, "request re-sent after it completed; answered from the metadata");
        reply(conn, req.tid, result, true);
        None
    }
}
