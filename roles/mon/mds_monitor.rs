//! MDS half of the monitor: pure rules turning MDS beacons, laggy daemons and the
//! `mds fail` / `fs fail` commands into FSMap (and OSDMap blocklist) changes.
//!
//! Data flow: the leader clones its committed maps and calls one function per event;
//! each edits the copies and says whether anything changed, and the caller bumps each
//! changed map's epoch by one (stamping changed file systems' `mdsmap.epoch`) and
//! proposes the result. So `fsmap.epoch + 1` here is the epoch being made.
//!
//! Life cycle (Ceph's documented MDS states): a new instance beacons `up:boot` and
//! becomes a standby; `tick` gives standbys to ranks needing a daemon (new → creating
//! or starting, failed → replay) and, if allowed, to active ranks as standby-replay
//! followers; the daemon walks the recovery states by beaconing what it wants. A
//! silent daemon is failed: removed, blocklisted, its rank failed or handed at once to
//! its follower. Deterministic: time is passed in; the lowest gid wins among equals.
use std::collections::BTreeMap;

use crate::error::CmdError;
use crate::ids::{EntityAddr, Fscid, Gid, Rank};
use crate::maps::{state_transition_valid, Filesystem, FsMap, MdsInfo, MdsMap, MdsState, OsdMap};
use crate::msg::MdsBeacon;
use MdsState::*;

/// Tunables of the MDS monitor.
#[derive(Clone, Copy, Debug)]
pub struct MdsParams {
    /// How long a failed daemon instance stays blocklisted.
    pub blocklist_expire_ms: u64,
}

/// What the monitor made of one beacon.
#[derive(Debug, PartialEq, Eq)]
pub enum BeaconVerdict {
    Unchanged,
    Changed,
    /// refused; map untouched
    Ignored(String),
    /// the daemon is not in the map (failed/removed) and must respawn as a new instance
    Respawn(String),
}

type Standbys = BTreeMap<Gid, MdsInfo>;

/// Applies one beacon. Unknown instances are admitted as standbys (when booting);
/// known ones may move to the state they ask for when the daemon may ask for it.
pub fn handle_beacon(
    fsmap: &mut FsMap, osdmap: &mut OsdMap, b: &MdsBeacon, now_ms: u64, p: &MdsParams,
) -> BeaconVerdict {
    let Some(loc) = fsmap.locate_gid(b.gid) else {
        return admit_new(fsmap, osdmap, b, now_ms, p);
    };
    let current = fsmap.info(b.gid).map_or(b.want_state, |i| i.state);
    let want = b.want_state;
    let legal = state_transition_valid(current, want) && daemon_may_ask(current, want);
    if want != current && !legal {
        let (name, gid) = (&b.name, b.gid);
        let why = format!("mds.{name} (gid {gid}) may not move itself from {current} to {want}");
        return BeaconVerdict::Ignored(why);
    }
    let mut changed = refresh_addr(fsmap, b);
    if want != current {
        changed |= loc.is_some_and(|fscid| apply_move(fsmap, fscid, b));
    }
    if changed {
        BeaconVerdict::Changed
    } else {
        BeaconVerdict::Unchanged
    }
}

/// A beacon from a gid the map does not hold: a booting daemon becomes a standby,
/// replacing (failing) an older instance of the same name; anything else must respawn.
fn admit_new(
    fsmap: &mut FsMap, osdmap: &mut OsdMap, b: &MdsBeacon, now_ms: u64, p: &MdsParams,
) -> BeaconVerdict {
    if !matches!(b.want_state, Boot | Standby) {
        let (name, gid) = (&b.name, b.gid);
        let why = format!("mds.{name} (gid {gid}) is not in the map; respawn as a new instance");
        return BeaconVerdict::Respawn(why);
    }
    let restarted: Vec<Gid> =
        fsmap.all_infos().filter(|i| i.name == b.name && i.gid != b.gid).map(|i| i.gid).collect();
    for old in restarted {
        fail_gid(fsmap, osdmap, old, now_ms, p);
    }
    let (gid, name, addr, join_fs) = (b.gid, b.name.clone(), b.addr, b.fs.clone());
    let info = MdsInfo {
        gid,
        name,
        addr,
        rank: None,
        state: Standby,
        incarnation: 0,
        standby_for_rank: None,
        join_fs,
        state_seq: b.seq,
    };
    fsmap.standbys.insert(gid, info);
    BeaconVerdict::Changed
}

