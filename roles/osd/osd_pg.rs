//! The Osd actor's placement-group work: client ops on the primary, replication to
//! the acting set (acknowledged only when every acting replica has it durable), and
//! peering on every interval change: gather infos and logs from the acting set, take
//! the newest as authoritative, recover the primary and the replicas from the log (or
//! backfill whole PGs when the log does not reach back), record `up_thru`, activate.
use actix::prelude::*;
use std::collections::BTreeSet;

use super::ops::{reads, store_errno, take_writes, write_txn};
use super::osd::{ClientOp, Inflight, Osd};
use crate::now_ms;
use super::pg::{to_recover, Pg, Phase};
use super::store::{ObjectStore, StoreError, Transaction};
use crate::ids::{EntityName, OsdId};
use crate::maps::{OsdMap, PgId};
use crate::msg::osd::{Eversion, OsdError, OsdOp, OsdOpResult, OsdPeerMsg, PgInfo, PgLogEntry};
use crate::msg::{Message, OsdAlive};
use crate::net::ConnHandle;

/// Reads at least this long (or of whole objects) run on a reader thread.
const BULK_READ: u64 = 256 << 10;

/// Whether a read-only request reads enough data to run off the actor's thread (a
/// read to the end of the object counts by the object's size).
fn is_bulk_read(store: &ObjectStore, pg: PgId, oid: &str, ops: &[OsdOp]) -> bool {
    ops.iter().any(|o| match o {
        OsdOp::Read { len: Some(l), .. } => *l >= BULK_READ,
        OsdOp::Read { off, len: None } => store.stat(pg, oid).is_ok_and(|s| s.size >= off.saturating_add(BULK_READ)),
        _ => false,
    })
}

/// Answers a client op. A reply too large for a message (a read of more than
/// `ms_max_frame_bytes`) becomes an error naming the limit, so the client learns at
/// once instead of waiting out its timeout.
fn reply(op: &ClientOp, r: OsdOpResult) {
    if let Err(crate::net::NetError::Encode(why)) = op.conn.reply(op.tid, Message::MOsdOpReply(r)) {
        let message = format!("the reply cannot be sent ({why}): read in smaller pieces");
        let _ = op.conn.reply(op.tid, Message::MOsdOpReply(OsdOpResult::Err(OsdError { errno: crate::error::Errno::EMSGSIZE, message })));
    }
}


/// A request naming a pool or PG that does not exist at an epoch the client has
/// seen, or an empty object name, or no ops: answered with an error, not a retry.
fn bad_target(map: &OsdMap, op: &ClientOp) -> Option<OsdError> {
    let err = |errno, message: String| Some(OsdError { errno, message });
    let r = &op.req;
    match map.pools.get(&r.pg.pool) {
        None => err(crate::error::Errno::ENOENT, format!("pool {} does not exist", r.pg.pool)),
        Some(p) if r.pg.seed >= p.pg_num => err(crate::error::Errno::EINVAL, format!("pg {} does not exist", r.pg)),
        Some(p) if crate::crush::object_to_pg(p, &r.oid) != r.pg => {
            err(crate::error::Errno::EINVAL, format!("object {} does not belong to pg {}", r.oid, r.pg))
        }
        _ if r.oid.is_empty() || r.oid.len() > 4096 => err(crate::error::Errno::EINVAL, "object name must be 1..=4096 bytes".into()),
        _ if r.ops.is_empty() => err(crate::error::Errno::EINVAL, "request carries no operation".into()),
        _ => None,
    }
}

