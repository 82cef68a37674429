//! The rank's client side: sessions (open with caps and a confinement root, renew,
//! close; journaled) and metadata requests (`server::handle`, loading what it needs
//! from RADOS and retrying; unsafe reply at once, safe reply once journaled; purge of
//! a destroyed file's data objects after that).
use actix::prelude::*;
use std::sync::Arc;
use tokio::sync::oneshot;

use super::events::{LogEvent, Purge, SessionEvent};
use super::rank::MdsRank;
use crate::now_ns;
use super::server::{self, Need};
use super::types::{data_object, Ino, ROOT_INO};
use crate::auth::{parse_caps, Grant};
use crate::error::Errno;
use crate::ids::{EntityAddr, EntityName};
use crate::maps::MdsState;
use crate::msg::mds::{ClientRequest, MdsReply, SessionOp, SessionReply};
use crate::msg::osd::OsdOp;
use crate::msg::Message;
use crate::maps::OsdMap;
use crate::net::{ConnHandle, Incoming};
use crate::objecter::Objecter;

/// Inode numbers preallocated for a new session.
const PREALLOC: u64 = 64;
/// Loads one request may trigger before it is answered ESTALE.
const MAX_LOADS: u32 = 64;

/// Work that may have to wait for metadata to be loaded.
pub(super) enum Work {
    Request { client: String, conn: ConnHandle, req: ClientRequest },
    Open { client: String, conn: ConnHandle, tid: u64, path: String, rw: bool, addr: EntityAddr },
}

/// The root path a session gets and whether it may write, from its `mds` grants and
/// the path it asked for. A grant with `path=/p` confines to `/p` (asking for `/`
/// gives `/p`); `..` is refused outright.
pub fn session_root(grants: &[Grant], requested: &str) -> Result<(String, bool), Errno> {
    let comps: Vec<&str> = requested.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if comps.contains(&"..") {
        return Err(Errno::EINVAL);
    }
    let req = format!("/{}", comps.join("/"));
    let mut best: Option<(String, bool)> = None;
    for g in grants.iter().filter(|g| g.perm.r || g.perm.w) {
        let cap = g.path.as_deref().map(|p| p.trim_end_matches('/')).unwrap_or("");
        let root = if cap.is_empty() || req == cap || req.starts_with(&format!("{cap}/")) {
            req.clone()
        } else if req == "/" {
            cap.to_string()
        } else {
            continue;
        };
        if best.as_ref().is_none_or(|(_, w)| !*w && g.perm.w) {
            best = Some((root, g.perm.w));
        }
    }
    best.ok_or(Errno::EACCES)
}

/// The session key of a client instance: its entity and its messenger nonce
/// (`client.admin/1f3a…`), so two mounts by one entity are two sessions with their own
/// caps, as in Ceph where each mount is its own client instance.
pub(crate) fn session_key(inc: &Incoming) -> String {
    format!("{}/{:x}", inc.from, inc.nonce)
}

pub(super) fn reply(conn: &ConnHandle, tid: u64, result: Result<crate::msg::mds::ReplyBody, Errno>, safe: bool) {
    let _ = conn.send(Message::MClientReply(MdsReply::new(tid, result, safe)));
}

/// Runs `then` once the journal entry behind `rx` is durable (never if the journal
/// goes away first). A task of its own, not an actor future: the actor's context polls
/// every future spawned on it at each wake-up, so one future per request waiting for
/// the journal made each message cost O(requests in flight).
pub(super) fn after_durable(rx: oneshot::Receiver<()>, then: impl FnOnce() + 'static) {
    actix::spawn(async move {
        if rx.await.is_ok() {
            then();
        }
    });
}

/// Removes the data objects of destroyed files (after their unlink is durable).
pub(super) async fn purge_data(obj: Arc<Objecter>, pools: Option<Arc<OsdMap>>, purge: Vec<Purge>) {
    for p in purge {
        let Some(pool) = pools.as_ref().and_then(|m| m.pools.get(&p.layout.pool)).map(|p| p.name.clone()) else {
            continue;
        };
        for objno in 0..p.layout.object_count(p.size) {
            let _ = obj.op(&pool, &data_object(p.ino, objno), vec![OsdOp::Remove]).await;
        }
    }
}

