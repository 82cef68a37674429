//! The rank's recovery after replay (thin actor glue over the pure `reconnect.rs` and
//! `Locker::reconnect_cap`/`settle_reconnected`): `up:reconnect` collects the clients'
//! `MClientReconnect`s until all are back or `mds_reconnect_timeout` passes and evicts
//! the rest; `up:rejoin` loads the stray directory and the directories the reclaimed
//! caps were seen in, then settles the lock states (revoking what no longer fits);
//! `up:clientreplay` runs the requests the reconnected clients re-sent (their unsafe
//! ones) before any other, and asks for `up:active` once they are journaled.
use actix::prelude::*;
use std::time::{Duration, Instant};

use super::rank::MdsRank;
use super::rank_client::session_key;
use super::reconnect::{reclaimed, ReconnectPhase, Verdict};
use crate::error::Errno;
use crate::maps::MdsState;
use crate::msg::caps::ClientReconnect;
use crate::msg::mds::SessionReply;
use crate::msg::Message;
use crate::net::Incoming;
use crate::now_ms;

/// How often the reconnect phase checks whether it is over.
const RECONNECT_POLL: Duration = Duration::from_millis(100);

/// The rank's recovery state (volatile).
#[derive(Default)]
pub(super) struct Recovery {
    phase: Option<ReconnectPhase>,
    /// When recovery started (replay loaded), for the log.
    since: Option<Instant>,
}

impl MdsRank {
    /// `up:reconnect`: start waiting for the replayed sessions' clients.
    pub(super) fn start_reconnect(&mut self, ctx: &mut Context<Self>) {
        self.beacon.set(MdsState::Reconnect);
        let Some(rs) = self.rs.as_ref() else { return };
        let (now, osdmap) = (now_ms(), self.monc.current().osdmap);
        let timeout_ms = (self.cfg.global.mds_reconnect_timeout.max(0.0) * 1000.0) as u64;
        let listed = |a: &crate::ids::EntityAddr| osdmap.as_ref().is_some_and(|m| m.is_blocklisted(a, now));
        let phase = ReconnectPhase::start(&rs.sessions, listed, now, timeout_ms);
        tracing::info!(sessions = rs.sessions.sessions.len(), "reconnect: waiting up to {timeout_ms} ms for clients");
        self.recovery.phase = Some(phase);
        self.recovery.since = Some(Instant::now());
        let (early, rest): (Vec<Incoming>, Vec<Incoming>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|i| matches!(i.msg, Message::MClientReconnect(_)));
        self.waiting = rest;
        for inc in early {
            self.handle_reconnect(inc, ctx);
        }
        self.check_reconnect(ctx);
    }

    fn check_reconnect(&mut self, ctx: &mut Context<Self>) {
        if self.state != MdsState::Reconnect {
            return;
        }
        match &self.recovery.phase {
            Some(p) if p.done(now_ms()) => self.finish_reconnect(ctx),
            Some(_) => {
                ctx.run_later(RECONNECT_POLL, |act, ctx| act.check_reconnect(ctx));
            }
            None => {}
        }
    }

    /// The phase is over: evict who did not come back, move on to rejoin.
    fn finish_reconnect(&mut self, ctx: &mut Context<Self>) {
        let Some(p) = self.recovery.phase.as_ref() else { return };
        let (gone, back) = (p.to_evict(), p.reconnected().len());
        tracing::info!(reconnected = back, evicting = gone.len(), "reconnect done");
        for client in gone {
            self.evict(client, "did not reconnect within mds_reconnect_timeout".into(), None, ctx);
        }
        self.beacon.set(MdsState::Rejoin);
    }

