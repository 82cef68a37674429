//! The MDS daemon process: messenger, MonClient (FSMap, OSDMap and auth db
//! subscriptions), objecter, the Beacon on its own arbiter, and the MdsRank actor.
use actix::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::rank::{MdsRank, NewFsMap};
use crate::auth::{ClusterCa, Identity};
use crate::config::ClusterConfig;
use crate::ids::{EntityName, Gid};
use crate::maps::MdsState;
use crate::monc::MonClient;
use crate::msg::command::HealthCheck;
use crate::msg::{MdsBeacon, Message, MonSubscribe};
use crate::net::{FaultRules, Messenger, MsgrOptions};
use crate::objecter::Objecter;

/// What the beacon says: the state this daemon wants. The rank sets it; the beacon
/// thread reads it every interval, and at once when poked.
pub struct BeaconShared {
    pub want: Mutex<MdsState>,
    pub poke: tokio::sync::Notify,
    /// The daemon's health warnings (e.g. clients failing to answer recalls).
    pub health: Mutex<Vec<HealthCheck>>,
}

impl BeaconShared {
    pub fn set(&self, s: MdsState) {
        let mut w = self.want.lock().unwrap_or_else(|e| e.into_inner());
        if *w != s {
            *w = s;
            self.poke.notify_one();
        }
    }
    pub fn get(&self) -> MdsState {
        *self.want.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Replaces the health warnings; a change goes out with the next beacon, at once.
    pub fn set_health(&self, checks: Vec<HealthCheck>) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if *h != checks {
            *h = checks;
            self.poke.notify_one();
        }
    }
    pub fn health(&self) -> Vec<HealthCheck> {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Replaces this process with a fresh copy of itself (same binary, same arguments):
/// the way an MDS gets clean state after an illegal map transition or a fatal error.
pub fn respawn(why: &str) -> ! {
    use std::os::unix::process::CommandExt;
    tracing::error!("respawning: {why}");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exe = std::env::current_exe().unwrap_or_else(|_| std::path::PathBuf::from("/proc/self/exe"));
    std::thread::sleep(Duration::from_millis(200));
    let err = std::process::Command::new(exe).args(args).exec();
    tracing::error!("respawn failed: {err}; exiting");
    std::process::exit(1)
}

/// Starts `mds.<id>` in the current arbiter. Its address is `[mds.<id>] addr` from the
/// configuration when present, else a free port on 127.0.0.1. A missing certificate is
/// issued from the cluster CA in `key_dir` (dev clusters keep the CA key there).
pub async fn start(cfg: Arc<ClusterConfig>, id: &str) -> anyhow::Result<Addr<MdsRank>> {
    let entity = EntityName::mds(id);
    let ident = match Identity::load(&cfg.key_dir, &entity) {
        Ok(i) => i,
        Err(_) => {
            ClusterCa::load(&cfg.key_dir)?.issue(&cfg.key_dir, &entity)?;
            tracing::info!("issued a certificate for {entity}");
            Identity::load(&cfg.key_dir, &entity)?
        }
    };
    let bind = cfg.mds.get(id).map_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)), |d| d.addr);
    let faults = FaultRules::parse(&cfg.global.ms_inject_faults).map_err(anyhow::Error::msg)?;
    let (msgr, rx) = Messenger::bind(&ident, bind, true, MsgrOptions::from_options(&cfg.global), faults)?;
    let monc = MonClient::new(msgr.clone(), &cfg);
    monc.start_subscription(MonSubscribe { osdmap: Some(0), fsmap: Some(0), auth: Some(0), ..Default::default() });
    let timeout = Duration::from_secs_f64(cfg.global.mon_command_timeout.max(10.0));
    let obj = Objecter::new(monc.clone(), timeout);
    let gid: Gid = rand::random::<u64>() >> 8;
    let beacon = Arc::new(BeaconShared {
        want: Mutex::new(MdsState::Boot),
        poke: tokio::sync::Notify::new(),
        health: Mutex::new(Vec::new()),
    });
    tracing::info!(name = %entity, gid, addr = %msgr.entity_addr(), "mds starting");
    start_beacon(monc.clone(), beacon.clone(), gid, id.to_string(), cfg.global.mds_beacon_interval());
    let maps = monc.map_updates(|m| m.fsmap.clone().map(NewFsMap));
    let rank = MdsRank::new(cfg, id.to_string(), gid, monc, obj, beacon);
    Ok(MdsRank::create(move |ctx| {
        ctx.add_stream(crate::net::incoming_stream(rx));
        ctx.add_stream(maps);
        rank
    }))
}

/// The beacon runs on its own arbiter (thread), so a busy rank never delays it.
fn start_beacon(monc: Arc<MonClient>, shared: Arc<BeaconShared>, gid: Gid, name: String, every: Duration) {
    let arb = Arbiter::new();
    arb.spawn(async move {
        let mut seq = 0u64;
        loop {
            let want = shared.get();
            seq += 1;
            let addr = Some(monc.messenger().entity_addr());
            let health = shared.health();
            let b = MdsBeacon { gid, name: name.clone(), addr, fs: None, want_state: want, seq, health };
            if let Err(e) = monc.send(Message::MMdsBeacon(b)).await {
                tracing::debug!("beacon not sent: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shared.poke.notified() => {}
            }
        }
    });
    // The arbiter lives as long as the process.
    std::mem::forget(arb);
}
