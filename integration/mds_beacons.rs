//! MDS beacons through real monitors: stand-in MDS instances (library messenger +
//! MonClient, certificates issued by the cluster CA) send `MMdsBeacon`s and follow
//! their state in the pushed FSMap, so rank assignment, laggy → failed +
//! blocklist + replacement (standby-replay follower first) and `mds fail` are
//! checked end to end. The real MDS daemon arrives with the metadata-server issue.
mod harness;

use harness::Cluster;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cephr::maps::MdsState;
use cephr::msg::{MdsBeacon, Message, MonSubscribe};

struct FakeMds {
    name: String,
    gid: u64,
    addr: String,
    silent: Arc<AtomicBool>,
}

/// Starts a stand-in MDS that beacons every 200 ms and walks the recovery states the
/// monitors hand it (creating → active, replay → reconnect → rejoin → active).
fn spawn_mds(rt: &tokio::runtime::Runtime, c: &Cluster, name: &str) -> FakeMds {
    let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).expect("config");
    let entity = cephr::ids::EntityName::mds(name);
    cephr::auth::ClusterCa::load(&c.key_dir()).expect("ca").issue(&c.key_dir(), &entity).expect("issue");
    let gid: u64 = rand::random::<u64>() >> 8;
    let silent = Arc::new(AtomicBool::new(false));
    let s2 = silent.clone();
    let name2 = name.to_string();
    let addr = rt.block_on(async move {
        let want = MonSubscribe { fsmap: Some(0), ..Default::default() };
        let monc = cephr::monc::MonClient::start_client(&cfg, &cfg.key_dir, &entity, want).expect("client");
        let me = monc.messenger().entity_addr();
        tokio::spawn(async move {
            let mut seq = 0;
            let mut want = MdsState::Boot;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if s2.load(Ordering::Relaxed) {
                    continue;
                }
                let mine = monc.watch().borrow().fsmap.as_ref().and_then(|f| f.info(gid).map(|i| i.state));
                want = match mine {
                    Some(MdsState::Creating | MdsState::Starting | MdsState::ClientReplay) => MdsState::Active,
                    Some(MdsState::Replay) => MdsState::Reconnect,
                    Some(MdsState::Reconnect) => MdsState::Rejoin,
                    Some(MdsState::Rejoin) => MdsState::Active,
                    Some(s) => s,
                    None if want == MdsState::Boot => MdsState::Boot,
                    None => return, // removed from the map: a real daemon would respawn
                };
                seq += 1;
                let b = MdsBeacon { gid, name: name2.clone(), addr: Some(me), fs: None, want_state: want, seq, health: Vec::new() };
                let _ = monc.send(Message::MMdsBeacon(b)).await;
            }
        });
        me
    });
    FakeMds { name: name.to_string(), gid, addr: addr.to_string(), silent }
}

fn state_of(c: &Cluster, name: &str) -> Option<(String, Option<u64>)> {
    let st = c.json(&["fs", "status"]);
    let fs = &st["filesystems"][0];
    fs["daemons"].as_array()?.iter().find(|d| d["name"] == name).map(|d| {
        (d["state"].as_str().unwrap_or_default().to_string(), d["rank"].as_u64())
    })
}

fn standbys(c: &Cluster) -> Vec<String> {
    let st = c.json(&["fs", "status"]);
    st["standbys"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// That beaconing daemons become standbys, rank 0 of a new file system is created
/// and goes active, a standby-replay follower is assigned, and when the active one
/// falls silent it is failed and blocklisted and its follower takes the rank; then
/// `mds fail` hands the rank to the remaining standby.
#[test]
fn t10_beacons_rank_assignment_and_failover() {
    let c = Cluster::start(&["a", "b", "c"]);
    assert_eq!(c.cli(&["osd", "pool", "create", "meta"]).code, 0);
    assert_eq!(c.cli(&["osd", "pool", "create", "data"]).code, 0);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    eprintln!("--- three daemons boot into standby");
    let mds: Vec<FakeMds> = ["x", "y", "z"].iter().map(|n| spawn_mds(&rt, &c, n)).collect();
    c.wait_for(Duration::from_secs(10), "three standbys", |c| {
        c.json(&["fs", "dump"])["standbys"].as_object().is_some_and(|s| s.len() == 3)
    });
    eprintln!("--- fs new: rank 0 is created and goes active");
    assert_eq!(c.cli(&["fs", "new", "cephfs", "meta", "data"]).code, 0);
    c.wait_for(Duration::from_secs(10), "rank 0 active", |c| {
        mds.iter().any(|m| state_of(c, &m.name) == Some(("up:active".into(), Some(0))))
    });
    assert_eq!(standbys(&c).len(), 2);
    eprintln!("--- allow_standby_replay: one follower");
    assert_eq!(c.cli(&["fs", "set", "cephfs", "allow_standby_replay", "true"]).code, 0);
    c.wait_for(Duration::from_secs(10), "a standby-replay follower", |c| {
        mds.iter().any(|m| state_of(c, &m.name).is_some_and(|s| s.0 == "up:standby-replay"))
    });
    let active = mds.iter().find(|m| state_of(&c, &m.name).is_some_and(|s| s.0 == "up:active")).expect("active");
    let follower = mds.iter().find(|m| state_of(&c, &m.name).is_some_and(|s| s.0 == "up:standby-replay")).expect("f");
    let spare = mds.iter().find(|m| m.gid != active.gid && m.gid != follower.gid).expect("spare");

    eprintln!("--- the active mds.{} falls silent", active.name);
    active.silent.store(true, Ordering::Relaxed);
    let took = c.wait_for(Duration::from_secs(15), "the follower to hold rank 0 active", |c| {
        state_of(c, &follower.name) == Some(("up:active".into(), Some(0)))
    });
    eprintln!("--- rank 0 active again on mds.{} {took:?} after the silence began", follower.name);
    assert_eq!(state_of(&c, &active.name), None, "the silent daemon left the map");
    let bl = c.json(&["osd", "blocklist", "ls"]);
    assert!(
        bl.as_array().is_some_and(|a| a.iter().any(|e| e["addr"] == active.addr.as_str())),
        "silent daemon {} blocklisted: {bl}",
        active.addr
    );
    assert!(c.cli(&["status"]).stdout.contains("cephfs"));

    eprintln!("--- mds fail cephfs:0 hands the rank to the spare mds.{}", spare.name);
    let r = c.cli(&["mds", "fail", "cephfs:0"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    c.wait_for(Duration::from_secs(15), "the spare to hold rank 0 active", |c| {
        state_of(c, &spare.name) == Some(("up:active".into(), Some(0)))
    });
    let _ = active.gid;
}