/// Moves a daemon may ask for itself; the others (giving out ranks, standby-replay,
/// stopping) are the monitor's to make.
fn daemon_may_ask(from: MdsState, to: MdsState) -> bool {
    match (from, to) {
        (Replay, Resolve | Reconnect) | (Resolve, Reconnect) | (Reconnect, Rejoin) => true,
        (Rejoin, ClientReplay | Active) | (ClientReplay, Active) => true,
        (Creating | Starting, Active) | (Stopping, Stopped) => true,
        (f, Damaged) => f.holds_rank() || f == StandbyReplay,
        _ => false,
    }
}

fn refresh_addr(fsmap: &mut FsMap, b: &MdsBeacon) -> bool {
    let info = match fsmap.standbys.get_mut(&b.gid) {
        Some(i) => Some(i),
        None => fsmap.filesystems.values_mut().find_map(|f| f.mdsmap.mds_info.get_mut(&b.gid)),
    };
    match info {
        Some(info) if info.addr != b.addr => {
            info.addr = b.addr;
            info.state_seq = b.seq;
            true
        }
        _ => false,
    }
}

/// Applies an accepted state change of a file system member.
fn apply_move(fsmap: &mut FsMap, fscid: Fscid, b: &MdsBeacon) -> bool {
    let FsMap { filesystems, standbys, .. } = fsmap;
    let Some(mm) = filesystems.get_mut(&fscid).map(|f| &mut f.mdsmap) else {
        return false;
    };
    if matches!(b.want_state, Stopped | Damaged) {
        return retire(mm, standbys, b.gid, b.want_state);
    }
    let info = mm.mds_info.get_mut(&b.gid);
    info.map(|i| (i.state, i.state_seq) = (b.want_state, b.seq)).is_some()
}

/// A daemon reached `up:stopped` or reported `down:damaged`: it leaves the map (and
/// will respawn); its rank is recorded as stopped or damaged, and followers of that
/// rank go back to the standby pool since there is nothing left to follow.
fn retire(mm: &mut MdsMap, standbys: &mut Standbys, gid: Gid, end: MdsState) -> bool {
    let Some(info) = mm.mds_info.remove(&gid) else {
        return false;
    };
    let Some(rank) = info.rank.filter(|_| info.state.holds_rank()) else {
        return true; // a standby-replay daemon: nothing else to record
    };
    mm.up.retain(|r, g| (*r, *g) != (rank, gid));
    mm.failed.remove(&rank);
    if end == Stopped {
        mm.in_.remove(&rank);
        mm.stopped.insert(rank);
    } else {
        mm.damaged.insert(rank);
    }
    release_followers(mm, standbys, |i| i.standby_for_rank == Some(rank));
    true
}

/// Sends the standby-replay daemons matching `pred` back to the standby pool.
fn release_followers(
    mm: &mut MdsMap, standbys: &mut Standbys, pred: impl Fn(&MdsInfo) -> bool,
) -> bool {
    let leaving = |i: &MdsInfo| i.state == StandbyReplay && pred(i);
    let gids: Vec<Gid> = mm.mds_info.values().filter(|i| leaving(i)).map(|i| i.gid).collect();
    for info in gids.iter().filter_map(|g| mm.mds_info.remove(g)) {
        let info = MdsInfo { state: Standby, rank: None, standby_for_rank: None, ..info };
        standbys.insert(info.gid, info);
    }
    !gids.is_empty()
}

/// Removes a daemon instance from the map. Members of a file system are blocklisted;
/// a rank they held is failed (or forgotten / returned to stopped when it was only
/// being created / started), and a standby-replay follower takes it over at once.
pub fn fail_gid(
    fsmap: &mut FsMap, osdmap: &mut OsdMap, gid: Gid, now_ms: u64, p: &MdsParams,
) -> bool {
    let incarnation = fsmap.epoch + 1;
    if fsmap.standbys.remove(&gid).is_some() {
        return true;
    }
    let found = fsmap.filesystems.values_mut().find_map(|f| {
        let info = f.mdsmap.mds_info.remove(&gid)?;
        Some((&mut f.mdsmap, info))
    });
    let Some((mm, info)) = found else {
        return false;
    };
    if let Some(addr) = info.addr {
        blocklist(osdmap, addr, now_ms, p);
    }
    if let Some(rank) = info.rank.filter(|r| mm.up.get(r) == Some(&gid)) {
        mm.up.remove(&rank);
        if vacate_rank(mm, rank, info.state) {
            promote_follower(mm, rank, incarnation);
        }
    }
    true
}

fn blocklist(osdmap: &mut OsdMap, addr: EntityAddr, now_ms: u64, p: &MdsParams) {
    let expiry = now_ms.saturating_add(p.blocklist_expire_ms);
    let entry = osdmap.blocklist.entry(addr).or_insert(expiry);
    *entry = (*entry).max(expiry);
}

