//! The Monitor actor. It owns a raft-rs `RawNode` over `MonStore`: incoming
//! messages become raft steps, commands and daemon reports become proposals (only on
//! the leader; peons forward), committed entries are applied to `MonState`, and every
//! new map epoch is pushed to subscribers. The leader alone keeps the volatile
//! timers (last beacon per MDS, last report per OSD) that drive failure detection.
use actix::prelude::*;
use protobuf::Message as _;
use raft::{RawNode, StateRole};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::osd_monitor::FailureReports;
use super::state::{MonOp, MonParams, MonState};
use super::store::MonStore;
use super::commands;
use crate::auth::{allows_mon_read, allows_mon_write, Identity};
use crate::config::ClusterConfig;
use crate::error::{CmdError, Errno};
use crate::ids::{EntityKind, EntityName, Gid, OsdId};
use crate::msg::{CommandReply, Message, MonCommand, MonSubscribe};
use crate::net::{ConnHandle, FaultRules, Incoming, Messenger, MsgrOptions};

/// A proposal as stored in the log: who proposed it (to answer the waiter) and what.
#[derive(Serialize, Deserialize)]
struct Proposal {
    origin: String,
    id: u64,
    op: MonOp,
}

/// Where the answer to a command goes.
enum Responder {
    None,
    Conn { conn: ConnHandle, tid: u64 },
}

impl Responder {
    fn send(self, r: Result<CommandReply, CmdError>) {
        if let Responder::Conn { conn, tid } = self {
            let _ = conn.reply(tid, Message::MMonCommandReply(r));
        }
    }
}

struct Subscriber {
    conn: ConnHandle,
    want: MonSubscribe,
}

/// Volatile state only the leader keeps; reset when leadership is won.
struct LeaderState {
    beacons: HashMap<Gid, Instant>,
    osd_reports: HashMap<OsdId, Instant>,
    failures: FailureReports,
    /// Each MDS daemon's health warnings from its latest beacon.
    mds_health: HashMap<Gid, Vec<crate::msg::command::HealthCheck>>,
}

pub struct Monitor {
    name: String,
    cfg: Arc<ClusterConfig>,
    params: MonParams,
    msgr: Messenger,
    raw: RawNode<MonStore>,
    state: MonState,
    waiting: HashMap<u64, (Responder, Instant)>,
    next_proposal: u64,
    subs: HashMap<usize, Subscriber>,
    peers: HashMap<u64, ConnHandle>,
    connecting: HashSet<u64>,
    heard: HashMap<String, Instant>,
    leader: Option<LeaderState>,
    known_clients: Arc<RwLock<BTreeSet<EntityName>>>,
    me: Option<Addr<Monitor>>,
    /// Commands forwarded to the leader and not yet answered; failed with EAGAIN as
    /// soon as the leader changes, so clients need not wait on a dead leader.
    forwards: Vec<Arc<std::sync::Mutex<Option<Responder>>>>,
    last_leader: u64,
    /// Latest PG reports from primaries (volatile, like Ceph's mgr; rebuilt within
    /// one report interval after a leader change).
    pg_stats: HashMap<crate::maps::PgId, crate::msg::osd::PgStat>,
    /// Each OSD's last reported space (with its PG stats).
    osd_space: HashMap<crate::ids::OsdId, crate::msg::osd::OsdSpace>,
    /// Each OSD's last reported slow ops (with its PG stats).
    pub(super) osd_slow: HashMap<crate::ids::OsdId, crate::msg::osd::SlowOps>,
}

use crate::now_ms;

