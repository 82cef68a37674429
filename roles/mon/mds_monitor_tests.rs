//! Unit tests of the pure MDS map logic.
use super::*;
use crate::error::Errno;
use BeaconVerdict::{Changed, Ignored, Respawn, Unchanged};

const P: MdsParams = MdsParams { blocklist_expire_ms: 1_000 };
const NOW: u64 = 50_000;

fn addr(nonce: u64) -> EntityAddr {
    EntityAddr { addr: "10.0.0.1:6800".parse().expect("literal address"), nonce }
}

/// A monitor's view: the maps, bumped by one epoch after each change as the
/// caller does, and the beacon sequence counter.
struct C {
    fs: FsMap,
    osd: OsdMap,
    seq: u64,
}

impl C {
    fn new(names: &[&str]) -> C {
        let mut fs = FsMap { epoch: 1, ..FsMap::default() };
        for (fscid, n) in (1..).zip(names) {
            fs.filesystems.insert(fscid, Filesystem { fscid, mdsmap: MdsMap::new(n, 1, 2, 0) });
        }
        C { fs, osd: OsdMap::default(), seq: 0 }
    }
    /// One file system `cephfs`; `gids` booted, given ranks and made active.
    fn running(max_mds: u32, standby_replay: bool, gids: &[Gid]) -> C {
        let mut c = C::new(&["cephfs"]);
        c.mm_mut().max_mds = max_mds;
        c.mm_mut().allow_standby_replay = standby_replay;
        c.boot(gids);
        c.tick(&[]);
        let holders: Vec<Gid> = c.mm().up.values().copied().collect();
        holders.into_iter().for_each(|g| c.activate(g));
        c
    }
    fn send(
        &mut self, gid: Gid, name: &str, join: Option<&str>, a: u64, want: MdsState,
    ) -> BeaconVerdict {
        self.seq += 1;
        let (name, addr, fs, seq) =
            (name.into(), Some(addr(a)), join.map(String::from), self.seq);
        let b = MdsBeacon { gid, name, addr, fs, want_state: want, seq, health: Vec::new() };
        let v = handle_beacon(&mut self.fs, &mut self.osd, &b, NOW, &P);
        self.fs.epoch += (v == Changed) as u64;
        v
    }
    fn beacon(&mut self, gid: Gid, want: MdsState) -> BeaconVerdict {
        let name = self.fs.info(gid).map_or(format!("d{gid}"), |i| i.name.clone());
        self.send(gid, &name, None, gid, want)
    }
    fn boot(&mut self, gids: &[Gid]) {
        for &g in gids {
            assert_eq!(self.send(g, &format!("d{g}"), None, g, Boot), Changed);
        }
    }
    fn tick(&mut self, laggy: &[Gid]) -> bool {
        let changed = tick(&mut self.fs, &mut self.osd, laggy, NOW, &P);
        self.fs.epoch += changed as u64;
        changed
    }
    fn state(&self, gid: Gid) -> Option<MdsState> {
        self.fs.info(gid).map(|i| i.state)
    }
    fn mm(&self) -> &MdsMap {
        &self.fs.filesystems[&1].mdsmap
    }
    fn mm_mut(&mut self) -> &mut MdsMap {
        &mut self.fs.filesystems.get_mut(&1).expect("fs 1").mdsmap
    }
    /// Walks a daemon from its assigned state to active with legal beacons.
    fn activate(&mut self, gid: Gid) {
        let skip = if self.state(gid) == Some(Replay) { 0 } else { 2 };
        for s in &[Reconnect, Rejoin, Active][skip..] {
            assert_eq!(self.beacon(gid, *s), Changed, "gid {gid} to {s}");
        }
    }
    fn blocked(&self, gid: Gid) -> bool {
        self.osd.is_blocklisted(&addr(gid), NOW)
    }
    fn fail(&mut self, who: &str) -> Result<bool, (Errno, String)> {
        mds_fail(&mut self.fs, &mut self.osd, who, NOW, &P).map_err(|e| (e.errno, e.message))
    }
}