/// Records what becomes of a rank whose holder failed; true when it is now failed
/// (its journal needs replaying by a replacement).
fn vacate_rank(mm: &mut MdsMap, rank: Rank, state: MdsState) -> bool {
    if !matches!(state, Creating | Starting) {
        mm.failed.insert(rank);
        return true;
    }
    mm.in_.remove(&rank);
    if state == Starting {
        mm.stopped.insert(rank);
    }
    false
}

/// Hands a failed rank to its standby-replay follower (lowest gid), in replay.
fn promote_follower(mm: &mut MdsMap, rank: Rank, incarnation: u64) -> Option<Gid> {
    let gid = mm.follower_of(rank)?.gid;
    let info = mm.mds_info.get_mut(&gid)?;
    info.state = Replay;
    info.rank = Some(rank);
    info.standby_for_rank = None;
    info.incarnation = incarnation;
    mm.up.insert(rank, gid);
    mm.failed.remove(&rank);
    Some(gid)
}

/// Fails the laggy daemons, then for each joinable file system (fscid order): shrinks
/// towards `max_mds` one rank at a time, gives standbys to ranks that need a daemon,
/// and assigns or withdraws standby-replay followers.
pub fn tick(
    fsmap: &mut FsMap, osdmap: &mut OsdMap, laggy: &[Gid], now_ms: u64, p: &MdsParams,
) -> bool {
    let mut changed = false;
    for &gid in laggy {
        changed |= fail_gid(fsmap, osdmap, gid, now_ms, p);
    }
    let incarnation = fsmap.epoch + 1;
    let FsMap { filesystems, standbys, .. } = fsmap;
    for mm in filesystems.values_mut().map(|f| &mut f.mdsmap).filter(|m| m.joinable) {
        changed |= stop_one_excess_rank(mm);
        changed |= fill_ranks(mm, standbys, incarnation);
        changed |= manage_standby_replay(mm, standbys);
    }
    changed
}

/// With more ranks up than `max_mds` and every holder active, asks the highest
/// rank's daemon to stop. One rank at a time: nothing happens while one is stopping.
fn stop_one_excess_rank(mm: &mut MdsMap) -> bool {
    let is_active = |g: &Gid| mm.mds_info.get(g).is_some_and(|i| i.state == Active);
    if mm.up.len() <= mm.max_mds as usize || !mm.up.values().all(is_active) {
        return false;
    }
    let highest = mm.up.values().next_back().and_then(|g| mm.mds_info.get_mut(g));
    highest.map(|i| i.state = Stopping).is_some()
}

/// The standby best suited to `fs_name`: one that asked for it, then one with no
/// preference, then any; lowest gid within a class.
fn pick_standby(standbys: &Standbys, fs_name: &str) -> Option<Gid> {
    let class = |i: &MdsInfo| match i.join_fs.as_deref() {
        Some(n) if n == fs_name => 0,
        None => 1,
        Some(_) => 2,
    };
    let candidates = standbys.values().filter(|i| i.state == Standby);
    candidates.min_by_key(|i| (class(i), i.gid)).map(|i| i.gid)
}

fn take_standby(standbys: &mut Standbys, fs_name: &str) -> Option<MdsInfo> {
    pick_standby(standbys, fs_name).and_then(|g| standbys.remove(&g))
}

/// Ranks wanting a daemon, ascending: every rank below `max_mds`, plus failed ranks
/// above it (their journal must be replayed before they can stop), minus those up or
/// damaged. At most `limit` are listed.
fn ranks_to_fill(mm: &MdsMap, limit: usize) -> Vec<Rank> {
    let above = mm.failed.iter().copied().filter(|r| *r >= mm.max_mds);
    let wanted = (0..mm.max_mds).chain(above);
    wanted.filter(|r| !mm.up.contains_key(r) && !mm.damaged.contains(r)).take(limit).collect()
}

fn fill_ranks(mm: &mut MdsMap, standbys: &mut Standbys, incarnation: u64) -> bool {
    let mut changed = false;
    for rank in ranks_to_fill(mm, standbys.len()) {
        let Some(info) = take_standby(standbys, &mm.fs_name) else {
            break;
        };
        let state = claim_rank(mm, rank);
        mm.up.insert(rank, info.gid);
        let info = MdsInfo { rank: Some(rank), state, incarnation, standby_for_rank: None, ..info };
        mm.mds_info.insert(info.gid, info);
        changed = true;
    }
    changed
}

