//! The Monitor's consensus plumbing: handling raft-rs `Ready` batches (send,
//! persist, apply), pushing new epochs to subscribers, the leader's periodic
//! failure checks, and the status it reports.
use protobuf::Message as _;
use raft::prelude::{Entry, EntryType, Message as RaftMsg};
use raft::StateRole;
use std::time::{Duration, Instant};

use super::{LeaderState, Monitor, Proposal, Subscriber};
use crate::now_ms;
use crate::error::{CmdError, Errno};
use crate::ids::EntityName;
use crate::msg::command::{LocalStatus, MonStatus, StatusReport};
use crate::msg::{Message, MonCommand, MonSubscribe};
use crate::net::ConnHandle;
use crate::roles::mon::health;
use crate::roles::mon::osd_monitor::FailureReports;
use crate::roles::mon::state::{MonOp, MonState};

impl Monitor {
    pub(super) fn on_ready(&mut self) {
        if !self.raw.has_ready() {
            return;
        }
        let mut rd = self.raw.ready();
        self.send_raft(rd.take_messages());
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            match MonState::decode(snap.get_data()) {
                Ok(st) => self.state = st,
                Err(e) => fatal(&format!("snapshot from leader does not decode: {e}")),
            }
            if let Err(e) = self.raw.mut_store().apply_snapshot(snap) {
                fatal(&e.to_string());
            }
            self.after_apply();
        }
        self.apply_entries(rd.take_committed_entries());
        if let Err(e) = self.raw.mut_store().append(rd.entries(), rd.hs()) {
            fatal(&e.to_string());
        }
        self.send_raft(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);
        if let Some(c) = light.commit_index() {
            if let Err(e) = self.raw.mut_store().set_commit(c) {
                fatal(&e.to_string());
            }
        }
        self.send_raft(light.take_messages());
        self.apply_entries(light.take_committed_entries());
        self.raw.advance_apply();
        self.maybe_compact();
        self.check_role();
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        for e in entries {
            if e.get_entry_type() != EntryType::EntryNormal || e.data.is_empty() {
                continue;
            }
            let p: Proposal = match rmp_serde::from_slice(&e.data) {
                Ok(p) => p,
                Err(err) => {
                    tracing::error!(index = e.index, "undecodable log entry skipped: {err}");
                    continue;
                }
            };
            let before = self.state.osdmap.epoch;
            let r = self.state.apply(&p.op, &self.params);
            if self.state.osdmap.epoch != before {
                self.archive_osdmap();
            }
            if p.origin == self.name {
                if let Some((resp, _)) = self.waiting.remove(&p.id) {
                    resp.send(r);
                }
            }
        }
        self.after_apply();
    }

    fn archive_osdmap(&mut self) {
        let m = &self.state.osdmap;
        match rmp_serde::to_vec_named(m) {
            Ok(b) => {
                if let Err(e) = self.raw.store().archive_osdmap(m.epoch, &b) {
                    tracing::error!("cannot archive osdmap e{}: {e}", m.epoch);
                }
            }
            Err(e) => tracing::error!("cannot encode osdmap: {e}"),
        }
    }

    /// Old OSDMap epochs from the archive (at most 200 per answer).
    pub(super) fn old_osdmaps(&self, first: u64, last: u64) -> Message {
        let maps = self
            .raw
            .store()
            .archived_osdmaps(first, last, 200)
            .unwrap_or_default()
            .iter()
            .filter_map(|b| rmp_serde::from_slice(b).ok())
            .collect();
        Message::MOsdMaps(maps)
    }

    /// Publishes what changed: new epochs to subscribers, the auth view to the messenger.
    fn after_apply(&mut self) {
        if let Ok(mut k) = self.known_clients.write() {
            *k = self.state.auth.keys().cloned().collect();
        }
        let st = &self.state;
        self.subs.retain(|_, s| !s.conn.is_closed());
        for s in self.subs.values_mut() {
            push_maps(st, s);
        }
    }

    fn maybe_compact(&mut self) {
        let applied = self.raw.raft.raft_log.applied;
        let store = self.raw.store();
        if applied <= store.snapshot_index() + self.cfg.global.mon_raft_log_keep {
            return;
        }
        let conf = self.raw.raft.prs().conf().to_conf_state();
        let data = self.state.encode();
        if let Err(e) = self.raw.mut_store().compact(applied, conf, data) {
            tracing::error!("log compaction failed: {e}");
        }
    }

    fn check_role(&mut self) {
        let leader = self.raw.raft.leader_id;
        if leader != self.last_leader {
            self.last_leader = leader;
            for slot in self.forwards.drain(..) {
                if let Some(resp) = slot.lock().ok().and_then(|mut g| g.take()) {
                    resp.send(Err(CmdError::new(Errno::EAGAIN, "monitor leader changed; retry")));
                }
            }
        }
        let leading = self.raw.raft.state == StateRole::Leader;
        if leading && self.leader.is_none() {
            tracing::info!(mon = %self.name, term = self.raw.raft.term, "won leadership");
            self.leader = Some(LeaderState {
                beacons: Default::default(),
                osd_reports: Default::default(),
                failures: FailureReports::default(),
                mds_health: Default::default(),
            });
        } else if !leading && self.leader.is_some() {
            tracing::info!(mon = %self.name, "lost leadership");
            self.leader = None;
            for (_, (resp, _)) in self.waiting.drain() {
                resp.send(Err(CmdError::new(Errno::EAGAIN, "monitor leadership changed; retry")));
            }
        }
    }

    fn send_raft(&mut self, msgs: Vec<RaftMsg>) {
        for m in msgs {
            let to = m.to;
            let data = match m.write_to_bytes() {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("cannot encode raft message: {e}");
                    continue;
                }
            };
            if let Some(c) = self.peers.get(&to).filter(|c| !c.is_closed()) {
                let _ = c.send(Message::MMonRaft { data });
                continue;
            }
            self.connect_peer(to);
        }
    }

    /// Dials a peer monitor in the background; raft resends what was dropped meanwhile.
    fn connect_peer(&mut self, rank: u64) {
        let Some(info) = self.state.monmap.by_rank(rank) else { return };
        if !self.connecting.insert(rank) {
            return;
        }
        let (peer, addr, msgr) = (EntityName::mon(&info.name), info.addr, self.msgr.clone());
        let Some(me) = self.me.clone() else { return };
        actix::spawn(async move {
            let conn = msgr.connect(&peer, addr, false).await.ok();
            me.do_send(PeerConnected { rank, conn });
        });
    }

    /// Answers a subscription at once with every newer map, then on each new epoch.
    pub(super) fn subscribe(&mut self, conn: ConnHandle, mut want: MonSubscribe) {
        if !conn.peer().is_daemon() {
            want.auth = None; // clients never see other clients' caps
        }
        let mut s = Subscriber { conn, want };
        push_maps(&self.state, &mut s);
        self.subs.insert(s.conn.id(), s);
    }

    /// The leader's periodic checks: laggy MDS daemons, silent or reported OSDs,
    /// OSDs down long enough to go out, expired blocklist entries, stale waiters.
    pub(super) fn leader_tick(&mut self) {
        let timeout = self.cfg.global.command_timeout();
        self.waiting.retain(|_, (_, t)| t.elapsed() < timeout);
        let Some(ls) = self.leader.as_mut() else { return };
        let now = Instant::now();
        let g = &self.cfg.global;
        let grace = g.mds_beacon_grace();
        let gids: Vec<u64> = self.state.fsmap.all_infos().map(|i| i.gid).collect();
        ls.beacons.retain(|g, _| gids.contains(g));
        ls.mds_health.retain(|g, _| gids.contains(g));
        let laggy: Vec<u64> = gids
            .iter()
            .filter(|gid| now.duration_since(*ls.beacons.entry(**gid).or_insert(now)) > grace)
            .copied()
            .collect();
        let report_timeout = Duration::from_secs_f64(g.mon_osd_report_timeout);
        let up: Vec<u32> = self.state.osdmap.osds.values().filter(|o| o.up).map(|o| o.id).collect();
        let unresponsive: Vec<u32> = up
            .iter()
            .filter(|id| now.duration_since(*ls.osd_reports.entry(**id).or_insert(now)) > report_timeout)
            .copied()
            .collect();
        let t = now_ms();
        let reported = ls.failures.ready_to_mark_down(&self.state.osdmap, &self.params.osd, t);
        if !reported.is_empty() {
            self.propose_if_changes(MonOp::OsdMarkDown { ids: reported, now_ms: t });
        }
        self.propose_if_changes(MonOp::MdsTick { laggy, now_ms: t });
        self.propose_if_changes(MonOp::OsdTick { unresponsive, now_ms: t });
        self.bootstrap_fs(t);
    }

    /// Creates the configured file system (`fs = "NAME"`) with its two pools, once: only
    /// while no file system has ever been created, so a removed one stays removed.
    fn bootstrap_fs(&mut self, now_ms: u64) {
        let Some(name) = self.cfg.fs.clone() else { return };
        if self.state.fsmap.next_fscid > 1 || self.state.fsmap.by_name(&name).is_some() {
            return;
        }
        let (meta, data) = (format!("{name}_metadata"), format!("{name}_data"));
        for (pool, pgs) in [(&meta, 16), (&data, 32)] {
            if !self.state.osdmap.pools.values().any(|p| &p.name == pool) {
                let cmd = MonCommand::OsdPoolCreate { name: pool.clone(), pg_num: Some(pgs), size: None, min_size: None };
                self.propose_if_changes(MonOp::Command { cmd, now_ms });
                return;
            }
        }
        let cmd = MonCommand::FsNew { name, metadata_pool: meta, data_pool: data };
        self.propose_if_changes(MonOp::Command { cmd, now_ms });
    }

    pub(super) fn mon_status(&self) -> MonStatus {
        let window = Duration::from_millis(
            self.cfg.global.mon_raft_tick_ms * self.cfg.global.mon_raft_election_ticks * 2,
        );
        let mut quorum: Vec<String> = self
            .heard
            .iter()
            .filter(|(_, t)| t.elapsed() < window)
            .map(|(n, _)| n.clone())
            .collect();
        quorum.push(self.name.clone());
        quorum.sort();
        quorum.dedup();
        MonStatus {
            monmap: self.state.monmap.clone(),
            leader: self.leader_name().unwrap_or_default(),
            quorum,
            term: self.raw.raft.term,
            committed_index: self.raw.raft.raft_log.committed,
        }
    }

    pub(super) fn local_status(&self) -> LocalStatus {
        let role = match self.raw.raft.state {
            StateRole::Leader => "leader",
            StateRole::Follower if self.raw.raft.leader_id != 0 => "peon",
            _ => "electing",
        };
        LocalStatus {
            name: self.name.clone(),
            role: role.into(),
            leader: self.leader_name().unwrap_or_default(),
            term: self.raw.raft.term,
            applied_index: self.raw.raft.raft_log.applied,
            monmap_epoch: self.state.monmap.epoch,
            osdmap_epoch: self.state.osdmap.epoch,
            fsmap_epoch: self.state.fsmap.epoch,
        }
    }

    /// Every PG of every pool with its latest report from its current acting primary;
    /// PGs nobody reported for the current mapping are `unknown`.
    /// Raw space of the up OSDs (their last reports) and objects per pool.
    pub(super) fn df(&self) -> crate::msg::command::DfReport {
        let m = &self.state.osdmap;
        let mut r = crate::msg::command::DfReport::default();
        for sp in m.osds.values().filter(|o| o.up).filter_map(|o| self.osd_space.get(&o.id)) {
            r.total_bytes += sp.total;
            r.used_bytes += sp.used;
            r.avail_bytes += sp.avail;
        }
        let dump = self.pg_dump();
        for pool in m.pools.values() {
            let objects = dump.iter().filter(|s| s.pg.pool == pool.id).map(|s| s.num_objects).sum();
            r.pools.push((pool.name.clone(), objects));
        }
        r
    }

    pub(super) fn pg_dump(&self) -> Vec<crate::msg::osd::PgStat> {
        let m = &self.state.osdmap;
        let mut out = Vec::new();
        for pool in m.pools.values() {
            for pg in crate::crush::pool_pgs(pool) {
                let pm = crate::crush::pg_mapping(m, pg);
                let fresh = self.pg_stats.get(&pg).filter(|s| s.primary == pm.acting_primary && s.acting == pm.acting);
                out.push(fresh.cloned().unwrap_or(crate::msg::osd::PgStat {
                    pg,
                    state: "unknown".into(),
                    acting: pm.acting,
                    primary: pm.acting_primary,
                    last_update: Default::default(),
                    num_objects: 0,
                    degraded_objects: 0,
                    misplaced_objects: 0,
                    epoch: 0,
                }));
            }
        }
        out
    }

    pub(super) fn status(&self) -> StatusReport {
        let mon = self.mon_status();
        let pgs = self.pg_dump();
        let mut checks = health::checks(&self.state, &mon);
        checks.extend(health::pg_checks(&pgs));
        checks.extend(health::slow_ops(&self.state.osdmap, &self.osd_slow));
        if let Some(ls) = &self.leader {
            checks.extend(health::mds_daemon_checks(&self.state.fsmap, &ls.mds_health));
        }
        let mut pg_states = std::collections::BTreeMap::new();
        for p in &pgs {
            *pg_states.entry(p.state.clone()).or_insert(0) += 1;
        }
        StatusReport {
            pg_states,
            num_objects: pgs.iter().map(|p| p.num_objects).sum(),
            degraded_objects: pgs.iter().map(|p| p.degraded_objects).sum(),
            misplaced_objects: pgs.iter().map(|p| p.misplaced_objects).sum(),
            fsid: self.state.monmap.fsid.clone(),
            health: health::overall(&checks),
            checks,
            mon,
            osdmap: self.state.osdmap.clone(),
            fsmap: self.state.fsmap.clone(),
        }
    }
}

