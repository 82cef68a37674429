//! MdsRank: the actor holding one rank. It follows its own record in the FSMap (every
//! state change checked with `state_transition_valid`; an illegal one respawns the
//! daemon), creates or loads and replays the rank's metadata, owns the journal cursor
//! and segments (appending through the MdLog actor), and in `up:active` serves client
//! sessions and requests (`rank_client.rs`) and flushes dirty metadata so segments
//! expire and the journal is trimmed.
use actix::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

use super::daemon::{respawn, BeaconShared};
use super::events::LogEvent;
use super::journal::JournalCursor;
use super::mdlog::{Append, MdLog, SetExpire};
use super::replay::{expire_pos, RankState};
use super::store::{LoadError, Loaded, MetaStore};
use crate::config::ClusterConfig;
use crate::ids::{Gid, Rank};
use crate::maps::{state_transition_valid, FsMap, MdsMap, MdsState};
use crate::monc::MonClient;
use crate::net::Incoming;
use crate::objecter::Objecter;

/// A newer FSMap reached the daemon.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NewFsMap(pub Arc<FsMap>);

pub struct MdsRank {
    pub(super) cfg: Arc<ClusterConfig>,
    name: String,
    gid: Gid,
    pub(super) monc: Arc<MonClient>,
    pub(super) obj: Arc<Objecter>,
    pub(super) beacon: Arc<BeaconShared>,
    pub(super) state: MdsState,
    rank: Option<Rank>,
    pub(super) mdsmap: Option<MdsMap>,
    pub(super) store: Option<Arc<MetaStore>>,
    pub(super) rs: Option<RankState>,
    mdlog: Option<Addr<MdLog>>,
    cursor: JournalCursor,
    segments: BTreeMap<u64, u64>,
    seg_events: u64,
    flushing: bool,
    /// Client messages that arrived before the rank was active.
    pub(super) waiting: Vec<Incoming>,
    /// Whether each session may write (from its caps when it opened).
    pub(super) session_rw: HashMap<String, bool>,
    /// Sessions whose open is not journaled yet (listed as `opening`); the journal
    /// callback that answers the client removes its entry.
    pub(super) opening: std::rc::Rc<std::cell::RefCell<std::collections::HashSet<String>>>,
    /// Session timeouts, evictions and cache-pressure recalls (`rank_sessions.rs`).
    pub(super) upkeep: super::rank_sessions::SessionUpkeep,
    /// Caps: the Locker, client connections, parked requests (`rank_caps.rs`).
    pub(super) caps: super::rank_caps::CapsState,
    /// Reconnect, rejoin and clientreplay after a replay (`rank_reconnect.rs`).
    pub(super) recovery: super::rank_reconnect::Recovery,
    /// Whether the segment, tick and session upkeep of a serving rank are running.
    serving: bool,
    /// The monitors' last `df` answer (total, available bytes) and when it came:
    /// statfs reuses it for a second (the OSDs report their space every few seconds
    /// anyway) and keeps using it while the monitors do not answer.
    pub(super) df: std::rc::Rc<std::cell::Cell<Option<(std::time::Instant, u64, u64)>>>,
}

enum BootKind {
    Create,
    Start,
    Replay,
}

use crate::now_ns;

impl MdsRank {
    pub fn new(
        cfg: Arc<ClusterConfig>,
        name: String,
        gid: Gid,
        monc: Arc<MonClient>,
        obj: Arc<Objecter>,
        beacon: Arc<BeaconShared>,
    ) -> Self {
        MdsRank {
            cfg,
            name,
            gid,
            monc,
            obj,
            beacon,
            state: MdsState::Boot,
            rank: None,
            mdsmap: None,
            store: None,
            rs: None,
            mdlog: None,
            cursor: JournalCursor { pos: 0, next_seq: 1 },
            segments: BTreeMap::new(),
            seg_events: 0,
            flushing: false,
            waiting: Vec::new(),
            session_rw: HashMap::new(),
            opening: Default::default(),
            upkeep: Default::default(),
            caps: Default::default(),
            recovery: Default::default(),
            serving: false,
            df: Default::default(),
        }
    }

    fn handle_fsmap(&mut self, m: &FsMap, ctx: &mut Context<Self>) {
        let Some(info) = m.info(self.gid).cloned() else {
            if self.state != MdsState::Boot {
                respawn(&format!("mds.{} (gid {}) is no longer in FSMap e{}", self.name, self.gid, m.epoch));
            }
            return;
        };
        if let Some(Some(fscid)) = m.locate_gid(self.gid) {
            self.mdsmap = m.filesystems.get(&fscid).map(|f| f.mdsmap.clone());
        }
        if info.state == self.state {
            return;
        }
        if !state_transition_valid(self.state, info.state) {
            respawn(&format!("illegal transition {} -> {} in FSMap e{}", self.state, info.state, m.epoch));
        }
        tracing::info!(mds = %self.name, rank = ?info.rank, "state {} -> {} (FSMap e{})", self.state, info.state, m.epoch);
        self.state = info.state;
        self.rank = info.rank;
        self.enter(ctx);
    }

