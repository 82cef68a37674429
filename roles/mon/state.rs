//! The monitors' replicated state: MonMap, OSDMap, FSMap and the auth database,
//! changed only by applying committed `MonOp`s in log order. `apply` is
//! deterministic (time comes inside the op), so every monitor reaches the same maps.
//! Each op that changes a map bumps that map's epoch by exactly one.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::mds_monitor::{self, BeaconVerdict, MdsParams};
use super::osd_monitor::{self, OsdParams};
use crate::config::ClusterConfig;
use crate::error::CmdError;
use crate::ids::{EntityName, Gid, OsdId};
use crate::maps::{FsMap, MonMap, OsdMap};
use crate::msg::{CommandReply, MdsBeacon, MonCommand, OsdAlive, OsdBoot};

/// One entry of the consensus log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MonOp {
    Command { cmd: MonCommand, now_ms: u64 },
    MdsBeacon { beacon: MdsBeacon, now_ms: u64 },
    /// Leader's periodic check: `laggy` daemons missed their beacon grace.
    MdsTick { laggy: Vec<Gid>, now_ms: u64 },
    OsdBoot { boot: OsdBoot, now_ms: u64 },
    OsdAlive { alive: OsdAlive },
    OsdMarkDown { ids: Vec<OsdId>, now_ms: u64 },
    /// Set (non-empty) or clear (empty) temporary acting sets.
    PgTemp { entries: Vec<(crate::maps::PgId, Vec<OsdId>)> },
    /// An OSD reports its disk full (past `osd_failsafe_full_ratio`) or no longer full.
    OsdFull { osd: OsdId, full: bool },
    /// Leader's periodic check: `unresponsive` OSDs missed their report interval.
    OsdTick { unresponsive: Vec<OsdId>, now_ms: u64 },
}

/// Parameters `apply` needs from the configuration (the same on every monitor).
#[derive(Clone, Debug)]
pub struct MonParams {
    pub mds: MdsParams,
    pub osd: OsdParams,
    pub pool_size: u32,
    pub pool_min_size: u32,
    pub pool_pg_num: u32,
    pub session_timeout: u32,
    pub session_autoclose: u32,
}