/// A background dial to a peer monitor finished.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub(super) struct PeerConnected {
    rank: u64,
    conn: Option<ConnHandle>,
}

impl actix::Handler<PeerConnected> for Monitor {
    type Result = ();
    fn handle(&mut self, m: PeerConnected, _: &mut Self::Context) {
        self.connecting.remove(&m.rank);
        if let Some(c) = m.conn {
            self.peers.insert(m.rank, c);
        }
    }
}

fn fatal(why: &str) -> ! {
    tracing::error!("monitor store failure, exiting: {why}");
    std::process::exit(1);
}

fn push_maps(st: &MonState, s: &mut Subscriber) {
    let w = &mut s.want;
    if let Some(have) = w.monmap.as_mut().filter(|h| **h < st.monmap.epoch) {
        *have = st.monmap.epoch;
        let _ = s.conn.send(Message::MMonMap(st.monmap.clone()));
    }
    if let Some(have) = w.osdmap.as_mut().filter(|h| **h < st.osdmap.epoch) {
        *have = st.osdmap.epoch;
        let _ = s.conn.send(Message::MOsdMap(st.osdmap.clone()));
    }
    if let Some(have) = w.auth.as_mut().filter(|h| **h < st.auth_epoch) {
        *have = st.auth_epoch;
        let db = crate::msg::AuthDb { epoch: st.auth_epoch, entries: st.auth.clone() };
        let _ = s.conn.send(Message::MAuthDb(db));
    }
    if let Some(have) = w.fsmap.as_mut().filter(|h| **h < st.fsmap.epoch) {
        *have = st.fsmap.epoch;
        let _ = s.conn.send(Message::MFsMap(st.fsmap.clone()));
    }
}