/// Starts monitor `name` of `cfg` in the current actix arbiter.
pub async fn start(cfg: Arc<ClusterConfig>, name: &str) -> anyhow::Result<Addr<Monitor>> {
    let me = cfg
        .mon
        .get(name)
        .ok_or_else(|| anyhow::anyhow!("mon.{name} is not in the configuration"))?
        .clone();
    let id = Identity::load(&cfg.key_dir, &EntityName::mon(name))?;
    let faults = FaultRules::parse(&cfg.global.ms_inject_faults).map_err(anyhow::Error::msg)?;
    let (msgr, rx) = Messenger::bind(&id, me.addr, true, MsgrOptions::from_options(&cfg.global), faults)?;
    let initial = MonState::initial(&cfg);
    let voters: Vec<u64> = initial.monmap.mons.values().map(|m| m.rank).collect();
    let rank = initial.monmap.mons[name].rank;
    let store = MonStore::open(&me.data, &voters)?;
    let state = match store.snapshot_data() {
        [] => initial,
        data => MonState::decode(data).map_err(|e| anyhow::anyhow!("monitor snapshot: {e}"))?,
    };
    let g = &cfg.global;
    let rc = raft::Config {
        id: rank,
        election_tick: g.mon_raft_election_ticks as usize,
        heartbeat_tick: g.mon_raft_heartbeat_ticks as usize,
        applied: store.snapshot_index(),
        check_quorum: true,
        pre_vote: true,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    let logger = slog::Logger::root(RaftLog { mon: name.to_string() }, slog::o!());
    let raw = RawNode::new(&rc, store, &logger)?;
    let known = Arc::new(RwLock::new(state.auth.keys().cloned().collect::<BTreeSet<_>>()));
    let k2 = known.clone();
    msgr.set_authorizer(Arc::new(move |e: &EntityName| {
        if e.kind != EntityKind::Client || k2.read().map(|s| s.contains(e)).unwrap_or(false) {
            Ok(())
        } else {
            Err(format!("{e} is not in the auth database"))
        }
    }));
    tracing::info!(mon = name, addr = %me.addr, "monitor starting");
    let name = name.to_string();
    Ok(Monitor::create(move |ctx| {
        ctx.add_stream(crate::net::incoming_stream(rx));
        Monitor {
            name,
            params: MonParams::from_config(&cfg),
            cfg,
            msgr,
            raw,
            state,
            waiting: HashMap::new(),
            next_proposal: rand::random::<u64>() >> 1,
            subs: HashMap::new(),
            peers: HashMap::new(),
            connecting: HashSet::new(),
            heard: HashMap::new(),
            leader: None,
            known_clients: known,
            me: None,
            forwards: Vec::new(),
            last_leader: 0,
            pg_stats: HashMap::new(),
            osd_space: HashMap::new(),
            osd_slow: HashMap::new(),
        }
    }))
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.me = Some(ctx.address());
        let g = &self.cfg.global;
        ctx.run_interval(Duration::from_millis(g.mon_raft_tick_ms), |act, _| {
            act.raw.tick();
            act.on_ready();
        });
        ctx.run_interval(g.mon_tick(), |act, _| act.leader_tick());
    }
}

