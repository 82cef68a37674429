//! The Osd actor: boot, map following, heartbeats and reports to the monitors.
//! Placement groups, replication and recovery hang off this actor as they arrive.
use actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::heartbeat::Heartbeats;
use super::pg::Pg;
use super::store::ObjectStore;
use super::worker::{ReadPool, StoreWorker};
use crate::maps::PgId;
use crate::msg::osd::OsdOpRequest;
use crate::net::ConnHandle;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use crate::auth::Identity;
use crate::config::ClusterConfig;
use crate::ids::{EntityAddr, EntityName, OsdId};
use crate::maps::OsdMap;
use crate::monc::MonClient;
use crate::msg::{Message, MonSubscribe, OsdBoot, OsdFailure};
use crate::net::{FaultRules, Incoming, Messenger, MsgrOptions};

/// A client request waiting for, or being served by, this OSD.
pub(super) struct ClientOp {
    pub req: OsdOpRequest,
    pub conn: ConnHandle,
    pub tid: u64,
    /// When the request arrived (slow-op reports, `osd_wait.rs`).
    pub since: Instant,
    /// A slow-op warning was logged for it.
    pub complained: bool,
}

/// A write being replicated: the replicas yet to acknowledge and the local commit.
pub(super) struct Inflight {
    pub op: ClientOp,
    /// Change in the PG's object count once the write commits.
    pub objects_delta: i64,
    pub waiting: BTreeSet<OsdId>,
    pub local_done: bool,
    pub error: Option<crate::msg::osd::OsdError>,
}

pub struct Osd {
    pub(super) id: OsdId,
    cfg: Arc<ClusterConfig>,
    host: String,
    pub(super) msgr: Messenger,
    pub(super) monc: Arc<MonClient>,
    pub(super) map: Option<Arc<OsdMap>>,
    hb: Heartbeats,
    last_boot: Option<Instant>,
    pub(super) store: Arc<ObjectStore>,
    pub(super) worker: StoreWorker,
    pub(super) readers: ReadPool,
    pub(super) pgs: BTreeMap<PgId, Pg>,
    pub(super) waiting: BTreeMap<PgId, VecDeque<ClientOp>>,
    /// Client ops waiting for an object busy with an earlier op (`osd_wait.rs`).
    pub(super) obj_waiting: HashMap<(PgId, String), VecDeque<ClientOp>>,
    pub(super) inflight: HashMap<(PgId, crate::msg::osd::Eversion), Inflight>,
    /// OSDMap epochs seen or fetched, for past intervals.
    pub(super) history: BTreeMap<u64, Arc<OsdMap>>,
    /// Epochs the monitors could not provide (skipped when computing intervals).
    pub(super) history_gaps: BTreeSet<u64>,
    pub(super) fetching: bool,
    pub(super) me: Option<Addr<Osd>>,
    /// PG states last reported to the monitors, and when all were last sent.
    pub(super) reported: (BTreeMap<PgId, String>, Instant),
    /// Client ops held past `osd_op_complaint_time` (checked every second), and what
    /// the monitors were last told of them.
    pub(super) slow: (crate::msg::osd::SlowOps, crate::msg::osd::SlowOps),
    /// Highest `up_thru` this OSD has asked the monitors for, and when.
    pub(super) alive_sent: (u64, Instant),
    /// The data directory (its store; its disk's space is reported and checked).
    data: std::path::PathBuf,
    /// Why writes are refused while the disk is past `osd_failsafe_full_ratio`
    /// (checked every second).
    pub(super) full: Option<String>,
    /// Pushes being sent in parts, by (PG, receiving OSD).
    pub(super) pushes: HashMap<(PgId, OsdId), super::osd_recovery::PushCursor>,
    /// Pushes being received in parts, by (PG, sending OSD): the interval and the next
    /// part expected.
    pub(super) push_in: HashMap<(PgId, OsdId), (u64, u32)>,
}

use crate::now_ms;

/// A new OSDMap epoch reached this daemon.
#[derive(Message)]
#[rtype(result = "()")]
struct NewMap(Arc<OsdMap>);

/// Old OSDMap epochs fetched from the monitors.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct HistoryArrived {
    pub first: u64,
    pub last: u64,
    pub maps: Option<Vec<OsdMap>>,
}

impl Handler<HistoryArrived> for Osd {
    type Result = ();
    fn handle(&mut self, m: HistoryArrived, _: &mut Self::Context) {
        self.history_arrived(m.first, m.last, m.maps);
    }
}