impl Osd {
    /// Brings every PG this OSD serves in line with a new map: a changed acting set or
    /// primary starts a new interval (and peering on the primary).
    pub(super) fn update_pgs(&mut self, map: &OsdMap, ctx: &mut Context<Self>) {
        if !self.booted() {
            return;
        }
        let me = self.id;
        for pool in map.pools.values() {
            for id in crate::crush::pool_pgs(pool) {
                let m = crate::crush::pg_mapping(map, id);
                if !m.acting.contains(&me) && !self.pgs.contains_key(&id) {
                    continue;
                }
                let store = &self.store;
                let p = self.pgs.entry(id).or_insert_with(|| {
                    Pg::load(store, id).unwrap_or_else(|e| {
                        tracing::error!(pg = %id, "cannot load pg: {e}");
                        Pg::new(id)
                    })
                });
                // A member that came up after the interval began (this OSD marked down
                // and booted again, a peer restarted) went down in between, in maps this
                // OSD may never have seen (it follows only the newest, and skips maps
                // while it is marked down): a new interval, even with the same acting set.
                let rebooted = m.acting.iter().any(|o| map.osds.get(o).is_some_and(|x| x.up_from > p.interval_since));
                let changed = p.acting != m.acting || p.primary != m.acting_primary || p.interval_since == 0 || rebooted;
                if changed {
                    self.new_interval(id, m.acting, m.acting_primary, pool.min_size as usize, map.epoch);
                } else if self.pgs.get(&id).is_some_and(|p| p.phase == Phase::WaitUpThru) {
                    self.check_up_thru(id, map);
                }
            }
        }
        self.drive_all(ctx);
    }

    fn new_interval(&mut self, id: PgId, acting: Vec<OsdId>, primary: Option<OsdId>, min_size: usize, epoch: u64) {
        let me = self.id;
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        tracing::debug!(pg = %id, ?acting, ?primary, epoch, "new interval");
        pg.acting = acting;
        pg.primary = primary;
        pg.min_size = min_size;
        pg.interval_since = epoch;
        pg.peer_info.clear();
        pg.pushing.clear();
        pg.busy.clear();
        let dropped: Vec<Inflight> = self.inflight.extract_if(|(p, _), _| *p == id).map(|(_, v)| v).collect();
        for f in dropped {
            reply(&f.op, OsdOpResult::Retry { epoch, why: format!("pg {id} changed interval") });
        }
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        if pg.primary != Some(me) {
            pg.phase = Phase::Replica;
            return;
        }
        pg.recount(&self.store);
        if pg.acting.len() < pg.min_size {
            pg.phase = Phase::Inactive;
        } else {
            self.start_peering(id);
        }
    }

    fn start_peering(&mut self, id: PgId) {
        let me = self.id;
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        pg.phase = Phase::Peering;
        pg.step_since = std::time::Instant::now();
        let others: Vec<OsdId> = pg.acting.iter().copied().filter(|o| *o != me).collect();
        pg.peer_info = others.iter().map(|o| (*o, None)).collect();
        let epoch = pg.interval_since;
        for o in &others {
            self.send_peer(*o, OsdPeerMsg::Query { pg: id, epoch });
        }
        if others.is_empty() {
            self.check_prior(id);
        }
    }

    pub(super) fn send_peer(&self, osd: OsdId, m: OsdPeerMsg) {
        let Some(addr) = self.map.as_ref().and_then(|m| m.osds.get(&osd)).and_then(|o| o.addr) else { return };
        let msgr = self.msgr.clone();
        actix::spawn(async move {
            if let Err(e) = msgr.send(&EntityName::osd(osd), addr.addr, Message::MOsdPeer(m)).await {
                tracing::debug!(osd, "peer message not sent: {e}");
            }
        });
    }

    pub(super) fn current(&self, id: PgId, epoch: u64, phase: Phase) -> bool {
        self.pgs.get(&id).is_some_and(|p| p.interval_since == epoch && p.phase == phase && p.is_primary(self.id))
    }

    fn on_notify(&mut self, from: OsdId, id: PgId, epoch: u64, info: PgInfo, log: Vec<PgLogEntry>) {
        if !self.current(id, epoch, Phase::Peering) {
            return;
        }
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        if let Some(slot) = pg.peer_info.get_mut(&from) {
            *slot = Some((info, log));
        }
        if pg.peer_info.values().all(Option::is_some) {
            self.check_prior(id);
        }
    }

