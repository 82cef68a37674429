//! The rank's session upkeep (thin actor glue over `session_timers` and `recall`):
//! once a second it marks silent sessions stale and evicts those silent past
//! `session_autoclose`; it recalls caps and dentries from clients while the cache is
//! over its limit and reports the clients that do not comply in the beacon; and it
//! answers the admin commands `client ls` / `client evict` (`MMdsCommand`).
//!
//! Eviction: the session goes `killing` (requests refused), its close is journaled,
//! the monitors blocklist the client's instance (address/nonce) and the rank waits for
//! the OSDMap carrying the entry; only then is the session forgotten. A client whose
//! instance is blocklisted or being evicted is refused with EBLOCKLISTED.
use actix::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use super::events::{LogEvent, SessionEvent};
use super::rank::MdsRank;
use super::recall::{self, AckOutcome, Pressure, RecallTracker};
use super::session_timers::{adopt_replayed, due, SessionAction, SessionTimeouts};
use super::sessionmap::SessionState;
use crate::error::{CmdError, Errno};
use crate::ids::EntityAddr;
use crate::maps::MdsState;
use crate::monc::MonClient;
use crate::msg::mds::{MdsCommand, MdsCommandReply, MdsReply, SessionListing, SessionOp, SessionReply};
use crate::msg::{Message, MonCommand};
use crate::net::{ConnHandle, Incoming};
use crate::now_ms;

/// How long an eviction waits for the monitors (command and new OSDMap).
const BLOCKLIST_WAIT: Duration = Duration::from_secs(20);

/// Where the answer to an admin command goes.
type Waiter = (ConnHandle, u64);

/// Session upkeep state of the rank (volatile; rebuilt after failover).
#[derive(Default)]
pub struct SessionUpkeep {
    /// Sessions whose eviction is in flight, with the admins waiting for it.
    evicting: HashMap<String, Vec<Waiter>>,
    recall: RecallTracker,
    /// The connection each client last spoke on (recalls and evictions go there).
    conns: HashMap<String, ConnHandle>,
    /// The overdue clients last reported in the beacon.
    reported: Vec<String>,
}

impl MdsRank {
    /// Remembers the connection a client's session messages come on.
    pub(super) fn note_session_conn(&mut self, client: &str, conn: &ConnHandle) {
        self.upkeep.conns.insert(client.to_string(), conn.clone());
    }

    /// Starts the once-a-second session upkeep; called when the rank becomes active.
    pub(super) fn start_session_upkeep(&mut self, ctx: &mut Context<Self>) {
        if let Some(rs) = self.rs.as_mut() {
            let n = adopt_replayed(&mut rs.sessions, now_ms());
            if n > 0 {
                tracing::info!("{n} sessions restored by replay get a fresh session_timeout");
            }
        }
        ctx.run_interval(Duration::from_secs(1), |act, ctx| act.session_tick(ctx));
    }

    fn session_timeouts(&self) -> SessionTimeouts {
        let g = &self.cfg.global;
        let (t, a) = self.mdsmap.as_ref().map_or((g.mds_session_timeout, g.mds_session_autoclose), |m| (m.session_timeout, m.session_autoclose));
        SessionTimeouts::from_secs(t, a)
    }

    fn session_tick(&mut self, ctx: &mut Context<Self>) {
        if self.state != MdsState::Active {
            return;
        }
        let now = now_ms();
        let Some(rs) = self.rs.as_ref() else { return };
        let flying: BTreeSet<String> = self.upkeep.evicting.keys().cloned().collect();
        for action in due(&rs.sessions, now, self.session_timeouts(), &flying) {
            match action {
                SessionAction::MarkStale { client, silent_ms } => self.mark_stale(&client, silent_ms, ctx),
                SessionAction::Evict { client, silent_ms } => {
                    let why = format!("no renewal for {:.1} s (session_autoclose)", silent_ms as f64 / 1000.0);
                    self.evict(client, why, None, ctx);
                }
            }
        }
        let live: BTreeSet<&String> = self.rs.as_ref().map(|rs| rs.sessions.sessions.keys().collect()).unwrap_or_default();
        self.upkeep.conns.retain(|c, conn| live.contains(c) && !conn.is_closed());
        self.recall_tick(now);
    }