impl MonParams {
    pub fn from_config(cfg: &ClusterConfig) -> Self {
        let g = &cfg.global;
        MonParams {
            mds: MdsParams { blocklist_expire_ms: (g.mon_osd_blocklist_default_expire * 1000.0) as u64 },
            osd: OsdParams {
                down_out_interval_ms: (g.mon_osd_down_out_interval * 1000.0) as u64,
                min_down_reporters: g.mon_osd_min_down_reporters as usize,
                heartbeat_grace_ms: (g.osd_heartbeat_grace * 1000.0) as u64,
                laggy: g.mon_osd_adjust_heartbeat_grace.then(|| osd_monitor::Laggy {
                    weight: g.mon_osd_laggy_weight.clamp(0.0, 1.0),
                    halflife_ms: (g.mon_osd_laggy_halflife * 1000.0).max(1.0) as u64,
                    max_interval_ms: (g.mon_osd_laggy_max_interval * 1000.0) as u64,
                }),
            },
            pool_size: g.osd_pool_default_size,
            pool_min_size: g.osd_pool_default_min_size,
            pool_pg_num: g.osd_pool_default_pg_num,
            session_timeout: g.mds_session_timeout,
            session_autoclose: g.mds_session_autoclose,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonState {
    pub monmap: MonMap,
    pub osdmap: OsdMap,
    pub fsmap: FsMap,
    /// Client entity → capabilities (service → capability string).
    pub auth: BTreeMap<EntityName, BTreeMap<String, String>>,
    /// Bumped on every change of `auth`.
    #[serde(default)]
    pub auth_epoch: u64,
}

impl MonState {
    /// The state every monitor of a new cluster starts from (same config, same state).
    pub fn initial(cfg: &ClusterConfig) -> MonState {
        let monmap = MonMap::new(&cfg.fsid, &cfg.mon_addrs());
        let osdmap = OsdMap { epoch: 1, fsid: cfg.fsid.clone(), ..OsdMap::default() };
        let fsmap = FsMap { epoch: 1, next_fscid: 1, ..FsMap::default() };
        let all: BTreeMap<String, String> =
            ["mon", "osd", "mds"].iter().map(|s| (s.to_string(), "allow *".to_string())).collect();
        let mut auth = BTreeMap::new();
        auth.insert(EntityName::client("admin"), all);
        MonState { monmap, osdmap, fsmap, auth, auth_epoch: 1 }
    }

    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub fn decode(b: &[u8]) -> Result<MonState, String> {
        rmp_serde::from_slice(b).map_err(|e| e.to_string())
    }

    /// Applies one committed op. Errors leave the state untouched.
    pub fn apply(&mut self, op: &MonOp, p: &MonParams) -> Result<CommandReply, CmdError> {
        let mut next = self.clone();
        let reply = next.apply_inner(op, p)?;
        next.bump_epochs(self);
        *self = next;
        Ok(reply)
    }

    fn apply_inner(&mut self, op: &MonOp, p: &MonParams) -> Result<CommandReply, CmdError> {
        let done = |s: &str| Ok(CommandReply::Done(s.to_string()));
        match op {
            MonOp::Command { cmd, now_ms } => super::commands::apply(self, cmd, *now_ms, p),
            MonOp::MdsBeacon { beacon, now_ms } => {
                match mds_monitor::handle_beacon(&mut self.fsmap, &mut self.osdmap, beacon, *now_ms, &p.mds) {
                    BeaconVerdict::Ignored(r) | BeaconVerdict::Respawn(r) => done(&r),
                    _ => done("ok"),
                }
            }
            MonOp::MdsTick { laggy, now_ms } => {
                mds_monitor::tick(&mut self.fsmap, &mut self.osdmap, laggy, *now_ms, &p.mds);
                done("ok")
            }
            MonOp::OsdBoot { boot, now_ms } => {
                osd_monitor::handle_boot(&mut self.osdmap, boot, *now_ms, &p.osd);
                done("ok")
            }
            MonOp::OsdAlive { alive } => {
                osd_monitor::handle_alive(&mut self.osdmap, alive);
                done("ok")
            }
            MonOp::OsdFull { osd, full } => {
                osd_monitor::handle_full(&mut self.osdmap, *osd, *full);
                done("ok")
            }
            MonOp::OsdMarkDown { ids, now_ms } => {
                for id in ids {
                    osd_monitor::mark_down(&mut self.osdmap, *id, *now_ms);
                }
                done("ok")
            }
            MonOp::PgTemp { entries } => {
                for (pg, acting) in entries {
                    let known = self.osdmap.pools.get(&pg.pool).is_some_and(|p| pg.seed < p.pg_num);
                    if acting.is_empty() || !known {
                        self.osdmap.pg_temp.remove(pg);
                    } else if acting.iter().all(|o| self.osdmap.osds.contains_key(o)) {
                        self.osdmap.pg_temp.insert(*pg, acting.clone());
                    }
                }
                done("ok")
            }
            MonOp::OsdTick { unresponsive, now_ms } => {
                osd_monitor::tick(&mut self.osdmap, *now_ms, unresponsive, &p.osd);
                done("ok")
            }
        }
    }

    /// Gives every changed map (and changed file system) the next epoch.
    fn bump_epochs(&mut self, before: &MonState) {
        if self.osdmap != before.osdmap {
            self.osdmap.epoch = before.osdmap.epoch + 1;
        }
        if self.fsmap != before.fsmap {
            let e = before.fsmap.epoch + 1;
            self.fsmap.epoch = e;
            for (id, fs) in self.fsmap.filesystems.iter_mut() {
                if before.fsmap.filesystems.get(id) != Some(fs) {
                    fs.mdsmap.epoch = e;
                }
            }
        }
        if self.auth != before.auth {
            self.auth_epoch = before.auth_epoch + 1;
        }
        if self.monmap != before.monmap {
            self.monmap.epoch = before.monmap.epoch + 1;
        }
    }
}