    /// Before choosing the authoritative copy: every interval since the PG last went
    /// active that may have accepted writes must be represented by a member we heard
    /// from. Members outside the acting set (strays) are queried too; if some such
    /// interval has no member up, the PG stays down.
    pub(super) fn check_prior(&mut self, id: PgId) {
        let me = self.id;
        let Some(map) = self.map.clone() else { return };
        let Some(pg) = self.pgs.get(&id) else { return };
        let les = pg.peer_info.values().flatten().map(|(i, _)| i.last_epoch_started).chain([pg.info.last_epoch_started]).max();
        let since = les.unwrap_or(0).max(1);
        let missing: Vec<u64> =
            (since..=map.epoch).filter(|e| !self.history.contains_key(e) && !self.history_gaps.contains(e)).collect();
        if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
            return self.fetch_history(*first, *last);
        }
        let maps: Vec<&OsdMap> = self.history.range(since..=map.epoch).map(|(_, m)| m.as_ref()).collect();
        let iv = super::peering::past_intervals(&maps, id);
        let ps = super::peering::prior_set(&iv, since, |o| map.osds.get(&o).is_some_and(|x| x.up));
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        if ps.down {
            if pg.phase != Phase::Down {
                tracing::warn!(pg = %id, since, "down: an interval that may have accepted writes has no member up");
            }
            pg.phase = Phase::Down;
            pg.step_since = std::time::Instant::now();
            return;
        }
        let strays: Vec<OsdId> = ps.probe.into_iter().filter(|o| *o != me && !pg.peer_info.contains_key(o)).collect();
        if strays.is_empty() {
            return self.choose_authority(id);
        }
        let epoch = pg.interval_since;
        for s in &strays {
            pg.peer_info.insert(*s, None);
        }
        for s in strays {
            tracing::debug!(pg = %id, stray = s, "querying a member of a past interval");
            self.send_peer(s, OsdPeerMsg::Query { pg: id, epoch });
        }
    }

    fn fetch_history(&mut self, first: u64, last: u64) {
        if self.fetching {
            return;
        }
        self.fetching = true;
        let (monc, me) = (self.monc.clone(), self.me.clone());
        actix::spawn(async move {
            let q = Message::MMonGetOsdMaps { first, last };
            let maps = match monc.request(q, std::time::Duration::from_secs(5)).await {
                Ok(Message::MOsdMaps(m)) => Some(m),
                _ => None,
            };
            if let Some(me) = me {
                me.do_send(super::osd::HistoryArrived { first, last, maps });
            }
        });
    }

    /// Old maps arrived: record them (and what the monitors lack), then resume the
    /// peering of every PG that was waiting for them.
    pub(super) fn history_arrived(&mut self, first: u64, last: u64, maps: Option<Vec<OsdMap>>) {
        self.fetching = false;
        let Some(maps) = maps else { return };
        let complete = maps.len() < 200;
        let newest = maps.last().map_or(first, |m| m.epoch);
        for m in maps {
            self.history.insert(m.epoch, std::sync::Arc::new(m));
        }
        if complete {
            for e in first..=last.min(newest.max(last)) {
                if !self.history.contains_key(&e) {
                    self.history_gaps.insert(e);
                }
            }
        }
        let waiting: Vec<PgId> = self
            .pgs
            .values()
            .filter(|p| p.phase == Phase::Peering && p.is_primary(self.id) && p.peer_info.values().all(Option::is_some))
            .map(|p| p.id)
            .collect();
        for id in waiting {
            self.check_prior(id);
        }
    }

    /// Retries peering steps that stalled (a message lost to a peer that restarted):
    /// queries unanswered after 1 s, recovery unfinished after 10 s, `up_thru` unrecorded.
    pub(super) fn peering_tick(&mut self) {
        let stalled: Vec<(PgId, Phase)> = self
            .pgs
            .values()
            .filter(|p| p.is_primary(self.id))
            .filter(|p| match p.phase {
                Phase::Peering | Phase::WaitUpThru | Phase::Down => p.step_since.elapsed() > std::time::Duration::from_secs(1),
                Phase::Recovering => p.step_since.elapsed() > std::time::Duration::from_secs(10),
                _ => false,
            })
            .map(|p| (p.id, p.phase))
            .collect();
        for (id, phase) in stalled {
            tracing::debug!(pg = %id, phase = phase.name(), "retrying a stalled peering step");
            match phase {
                Phase::WaitUpThru => {
                    if let Some(map) = self.map.clone() {
                        self.check_up_thru(id, &map);
                    }
                }
                _ => self.start_peering(id),
            }
        }
    }

    /// The newest copy in the acting set is authoritative; the primary pulls from it
    /// if it is behind, then pushes to every replica that is behind.
    fn choose_authority(&mut self, id: PgId) {
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        let mine = pg.info.last_update;
        let best = pg
            .peer_info
            .iter()
            .filter_map(|(o, i)| i.as_ref().map(|(info, log)| (*o, info.clone(), log.clone())))
            .max_by_key(|(_, info, _)| info.last_update);
        pg.phase = Phase::Recovering;
        pg.step_since = std::time::Instant::now();
        let epoch = pg.interval_since;
        match best {
            Some((auth, info, log)) if info.last_update > mine => {
                // This copy's own entries past where its log meets the authority's are
                // divergent: their objects are pulled too (removed if the authority
                // has none).
                let (since, names) = to_recover(&pg.info, &pg.log_vec(), &info, &log);
                let all = since < info.log_tail;
                if all && pg.acting.contains(&auth) {
                    // Too far behind for the log: let the up-to-date copy be acting
                    // primary (pg_temp) while this one is backfilled, instead of
                    // blocking I/O.
                    let mut temp = vec![auth];
                    temp.extend(pg.acting.iter().copied().filter(|o| *o != auth));
                    tracing::info!(pg = %id, auth, ?temp, "primary lacks data beyond the log: requesting pg_temp");
                    return self.request_pg_temp(vec![(id, temp)]);
                }
                let oids = if all { vec![] } else { names.into_iter().map(|(o, _)| o).collect() };
                tracing::info!(pg = %id, auth, %mine, %since, theirs = %info.last_update, all, "pulling from the authoritative copy");
                self.send_peer(auth, OsdPeerMsg::Pull { pg: id, epoch, oids, all });
            }
            _ => self.push_to_replicas(id),
        }
    }

    pub(super) fn maybe_ready(&mut self, id: PgId) {
        if self.pgs.get(&id).is_some_and(|p| p.pushing.is_empty() && p.phase == Phase::Recovering) {
            if let Some(map) = self.map.clone() {
                self.check_up_thru(id, &map);
            }
        }
    }

    /// An interval may go read-write only once the monitors recorded `up_thru` for it
    /// (peering of later intervals relies on that record).
    fn check_up_thru(&mut self, id: PgId, map: &OsdMap) {
        let me = self.id;
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        let up_thru = map.osds.get(&me).map_or(0, |o| o.up_thru);
        if up_thru >= pg.interval_since {
            return self.activate(id);
        }
        if pg.phase != Phase::WaitUpThru {
            pg.phase = Phase::WaitUpThru;
            pg.step_since = std::time::Instant::now();
        }
        let want = pg.interval_since;
        if self.alive_sent.0 < want || self.alive_sent.1.elapsed() > std::time::Duration::from_secs(1) {
            self.alive_sent = (want, std::time::Instant::now());
            let monc = self.monc.clone();
            actix::spawn(async move {
                let _ = monc.send(Message::MOsdAlive(OsdAlive { id: me, want })).await;
            });
        }
    }

    pub(super) fn request_pg_temp(&self, entries: Vec<(PgId, Vec<OsdId>)>) {
        let (monc, osd) = (self.monc.clone(), self.id);
        actix::spawn(async move {
            let _ = monc.send(Message::MOsdPgTemp { osd, entries }).await;
        });
    }

    fn activate(&mut self, id: PgId) {
        let me = self.id;
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        pg.phase = Phase::Active;
        pg.info.last_epoch_started = pg.interval_since;
        let mut txn = Transaction::default();
        pg.persist_info(&mut txn);
        let (info, epoch, others) =
            (pg.info.clone(), pg.interval_since, pg.acting.iter().copied().filter(|o| *o != me).collect::<Vec<_>>());
        if let Err(e) = self.store.apply(id, &txn) {
            tracing::error!(pg = %id, "cannot record activation: {e}");
        }
        tracing::debug!(pg = %id, epoch, "active");
        for o in others {
            self.send_peer(o, OsdPeerMsg::Activate { pg: id, epoch, info: info.clone() });
        }
        // Every acting copy is now current: hand the PG back to its CRUSH primary.
        if self.map.as_ref().is_some_and(|m| m.pg_temp.contains_key(&id)) {
            tracing::info!(pg = %id, "backfill done: clearing pg_temp");
            self.request_pg_temp(vec![(id, vec![])]);
        }
    }

    pub(super) fn on_peer(&mut self, from: OsdId, m: OsdPeerMsg, conn: ConnHandle, tid: u64, ctx: &mut Context<Self>) {
        match m {
            OsdPeerMsg::Query { pg, epoch } => {
                let store = &self.store;
                let p = self.pgs.entry(pg).or_insert_with(|| Pg::load(store, pg).unwrap_or_else(|_| Pg::new(pg)));
                let (info, log) = (p.info.clone(), p.log_vec());
                let _ = conn.send(Message::MOsdPeer(OsdPeerMsg::Notify { pg, epoch, info, log }));
            }
            OsdPeerMsg::Notify { pg, epoch, info, log } => self.on_notify(from, pg, epoch, info, log),
            OsdPeerMsg::Pull { pg, epoch, oids, all } => self.on_pull(from, pg, epoch, oids, all, conn),
            OsdPeerMsg::Push { pg, epoch, objects, info, log, complete, part, more } => {
                self.on_push(from, pg, epoch, &objects, info, log, complete, part, more, conn)
            }
            OsdPeerMsg::PushReply { pg, epoch, ok, part } => self.on_push_reply(from, pg, epoch, ok, part),
            OsdPeerMsg::Activate { pg, info, .. } => {
                if let Some(p) = self.pgs.get_mut(&pg) {
                    p.info.last_epoch_started = info.last_epoch_started;
                }
            }
            OsdPeerMsg::RepOp { pg, epoch, entry, ops, mtime_ms } => self.rep_op(from, pg, epoch, entry, ops, mtime_ms, conn, ctx),
            OsdPeerMsg::RepOpReply { pg, version, ok } => self.write_progress(pg, version, Some(from), ok, None, ctx),
            OsdPeerMsg::List { pg, after, max } => {
                self.store.settle();
                let max = max.clamp(1, 10_000) as usize;
                let objects = self.store.list_objects(pg, after.as_deref(), max).unwrap_or_default();
                let done = objects.len() < max;
                let _ = conn.reply(tid, Message::MOsdPeer(OsdPeerMsg::ListReply { objects, done }));
            }
            OsdPeerMsg::ListReply { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rep_op(&mut self, from: OsdId, id: PgId, epoch: u64, entry: PgLogEntry, ops: Vec<OsdOp>, mtime: u64, conn: ConnHandle, ctx: &mut Context<Self>) {
        let pg = self.pgs.entry(id).or_insert_with(|| Pg::new(id));
        if pg.primary.is_some_and(|p| p != from) && pg.interval_since >= epoch {
            tracing::debug!(pg = %id, from, "replication from a non-primary ignored");
            return;
        }
        let (version, interval) = (entry.version, pg.interval_since);
        let mut txn = write_txn(&entry.oid, ops, mtime);
        pg.log_write(entry, &mut txn);
        // Acknowledged once durable in the store's log, before the store applies it
        // (nothing reads a replica's copy until a later peering, which waits for that:
        // `ObjectStore::settle`). A copy that fails to apply after that exits the OSD
        // (the store thread does), so only the first receiver matters here.
        if self.inflight.is_empty() && self.worker.can_commit_now(&txn) {
            // The only write at this OSD: commit here, acknowledging from inside the
            // commit once the record is durable.
            let ack = |ok: bool| {
                let _ = conn.send(Message::MOsdPeer(OsdPeerMsg::RepOpReply { pg: id, version, ok }));
            };
            let mut acked = false;
            let r = self.worker.commit_now(id, txn, |r| {
                if r.is_ok() {
                    ack(true);
                    acked = true;
                }
            });
            match r {
                Ok(()) if !acked => ack(true), // (nothing needed a durable record)
                Ok(()) => {}
                Err(e) => {
                    self.replicated_write_failed(id, interval, version, &e);
                    ack(false);
                }
            }
            return;
        }
        let oid = txn.ops.iter().find_map(|o| o.oid().map(str::to_string)).unwrap_or_default();
        self.store_started(id, &oid);
        let (durable, applied) = self.worker.submit_durable(id, txn);
        // Until it is applied, an op on the object (this OSD may be its primary in a
        // later interval) waits: its check would read the store from before it.
        ctx.spawn(actix::fut::wrap_future(applied).map(move |_, act: &mut Osd, ctx| act.store_done(id, &oid, ctx)));
        ctx.spawn(actix::fut::wrap_future(durable).map(move |r, act: &mut Osd, _| {
            let ok = match r {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    act.replicated_write_failed(id, interval, version, &e);
                    false
                }
                Err(_) => false,
            };
            let _ = conn.send(Message::MOsdPeer(OsdPeerMsg::RepOpReply { pg: id, version, ok }));
        }));
    }

    /// Refuses blocklisted instances (any entity), then checks a client's `osd`
    /// caps for the op's pool (daemons pass).
    fn authorize(&self, op: &ClientOp, map: &OsdMap) -> Result<(), OsdOpResult> {
        let who = op.conn.peer();
        let instance = crate::ids::EntityAddr { addr: op.conn.remote(), nonce: op.req.reqid.nonce };
        if map.is_blocklisted(&instance, now_ms()) {
            return Err(OsdOpResult::Err(OsdError {
                errno: crate::error::Errno::EBLOCKLISTED,
                message: format!("{who} at {instance} is blocklisted"),
            }));
        }
        if who.is_daemon() {
            return Ok(());
        }
        let Some(db) = self.monc.current().auth else {
            return Err(OsdOpResult::Retry { epoch: map.epoch, why: "auth database not received yet".into() });
        };
        let pool = map.pools.get(&op.req.pg.pool).map(|p| p.name.clone()).unwrap_or_default();
        let write = op.req.ops.iter().any(OsdOp::is_write);
        match db.entries.get(who) {
            Some(caps) if crate::auth::allows_osd(caps, &pool, write) => Ok(()),
            _ => Err(OsdOpResult::Err(OsdError {
                errno: crate::error::Errno::EACCES,
                message: format!("{who} may not {} pool '{pool}'", if write { "write to" } else { "read from" }),
            })),
        }
    }

    /// Why a write that takes space cannot go to `id`: this OSD's disk is full, or
    /// the map shows another OSD of the acting set full (its own check would fail the
    /// replicated write there, Ceph's per-OSD full state).
    fn full_acting(&self, id: PgId, map: &OsdMap) -> Option<String> {
        if let Some(why) = &self.full {
            return Some(why.clone());
        }
        let acting = &self.pgs.get(&id)?.acting;
        let o = acting.iter().find(|o| map.osds.get(o).is_some_and(|i| i.full))?;
        Some(format!("osd.{o} is full (its disk is past osd_failsafe_full_ratio): pg {id} refuses writes that take space"))
    }

    /// A client op arrived (or is retried from its PG's wait queue).
    pub(super) fn client_op(&mut self, op: ClientOp, ctx: &mut Context<Self>) {
        self.run_client_op(op, false, ctx)
    }

    /// `next`: the op comes off its object's queue (it is the next for the object).
    pub(super) fn run_client_op(&mut self, op: ClientOp, next: bool, ctx: &mut Context<Self>) {
        let Some(map) = self.map.clone() else { return self.park(op) };
        if let Err(r) = self.authorize(&op, &map) {
            return reply(&op, r);
        }
        let id = op.req.pg;
        let primary = self.pgs.get(&id).and_then(|p| p.primary);
        if op.req.epoch > map.epoch {
            return self.park(op);
        }
        if !self.booted() {
            // Marked down: others may have taken over the PG meanwhile; it serves
            // nothing until it is up again and has peered.
            return self.park(op);
        }
        if let Some(e) = bad_target(&map, &op) {
            return reply(&op, OsdOpResult::Err(e));
        }
        if primary != Some(self.id) {
            return reply(&op, OsdOpResult::Retry { epoch: map.epoch, why: format!("osd.{} is not primary of {id}", self.id) });
        }
        let Some(pg) = self.pgs.get(&id).filter(|p| p.phase == Phase::Active) else { return self.park(op) };
        if pg.busy.contains(&op.req.oid) || pg.in_store.contains_key(&op.req.oid) {
            return self.park_obj(op);
        }
        if !next && self.obj_queued(id, &op.req.oid) {
            // Ops queued for the object go first (the PG was not active when it was
            // released).
            let oid = op.req.oid.clone();
            self.park_obj(op);
            return self.drive_obj(id, &oid, ctx);
        }
        if op.req.ops.iter().any(OsdOp::is_write) {
            if op.req.ops.iter().any(OsdOp::may_grow) {
                if let Some(why) = self.full_acting(id, &map) {
                    return reply(&op, OsdOpResult::Err(OsdError { errno: crate::error::Errno::ENOSPC, message: why }));
                }
            }
            self.start_write(op, map.epoch, ctx);
        } else if is_bulk_read(&self.store, id, &op.req.oid, &op.req.ops) {
            self.start_bulk_read(op, ctx);
        } else {
            let r = reads(&self.store, id, &op.req.oid, &op.req.ops);
            let version = self.pgs.get(&id).map_or_else(Eversion::default, |p| p.info.last_update);
            reply(&op, r.map_or_else(OsdOpResult::Err, |outs| OsdOpResult::Ok { outs, version }));
        }
    }

    /// Runs a bulk read on a reader thread, which also encodes and sends the reply.
    /// The object is busy meanwhile, so a write to it waits until the read is done
    /// (as it would if the read ran on this thread).
    fn start_bulk_read(&mut self, op: ClientOp, ctx: &mut Context<Self>) {
        let id = op.req.pg;
        let Some(pg) = self.pgs.get(&id) else { return };
        let version = pg.info.last_update;
        let oid = op.req.oid.clone();
        self.store_started(id, &oid);
        let store = self.store.clone();
        let rx = self.readers.run(move || {
            let r = reads(&store, id, &op.req.oid, &op.req.ops);
            reply(&op, r.map_or_else(OsdOpResult::Err, |outs| OsdOpResult::Ok { outs, version }));
        });
        ctx.spawn(actix::fut::wrap_future(rx).map(move |_, act: &mut Osd, ctx| {
            act.store_done(id, &oid, ctx);
            if act.waiting.contains_key(&id) {
                act.drive(id, ctx);
            }
        }));
    }

    fn start_write(&mut self, mut op: ClientOp, epoch: u64, ctx: &mut Context<Self>) {
        let (me, id) = (self.id, op.req.pg);
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        if let Some(version) = pg.applied(&op.req.reqid) {
            return reply(&op, OsdOpResult::Ok { outs: vec![], version });
        }
        let mtime = now_ms();
        let mut writes = take_writes(&mut op.req.ops);
        // What every copy will apply (the log entry joins it below), checked here as the
        // commit would check it, so a write that cannot apply gets no version.
        let mut txn = write_txn(&op.req.oid, writes.clone(), mtime);
        let objects_delta = match self.store.check(id, &op.req.oid, &txn) {
            Err(e) => return reply(&op, OsdOpResult::Err(store_errno(&e))),
            Ok((before, after)) => after as i64 - before as i64,
        };
        let version = pg.next_version(epoch);
        let deleted = matches!(op.req.ops.iter().rev().find(|o| o.is_write()), Some(OsdOp::Remove));
        let entry = PgLogEntry { version, oid: op.req.oid.clone(), reqid: Some(op.req.reqid.clone()), deleted };
        let oid = op.req.oid.clone();
        pg.busy.insert(op.req.oid.clone());
        let others: BTreeSet<OsdId> = pg.acting.iter().copied().filter(|o| *o != me).collect();
        let interval = pg.interval_since;
        let mut msgs = Vec::with_capacity(others.len());
        for (i, o) in others.iter().enumerate() {
            // The last replica's message takes the ops (payloads are shared either way).
            let ops = if i + 1 < others.len() { writes.clone() } else { std::mem::take(&mut writes) };
            msgs.push((*o, OsdPeerMsg::RepOp { pg: id, epoch: interval, entry: entry.clone(), ops, mtime_ms: mtime }));
        }
        pg.log_write(entry, &mut txn);
        for (o, m) in msgs {
            self.send_peer(o, m);
        }
        self.inflight.insert((id, version), Inflight { op, objects_delta, waiting: others, local_done: false, error: None });
        // Always on the store thread: the replicas' messages leave only once this actor
        // yields, so a commit here would come before theirs rather than beside them.
        self.store_started(id, &oid);
        let rx = self.worker.submit(id, txn);
        ctx.spawn(actix::fut::wrap_future(rx).map(move |r, act: &mut Osd, ctx| {
            let err = match r {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(StoreError::Db("store thread gone".into())),
            };
            if let Some(e) = &err {
                act.replicated_write_failed(id, interval, version, e);
            }
            // Counted down first: a release by `write_progress` runs the next op on
            // the object, which finds this commit applied.
            act.store_finished(id, &oid);
            act.write_progress(id, version, None, err.is_none(), err.map(|e| store_errno(&e)), ctx);
            // Dropped by an interval change meanwhile, the write released nothing:
            // the ops waiting for the object go on now that the commit is applied.
            act.drive_obj(id, &oid, ctx);
        }));
    }

    /// This copy failed to commit a replicated write (`version` of `id`, ordered in
    /// `interval`) that the others may have committed. Its PG would differ from theirs
    /// while staying active, and nothing repairs a copy before the next peering; so,
    /// as a Ceph OSD aborts when its object store fails a transaction, this OSD exits
    /// (status 70). The monitors mark it down, the PG peers without it and goes on
    /// (the client's re-sent request finds the write in the survivors' log), and when
    /// it restarts, peering recovers its copy from the authoritative log. A failure
    /// reported after the interval changed needs nothing: that peering reconciles it.
    pub(super) fn replicated_write_failed(&self, id: PgId, interval: u64, version: Eversion, e: &StoreError) {
        if self.pgs.get(&id).is_none_or(|p| p.interval_since != interval) {
            tracing::warn!(pg = %id, %version, "write failed after its interval ended (peering reconciles it): {e}");
            return;
        }
        tracing::error!(
            pg = %id, %version,
            "the object store failed a replicated write: {e}; exiting so that this copy cannot diverge from the others (restart the OSD: peering recovers it)"
        );
        std::process::exit(70);
    }

    /// Local commit (`from` None) or a replica's acknowledgement of a write.
    fn write_progress(&mut self, id: PgId, version: Eversion, from: Option<OsdId>, ok: bool, err: Option<OsdError>, ctx: &mut Context<Self>) {
        let Some(f) = self.inflight.get_mut(&(id, version)) else { return };
        match from {
            None => f.local_done = true,
            Some(o) => {
                f.waiting.remove(&o);
            }
        }
        if !ok && f.error.is_none() {
            f.error = Some(err.unwrap_or(OsdError { errno: crate::error::Errno::EIO, message: "a replica failed the write".into() }));
        }
        if !(f.local_done && f.waiting.is_empty()) {
            return;
        }
        let Some(f) = self.inflight.remove(&(id, version)) else { return };
        if let Some(pg) = self.pgs.get_mut(&id) {
            if f.error.is_none() {
                pg.num_objects = pg.num_objects.saturating_add_signed(f.objects_delta);
            }
        }
        let r = match f.error {
            Some(e) => OsdOpResult::Err(e),
            None => reads(&self.store, id, &f.op.req.oid, &f.op.req.ops)
                .map_or_else(OsdOpResult::Err, |outs| OsdOpResult::Ok { outs, version }),
        };
        reply(&f.op, r);
        self.release(id, &f.op.req.oid, ctx);
    }
}