impl MdsRank {
    pub(super) fn grants(&self, client: &EntityName) -> Vec<Grant> {
        let auth = self.monc.current().auth;
        let caps = auth.as_ref().and_then(|a| a.entries.get(client)).and_then(|c| c.get("mds").cloned());
        caps.and_then(|s| parse_caps("mds", &s).ok()).unwrap_or_default()
    }

    pub(super) fn dispatch(&mut self, inc: Incoming, ctx: &mut Context<Self>) {
        let Some(inc) = self.session_gate(inc, ctx) else { return };
        if !matches!(inc.msg, Message::MClientSession(_) | Message::MClientRequest(_) | Message::MClientCaps(_)) {
            tracing::debug!(from = %inc.from, "ignoring {}", inc.msg.name());
            return;
        }
        if matches!(self.state, MdsState::Boot | MdsState::Standby | MdsState::StandbyReplay) {
            // Holding no rank (a client followed a stale map to this address): say so at
            // once, so the client waits for a newer map instead of for us.
            if let Message::MClientSession(SessionOp::Open { .. }) = inc.msg {
                let reason = format!("this MDS is {} and holds no rank", self.state.name());
                let r = SessionReply::Rejected { errno: Errno::EAGAIN, reason };
                let _ = inc.conn.reply(inc.tid, Message::MClientSessionReply(r));
            }
            return;
        }
        if !self.serves(&inc) {
            // Recovering a rank: the requests wait for active (or clientreplay).
            if self.waiting.len() < 100_000 {
                self.waiting.push(inc);
            }
            return;
        }
        let client = session_key(&inc);
        self.note_conn(&client, &inc.conn);
        match inc.msg {
            Message::MClientSession(SessionOp::Open { root, .. }) => {
                match session_root(&self.grants(&inc.from), &root) {
                    Ok((path, rw)) => {
                        let addr = EntityAddr { addr: inc.conn.remote(), nonce: inc.nonce };
                        self.run(Work::Open { client, conn: inc.conn, tid: inc.tid, path, rw, addr }, 0, ctx)
                    }
                    Err(errno) => {
                        let reason = format!("{client} may not open a session at {root}");
                        let _ = inc.conn.reply(inc.tid, Message::MClientSessionReply(SessionReply::Rejected { errno, reason }));
                    }
                }
            }
            Message::MClientSession(SessionOp::Renew { seq }) => {
                let was_stale = self.rs.as_ref().and_then(|rs| rs.sessions.get(&client)).map(|s| s.state)
                    == Some(super::sessionmap::SessionState::Stale);
                let r = self.renew_session(&client, seq);
                if was_stale && matches!(r, SessionReply::RenewAck { .. }) {
                    self.caps_session_fresh(&client, ctx);
                }
                // One-way, on the connection the revokes of `caps_session_fresh` took:
                // the client handles the ack after them, in order (a reply would reach
                // its waiter ahead of them), and only then trusts its caps again.
                let _ = inc.conn.send(Message::MClientSessionReply(r));
            }
            Message::MClientSession(SessionOp::Close) => {
                let known = self.rs.as_ref().is_some_and(|rs| rs.sessions.get(&client).is_some());
                if !known {
                    let _ = inc.conn.reply(inc.tid, Message::MClientSessionReply(SessionReply::Closed));
                    return;
                }
                self.maybe_segment();
                let ev = LogEvent::Session(SessionEvent::Close { client: client.clone() });
                if let Some(rs) = self.rs.as_mut() {
                    rs.apply_event(&ev);
                }
                self.session_rw.remove(&client);
                self.caps_session_gone(&client, ctx);
                self.eval_strays(ctx);
                let rx = self.journal(ev, false);
                let (conn, tid) = (inc.conn, inc.tid);
                after_durable(rx, move || {
                    let _ = conn.reply(tid, Message::MClientSessionReply(SessionReply::Closed));
                });
            }
            Message::MClientRequest(req) => self.run(Work::Request { client, conn: inc.conn, req }, 0, ctx),
            Message::MClientCaps(m) => {
                let ino = m.ino;
                self.handle_client_caps(&client, &inc.conn, m, ctx);
                self.eval_stray(ino, ctx);
            }
            _ => {}
        }
    }