/// That a new file system's rank 0 goes to a standby in up:creating with the
/// epoch being made as incarnation, and that a settled map then stays unchanged.
#[test]
fn new_fs_gets_rank0_in_creating() {
    let mut c = C::new(&["cephfs"]);
    c.boot(&[1]);
    let epoch = c.fs.epoch;
    assert!(c.tick(&[]));
    let i = &c.mm().mds_info[&1];
    assert_eq!((i.state, i.rank, i.incarnation), (Creating, Some(0), epoch + 1));
    assert_eq!(c.mm().up.get(&0), Some(&1));
    assert!(c.mm().in_.contains(&0) && c.fs.standbys.is_empty());
    c.activate(1);
    assert!(!c.tick(&[]), "a settled map does not change");
}

/// That a laggy rank holder is removed and blocklisted until now + expiry, and a
/// standby replays its rank in the same tick; failing it again changes nothing.
#[test]
fn laggy_holder_is_failed_blocklisted_and_replaced_in_replay() {
    let mut c = C::running(1, false, &[1, 2]);
    assert!(c.tick(&[1]));
    assert_eq!(c.state(1), None);
    assert_eq!(c.osd.blocklist.get(&addr(1)), Some(&(NOW + 1_000)));
    let i = &c.mm().mds_info[&2];
    assert_eq!((i.state, i.rank, i.incarnation), (Replay, Some(0), c.fs.epoch));
    assert!(c.mm().failed.is_empty() && c.mm().in_.contains(&0));
    assert!(!c.tick(&[1]), "failing a gid that is gone changes nothing");
}

/// That a failed active rank goes at once to its standby-replay follower rather
/// than to a lower-gid plain standby.
#[test]
fn standby_replay_follower_is_preferred_on_failure() {
    let mut c = C::running(1, true, &[1, 5]);
    c.tick(&[]);
    assert_eq!(c.mm().mds_info[&5].standby_for_rank, Some(0));
    c.boot(&[3]);
    c.tick(&[1]);
    let i = &c.mm().mds_info[&5];
    assert_eq!((i.state, i.rank, i.standby_for_rank), (Replay, Some(0), None));
    assert_eq!((i.incarnation, c.state(3)), (c.fs.epoch, Some(Standby)));
    assert!(c.blocked(1) && c.mm().failed.is_empty());
}

/// That when a creating rank's daemon fails the rank is forgotten (not failed)
/// and is created afresh by the next standby.
#[test]
fn failure_of_creating_rank_forgets_it() {
    let mut c = C::new(&["cephfs"]);
    c.boot(&[1]);
    c.tick(&[]);
    assert!(c.tick(&[1]));
    assert!(c.mm().in_.is_empty() && c.mm().failed.is_empty() && c.mm().up.is_empty());
    c.boot(&[2]);
    c.tick(&[]);
    assert_eq!(c.state(2), Some(Creating));
}

/// That max_mds 2 gives rank 1 in up:starting, a failed starting rank returns to
/// `stopped`, and a stopped rank is restarted in up:starting.
#[test]
fn extra_ranks_start_and_stopped_ranks_restart() {
    let mut c = C::new(&["cephfs"]);
    c.mm_mut().max_mds = 2;
    c.boot(&[1, 2]);
    c.tick(&[]);
    assert_eq!((c.state(1), c.state(2)), (Some(Creating), Some(Starting)));
    assert_eq!(c.mm().mds_info[&2].rank, Some(1));
    c.tick(&[2]);
    assert!(c.mm().stopped.contains(&1) && !c.mm().in_.contains(&1));
    assert!(!c.mm().failed.contains(&1));
    c.boot(&[3]);
    c.tick(&[]);
    assert_eq!((c.state(3), c.mm().mds_info[&3].rank), (Some(Starting), Some(1)));
    assert!(c.mm().stopped.is_empty() && c.mm().in_.contains(&1));
}