/// Marks `rank` as in and returns the state its new holder starts in: replay for a
/// failed rank (or one in but unheld, whose journal must not be lost), starting for
/// a stopped or brand-new one, creating for rank 0 of a file system that never had it.
fn claim_rank(mm: &mut MdsMap, rank: Rank) -> MdsState {
    let (failed, stopped) = (mm.failed.remove(&rank), mm.stopped.remove(&rank));
    let existed = !mm.in_.insert(rank);
    if failed || (existed && !stopped) {
        Replay
    } else if stopped || rank > 0 {
        Starting
    } else {
        Creating
    }
}

/// Gives each active rank without a follower one standby-replay daemon, or, when the
/// file system does not allow it, sends every follower back to the standby pool.
fn manage_standby_replay(mm: &mut MdsMap, standbys: &mut Standbys) -> bool {
    if !mm.allow_standby_replay {
        return release_followers(mm, standbys, |_| true);
    }
    let active = |g: &Gid| mm.mds_info.get(g).is_some_and(|i| i.state == Active);
    let needy = mm.up.iter().filter(|(r, g)| active(g) && mm.follower_of(**r).is_none());
    let ranks: Vec<Rank> = needy.map(|(r, _)| *r).collect();
    let mut changed = false;
    for rank in ranks {
        let Some(info) = take_standby(standbys, &mm.fs_name) else {
            break;
        };
        let info =
            MdsInfo { state: StandbyReplay, rank: None, standby_for_rank: Some(rank), ..info };
        mm.mds_info.insert(info.gid, info);
        changed = true;
    }
    changed
}

/// `mds fail <who>`: `who` is `<fs>:<rank>`, a bare rank (only with exactly one file
/// system), or a daemon name (`a` or `mds.a`).
pub fn mds_fail(
    fsmap: &mut FsMap, osdmap: &mut OsdMap, who: &str, now_ms: u64, p: &MdsParams,
) -> Result<bool, CmdError> {
    let gid = resolve_who(fsmap, who)?;
    Ok(fail_gid(fsmap, osdmap, gid, now_ms, p))
}

fn no_fs(name: &str) -> CmdError {
    CmdError::enoent(format!("file system '{name}' does not exist"))
}

fn rank_holder_gid(fs: &Filesystem, rank: Rank) -> Result<Gid, CmdError> {
    let not_up = || CmdError::enoent(format!("rank {rank} of {} is not up", fs.mdsmap.fs_name));
    fs.mdsmap.up.get(&rank).copied().ok_or_else(not_up)
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())
}

fn parse_rank(s: &str, who: &str) -> Result<Rank, CmdError> {
    let bad = || CmdError::einval(format!("invalid rank '{s}' in '{who}'"));
    s.parse().ok().filter(|_| is_number(s)).ok_or_else(bad)
}

fn resolve_who(fsmap: &FsMap, who: &str) -> Result<Gid, CmdError> {
    if let Some((fs_name, rank)) = who.split_once(':') {
        let rank = parse_rank(rank, who)?;
        let fs = fsmap.by_name(fs_name).ok_or_else(|| no_fs(fs_name))?;
        return rank_holder_gid(fs, rank);
    }
    if is_number(who) {
        let mut all = fsmap.filesystems.values();
        return match (all.next(), all.next()) {
            (Some(fs), None) => rank_holder_gid(fs, parse_rank(who, who)?),
            _ => Err(CmdError::einval(format!(
                "a bare rank needs exactly one file system; use <fs>:{who}"
            ))),
        };
    }
    let short = who.strip_prefix("mds.").unwrap_or(who);
    let gid = fsmap.gid_by_name(who).or_else(|| fsmap.gid_by_name(short));
    gid.ok_or_else(|| CmdError::enoent(format!("mds '{who}' does not exist")))
}

/// `fs fail <name>`: makes the file system unjoinable and fails every daemon in it
/// (followers first, so none is promoted); its ranks are left failed.
pub fn fs_fail(
    fsmap: &mut FsMap, osdmap: &mut OsdMap, fs_name: &str, now_ms: u64, p: &MdsParams,
) -> Result<bool, CmdError> {
    let fs = fsmap.by_name_mut(fs_name).ok_or_else(|| no_fs(fs_name))?;
    let mut changed = std::mem::replace(&mut fs.mdsmap.joinable, false);
    let infos = fs.mdsmap.mds_info.values();
    let mut members: Vec<(bool, Gid)> = infos.map(|i| (i.state != StandbyReplay, i.gid)).collect();
    members.sort_unstable();
    for (_, gid) in members {
        changed |= fail_gid(fsmap, osdmap, gid, now_ms, p);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
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
            let b = MdsBeacon { gid, name, addr, fs, want_state: want, seq };
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
}
