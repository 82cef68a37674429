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
#[path = "mds_monitor_tests.rs"]
mod tests;