/// Starts OSD `id` of `cfg` in the current actix arbiter.
pub async fn start(cfg: Arc<ClusterConfig>, id: OsdId) -> anyhow::Result<Addr<Osd>> {
    let me = cfg
        .osd
        .get(&id.to_string())
        .ok_or_else(|| anyhow::anyhow!("osd.{id} is not in the configuration"))?
        .clone();
    let ident = Identity::load(&cfg.key_dir, &EntityName::osd(id))?;
    let faults = FaultRules::parse(&cfg.global.ms_inject_faults).map_err(anyhow::Error::msg)?;
    let (msgr, rx) = Messenger::bind(&ident, me.addr, true, MsgrOptions::from_options(&cfg.global), faults)?;
    std::fs::create_dir_all(&me.data)?;
    let store = Arc::new(ObjectStore::open(&me.data)?);
    let worker = StoreWorker::start(
        store.clone(),
        &format!("osd.{id}"),
        cfg.global.osd_debug_inject_commit_error,
        cfg.global.osd_inline_commit_max_bytes,
    )?;
    let readers = ReadPool::start(&format!("osd.{id}"))?;
    let monc = MonClient::new(msgr.clone(), &cfg);
    monc.start_subscription(MonSubscribe { osdmap: Some(0), auth: Some(0), ..Default::default() });
    let maps = monc.map_updates(|m| m.osdmap.clone().map(NewMap));
    let host = me.host.clone().unwrap_or_else(|| format!("host-{id}"));
    tracing::info!(osd = id, addr = %me.addr, %host, "osd starting");
    Ok(Osd::create(move |ctx| {
        ctx.add_stream(crate::net::incoming_stream(rx));
        ctx.add_stream(maps);
        Osd {
            id,
            cfg,
            host,
            msgr,
            monc,
            map: None,
            hb: Heartbeats::default(),
            last_boot: None,
            store,
            worker,
            readers,
            pgs: BTreeMap::new(),
            waiting: BTreeMap::new(),
            obj_waiting: HashMap::new(),
            inflight: HashMap::new(),
            alive_sent: (0, Instant::now()),
            slow: Default::default(),
            history: BTreeMap::new(),
            history_gaps: BTreeSet::new(),
            fetching: false,
            me: None,
            reported: (BTreeMap::new(), Instant::now()),
            data: me.data.clone(),
            full: None,
            pushes: HashMap::new(),
            push_in: HashMap::new(),
        }
    }))
}

impl Actor for Osd {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.me = Some(ctx.address());
        let g = &self.cfg.global;
        ctx.run_interval(Duration::from_secs_f64(g.osd_heartbeat_interval), |act, _| act.heartbeat());
        ctx.run_interval(Duration::from_secs_f64(g.osd_beacon_report_interval), |act, _| act.beacon());
        ctx.run_interval(Duration::from_millis(500), |act, _| act.maybe_boot());
        ctx.run_interval(Duration::from_millis(250), |act, ctx| {
            act.peering_tick();
            act.drive_activated(ctx);
        });
        ctx.run_interval(Duration::from_millis(100), |act, _| act.report_pgs());
        self.check_full();
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            act.check_full();
            act.slow.0 = act.slow_ops(Duration::from_secs_f64(act.cfg.global.osd_op_complaint_time));
        });
        self.maybe_boot();
    }
}