    fn fail(&self, w: &Work, errno: Errno) {
        match w {
            Work::Request { conn, req, .. } => reply(conn, req.tid, Err(errno), true),
            Work::Open { conn, tid, path, .. } => {
                let r = SessionReply::Rejected { errno, reason: format!("cannot open a session at {path}") };
                let _ = conn.reply(*tid, Message::MClientSessionReply(r));
            }
        }
    }

    /// Runs `w`; when the cache lacks something, loads it and runs `w` again.
    pub(super) fn run(&mut self, w: Work, loads: u32, ctx: &mut Context<Self>) {
        let need = match &w {
            Work::Request { .. } => self.try_request(&w, ctx),
            Work::Open { .. } => self.try_open(&w, ctx),
        };
        let Some(need) = need else { return };
        if loads >= MAX_LOADS {
            return self.fail(&w, Errno::ESTALE);
        }
        let (Some(rs), Some(store)) = (self.rs.as_ref(), self.store.clone()) else { return };
        let dirs = match need {
            Need::Dir(d) => vec![d],
            Need::Inode(_) => rs.cache.unloaded_subdirs(32),
        };
        if dirs.is_empty() {
            return self.fail(&w, Errno::ESTALE);
        }
        let fut = async move {
            let mut out = Vec::new();
            for d in dirs {
                out.push((d, store.fetch_dir(d).await?));
            }
            Ok::<_, crate::objecter::ObjError>(out)
        };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            let Some(rs) = act.rs.as_mut() else { return };
            match r {
                Ok(v) => {
                    for (d, m) in v {
                        if let Err(e) = rs.cache.load_dir(d, &m) {
                            tracing::error!("directory {d:#x} undecodable: {e}");
                            return act.fail(&w, Errno::EIO);
                        }
                    }
                    act.run(w, loads + 1, ctx);
                }
                Err(e) => {
                    tracing::warn!("loading metadata: {e}");
                    act.fail(&w, Errno::EIO);
                }
            }
        }));
    }

    fn may_write(&self, client: &str) -> bool {
        if let Some(rw) = self.session_rw.get(client) {
            return *rw;
        }
        // A session restored by replay: writable only if every grant allows writing.
        let entity = client.split_once('/').map_or(client, |(e, _)| e);
        let Ok(name) = entity.parse::<EntityName>() else { return false };
        let g = self.grants(&name);
        !g.is_empty() && g.iter().all(|g| g.perm.w)
    }

    fn try_request(&mut self, w: &Work, ctx: &mut Context<Self>) -> Option<Need> {
        let Work::Request { client, conn, req } = w else { return None };
        self.rs.as_mut()?.sessions.trim_completed(client, req.oldest_tid);
        let sessions = &self.rs.as_ref()?.sessions;
        if sessions.is_completed(client, req.tid) {
            // Re-sent after a failover or reconnect, already journaled: not run twice.
            return self.answer_completed(client, conn, req);
        }
        let info = match sessions.get(client).map(|s| s.info_for(&req.op)) {
            Some(Ok(i)) => i,
            Some(Err(e)) => {
                reply(conn, req.tid, Err(e), true);
                return None;
            }
            None => {
                reply(conn, req.tid, Err(Errno::ENOTCONN), true);
                return None;
            }
        };
        let write = req.op.is_write();
        if write && !self.may_write(client) {
            reply(conn, req.tid, Err(Errno::EACCES), true);
            return None;
        }
        // Caps: the request's locks first (or it is parked and rerun on wake).
        let held = self.lock_request(client, conn, req, ctx)?;
        if write {
            self.maybe_segment();
        }
        let rs = self.rs.as_mut()?;
        if let Some(m) = &self.mdsmap {
            rs.cache.max_file_size = m.max_file_size;
        }
        let out = match server::handle(&mut rs.cache, &mut rs.inotable, &info, req, now_ns()) {
            Err(n) => {
                self.release_held(held, ctx);
                return Some(n);
            }
            Ok(o) => o,
        };
        let Some(blob) = out.blob else {
            let result = out.result;
            if let Ok(crate::msg::mds::ReplyBody::Statfs(s)) = result {
                self.answer_statfs(conn, req.tid, s);
                return None;
            }
            let split = self.reply_caps(client, &req.op, &result, None);
            let _ = conn.send(Message::MClientReply(self.reply_with(req.tid, result, true, &split)));
            self.release_held(held, ctx);
            self.exec_caps(split.rest, ctx);
            return None;
        };
        rs.sessions.apply_blob(&blob);
        self.answer_write(client, conn, req, blob, out.result, held, ctx);
        None
    }

    /// A change was applied: unsafe reply now (with caps), journal, safe reply (with
    /// delegated inode numbers) once durable; the locks go back then.
    #[allow(clippy::too_many_arguments)]
    fn answer_write(
        &mut self,
        client: &str,
        conn: &ConnHandle,
        req: &ClientRequest,
        mut blob: super::events::EMetaBlob,
        result: Result<crate::msg::mds::ReplyBody, Errno>,
        held: super::locker::Held,
        ctx: &mut Context<Self>,
    ) {
        let split = self.reply_caps(client, &req.op, &result, Some(&mut blob));
        let deleg = self.maybe_delegate(client, &req.op, &result);
        let _ = conn.send(Message::MClientReply(self.reply_with(req.tid, result.clone(), false, &split)));
        let purge = blob.purge.clone();
        let strays = self.rs.as_ref().map(|rs| super::rank_strays::new_strays(&blob, rs.cache.mdsdir())).unwrap_or_default();
        let rx = self.journal(LogEvent::Update(blob), false);
        self.exec_caps(split.rest, ctx);
        for ino in strays {
            self.eval_stray(ino, ctx);
        }
        let (conn, tid) = (conn.clone(), req.tid);
        let purger = (!purge.is_empty()).then(|| (self.obj.clone(), self.monc.current().osdmap, purge));
        // The request's locks (and the Locker's wrlocks of writable ranges journaled in
        // its blob) go back once the change is durable (purging needs none).
        let me = (!held.is_empty() || !split.folded.is_empty()).then(|| ctx.address());
        let folded = split.folded;
        after_durable(rx, move || {
            let mut safe = MdsReply::new(tid, result, true);
            safe.deleg = deleg;
            let _ = conn.send(Message::MClientReply(safe));
            if let Some(me) = me {
                if !held.is_empty() {
                    me.do_send(super::rank_caps::ReleaseHeld(held));
                }
                if !folded.is_empty() {
                    me.do_send(super::rank_caps::RangesDurable(folded));
                }
            }
            if let Some((obj, pools, purge)) = purger {
                actix::spawn(purge_data(obj, pools, purge));
            }
        });
    }

    /// statfs: space comes from the monitors (the OSDs' reports), as in Ceph; an
    /// answer less than `DF_FRESH` old is reused, and the last one stands in while
    /// the monitors do not answer.
    fn answer_statfs(&self, conn: &ConnHandle, tid: u64, mut s: crate::msg::mds::StatfsReply) {
        const DF_FRESH: std::time::Duration = std::time::Duration::from_secs(1);
        s.files = self.rs.as_ref().map_or(0, |rs| rs.inotable.allocated);
        let bsize = u64::from(s.bsize.max(1));
        let fill = move |mut s: crate::msg::mds::StatfsReply, df: Option<(std::time::Instant, u64, u64)>| {
            if let Some((_, total, avail)) = df {
                (s.blocks, s.bfree) = (total / bsize, avail / bsize);
            }
            Ok(crate::msg::mds::ReplyBody::Statfs(s))
        };
        let last = self.df.get();
        if last.is_some_and(|(at, _, _)| at.elapsed() < DF_FRESH) {
            reply(conn, tid, fill(s, last), true);
            return;
        }
        let (monc, conn, cell) = (self.monc.clone(), conn.clone(), self.df.clone());
        actix::spawn(async move {
            let df = monc.command_with_timeout(crate::msg::MonCommand::Df, std::time::Duration::from_secs(3)).await;
            let fresh = match df {
                Ok(crate::msg::CommandReply::Df(d)) => Some((std::time::Instant::now(), d.total_bytes, d.avail_bytes)),
                _ => None,
            };
            // No OSD has reported its space yet: answered, not kept.
            if fresh.is_some_and(|(_, total, _)| total > 0) {
                cell.set(fresh);
            }
            reply(&conn, tid, fill(s, fresh.or(cell.get())), true);
        });
    }

    fn try_open(&mut self, w: &Work, ctx: &mut Context<Self>) -> Option<Need> {
        let Work::Open { client, conn, tid, path, rw, addr } = w else { return None };
        let rs = self.rs.as_ref()?;
        let ino: Ino = match server::resolve_path(&rs.cache, ROOT_INO, path) {
            Err(n) => return Some(n),
            Ok(Err(e)) => {
                self.fail(w, e);
                return None;
            }
            Ok(Ok(i)) => i,
        };
        match rs.cache.inode(ino) {
            Some(i) if i.is_dir() => {}
            Some(_) => {
                self.fail(w, Errno::ENOTDIR);
                return None;
            }
            None => return Some(Need::Inode(ino)),
        }
        let has_prealloc = rs.sessions.get(client).is_some_and(|s| !s.prealloc.is_empty());
        let was_stale = rs.sessions.get(client).is_some_and(|s| s.state == super::sessionmap::SessionState::Stale);
        let prealloc = if has_prealloc { None } else { rs.inotable.project_range(PREALLOC) };
        self.maybe_segment();
        let ev = LogEvent::Session(SessionEvent::Open { client: client.clone(), root: ino, prealloc, addr: Some(*addr) });
        let rs = self.rs.as_mut()?;
        rs.apply_event(&ev);
        rs.sessions.renew(client, crate::now_ms());
        self.session_rw.insert(client.clone(), *rw);
        if was_stale {
            // The client reopened a stale session (its connection had dropped): as
            // on a late renewal, its caps are revoked to `p`, then granted again.
            self.caps_session_fresh(client, ctx);
        }
        let timeout_ms = self.mdsmap.as_ref().map_or(60, |m| m.session_timeout) as u64 * 1000;
        let rx = self.journal(ev, false);
        let (conn, tid) = (conn.clone(), *tid);
        tracing::info!(%client, root = %path, rw, "session opened");
        self.opening.borrow_mut().insert(client.clone());
        let (opening, client) = (self.opening.clone(), client.clone());
        actix::spawn(async move {
            let durable = rx.await.is_ok();
            opening.borrow_mut().remove(&client);
            if durable {
                let r = SessionReply::Opened { root_ino: ino, session_timeout_ms: timeout_ms };
                let _ = conn.reply(tid, Message::MClientSessionReply(r));
            }
        });
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Vec<Grant> {
        parse_caps("mds", s).unwrap()
    }

    /// That caps confine a session's root and decide whether it may write.
    #[test]
    fn roots_from_caps() {
        assert_eq!(session_root(&g("allow *"), "/"), Ok(("/".into(), true)));
        assert_eq!(session_root(&g("allow rw"), "/x/y/"), Ok(("/x/y".into(), true)));
        assert_eq!(session_root(&g("allow r"), "/"), Ok(("/".into(), false)));
        assert_eq!(session_root(&g("allow rw path=/a"), "/"), Ok(("/a".into(), true)));
        assert_eq!(session_root(&g("allow rw path=/a"), "/a/b"), Ok(("/a/b".into(), true)));
        assert_eq!(session_root(&g("allow rw path=/a"), "/ab"), Err(Errno::EACCES));
        assert_eq!(session_root(&g("allow rw path=/a"), "/a/../b"), Err(Errno::EINVAL));
        assert_eq!(session_root(&g("allow r, allow rw path=/a"), "/a"), Ok(("/a".into(), true)));
        assert_eq!(session_root(&g("allow r, allow rw path=/a"), "/b"), Ok(("/b".into(), false)));
        assert_eq!(session_root(&[], "/"), Err(Errno::EACCES));
    }
}