    fn mark_stale(&mut self, client: &str, silent_ms: u64, ctx: &mut Context<Self>) {
        let Some(rs) = self.rs.as_mut() else { return };
        match rs.sessions.set_state(client, SessionState::Stale) {
            Ok(()) => {
                tracing::warn!(%client, "session open -> stale: no renewal for {:.1} s; its caps are revocable", silent_ms as f64 / 1000.0);
                self.locker_mark_stale(client, ctx);
            }
            Err(e) => tracing::warn!("{e}"),
        }
    }

    /// A renewal: refreshes the session (stale -> open) or says why it cannot.
    pub(super) fn renew_session(&mut self, client: &str, seq: u64) -> SessionReply {
        let Some(rs) = self.rs.as_mut() else {
            return SessionReply::Rejected { errno: Errno::EAGAIN, reason: "rank not loaded".into() };
        };
        let Some(before) = rs.sessions.get(client).map(|s| s.state) else {
            return SessionReply::Rejected { errno: Errno::ENOTCONN, reason: "no session".into() };
        };
        if before == SessionState::Killing {
            return SessionReply::Rejected { errno: Errno::EBLOCKLISTED, reason: "session is being evicted".into() };
        }
        rs.sessions.renew(client, now_ms());
        if before == SessionState::Stale {
            tracing::info!(%client, "session stale -> open: renewed");
        }
        SessionReply::RenewAck { seq }
    }