impl StreamHandler<Incoming> for Osd {
    fn handle(&mut self, inc: Incoming, ctx: &mut Self::Context) {
        if self.monc.handle_map(&inc.msg) {
            return;
        }
        let peer_osd = match inc.from.kind {
            crate::ids::EntityKind::Osd => inc.from.id.parse::<OsdId>().ok(),
            _ => None,
        };
        match inc.msg {
            Message::MOsdOp(req) => {
                self.client_op(ClientOp { req, conn: inc.conn, tid: inc.tid, since: Instant::now(), complained: false }, ctx)
            }
            Message::MOsdPeer(crate::msg::osd::OsdPeerMsg::List { pg, after, max }) => {
                let m = crate::msg::osd::OsdPeerMsg::List { pg, after, max };
                self.on_peer(peer_osd.unwrap_or(u32::MAX), m, inc.conn, inc.tid, ctx)
            }
            Message::MOsdPeer(m) if peer_osd.is_some() => self.on_peer(peer_osd.unwrap_or_default(), m, inc.conn, inc.tid, ctx),
            Message::MOsdPing { from, stamp_ms, reply, .. } if inc.from == EntityName::osd(from) => {
                self.hb.heard(from, Instant::now());
                if !reply {
                    let epoch = self.epoch();
                    let pong = Message::MOsdPing { from: self.id, epoch, stamp_ms, reply: true };
                    let _ = inc.conn.send(pong);
                }
            }
            other => tracing::debug!(from = %inc.from, msg = other.name(), "unexpected message ignored"),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl StreamHandler<NewMap> for Osd {
    fn handle(&mut self, NewMap(map): NewMap, ctx: &mut Self::Context) {
        tracing::debug!(osd = self.id, epoch = map.epoch, "new osdmap");
        self.hb.update_peers(&map, self.id, Instant::now());
        self.forget_restarted_peers(&map);
        self.history.insert(map.epoch, map.clone());
        while self.history.len() > 3000 {
            self.history.pop_first();
        }
        self.map = Some(map.clone());
        self.maybe_boot();
        self.report_full();
        self.update_pgs(&map, ctx);
    }

    fn finished(&mut self, _: &mut Self::Context) {}
}

impl Osd {
    fn epoch(&self) -> u64 {
        self.map.as_ref().map_or(0, |m| m.epoch)
    }

    fn my_addr(&self) -> EntityAddr {
        self.msgr.entity_addr()
    }

    /// True when the map shows this very instance up.
    pub(super) fn booted(&self) -> bool {
        let me = self.my_addr();
        self.map
            .as_ref()
            .and_then(|m| m.osds.get(&self.id))
            .is_some_and(|o| o.up && o.addr == Some(me))
    }

    /// Sends `MOsdBoot` until the map shows this instance up (also after being wrongly
    /// marked down), at most twice a second.
    fn maybe_boot(&mut self) {
        if self.booted() || self.last_boot.is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
            return;
        }
        if self.map.as_ref().and_then(|m| m.osds.get(&self.id)).is_some_and(|o| !o.up && self.last_boot.is_some()) {
            tracing::warn!(osd = self.id, epoch = self.epoch(), "map marks me down; booting again");
        }
        self.last_boot = Some(Instant::now());
        let boot = OsdBoot { id: self.id, addr: self.my_addr(), host: self.host.clone(), epoch: self.epoch() };
        let monc = self.monc.clone();
        actix::spawn(async move {
            if let Err(e) = monc.send(Message::MOsdBoot(boot)).await {
                tracing::debug!("boot not sent: {e}");
            }
        });
    }

    /// A peer whose instance (nonce) changed in the map restarted: its old connection
    /// is dead even if QUIC has not noticed yet.
    fn forget_restarted_peers(&self, new: &OsdMap) {
        let Some(old) = &self.map else { return };
        for (id, o) in &new.osds {
            let before = old.osds.get(id).and_then(|x| x.addr);
            if let (Some(b), Some(a)) = (before, o.addr) {
                if b != a && *id != self.id {
                    let msgr = self.msgr.clone();
                    let peer = EntityName::osd(*id);
                    actix::spawn(async move { msgr.forget(&peer, b.addr).await });
                }
            }
        }
    }

    fn heartbeat(&mut self) {
        let Some(map) = self.map.clone() else { return };
        if !self.booted() {
            return;
        }
        let stamp_ms = now_ms();
        for peer in self.hb.peers().collect::<Vec<_>>() {
            let Some(addr) = map.osds.get(&peer).and_then(|o| o.addr) else { continue };
            let msgr = self.msgr.clone();
            let ping = Message::MOsdPing { from: self.id, epoch: map.epoch, stamp_ms, reply: false };
            actix::spawn(async move {
                let _ = msgr.send(&EntityName::osd(peer), addr.addr, ping).await;
            });
        }
        let grace = Duration::from_secs_f64(self.cfg.global.osd_heartbeat_grace);
        let interval = Duration::from_secs_f64(self.cfg.global.osd_heartbeat_interval);
        for (target, silent) in self.hb.overdue(grace, interval, Instant::now()) {
            tracing::info!(osd = self.id, target, silent_ms = silent.as_millis() as u64, "reporting peer failed");
            let f = OsdFailure { target, reporter: self.id, failed_for_ms: silent.as_millis() as u64, epoch: map.epoch };
            let monc = self.monc.clone();
            actix::spawn(async move {
                let _ = monc.send(Message::MOsdFailure(f)).await;
            });
        }
    }

    /// Sends the states of the PGs this OSD is primary for: at once when one changed,
    /// else every `osd_pg_stat_report_interval`.
    fn report_pgs(&mut self) {
        let Some(map) = self.map.clone() else { return };
        if !self.booted() {
            return;
        }
        let mut stats = Vec::new();
        let mut states = BTreeMap::new();
        for pg in self.pgs.values().filter(|p| p.is_primary(self.id)) {
            let size = map.pools.get(&pg.id.pool).map_or(1, |p| p.size as usize);
            let state = pg.state_name(size);
            let missing = size.saturating_sub(pg.acting.len()) as u64 + pg.pushing.len() as u64;
            states.insert(pg.id, state.clone());
            stats.push(crate::msg::osd::PgStat {
                pg: pg.id,
                state,
                acting: pg.acting.clone(),
                primary: pg.primary,
                last_update: pg.info.last_update,
                num_objects: pg.num_objects,
                degraded_objects: pg.num_objects * missing,
                misplaced_objects: 0,
                epoch: map.epoch,
            });
        }
        let period = Duration::from_secs_f64(self.cfg.global.osd_pg_stat_report_interval);
        if states == self.reported.0 && self.slow.0 == self.slow.1 && self.reported.1.elapsed() < period {
            return;
        }
        self.reported = (states, Instant::now());
        self.slow.1 = self.slow.0;
        let slow = self.slow.0;
        let (monc, osd) = (self.monc.clone(), self.id);
        let space = osd_space(&self.data);
        actix::spawn(async move {
            let _ = monc.send(Message::MPgStats { osd, stats, space, slow }).await;
        });
    }

    fn beacon(&mut self) {
        if !self.booted() {
            return;
        }
        let (monc, id, epoch) = (self.monc.clone(), self.id, self.epoch());
        actix::spawn(async move {
            let _ = monc.send(Message::MOsdBeacon { id, epoch }).await;
        });
    }
}

/// The OSD's space: its file system's size and free space (statvfs) and its store's size.
fn osd_space(data: &std::path::Path) -> Option<crate::msg::osd::OsdSpace> {
    let (total, avail) = fs_space(data).ok()?;
    let used = std::fs::read_dir(data).ok()?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
    Some(crate::msg::osd::OsdSpace { total, used, avail })
}

impl Osd {
    /// Refuses writes (ENOSPC) while the data directory's file system is fuller than
    /// `osd_failsafe_full_ratio`, before the store itself runs out of space (a commit
    /// that fails for lack of space leaves the store refusing everything until a
    /// restart). Removals stay allowed, so space can be freed.
    fn check_full(&mut self) {
        let ratio = self.cfg.global.osd_failsafe_full_ratio;
        let used = fs_space(&self.data).map(|(total, avail)| (total.saturating_sub(avail), total));
        let full = match used {
            Ok((used, total)) if total > 0 && used as f64 / total as f64 > ratio => Some(format!(
                "osd.{} is full: its disk is {:.1}% used, above osd_failsafe_full_ratio {ratio}",
                self.id,
                used as f64 * 100.0 / total as f64
            )),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(path = %self.data.display(), "cannot read disk usage: {e}");
                self.full.clone()
            }
        };
        if full.is_some() != self.full.is_some() {
            match &full {
                Some(why) => tracing::warn!("{why}: refusing writes"),
                None => tracing::info!("disk usage below osd_failsafe_full_ratio again: accepting writes"),
            }
        }
        self.full = full;
        self.report_full();
    }

    /// Tells the monitors when the map's `full` state of this OSD is not what its disk
    /// says, so primaries of the PGs it serves refuse writes that take space (checked
    /// every second, so a lost report is sent again).
    pub(super) fn report_full(&self) {
        let full = self.full.is_some();
        let Some(map) = self.map.as_ref() else { return };
        if !self.booted() || map.osds.get(&self.id).is_none_or(|o| o.full == full) {
            return;
        }
        let (monc, osd) = (self.monc.clone(), self.id);
        actix::spawn(async move {
            let _ = monc.send(Message::MOsdFull { osd, full }).await;
        });
    }
}

/// Size and free space of the file system holding `path`, in bytes; free space as
/// `df` shows it (blocks reserved for root count as unavailable).
// The statvfs fields are 64-bit here but not on every target.
#[allow(clippy::unnecessary_cast)]
fn fs_space(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs fills the struct it is given from a NUL-terminated path.
    let r = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled the struct.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize as u64;
    Ok((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}