impl StreamHandler<Incoming> for Monitor {
    fn handle(&mut self, inc: Incoming, _ctx: &mut Self::Context) {
        let Incoming { from, tid, msg, conn, .. } = inc;
        match msg {
            Message::MMonRaft { data } if from.kind == EntityKind::Mon => self.step(&from, &data),
            Message::MMonSubscribe(want) => self.subscribe(conn, want),
            Message::MMonGetOsdMaps { first, last } => {
                let _ = conn.reply(tid, self.old_osdmaps(first, last));
            }
            Message::MMonForward { origin, msg, .. } if from.kind == EntityKind::Mon => {
                self.dispatch(origin, *msg, Responder::Conn { conn, tid })
            }
            other => self.dispatch(from, other, Responder::Conn { conn, tid }),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Monitor {
    fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    fn leader_name(&self) -> Option<String> {
        let lid = self.raw.raft.leader_id;
        self.state.monmap.by_rank(lid).map(|m| m.name.clone())
    }

    /// Handles a message from `from` (directly or forwarded by a peon).
    fn dispatch(&mut self, from: EntityName, msg: Message, resp: Responder) {
        match msg {
            Message::MMonCommand(cmd) => self.command(from, cmd, resp),
            Message::MMdsBeacon(b) if from == EntityName::mds(&b.name) => self.leader_op(from, Message::MMdsBeacon(b)),
            m @ (Message::MOsdBoot(_)
            | Message::MOsdFailure(_)
            | Message::MOsdAlive(_)
            | Message::MOsdBeacon { .. }
            | Message::MOsdPgTemp { .. }
            | Message::MOsdFull { .. }
            | Message::MPgStats { .. })
                if osd_sender_matches(&from, &m) =>
            {
                self.leader_op(from, m)
            }
            other => {
                tracing::warn!(%from, msg = other.name(), "unexpected message ignored");
                resp.send(Err(CmdError::einval(format!("unexpected {}", other.name()))));
            }
        }
    }

    fn authorize(&self, from: &EntityName, cmd: &MonCommand) -> Result<(), CmdError> {
        let denied = |what: &str| Err(CmdError::new(Errno::EACCES, format!("{from} may not {what}")));
        match from.kind {
            EntityKind::Mon => Ok(()),
            // An MDS blocklists the clients it evicts (Ceph's `allow profile mds`).
            EntityKind::Mds if matches!(cmd, MonCommand::OsdBlocklistAdd { .. }) => Ok(()),
            EntityKind::Osd | EntityKind::Mds if cmd.is_write() => denied("change monitor state"),
            EntityKind::Osd | EntityKind::Mds => Ok(()),
            EntityKind::Client => match self.state.auth.get(from) {
                None => denied("talk to the monitors (not in the auth database)"),
                Some(c) if cmd.is_write() && !allows_mon_write(c) => denied("change monitor state (mon caps lack w)"),
                Some(c) if !allows_mon_read(c) => denied("read monitor state (mon caps lack r)"),
                Some(_) => Ok(()),
            },
        }
    }

    fn command(&mut self, from: EntityName, cmd: MonCommand, resp: Responder) {
        if let Err(e) = self.authorize(&from, &cmd) {
            return resp.send(Err(e));
        }
        if cmd == MonCommand::LocalStatus {
            return resp.send(Ok(CommandReply::Local(self.local_status())));
        }
        if !self.is_leader() {
            return self.forward(from, Message::MMonCommand(cmd), resp);
        }
        match &cmd {
            MonCommand::Status => return resp.send(Ok(CommandReply::Status(Box::new(self.status())))),
            MonCommand::MonStat => return resp.send(Ok(CommandReply::MonStat(self.mon_status()))),
            MonCommand::PgDump => return resp.send(Ok(CommandReply::PgDump(self.pg_dump()))),
            MonCommand::Df => return resp.send(Ok(CommandReply::Df(self.df()))),
            _ => {}
        }
        if let Some(r) = commands::read(&self.state, &cmd) {
            return resp.send(r);
        }
        let op = MonOp::Command { cmd, now_ms: now_ms() };
        let mut probe = self.state.clone();
        match probe.apply(&op, &self.params) {
            Err(e) => resp.send(Err(e)),
            Ok(r) if probe == self.state => resp.send(Ok(r)),
            Ok(_) => self.propose(op, resp),
        }
    }

    /// Daemon reports: handled by the leader, forwarded by peons.
    fn leader_op(&mut self, from: EntityName, msg: Message) {
        let Some(ls) = self.leader.as_mut() else {
            return self.forward(from, msg, Responder::None);
        };
        let now = Instant::now();
        let op = match msg {
            Message::MMdsBeacon(beacon) => {
                ls.beacons.insert(beacon.gid, now);
                ls.mds_health.insert(beacon.gid, beacon.health.clone());
                MonOp::MdsBeacon { beacon, now_ms: now_ms() }
            }
            Message::MOsdBoot(boot) => {
                ls.osd_reports.insert(boot.id, now);
                ls.failures.forget(boot.id);
                MonOp::OsdBoot { boot, now_ms: now_ms() }
            }
            Message::MOsdBeacon { id, .. } => {
                ls.osd_reports.insert(id, now);
                return;
            }
            Message::MOsdFailure(f) => {
                ls.failures.report(&f, now_ms());
                let ids = ls.failures.ready_to_mark_down(&self.state.osdmap, &self.params.osd, now_ms());
                MonOp::OsdMarkDown { ids, now_ms: now_ms() }
            }
            Message::MOsdAlive(alive) => MonOp::OsdAlive { alive },
            Message::MOsdPgTemp { entries, .. } => MonOp::PgTemp { entries },
            Message::MOsdFull { osd, full } => MonOp::OsdFull { osd, full },
            Message::MPgStats { osd, stats, space, slow } => {
                self.osd_slow.insert(osd, slow);
                for st in stats {
                    self.pg_stats.insert(st.pg, st);
                }
                if let Some(sp) = space {
                    self.osd_space.insert(osd, sp);
                }
                return;
            }
            _ => return,
        };
        self.propose_if_changes(op);
    }

    fn forward(&mut self, origin: EntityName, msg: Message, resp: Responder) {
        let Some(leader) = self.leader_name().filter(|l| *l != self.name) else {
            return resp.send(Err(CmdError::new(Errno::EAGAIN, "no monitor quorum yet (no leader elected)")));
        };
        let addr = self.state.monmap.mons[&leader].addr;
        let peer = EntityName::mon(&leader);
        let fwd = Message::MMonForward { origin, nonce: 0, msg: Box::new(msg) };
        let msgr = self.msgr.clone();
        let timeout = self.cfg.global.command_timeout();
        if let Responder::None = resp {
            actix::spawn(async move {
                let _ = msgr.send(&peer, addr, fwd).await;
            });
            return;
        }
        let slot = Arc::new(std::sync::Mutex::new(Some(resp)));
        self.forwards.retain(|s| s.lock().map(|g| g.is_some()).unwrap_or(false));
        self.forwards.push(slot.clone());
        actix::spawn(async move {
            let r = match msgr.request(&peer, addr, fwd, timeout).await {
                Ok(Message::MMonCommandReply(r)) => r,
                Ok(other) => Err(CmdError::new(Errno::EIO, format!("leader answered {}", other.name()))),
                Err(e) => Err(CmdError::new(Errno::EAGAIN, format!("leader {peer} unreachable: {e}"))),
            };
            if let Some(resp) = slot.lock().ok().and_then(|mut g| g.take()) {
                resp.send(r);
            }
        });
    }

    fn would_change(&self, op: &MonOp) -> bool {
        let mut probe = self.state.clone();
        probe.apply(op, &self.params).is_ok() && probe != self.state
    }

    fn propose_if_changes(&mut self, op: MonOp) {
        if self.would_change(&op) {
            self.propose(op, Responder::None);
        }
    }

    fn propose(&mut self, op: MonOp, resp: Responder) {
        let id = self.next_proposal;
        self.next_proposal += 1;
        let p = Proposal { origin: self.name.clone(), id, op };
        let data = match rmp_serde::to_vec_named(&p) {
            Ok(d) => d,
            Err(e) => return resp.send(Err(CmdError::new(Errno::EIO, e.to_string()))),
        };
        match self.raw.propose(vec![], data) {
            Ok(()) => {
                if !matches!(resp, Responder::None) {
                    self.waiting.insert(id, (resp, Instant::now()));
                }
            }
            Err(e) => resp.send(Err(CmdError::new(Errno::EAGAIN, format!("proposal dropped: {e}")))),
        }
        self.on_ready();
    }

    fn step(&mut self, from: &EntityName, data: &[u8]) {
        let m = match raft::prelude::Message::parse_from_bytes(data) {
            Ok(m) => m,
            Err(e) => return tracing::warn!(%from, "bad consensus message: {e}"),
        };
        self.heard.insert(from.id.clone(), Instant::now());
        if let Err(e) = self.raw.step(m) {
            tracing::debug!(%from, "raft step: {e}");
        }
        self.on_ready();
    }
}

#[path = "monitor_ready.rs"]
mod ready;

/// An OSD may only speak for itself.
fn osd_sender_matches(from: &EntityName, m: &Message) -> bool {
    let id = match m {
        Message::MOsdBoot(b) => b.id,
        Message::MOsdFailure(f) => f.reporter,
        Message::MOsdAlive(a) => a.id,
        Message::MOsdBeacon { id, .. } => *id,
        Message::MPgStats { osd, .. } | Message::MOsdPgTemp { osd, .. } | Message::MOsdFull { osd, .. } => *osd,
        _ => return false,
    };
    from.kind == EntityKind::Osd && from.id == id.to_string()
}

/// Forwards raft-rs's slog records to tracing.
struct RaftLog {
    mon: String,
}

impl slog::Drain for RaftLog {
    type Ok = ();
    type Err = slog::Never;
    fn log(&self, r: &slog::Record, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        match r.level() {
            slog::Level::Critical | slog::Level::Error => tracing::error!(mon = %self.mon, "raft: {}", r.msg()),
            slog::Level::Warning => tracing::warn!(mon = %self.mon, "raft: {}", r.msg()),
            slog::Level::Info => tracing::info!(mon = %self.mon, "raft: {}", r.msg()),
            _ => tracing::trace!(mon = %self.mon, "raft: {}", r.msg()),
        }
        Ok(())
    }
}