    /// Acts on a state the monitors gave this daemon.
    fn enter(&mut self, ctx: &mut Context<Self>) {
        use MdsState::*;
        match self.state {
            Boot | Stopped | Damaged => {}
            Standby | StandbyReplay => self.beacon.set(self.state),
            Creating => {
                self.beacon.set(Creating);
                self.boot(BootKind::Create, ctx);
            }
            Starting => {
                self.beacon.set(Starting);
                self.boot(BootKind::Start, ctx);
            }
            Replay => {
                self.beacon.set(Replay);
                self.boot(BootKind::Replay, ctx);
            }
            // No other ranks to resolve with.
            Resolve => self.beacon.set(Reconnect),
            Reconnect => self.start_reconnect(ctx),
            Rejoin => self.rejoin(ctx),
            ClientReplay => self.client_replay(ctx),
            Active => {
                self.beacon.set(Active);
                self.activate(ctx);
            }
            Stopping => self.beacon.set(Stopped),
        }
    }

    fn boot(&mut self, kind: BootKind, ctx: &mut Context<Self>) {
        let (Some(rank), Some(mm)) = (self.rank, self.mdsmap.clone()) else {
            respawn("given a rank without a file system");
        };
        let (monc, obj) = (self.monc.clone(), self.obj.clone());
        let fut = async move {
            let mut w = monc.watch();
            let osdmap = match tokio::time::timeout(Duration::from_secs(30), w.wait_for(|m| m.osdmap.is_some())).await {
                Ok(Ok(m)) => m.osdmap.clone(),
                _ => None,
            };
            let pool = osdmap
                .and_then(|o| o.pools.get(&mm.metadata_pool).map(|p| p.name.clone()))
                .ok_or_else(|| LoadError::Damaged(format!("metadata pool {} not in the OSDMap", mm.metadata_pool)))?;
            let store = Arc::new(MetaStore { obj, pool, rank });
            let data_pool = mm.data_pools.first().copied().unwrap_or(mm.metadata_pool);
            let create = match kind {
                BootKind::Create => true,
                BootKind::Start => !store.exists().await?,
                BootKind::Replay => false,
            };
            let loaded = if create {
                let (state, header) = store.create(data_pool, now_ns()).await?;
                Loaded { state, header, cursor: JournalCursor { pos: 0, next_seq: 1 }, segments: BTreeMap::new(), events: 0 }
            } else {
                store.load().await?
            };
            Ok::<_, LoadError>((store, loaded))
        };
        ctx.spawn(fut.into_actor(self).map(|r, act, ctx| match r {
            Ok((store, loaded)) => act.install(store, loaded, ctx),
            Err(LoadError::Damaged(why)) => {
                tracing::error!(mds = %act.name, "rank metadata damaged: {why}; asking to be marked damaged");
                act.beacon.set(MdsState::Damaged);
            }
            Err(LoadError::Io(e)) => respawn(&format!("cannot load the rank: {e}")),
        }));
    }

    fn install(&mut self, store: Arc<MetaStore>, l: Loaded, ctx: &mut Context<Self>) {
        let _ = ctx;
        tracing::info!(
            mds = %self.name, rank = store.rank, events = l.events,
            "rank loaded: journal {}..{} ({} segments)", l.header.expire_pos, l.cursor.pos, l.segments.len()
        );
        let mut state = l.state;
        state.cache.set_budget(self.cfg.global.mds_cache_memory_limit as usize);
        self.mdlog = Some(MdLog::new(store.clone(), l.header, l.cursor.pos).start());
        self.store = Some(store);
        self.rs = Some(state);
        self.cursor = l.cursor;
        self.segments = l.segments;
        self.seg_events = 0;
        let next = match self.state {
            MdsState::Replay => MdsState::Reconnect,
            _ => MdsState::Active,
        };
        self.beacon.set(next);
    }

    fn activate(&mut self, ctx: &mut Context<Self>) {
        self.start_serving(ctx);
        self.recovery_done();
        for inc in std::mem::take(&mut self.waiting) {
            self.dispatch(inc, ctx);
        }
    }