    /// An `MClientReconnect`: the session and caps survive if it is expected now.
    pub(super) fn handle_reconnect(&mut self, inc: Incoming, ctx: &mut Context<Self>) {
        let _ = ctx;
        if matches!(self.state, MdsState::Replay | MdsState::Resolve) {
            // The client saw the FSMap before we did: keep it for the phase.
            self.waiting.push(inc);
            return;
        }
        let Message::MClientReconnect(m) = &inc.msg else { return };
        let m: ClientReconnect = m.clone();
        let inc = &inc;
        let client = session_key(inc);
        let verdict = match (self.recovery.phase.as_mut(), self.state) {
            (Some(p), MdsState::Reconnect) => p.reconnect(&client, &m),
            _ => Verdict::Refused(format!("this MDS is {}, not in reconnect", self.state.name())),
        };
        let root = self.rs.as_ref().and_then(|rs| rs.sessions.get(&client)).map(|s| s.root);
        let reply = match (verdict, root) {
            (Verdict::Accepted, Some(root)) => {
                self.note_conn(&client, &inc.conn);
                self.note_session_conn(&client, &inc.conn);
                for r in reclaimed(&m) {
                    self.caps.locker.reconnect_cap(&client, r);
                }
                if let Some(rs) = self.rs.as_mut() {
                    rs.sessions.renew(&client, now_ms());
                }
                tracing::info!(%client, caps = m.caps.len(), "client reconnected");
                let timeout_ms = self.mdsmap.as_ref().map_or(60, |m| m.session_timeout) as u64 * 1000;
                SessionReply::Opened { root_ino: root, session_timeout_ms: timeout_ms }
            }
            (Verdict::Accepted, None) => SessionReply::Rejected { errno: Errno::ESTALE, reason: "no session".into() },
            (Verdict::Refused(why), _) => {
                tracing::info!(%client, "reconnect refused: {why}");
                SessionReply::Rejected { errno: Errno::ESTALE, reason: format!("reconnect refused: {why}") }
            }
        };
        inc.reply(Message::MClientSessionReply(reply));
    }

    /// `up:rejoin`: load the stray directory and where the reclaimed inodes live, then
    /// settle the locks.
    pub(super) fn rejoin(&mut self, ctx: &mut Context<Self>) {
        self.beacon.set(MdsState::Rejoin);
        let (Some(rs), Some(store)) = (self.rs.as_ref(), self.store.clone()) else { return };
        let cache = &rs.cache;
        let mut dirs = self.recovery.phase.as_ref().map(|p| p.dirs_to_load(|i| cache.inode(i).is_none())).unwrap_or_default();
        dirs.push(cache.mdsdir());
        dirs.retain(|d| cache.dir(*d).is_none_or(|f| !f.complete));
        let fut = async move {
            let mut out = Vec::new();
            for d in dirs {
                match store.fetch_dir(d).await {
                    Ok(m) => out.push((d, m)),
                    Err(e) => tracing::warn!("rejoin: directory {d:#x} not loaded: {e}"),
                }
            }
            out
        };
        ctx.spawn(fut.into_actor(self).map(|loaded, act, ctx| {
            if let Some(rs) = act.rs.as_mut() {
                for (d, m) in loaded {
                    if let Err(e) = rs.cache.load_dir(d, &m) {
                        tracing::warn!("rejoin: directory {d:#x} undecodable: {e}");
                    }
                }
            }
            act.finish_rejoin(ctx);
        }));
    }

    fn finish_rejoin(&mut self, ctx: &mut Context<Self>) {
        let cmds = self.locker().settle_reconnected();
        self.exec_caps(cmds, ctx);
        let replay = self.waiting.iter().any(|i| self.is_replay(i));
        self.beacon.set(if replay { MdsState::ClientReplay } else { MdsState::Active });
    }

    /// Whether `inc` is a request of a reconnected client (re-sent unsafe requests
    /// run in clientreplay, before new ones).
    fn is_replay(&self, inc: &Incoming) -> bool {
        matches!(inc.msg, Message::MClientRequest(_) | Message::MClientCaps(_))
            && self.recovery.phase.as_ref().is_some_and(|p| p.reconnected().contains(&session_key(inc)))
    }

    /// Whether the rank serves `inc` now (else it waits for active).
    pub(super) fn serves(&self, inc: &Incoming) -> bool {
        match self.state {
            MdsState::Active => true,
            MdsState::ClientReplay => self.is_replay(inc),
            _ => false,
        }
    }

    /// `up:clientreplay`: run the reconnected clients' queued requests, then ask for
    /// active once everything they journaled is durable.
    pub(super) fn client_replay(&mut self, ctx: &mut Context<Self>) {
        self.beacon.set(MdsState::ClientReplay);
        self.start_serving(ctx);
        let queued = std::mem::take(&mut self.waiting);
        tracing::info!(queued = queued.len(), "clientreplay");
        for inc in queued {
            self.dispatch(inc, ctx);
        }
        let barrier = self.journal(super::events::LogEvent::NoOp, false);
        ctx.spawn(async move { barrier.await.is_ok() }.into_actor(self).map(|ok, act, _| {
            if ok && act.state == MdsState::ClientReplay {
                act.beacon.set(MdsState::Active);
            }
        }));
    }

    /// Logs how long recovery took once active.
    pub(super) fn recovery_done(&mut self) {
        if let Some(t) = self.recovery.since.take() {
            tracing::info!("recovery took {:.2} s (replay loaded -> active)", t.elapsed().as_secs_f64());
        }
    }
}
