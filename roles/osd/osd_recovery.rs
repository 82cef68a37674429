//! Recovery of a PG's objects, primary to members and authority to primary: a push
//! goes in parts of about [`PUSH_PART_BYTES`], each read and sent once the receiver has
//! acknowledged the one before, so no message exceeds a frame and neither side holds
//! more than a part (docs/design.md, "Recovery moves objects in parts").
use std::collections::{BTreeSet, VecDeque};

use super::osd::Osd;
use super::pg::{copy_piece, install_copy, object_names, to_recover, CopyAt, Pg, Phase};
use super::store::{Transaction, TxOp};
use crate::ids::OsdId;
use crate::maps::PgId;
use crate::msg::osd::{Eversion, ObjectCopy, OsdPeerMsg, PgInfo, PgLogEntry};
use crate::msg::Message;
use crate::net::ConnHandle;

/// Object bytes per part of a recovery push. Parts keep each message far below
/// `ms_max_frame_bytes` (64 MiB) and bound what either side holds in memory at once;
/// an object larger than a part goes in pieces over several parts.
const PUSH_PART_BYTES: usize = 16 << 20;

/// The smallest piece of an object a part takes (so a nearly full part does not end
/// with a sliver of the next object).
const PIECE_MIN: usize = 1 << 20;

/// Bytes of an object copy (data, xattrs and omap, plus its name and a little for the
/// rest, so that a part of many deletions stays bounded too).
fn copy_bytes(c: &ObjectCopy) -> usize {
    let pairs = |v: &[(String, serde_bytes::ByteBuf)]| v.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    c.data.as_ref().map_or(0, |d| d.len()) + pairs(&c.xattrs) + pairs(&c.omap) + c.oid.len() + 64
}

/// A push being sent in parts: the objects still to read and send, and how far the
/// first of them has gone.
pub(super) struct PushCursor {
    epoch: u64,
    names: VecDeque<(String, Eversion)>,
    at: CopyAt,
    part: u32,
    complete: bool,
    info: PgInfo,
    log: Vec<PgLogEntry>,
    /// The connection a pull came on (its answer goes back on it, even before this
    /// OSD's map shows the puller's new instance); None: the peer's usual connection.
    via: Option<ConnHandle>,
}

impl PushCursor {
    pub(super) fn new(epoch: u64, names: VecDeque<(String, Eversion)>, info: PgInfo, log: Vec<PgLogEntry>, complete: bool) -> Self {
        PushCursor { epoch, names, at: CopyAt::default(), part: 0, complete, info, log, via: None }
    }
}

impl Osd {
    /// A part of a recovery arrived or was acknowledged: a primary recovering this PG is
    /// making progress, so its stalled-step timer starts over (a large PG takes longer
    /// than that timer to recover, but no part does).
    pub(super) fn recovery_progress(&mut self, id: PgId) {
        let me = self.id;
        if let Some(p) = self.pgs.get_mut(&id).filter(|p| p.phase == Phase::Recovering && p.is_primary(me)) {
            p.step_since = std::time::Instant::now();
        }
    }

    /// Starts sending a push to `osd` (recovery, or a pull's answer), part by part.
    pub(super) fn start_push(&mut self, osd: OsdId, id: PgId, cursor: PushCursor) {
        // Replicated writes this copy acknowledged are visible before it reads them.
        self.store.settle();
        self.pushes.insert((id, osd), cursor);
        self.send_next_part(id, osd);
    }

    /// Sends the next part of the push to `osd`: objects, or pieces of a large one, up
    /// to about [`PUSH_PART_BYTES`], read only now, so neither side holds more than a
    /// part of a PG however large it or one of its objects is, and each part fits a
    /// frame. The cursor is dropped with the last part; the last part's reply is the
    /// recovery's answer.
    pub(super) fn send_next_part(&mut self, id: PgId, osd: OsdId) {
        let Some(c) = self.pushes.get_mut(&(id, osd)) else { return };
        let (mut objects, mut bytes) = (Vec::new(), 0usize);
        while bytes < PUSH_PART_BYTES {
            let Some((oid, v)) = c.names.front().cloned() else { break };
            let budget = (PUSH_PART_BYTES - bytes).max(PIECE_MIN);
            match copy_piece(&self.store, id, &oid, v, &mut c.at, budget) {
                Ok((o, whole)) => {
                    bytes += copy_bytes(&o);
                    objects.push(o);
                    if whole {
                        c.names.pop_front();
                        c.at = CopyAt::default();
                    }
                }
                Err(e) => {
                    tracing::error!(pg = %id, osd, "cannot read objects for recovery: {e}");
                    self.pushes.remove(&(id, osd));
                    return;
                }
            }
        }
        let more = !c.names.is_empty();
        let (info, log) = if more { (PgInfo::default(), Vec::new()) } else { (c.info.clone(), std::mem::take(&mut c.log)) };
        let m = OsdPeerMsg::Push { pg: id, epoch: c.epoch, objects, info, log, complete: c.complete && c.part == 0, part: c.part, more };
        c.part += 1;
        let via = c.via.clone();
        if !more {
            self.pushes.remove(&(id, osd));
        }
        match via {
            Some(conn) => {
                let _ = conn.send(Message::MOsdPeer(m));
            }
            None => self.send_peer(osd, m),
        }
    }