    /// Evicts `client`: killing, journaled close, blocklisted instance, then forgotten.
    /// `waiter` (an admin's `client evict`) is answered once that is done.
    pub(super) fn evict(&mut self, client: String, why: String, waiter: Option<Waiter>, ctx: &mut Context<Self>) {
        if let Some(waiters) = self.upkeep.evicting.get_mut(&client) {
            waiters.extend(waiter);
            return;
        }
        let Some(rs) = self.rs.as_mut() else { return };
        let Some((from, addr)) = rs.sessions.get(&client).map(|s| (s.state, s.addr)) else {
            return answer(waiter, Err(CmdError::enoent(format!("no session of {client}"))));
        };
        if from != SessionState::Killing {
            if let Err(e) = rs.sessions.set_state(&client, SessionState::Killing) {
                return answer(waiter, Err(CmdError::einval(e.to_string())));
            }
            tracing::warn!(%client, ?addr, "session {from:?} -> killing: evicting ({why})");
        }
        self.upkeep.evicting.insert(client.clone(), waiter.into_iter().collect());
        if let Some(conn) = self.upkeep.conns.remove(&client) {
            let r = SessionReply::Rejected { errno: Errno::EBLOCKLISTED, reason: format!("evicted: {why}") };
            let _ = conn.send(Message::MClientSessionReply(r));
        }
        self.maybe_segment();
        let closed = self.journal(LogEvent::Session(SessionEvent::Close { client: client.clone() }), false);
        let monc = self.monc.clone();
        let fut = async move {
            closed.await.map_err(|_| "the journal went away before the close was durable".to_string())?;
            match addr {
                Some(a) => blocklist(&monc, a).await,
                None => Ok(()),
            }
        };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| act.evicted(client, addr, r, ctx)));
    }

    /// The close is durable and the instance blocklisted (or that failed: the session
    /// stays `killing` and the next tick tries again).
    fn evicted(&mut self, client: String, addr: Option<EntityAddr>, r: Result<(), String>, ctx: &mut Context<Self>) {
        let waiters = self.upkeep.evicting.remove(&client).unwrap_or_default();
        if let Err(e) = r {
            tracing::warn!(%client, "eviction not finished, will retry: {e}");
            let err = CmdError::new(Errno::EAGAIN, format!("eviction of {client} not finished: {e}"));
            return waiters.into_iter().for_each(|w| answer(Some(w), Err(err.clone())));
        }
        let Some(rs) = self.rs.as_mut() else { return };
        let same = rs.sessions.get(&client).is_some_and(|s| s.state == SessionState::Killing && s.addr == addr);
        if same {
            rs.apply_event(&LogEvent::Session(SessionEvent::Close { client: client.clone() }));
        }
        self.session_rw.remove(&client);
        self.upkeep.recall.forget(&client);
        self.caps_session_gone(&client, ctx);
        self.eval_strays(ctx);
        let shown = addr.map_or("no known instance".to_string(), |a| a.to_string());
        tracing::warn!(%client, "session killing -> closed: evicted, {shown} blocklisted");
        let done = format!("evicted {client} ({shown} blocklisted)");
        waiters.into_iter().for_each(|w| answer(Some(w), Ok(MdsCommandReply::Done(done.clone()))));
    }

    /// First look at every message (called by `dispatch`): admin commands and recall
    /// answers are handled here; client messages from an evicted or blocklisted
    /// instance are refused; the rest come back for the request path.
    pub(super) fn session_gate(&mut self, inc: Incoming, ctx: &mut Context<Self>) -> Option<Incoming> {
        match &inc.msg {
            Message::MMdsCommand(cmd) => {
                let cmd = cmd.clone();
                self.admin_command(&inc, cmd, ctx);
                None
            }
            Message::MClientReconnect(_) => {
                self.handle_reconnect(inc, ctx);
                None
            }
            Message::MClientSession(SessionOp::RecallAck { seq, caps, dentries }) => {
                self.recall_ack(&super::rank_client::session_key(&inc), *seq, (*caps).max(*dentries));
                None
            }
            Message::MClientSession(_) | Message::MClientRequest(_) if self.state == MdsState::Active => {
                let client = super::rank_client::session_key(&inc);
                let instance = EntityAddr { addr: inc.conn.remote(), nonce: inc.nonce };
                if let Some((errno, why)) = self.refusal(&client, &instance) {
                    refuse(&inc, errno, why);
                    return None;
                }
                let stale = self.rs.as_ref().and_then(|rs| rs.sessions.get(&client)).is_some_and(|s| s.state == SessionState::Stale);
                if stale && matches!(inc.msg, Message::MClientSession(SessionOp::Open { .. })) {
                    tracing::info!(%client, "session stale -> open: the client reopened it");
                }
                self.upkeep.conns.insert(client, inc.conn.clone());
                Some(inc)
            }
            _ => Some(inc),
        }
    }

    /// Why a message from `instance` of `client` must be refused, if it must.
    fn refusal(&self, client: &str, instance: &EntityAddr) -> Option<(Errno, String)> {
        let osdmap = self.monc.current().osdmap;
        if osdmap.is_some_and(|m| m.is_blocklisted(instance, now_ms())) {
            return Some((Errno::EBLOCKLISTED, format!("{client} at {instance} is blocklisted")));
        }
        let s = self.rs.as_ref()?.sessions.get(client)?;
        if s.state != SessionState::Killing {
            return None;
        }
        if s.addr.is_none_or(|a| a == *instance) {
            return Some((Errno::EBLOCKLISTED, format!("{client} is being evicted")));
        }
        Some((Errno::EAGAIN, format!("the previous session of {client} is being evicted; retry")))
    }

    fn admin_command(&mut self, inc: &Incoming, cmd: MdsCommand, ctx: &mut Context<Self>) {
        let waiter = Some((inc.conn.clone(), inc.tid));
        let admin = self.grants(&inc.from).iter().any(|g| g.path.is_none() && g.perm.r && g.perm.w && g.perm.x);
        if !admin {
            let why = format!("{} may not run MDS admin commands (needs mds 'allow *')", inc.from);
            return answer(waiter, Err(CmdError::new(Errno::EACCES, why)));
        }
        if self.state != MdsState::Active {
            let why = format!("this MDS is {}, not active; retry", self.state.name());
            return answer(waiter, Err(CmdError::new(Errno::EAGAIN, why)));
        }
        match cmd {
            MdsCommand::SessionLs => answer(waiter, Ok(MdsCommandReply::Sessions(self.session_list()))),
            MdsCommand::SessionEvict { who } => match self.resolve_client(&who) {
                Some(client) => self.evict(client, format!("evicted by {}", inc.from), waiter, ctx),
                None => answer(waiter, Err(CmdError::enoent(format!("no session matches '{who}'")))),
            },
        }
    }

    /// The session key named by `who`: a key from `client ls`, an entity `client.x`
    /// or `x` holding exactly one session, or an instance `IP:PORT/NONCE`.
    fn resolve_client(&self, who: &str) -> Option<String> {
        let sessions = &self.rs.as_ref()?.sessions.sessions;
        if sessions.contains_key(who) {
            return Some(who.to_string());
        }
        let full = if who.contains('.') { who.to_string() } else { format!("client.{who}") };
        let mut of_entity = sessions.keys().filter(|k| k.split_once('/').map_or(k.as_str(), |(e, _)| e) == full);
        if let (Some(k), None) = (of_entity.next(), of_entity.next()) {
            return Some(k.clone());
        }
        let inst: EntityAddr = who.parse().ok()?;
        sessions.values().find(|s| s.addr.is_some_and(|a| inst.matches(&a))).map(|s| s.client.clone())
    }

    fn session_list(&self) -> Vec<SessionListing> {
        let now = now_ms();
        let timeout_ms = recall_timeout_ms(self);
        let overdue = self.upkeep.recall.overdue(now, timeout_ms);
        let Some(rs) = self.rs.as_ref() else { return Vec::new() };
        rs.sessions
            .sessions
            .values()
            .map(|s| SessionListing {
                id: s.client.clone(),
                entity: s.client.split_once('/').map_or(s.client.as_str(), |(e, _)| e).to_string(),
                addr: s.addr,
                state: if self.opening.borrow().contains(&s.client) {
                    "opening".to_string()
                } else {
                    format!("{:?}", s.state).to_lowercase()
                },
                root: s.root,
                renew_age_ms: now.saturating_sub(s.last_renew_ms),
                caps: self.caps_count(&s.client),
                recall_overdue: overdue.contains(&s.client),
                completed_requests: s.completed.len() as u64,
            })
            .collect()
    }

    /// Sends (and re-sends) recalls while the cache is over its limit, and publishes
    /// the clients that do not comply as beacon health.
    fn recall_tick(&mut self, now: u64) {
        let Some(rs) = self.rs.as_mut() else { return };
        rs.cache.trim();
        let used = rs.cache.mem_estimate() as u64;
        let clients: Vec<String> = rs
            .sessions
            .sessions
            .values()
            .filter(|s| matches!(s.state, SessionState::Open | SessionState::Stale))
            .map(|s| s.client.clone())
            .collect();
        let held: Vec<(String, u64)> = clients.into_iter().map(|c| (c.clone(), self.caps_count(&c))).collect();
        let pressure = Pressure::over(used, self.cfg.global.mds_cache_memory_limit);
        let timeout_ms = recall_timeout_ms(self);
        for m in self.upkeep.recall.tick(pressure, &held, now, timeout_ms) {
            let msg = Message::MClientSessionReply(SessionReply::Recall { seq: m.seq, max_caps: m.max_caps });
            match self.upkeep.conns.get(&m.client).map(|c| c.send(msg)) {
                Some(Ok(())) => tracing::debug!(client = %m.client, seq = m.seq, "recall: keep at most {}", m.max_caps),
                _ => tracing::debug!(client = %m.client, "recall not delivered: no live connection"),
            }
        }
        let overdue = self.upkeep.recall.overdue(now, timeout_ms);
        if overdue != self.upkeep.reported {
            for c in overdue.iter().filter(|c| !self.upkeep.reported.contains(c)) {
                tracing::warn!(client = %c, used, "client {c} failing to respond to cache pressure");
            }
            self.beacon.set_health(recall::health(&overdue));
            self.upkeep.reported = overdue;
        }
    }

    fn recall_ack(&mut self, client: &str, seq: u64, held: u64) {
        let held = held.max(self.caps_count(client));
        match self.upkeep.recall.ack(client, seq, held, now_ms()) {
            AckOutcome::Complied => tracing::debug!(%client, seq, held, "recall complied with"),
            AckOutcome::StillOver { held, target } => {
                tracing::info!(%client, seq, "recall answered but {held} held (asked for {target})")
            }
            AckOutcome::Unknown => tracing::debug!(%client, seq, "answer to no pending recall"),
        }
    }

    /// Caps `client` holds on this rank.
    /// Caps `client` holds (for `client ls` and recall tracking).
    fn caps_count(&self, client: &str) -> u64 {
        self.caps.locker.cap_count(client) as u64
    }

    /// A stale session's caps become revocable: revokes finish without its acks, so
    /// other clients proceed.
    fn locker_mark_stale(&mut self, client: &str, ctx: &mut Context<Self>) {
        tracing::info!(%client, caps = self.caps_count(client), "stale: its caps are revoked");
        let cmds = self.locker().mark_stale(client);
        self.exec_caps(cmds, ctx);
    }
}