/// That lowering max_mds stops the highest rank only while every rank is active,
/// one at a time; a stopped daemon leaves the map (unblocklisted), its rank
/// stopped; and a failed rank above max_mds is still replayed.
#[test]
fn max_mds_decrease_stops_highest_rank_one_at_a_time() {
    let mut c = C::running(3, false, &[1, 2, 3]);
    c.mm_mut().max_mds = 1;
    c.mm_mut().mds_info.get_mut(&3).expect("gid 3").state = Rejoin;
    assert!(!c.tick(&[]), "rank 2 is not active");
    c.mm_mut().mds_info.get_mut(&3).expect("gid 3").state = Active;
    assert!(c.tick(&[]));
    assert_eq!((c.state(2), c.state(3)), (Some(Active), Some(Stopping)));
    assert!(!c.tick(&[]), "one rank at a time");
    assert_eq!(c.beacon(3, Stopped), Changed);
    assert!(c.state(3).is_none() && !c.blocked(3));
    assert!(
        c.mm().stopped.contains(&2) && !c.mm().up.contains_key(&2) && !c.mm().in_.contains(&2)
    );
    assert!(c.tick(&[]));
    assert_eq!(c.state(2), Some(Stopping));
    c.boot(&[4]);
    assert!(c.tick(&[2]));
    let i = &c.mm().mds_info[&4];
    assert_eq!(
        (i.state, i.rank),
        (Replay, Some(1)),
        "a failed rank above max_mds is recovered"
    );
}

/// That allow_standby_replay gives each active rank exactly one follower, and
/// disallowing it sends every follower back to the standby pool.
#[test]
fn standby_replay_assigned_per_active_rank_and_withdrawn() {
    let mut c = C::new(&["cephfs"]);
    c.mm_mut().max_mds = 2;
    c.mm_mut().allow_standby_replay = true;
    c.boot(&[1, 2, 3, 4, 5]);
    c.tick(&[]);
    assert_eq!(c.mm().count_in_state(StandbyReplay), 0, "no follower before active");
    c.activate(1);
    c.activate(2);
    assert!(c.tick(&[]));
    assert_eq!(c.mm().follower_of(0).map(|i| i.gid), Some(3));
    assert_eq!(c.mm().follower_of(1).map(|i| i.gid), Some(4));
    assert_eq!(c.state(5), Some(Standby));
    assert!(!c.tick(&[]), "one follower per rank");
    c.mm_mut().allow_standby_replay = false;
    assert!(c.tick(&[]));
    assert_eq!(c.mm().count_in_state(StandbyReplay), 0);
    let back = &c.fs.standbys[&3];
    assert_eq!((back.state, back.standby_for_rank, back.rank), (Standby, None, None));
    assert!(c.fs.standbys.contains_key(&4));
}

/// That a booting instance is recorded as a standby with its beacon's details, a
/// repeated beacon changes nothing, and a new address is recorded.
#[test]
fn boot_beacon_records_standby_and_address_refreshes() {
    let mut c = C::new(&["cephfs"]);
    assert_eq!(c.send(7, "a", Some("cephfs"), 7, Boot), Changed);
    let i = &c.fs.standbys[&7];
    assert_eq!((i.state, i.rank, i.incarnation, i.state_seq), (Standby, None, 0, 1));
    assert_eq!(
        (i.name.as_str(), i.join_fs.as_deref(), i.addr),
        ("a", Some("cephfs"), Some(addr(7)))
    );
    let epoch = c.fs.epoch;
    assert_eq!(c.beacon(7, Standby), Unchanged);
    assert_eq!(c.fs.epoch, epoch);
    assert_eq!(c.send(7, "a", None, 42, Standby), Changed);
    assert_eq!((c.fs.standbys[&7].addr, c.fs.standbys[&7].state_seq), (Some(addr(42)), c.seq));
}