    pub(super) fn push_to_replicas(&mut self, id: PgId) {
        let Some(pg) = self.pgs.get(&id) else { return };
        let (epoch, info, log) = (pg.interval_since, pg.info.clone(), pg.log_vec());
        let mut targets = Vec::new();
        for (osd, theirs) in pg.peer_info.iter().filter(|(o, _)| pg.acting.contains(o)) {
            let Some((ti, their_log)) = theirs else { continue };
            if ti.last_update == info.last_update {
                continue;
            }
            // Objects the authority changed since the logs meet, and those of the
            // replica's own divergent entries (docs/design.md, "Divergent entries").
            let (since, names) = to_recover(ti, their_log, &info, &log);
            let complete = !pg.log_reaches(since) || ti.last_update > info.last_update;
            targets.push((*osd, names, complete));
        }
        let mut pushing = BTreeSet::new();
        for (osd, names, complete) in targets {
            let names = if complete {
                object_names(&self.store, id).map(|n| n.into_iter().map(|o| (o, Eversion::default())).collect())
            } else {
                Ok(names)
            };
            match names {
                Ok(names) => {
                    let names: VecDeque<_> = names.into();
                    tracing::info!(pg = %id, osd, n = names.len(), complete, "recovering replica");
                    self.start_push(osd, id, PushCursor::new(epoch, names, info.clone(), log.clone(), complete));
                    pushing.insert(osd);
                }
                Err(e) => tracing::error!(pg = %id, "cannot read objects for recovery: {e}"),
            }
        }
        if let Some(pg) = self.pgs.get_mut(&id) {
            pg.pushing = pushing;
        }
        self.maybe_ready(id);
    }

    /// Installs pushed copies (the whole PG when `complete`) and, with the push's last
    /// part (`adopt`), takes the sender's info and log.
    pub(super) fn install_push(&mut self, id: PgId, objects: &[ObjectCopy], info: PgInfo, log: Vec<PgLogEntry>, complete: bool, adopt: bool) -> bool {
        let mut txn = Transaction::default();
        if complete {
            txn.ops.push(TxOp::RemovePg);
        }
        for c in objects {
            let exists = !complete && self.store.stat(id, &c.oid).is_ok();
            install_copy(c, exists, &mut txn);
        }
        let pg = self.pgs.entry(id).or_insert_with(|| Pg::new(id));
        if adopt {
            pg.adopt(info, log, &mut txn);
        }
        match self.store.apply(id, &txn) {
            Ok(()) => {
                pg.recount(&self.store);
                true
            }
            Err(e) => {
                tracing::error!(pg = %id, "cannot install recovered objects: {e}");
                false
            }
        }
    }

    /// A pull from the primary: answer with the objects (all of the PG, or `oids`) as a
    /// push, on the connection the pull came on.
    pub(super) fn on_pull(&mut self, from: OsdId, pg: PgId, epoch: u64, oids: Vec<String>, all: bool, conn: ConnHandle) {
        // Replicated writes this copy acknowledged are visible before it lists them.
        self.store.settle();
        let log = self.pgs.get(&pg).map(|p| p.log_vec()).unwrap_or_default();
        let info = self.pgs.get(&pg).map(|p| p.info.clone()).unwrap_or_default();
        let names = if all { object_names(&self.store, pg) } else { Ok(oids) };
        match names {
            Ok(names) => {
                let names = names.into_iter().map(|o| (o, Eversion::default())).collect();
                let cursor = PushCursor { via: Some(conn), ..PushCursor::new(epoch, names, info, log, all) };
                self.start_push(from, pg, cursor);
            }
            Err(e) => tracing::error!(pg = %pg, "cannot list objects for a pull: {e}"),
        }
    }

    /// A part of a push arrived: install it, acknowledge it (a part before the last),
    /// and after the last, go on recovering (primary) or answer the push (member).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_push(
        &mut self,
        from: OsdId,
        pg: PgId,
        epoch: u64,
        objects: &[ObjectCopy],
        info: PgInfo,
        log: Vec<PgLogEntry>,
        complete: bool,
        part: u32,
        more: bool,
        conn: ConnHandle,
    ) {
        // Parts count up from 0 within one interval; a gap (a part lost with a
        // connection) fails the rest, so a partial copy is never declared whole.
        let in_order = part == 0 || self.push_in.get(&(pg, from)) == Some(&(epoch, part));
        let ok = in_order && self.install_push(pg, objects, info, log, complete, !more);
        self.recovery_progress(pg);
        if more {
            if ok {
                self.push_in.insert((pg, from), (epoch, part + 1));
            } else {
                self.push_in.remove(&(pg, from));
            }
            let _ = conn.send(Message::MOsdPeer(OsdPeerMsg::PushReply { pg, epoch, ok, part }));
            return;
        }
        self.push_in.remove(&(pg, from));
        if self.current(pg, epoch, Phase::Recovering) {
            if ok {
                self.push_to_replicas(pg);
            }
        } else {
            let _ = conn.send(Message::MOsdPeer(OsdPeerMsg::PushReply { pg, epoch, ok, part }));
        }
    }

    /// A push's part was acknowledged (send the next) or its last part answered (the
    /// member is recovered).
    pub(super) fn on_push_reply(&mut self, from: OsdId, pg: PgId, epoch: u64, ok: bool, part: u32) {
        if let Some(c) = self.pushes.get(&(pg, from)).filter(|c| c.epoch == epoch) {
            // A part acknowledged: send the next one (or give up; peering retries).
            if ok && c.part == part + 1 {
                self.recovery_progress(pg);
                self.send_next_part(pg, from);
            } else if !ok {
                tracing::warn!(pg = %pg, osd = from, part, "a recovery part was not installed");
                self.pushes.remove(&(pg, from));
            }
            return;
        }
        if self.current(pg, epoch, Phase::Recovering) && ok {
            if let Some(p) = self.pgs.get_mut(&pg) {
                p.pushing.remove(&from);
            }
            self.maybe_ready(pg);
        }
    }
}