    /// Once, on the first serving state (clientreplay or active): a new segment, the
    /// flush tick, session upkeep, and the stray scan (after reconnect: a stray no
    /// reconnected client claims is purged).
    pub(super) fn start_serving(&mut self, ctx: &mut Context<Self>) {
        if self.rs.is_none() {
            respawn("serving without loaded metadata");
        }
        if std::mem::replace(&mut self.serving, true) {
            return;
        }
        self.start_segment();
        ctx.run_interval(Duration::from_millis(1000), |act, ctx| act.tick(ctx));
        self.start_session_upkeep(ctx);
        self.scan_strays(ctx);
    }

    /// Frames and sends one event to the MdLog; the receiver fires once it is durable.
    pub(super) fn journal(&mut self, ev: LogEvent, segment_start: bool) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let (pos, bytes) = self.cursor.append(&ev);
        self.seg_events += 1;
        match &self.mdlog {
            Some(l) => l.do_send(Append { pos, bytes, segment_start, done: tx }),
            None => respawn("journaling without a journal"),
        }
        rx
    }

    fn start_segment(&mut self) {
        let Some(rs) = self.rs.as_mut() else { return };
        let seg = self.segments.keys().next_back().map_or(1, |s| s + 1).max(rs.cache.segment() + 1);
        let ev = LogEvent::Subtrees { segment: seg };
        rs.apply_event(&ev);
        self.segments.insert(seg, self.cursor.pos);
        self.seg_events = 0;
        drop(self.journal(ev, true));
    }

    /// Starts a new segment when the current one is full; call before a change.
    pub(super) fn maybe_segment(&mut self) {
        if self.seg_events >= self.cfg.global.mds_log_events_per_segment.max(1) {
            self.start_segment();
        }
    }

    /// Once a second: when more segments than `mds_log_max_segments` are held, write
    /// back everything the older segments dirtied, then move the expire position.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.state != MdsState::Active {
            return;
        }
        let (Some(rs), Some(store)) = (self.rs.as_mut(), self.store.clone()) else { return };
        rs.cache.trim();
        if self.segments.len() as u64 <= self.cfg.global.mds_log_max_segments.max(1) {
            return;
        }
        let Some(&current) = self.segments.keys().next_back() else { return };
        let mut items = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for &seg in self.segments.keys().filter(|s| **s < current) {
            for t in rs.cache.dirty_for_segment(seg) {
                if seen.insert(t.clone()) {
                    let (p, v) = rs.cache.flush_payload(&t);
                    items.push((t, p, v));
                }
            }
        }
        let tables = (rs.inotable.encode(), rs.sessions.encode());
        self.flushing = true;
        // The payloads hold every change applied so far, some maybe not yet journaled: a
        // no-op event journaled now is durable only once all of them are, so waiting for it
        // keeps un-journaled state out of the directory objects and tables.
        let barrier = self.journal(LogEvent::NoOp, false);
        let fut = async move {
            barrier.await.map_err(|_| crate::objecter::ObjError::Osd { errno: crate::error::Errno::EIO, message: "journal gone before the flush barrier".into() })?;
            let mut done = Vec::new();
            for (t, p, v) in items {
                store.flush(&t, p).await?;
                done.push((t, v));
            }
            store.write_full(&super::types::inotable_object(store.rank), tables.0).await?;
            store.write_full(&super::types::sessionmap_object(store.rank), tables.1).await?;
            Ok::<_, crate::objecter::ObjError>(done)
        };
        ctx.spawn(fut.into_actor(self).map(|r, act, _| {
            act.flushing = false;
            let Some(rs) = act.rs.as_mut() else { return };
            match r {
                Ok(done) => {
                    for (t, v) in done {
                        rs.cache.mark_flushed(&t, v);
                    }
                    if let Some(pos) = expire_pos(&act.segments, &rs.cache) {
                        act.segments.retain(|_, p| *p >= pos);
                        if let Some(l) = &act.mdlog {
                            l.do_send(SetExpire(pos));
                        }
                    }
                }
                Err(e) => tracing::warn!("flush failed: {e}"),
            }
        }));
    }
}

impl Actor for MdsRank {
    type Context = Context<Self>;
}

impl StreamHandler<Incoming> for MdsRank {
    fn handle(&mut self, inc: Incoming, ctx: &mut Context<Self>) {
        if self.monc.handle_map(&inc.msg) {
            return;
        }
        self.dispatch(inc, ctx);
    }
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl StreamHandler<NewFsMap> for MdsRank {
    fn handle(&mut self, m: NewFsMap, ctx: &mut Context<Self>) {
        self.handle_fsmap(&m.0, ctx);
    }
    fn finished(&mut self, _: &mut Context<Self>) {}
}