/// That a gid the map does not hold asking for anything but boot/standby is told
/// to respawn, including a daemon that was failed, and the map is untouched.
#[test]
fn unknown_gid_must_respawn() {
    let mut c = C::running(1, false, &[1]);
    c.tick(&[1]);
    let before = c.fs.clone();
    assert!(
        matches!(c.send(9, "x", None, 9, Active), Respawn(m) if m.contains("not in the map"))
    );
    assert!(matches!(c.send(1, "d1", None, 1, Reconnect), Respawn(_)));
    assert_eq!(c.fs, before);
}

/// That moves the diagram forbids, and moves only the monitor may make, are
/// ignored with both states named and the map untouched (address included).
#[test]
fn illegal_wanted_states_are_ignored() {
    let mut c = C::new(&["cephfs"]);
    c.boot(&[1, 2]);
    c.tick(&[]);
    let before = c.fs.clone();
    let v = c.send(1, "d1", None, 99, Replay);
    assert!(
        matches!(&v, Ignored(m) if m.contains("up:creating") && m.contains("up:replay")),
        "{v:?}"
    );
    let msg = "mds.d2 (gid 2) may not move itself from up:standby to up:creating";
    assert_eq!(c.beacon(2, Creating), Ignored(msg.into()));
    assert!(matches!(c.beacon(1, Standby), Ignored(_)));
    assert_eq!(c.fs, before);
    c.activate(1);
    assert!(matches!(c.beacon(1, Stopping), Ignored(_)), "stopping is the monitor's call");
}

/// That a replaying daemon walks the recovery states one accepted beacon at a
/// time, each change recording the beacon's sequence number.
#[test]
fn recovery_states_follow_daemon_requests() {
    let mut c = C::running(1, false, &[1]);
    c.tick(&[1]);
    c.boot(&[2]);
    c.tick(&[]);
    for s in [Resolve, Reconnect, Rejoin, ClientReplay, Active] {
        assert_eq!(c.beacon(2, s), Changed);
        assert_eq!((c.state(2), c.mm().mds_info[&2].state_seq), (Some(s), c.seq));
    }
    assert_eq!(c.beacon(2, Active), Unchanged);
}

/// That a holder reporting damage leaves the map unblocklisted, its rank damaged
/// and not refilled (until repaired, then replayed), its follower released; a
/// damaged follower just goes.
#[test]
fn damaged_reports_retire_daemon_and_rank() {
    let mut c = C::running(1, true, &[1, 2]);
    c.tick(&[]);
    assert_eq!(c.beacon(1, Damaged), Changed);
    assert!(c.mm().damaged.contains(&0) && c.mm().up.is_empty() && c.mm().in_.contains(&0));
    assert!(!c.blocked(1) && c.state(1).is_none());
    assert_eq!(c.state(2), Some(Standby), "follower of a damaged rank is released");
    c.tick(&[]);
    assert_eq!(c.state(2), Some(Standby), "a damaged rank is not refilled");
    c.mm_mut().damaged.clear();
    c.tick(&[]);
    assert_eq!(c.state(2), Some(Replay), "a repaired rank is replayed, not re-created");
    c.activate(2);
    c.boot(&[3]);
    c.tick(&[]);
    assert_eq!(c.beacon(3, Damaged), Changed);
    assert!(c.state(3).is_none() && c.mm().damaged.is_empty());
}

/// That a new instance booting under the name of an instance still in the map
/// fails the old one (blocklisted, rank failed, waiting without a standby) and
/// then replays the failed rank itself.
#[test]
fn restarted_daemon_replaces_old_instance() {
    let mut c = C::running(1, false, &[1]);
    assert_eq!(c.send(7, "d1", None, 7, Boot), Changed);
    assert!(c.state(1).is_none() && c.blocked(1) && !c.blocked(7));
    assert!(c.mm().failed.contains(&0));
    c.tick(&[]);
    assert_eq!((c.state(7), c.mm().up.get(&0)), (Some(Replay), Some(&7)));
    assert!(c.mm().failed.is_empty(), "replaying clears the rank from failed");
}