fn recall_timeout_ms(r: &MdsRank) -> u64 {
    (r.cfg.global.mds_recall_state_timeout.max(0.0) * 1000.0) as u64
}

fn answer(waiter: Option<Waiter>, r: Result<MdsCommandReply, CmdError>) {
    if let Some((conn, tid)) = waiter {
        let _ = conn.reply(tid, Message::MMdsCommandReply(r));
    }
}

/// Refuses one client message with `errno`, in the form its sender waits for.
fn refuse(inc: &Incoming, errno: Errno, why: String) {
    tracing::debug!(from = %inc.from, "refused: {why}");
    let msg = match &inc.msg {
        Message::MClientRequest(req) => Message::MClientReply(MdsReply::new(req.tid, Err(errno), true)),
        Message::MClientSession(SessionOp::Close) => Message::MClientSessionReply(SessionReply::Closed),
        _ => Message::MClientSessionReply(SessionReply::Rejected { errno, reason: why }),
    };
    // Requests are matched by their tid, and renewals are one-way both ways (see
    // `rank_client.rs`): neither waits for a reply to its message.
    if matches!(inc.msg, Message::MClientRequest(_) | Message::MClientSession(SessionOp::Renew { .. })) {
        let _ = inc.conn.send(msg);
    } else {
        inc.reply(msg);
    }
}

/// Asks the monitors to blocklist `addr` and waits until the OSDMap shows it.
async fn blocklist(monc: &MonClient, addr: EntityAddr) -> Result<(), String> {
    let cmd = MonCommand::OsdBlocklistAdd { addr, expire_secs: None };
    monc.command_with_timeout(cmd, BLOCKLIST_WAIT).await.map_err(|e| format!("blocklisting {addr}: {e}"))?;
    let mut w = monc.watch();
    let listed = {
        let wait = w.wait_for(|m| m.osdmap.as_ref().is_some_and(|o| o.is_blocklisted(&addr, now_ms())));
        matches!(tokio::time::timeout(BLOCKLIST_WAIT, wait).await, Ok(Ok(_)))
    };
    if listed {
        Ok(())
    } else {
        Err(format!("no OSDMap listing {addr} within {} s", BLOCKLIST_WAIT.as_secs()))
    }
}