/// That standbys are chosen by join_fs: this file system first, then no
/// preference, then any; lowest gid within a class.
#[test]
fn join_fs_preference() {
    let mut c = C::new(&["a", "b"]);
    for (gid, join) in [(1, Some("b")), (2, None), (3, None), (4, Some("a"))] {
        c.send(gid, &format!("x{gid}"), join, gid, Boot);
    }
    assert_eq!(pick_standby(&c.fs.standbys, "a"), Some(4));
    assert_eq!(pick_standby(&c.fs.standbys, "b"), Some(1));
    assert_eq!(pick_standby(&c.fs.standbys, "zzz"), Some(2));
    c.fs.standbys.retain(|g, _| *g == 1);
    assert_eq!(pick_standby(&c.fs.standbys, "a"), Some(1), "any standby as a last resort");
    let mut c = C::new(&["a", "b"]);
    c.send(1, "x1", Some("b"), 1, Boot);
    c.send(2, "x2", Some("a"), 2, Boot);
    c.tick(&[]);
    assert_eq!(c.fs.by_name("a").map(|f| f.mdsmap.up[&0]), Some(2));
    assert_eq!(c.fs.by_name("b").map(|f| f.mdsmap.up[&0]), Some(1));
}

/// That failing a standby removes it without blocklisting, and failing an
/// unknown gid is no change.
#[test]
fn fail_gid_of_standby_and_unknown() {
    let mut c = C::new(&["cephfs"]);
    c.boot(&[1]);
    assert!(c.tick(&[1]) && c.fs.standbys.is_empty() && c.osd.blocklist.is_empty());
    assert!(!fail_gid(&mut c.fs, &mut c.osd, 1, NOW, &P));
}

/// That `mds fail` accepts fs:rank, a bare rank and a daemon name, and refuses
/// unknown targets with ENOENT and malformed or ambiguous ones with EINVAL.
#[test]
fn mds_fail_parses_targets_and_reports_errors() {
    let mut c = C::running(2, false, &[1, 2, 3]);
    assert_eq!(c.fail("cephfs:1"), Ok(true));
    assert!(c.state(2).is_none() && c.blocked(2) && c.mm().failed.contains(&1));
    assert_eq!(c.fail("0"), Ok(true));
    assert!(c.state(1).is_none());
    assert_eq!(c.fail("mds.d3"), Ok(true));
    assert!(c.state(3).is_none());
    assert_eq!(c.fail("cephfs:3"), Err((Errno::ENOENT, "rank 3 of cephfs is not up".into())));
    assert_eq!(
        c.fail("nofs:0"),
        Err((Errno::ENOENT, "file system 'nofs' does not exist".into()))
    );
    assert_eq!(c.fail("ghost"), Err((Errno::ENOENT, "mds 'ghost' does not exist".into())));
    assert_eq!(c.fail("cephfs:x").map_err(|e| e.0), Err(Errno::EINVAL));
    assert_eq!(C::new(&["a", "b"]).fail("0").map_err(|e| e.0), Err(Errno::EINVAL));
}

/// That `fs fail` makes the file system unjoinable, fails every member (followers
/// removed, ranks failed, instances blocklisted) and keeps standbys out of it.
#[test]
fn fs_fail_fails_everything_and_blocks_joining() {
    let mut c = C::running(1, true, &[1, 2, 3]);
    c.tick(&[]);
    assert_eq!(fs_fail(&mut c.fs, &mut c.osd, "cephfs", NOW, &P), Ok(true));
    let mm = c.mm();
    assert!(!mm.joinable && mm.mds_info.is_empty() && mm.up.is_empty());
    assert!(mm.failed.contains(&0) && c.blocked(1) && c.blocked(2));
    c.tick(&[]);
    assert!(c.mm().up.is_empty() && c.fs.standbys.contains_key(&3));
    assert_eq!(fs_fail(&mut c.fs, &mut c.osd, "cephfs", NOW, &P), Ok(false));
    let e = fs_fail(&mut c.fs, &mut c.osd, "x", NOW, &P).map_err(|e| (e.errno, e.message));
    assert_eq!(e, Err((Errno::ENOENT, "file system 'x' does not exist".into())));
}
