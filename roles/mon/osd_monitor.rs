//! OSD half of the monitor: pure rules turning OSD boots, liveness claims, peer
//! failure reports, the periodic tick and `osd pool create` into OSDMap changes.
//!
//! Data flow: the leader clones its committed OSDMap, calls one function here per
//! event, and each function edits the copy and says whether anything changed; the
//! caller then bumps the epoch by exactly one and proposes the map. So here
//! `map.epoch + 1` is the epoch being made, recorded as `up_from`, `up_thru` and
//! `down_at`. Failure reports are not map state: they live in `FailureReports`, kept
//! by the leader between ticks, which says which OSDs enough live peers have
//! reported; the caller marks those down and forgets their reports.
//!
//! Documented behaviour reproduced: a down OSD that stays down for
//! `mon_osd_down_out_interval` is marked out automatically and comes back in when it
//! boots again, while an OSD an administrator marked out stays out; an OSD is
//! marked down on `mon_osd_min_down_reporters` distinct live reporters; expired
//! blocklist entries are dropped. No I/O, clock or randomness: time is passed in.
use std::collections::BTreeMap;

use crate::error::CmdError;
use crate::ids::{OsdId, PoolId};
use crate::maps::{FailureDomain, OsdInfo, OsdMap, Pool};
use crate::msg::{OsdAlive, OsdBoot, OsdFailure};

/// Tunables of the OSD monitor.
#[derive(Clone, Copy, Debug)]
pub struct OsdParams {
    /// How long an OSD may stay down before it is marked out automatically.
    pub down_out_interval_ms: u64,
    /// Distinct live reporters needed to mark an OSD down.
    pub min_down_reporters: usize,
    /// `osd_heartbeat_grace`: how long the target must have been silent.
    pub heartbeat_grace_ms: u64,
    /// The laggy adjustment of that grace (`None`: off).
    pub laggy: Option<Laggy>,
}

/// Ceph's laggy adjustment (`mon_osd_adjust_heartbeat_grace`): an OSD that was
/// marked down while alive (the same instance booted again) gets a longer grace
/// next time, by its laggy probability times its laggy interval, so that an OSD
/// starved on a loaded host is not marked down over and over (each time its PGs
/// peer again and their I/O stalls). A fresh instance makes both decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Laggy {
    pub weight: f64,
    pub halflife_ms: u64,
    pub max_interval_ms: u64,
}

impl Laggy {
    /// The boot of an OSD: `wrongly` when the same instance was marked down and
    /// boots again after `down_ms`.
    fn on_boot(&self, o: &mut OsdInfo, wrongly: Option<u64>) {
        let w = self.weight;
        let p = f64::from(o.laggy_ppm) / 1e6;
        let i = o.laggy_interval_ms as f64;
        let (p, i) = match wrongly {
            Some(down_ms) => (w + p * (1.0 - w), down_ms.min(self.max_interval_ms) as f64 * w + i * (1.0 - w)),
            None => (p * (1.0 - w), i * (1.0 - w)),
        };
        o.laggy_ppm = (p * 1e6).round().clamp(0.0, 1e6) as u32;
        o.laggy_interval_ms = i.round().max(0.0) as u64;
    }

    /// What the target's history adds to the grace of a failure `failed_for_ms` old.
    pub fn extra_grace_ms(&self, o: &OsdInfo, failed_for_ms: u64) -> u64 {
        let decay = (failed_for_ms as f64 * 0.5f64.ln() / self.halflife_ms as f64).exp();
        (decay * o.laggy_interval_ms as f64 * f64::from(o.laggy_ppm) / 1e6) as u64
    }
}

/// An OSD announces itself: new ids are created (in, weight 1.0) and placed in CRUSH
/// under their host; known ones come up at the new address, an automatically-out OSD
/// coming back in. Already up at the same address and host: no change.
/// A known OSD's boot also updates its laggy history (`Laggy::on_boot`).
pub fn handle_boot(map: &mut OsdMap, boot: &OsdBoot, now_ms: u64, p: &OsdParams) -> bool {
    let next = map.epoch + 1;
    let known = map.osds.contains_key(&boot.id);
    let o = map.osds.entry(boot.id).or_insert_with(|| new_osd(boot));
    if o.up && o.addr == Some(boot.addr) && o.host == boot.host {
        return false;
    }
    if let Some(l) = p.laggy.filter(|_| known) {
        // The same instance (address and nonce) was marked down while it lived.
        let wrongly = o.down_stamp_ms.filter(|_| o.addr == Some(boot.addr)).map(|t| now_ms.saturating_sub(t));
        l.on_boot(o, wrongly);
    }
    o.addr = Some(boot.addr);
    o.up = true;
    o.up_from = next;
    // A new instance reports its disk afresh.
    o.full = false;
    o.down_stamp_ms = None;
    if !o.in_ && o.auto_out {
        o.in_ = true;
        o.auto_out = false;
    }
    o.host.clone_from(&boot.host);
    let placed = map.crush.hosts.get(&boot.host).is_some_and(|v| v.contains(&boot.id));
    if !placed {
        map.crush_place(boot.id, &boot.host);
    }
    true
}

fn new_osd(boot: &OsdBoot) -> OsdInfo {
    OsdInfo::new(boot.id, &boot.host)
}

/// Marks an up OSD down at the epoch being made, stamping the time for down→out.
pub fn mark_down(map: &mut OsdMap, id: OsdId, now_ms: u64) -> bool {
    let next = map.epoch + 1;
    match map.osds.get_mut(&id) {
        Some(o) if o.up => {
            o.up = false;
            o.down_at = next;
            o.down_stamp_ms = Some(now_ms);
            true
        }
        _ => false,
    }
}

/// Marks an OSD out; `auto` records that the monitor did it (so a boot brings it back
/// in). An administrator marking out an automatically-out OSD makes it stay out.
pub fn mark_out(map: &mut OsdMap, id: OsdId, auto: bool) -> bool {
    let Some(o) = map.osds.get_mut(&id) else {
        return false;
    };
    if !o.in_ && (auto || !o.auto_out) {
        return false;
    }
    o.in_ = false;
    o.auto_out = auto;
    true
}

/// Marks an OSD in (clearing any automatic-out flag).
pub fn mark_in(map: &mut OsdMap, id: OsdId) -> bool {
    match map.osds.get_mut(&id) {
        Some(o) if !o.in_ => {
            o.in_ = true;
            o.auto_out = false;
            true
        }
        _ => false,
    }
}

/// An up OSD asks for `up_thru` to reach `a.want`: granted as the epoch being made.
pub fn handle_alive(map: &mut OsdMap, a: &OsdAlive) -> bool {
    let next = map.epoch + 1;
    match map.osds.get_mut(&a.id) {
        Some(o) if o.up && o.up_thru < a.want => {
            o.up_thru = next;
            true
        }
        _ => false,
    }
}

/// An up OSD reports whether its disk is full; a down one's report is stale.
pub fn handle_full(map: &mut OsdMap, id: OsdId, full: bool) -> bool {
    match map.osds.get_mut(&id) {
        Some(o) if o.up && o.full != full => {
            o.full = full;
            true
        }
        _ => false,
    }
}

/// Periodic work: marks the unresponsive OSDs down, marks out (automatically) every
/// in OSD down for at least the down-out interval, and drops expired blocklist entries.
pub fn tick(map: &mut OsdMap, now_ms: u64, unresponsive: &[OsdId], p: &OsdParams) -> bool {
    let mut changed = false;
    for &id in unresponsive {
        changed |= mark_down(map, id, now_ms);
    }
    let long_down = |o: &OsdInfo| {
        let since = o.down_stamp_ms.map(|t| now_ms.saturating_sub(t));
        !o.up && o.in_ && since.is_some_and(|d| d >= p.down_out_interval_ms)
    };
    let to_out: Vec<OsdId> = map.osds.values().filter(|o| long_down(o)).map(|o| o.id).collect();
    for id in to_out {
        changed |= mark_out(map, id, true);
    }
    let before = map.blocklist.len();
    map.blocklist.retain(|_, expiry| *expiry > now_ms);
    changed | (map.blocklist.len() != before)
}

fn valid_pool_name(name: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    (1..=128).contains(&name.len()) && name.chars().all(ok)
}

fn check_range(what: &str, v: u32, lo: u32, hi: u32) -> Result<(), CmdError> {
    if (lo..=hi).contains(&v) {
        return Ok(());
    }
    Err(CmdError::einval(format!("{what} {v} is out of range {lo}..={hi}")))
}

/// `osd pool create`: validates the name (1..=128 of `[A-Za-z0-9_.-]`, unused) and
/// the numbers (pg_num 1..=65536, size 1..=10, min_size 1..=size), then creates the
/// pool with the next pool id.
pub fn pool_create(
    map: &mut OsdMap, name: &str, pg_num: u32, size: u32, min_size: u32, domain: FailureDomain,
) -> Result<PoolId, CmdError> {
    if !valid_pool_name(name) {
        let why = "a pool name is 1 to 128 characters of letters, digits, '_', '.' and '-'";
        return Err(CmdError::einval(format!("invalid pool name '{name}': {why}")));
    }
    if map.pool_by_name(name).is_some() {
        return Err(CmdError::eexist(format!("pool '{name}' already exists")));
    }
    check_range("pg_num", pg_num, 1, 65536)?;
    check_range("size", size, 1, 10)?;
    check_range("min_size", min_size, 1, size)?;
    let id = map.pool_max.checked_add(1).ok_or_else(|| CmdError::einval("no pool id left"))?;
    let name = name.to_string();
    let pool = Pool { id, name, size, min_size, pg_num, failure_domain: domain };
    map.pools.insert(id, pool);
    map.pool_max = id;
    Ok(id)
}

/// One reporter's failure report: when it was last sent, and since when the reporter
/// has not heard the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Report {
    last_ms: u64,
    failed_since_ms: u64,
}

/// Failure reports gathered by the leader: target → reporter → its latest report. Not
/// part of any map; the caller forgets a target once it is marked down or boots
/// again. A reporter re-reports every grace while the target stays silent; a report
/// not renewed for four graces is stale (the reporter hears the target again, or is
/// gone) and counts no more.
#[derive(Default, Debug, Clone)]
pub struct FailureReports {
    reports: BTreeMap<OsdId, BTreeMap<OsdId, Report>>,
}

impl FailureReports {
    /// Records that `f.reporter` has not heard `f.target` for `f.failed_for_ms`.
    /// A report about oneself is meaningless and dropped.
    pub fn report(&mut self, f: &OsdFailure, now_ms: u64) {
        if f.reporter != f.target {
            let r = Report { last_ms: now_ms, failed_since_ms: now_ms.saturating_sub(f.failed_for_ms) };
            self.reports.entry(f.target).or_default().insert(f.reporter, r);
        }
    }

    /// The reporter can reach the target again.
    pub fn cancel(&mut self, target: OsdId, reporter: OsdId) {
        if let Some(by) = self.reports.get_mut(&target) {
            by.remove(&reporter);
            if by.is_empty() {
                self.reports.remove(&target);
            }
        }
    }

    /// Drops every report about `target`.
    pub fn forget(&mut self, target: OsdId) {
        self.reports.remove(&target);
    }

    /// The reporters currently held against `target`, ascending.
    pub fn reporters(&self, target: OsdId) -> Vec<OsdId> {
        self.reports.get(&target).map(|by| by.keys().copied().collect()).unwrap_or_default()
    }

    /// Up targets reported by at least `min_down_reporters` distinct reporters that
    /// are themselves up and whose reports are fresh, silent for longer than the
    /// heartbeat grace plus the target's laggy adjustment, ascending. A target needs
    /// no more reporters than there are other up OSDs (at least one): in a two-OSD
    /// cluster the survivor's report is enough, while in a larger one a single OSD
    /// that stalled (and so heard nobody) cannot have its peers marked down alone.
    pub fn ready_to_mark_down(&self, map: &OsdMap, p: &OsdParams, now_ms: u64) -> Vec<OsdId> {
        let is_up = |id: &OsdId| map.osds.get(id).is_some_and(|o| o.up);
        let others_up = map.osds.values().filter(|o| o.up).count().saturating_sub(1).max(1);
        let needed = p.min_down_reporters.clamp(1, others_up);
        let fresh_after = now_ms.saturating_sub(4 * p.heartbeat_grace_ms);
        let enough = |(target, by): (&OsdId, &BTreeMap<OsdId, Report>)| {
            let info = map.osds.get(target).filter(|o| o.up)?;
            let live: Vec<&Report> = by.iter().filter(|(r, rep)| *r != target && is_up(r) && rep.last_ms >= fresh_after).map(|(_, rep)| rep).collect();
            if live.len() < needed {
                return None;
            }
            // Silent since the latest time any live reporter last heard it.
            let failed_for = now_ms.saturating_sub(live.iter().map(|r| r.failed_since_ms).max().unwrap_or(now_ms));
            let grace = p.heartbeat_grace_ms + p.laggy.map_or(0, |l| l.extra_grace_ms(info, failed_for));
            (failed_for >= grace).then_some(*target)
        };
        self.reports.iter().filter_map(enough).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::maps::WEIGHT_ONE;
    use super::*;
    use crate::error::Errno;
    use crate::ids::EntityAddr;

    const P: OsdParams =
        OsdParams { down_out_interval_ms: 600_000, min_down_reporters: 2, heartbeat_grace_ms: 1_000, laggy: None };
    /// When the failure-report tests take place (their reports are fresh then).
    const T: u64 = 100_000;

    fn addr(nonce: u64) -> EntityAddr {
        EntityAddr { addr: "10.0.0.2:6800".parse().expect("literal address"), nonce }
    }

    fn boot(id: OsdId, nonce: u64, host: &str) -> OsdBoot {
        OsdBoot { id, addr: addr(nonce), host: host.into(), epoch: 0 }
    }

    /// Applies `f` to the map and bumps the epoch if it changed, as the caller does.
    fn step(map: &mut OsdMap, f: impl FnOnce(&mut OsdMap) -> bool) -> bool {
        let changed = f(map);
        map.epoch += changed as u64;
        changed
    }

    /// A map with OSDs `0..n` booted on hosts `h0`, `h1`, ... (one each).
    fn cluster(n: OsdId) -> OsdMap {
        let mut map = OsdMap { epoch: 1, ..OsdMap::default() };
        for id in 0..n {
            assert!(step(&mut map, |m| handle_boot(m, &boot(id, id.into(), &format!("h{id}")), 0, &P)));
        }
        map
    }

    fn osd(map: &OsdMap, id: OsdId) -> &OsdInfo {
        map.osds.get(&id).expect("osd in map")
    }

    /// That a new OSD comes up in, with weight 1.0, `up_from` the epoch being made,
    /// and a CRUSH place under its host; a repeated boot changes nothing.
    #[test]
    fn boot_creates_and_places_new_osd() {
        let mut map = OsdMap { epoch: 4, ..OsdMap::default() };
        assert!(handle_boot(&mut map, &boot(3, 9, "h1"), 0, &P));
        let o = osd(&map, 3);
        assert!(o.up && o.in_ && !o.auto_out && o.down_stamp_ms.is_none());
        assert_eq!(
            (o.weight, o.up_from, o.addr, o.host.as_str()),
            (WEIGHT_ONE, 5, Some(addr(9)), "h1")
        );
        assert_eq!(map.crush.hosts.get("h1"), Some(&vec![3]));
        assert!(!handle_boot(&mut map, &boot(3, 9, "h1"), 0, &P));
    }

    /// That a reboot at a new address after going down brings the OSD up with a new
    /// `up_from` and cleared down stamp, and a host change moves it in CRUSH.
    #[test]
    fn reboot_updates_address_and_placement() {
        let mut map = cluster(2);
        step(&mut map, |m| mark_down(m, 1, 100));
        assert!(step(&mut map, |m| handle_boot(m, &boot(1, 77, "h9"), 200, &P)));
        let o = osd(&map, 1);
        assert!(o.up && o.down_stamp_ms.is_none());
        assert_eq!((o.addr, o.up_from, o.host.as_str()), (Some(addr(77)), map.epoch, "h9"));
        assert_eq!(map.crush.hosts.get("h9"), Some(&vec![1]));
        assert!(!map.crush.hosts.contains_key("h1"), "the emptied host is dropped");
    }

    /// That marking down records `down_at` as the epoch being made and the time, and
    /// that a down or unknown OSD cannot be marked down again.
    #[test]
    fn mark_down_records_epoch_and_stamp() {
        let mut map = cluster(1);
        let next = map.epoch + 1;
        assert!(mark_down(&mut map, 0, 1_234));
        let o = osd(&map, 0);
        assert_eq!((o.up, o.down_at, o.down_stamp_ms), (false, next, Some(1_234)));
        assert!(o.in_, "down is not out");
        assert!(!mark_down(&mut map, 0, 2_000));
        assert!(!mark_down(&mut map, 42, 2_000));
        assert_eq!(osd(&map, 0).down_stamp_ms, Some(1_234));
    }

    /// That the tick marks unresponsive OSDs down and marks them out automatically
    /// only once the down-out interval has fully passed.
    #[test]
    fn tick_marks_down_then_out_after_interval() {
        let mut map = cluster(3);
        assert!(step(&mut map, |m| tick(m, 1_000, &[1], &P)));
        assert!(!osd(&map, 1).up && osd(&map, 1).in_);
        assert!(!step(&mut map, |m| tick(m, 1_000 + P.down_out_interval_ms - 1, &[], &P)));
        assert!(osd(&map, 1).in_);
        assert!(step(&mut map, |m| tick(m, 1_000 + P.down_out_interval_ms, &[], &P)));
        let o = osd(&map, 1);
        assert!(!o.in_ && o.auto_out);
        assert!(osd(&map, 0).up && osd(&map, 0).in_ && osd(&map, 2).in_);
        assert!(!step(&mut map, |m| tick(m, 10_000_000, &[1], &P)), "already down and out");
    }

    /// That an automatically-out OSD comes back in when it boots, while one an admin
    /// marked out stays out.
    #[test]
    fn reboot_brings_auto_out_back_in_but_not_admin_out() {
        let mut map = cluster(2);
        for id in [0, 1] {
            step(&mut map, |m| mark_down(m, id, 0));
        }
        step(&mut map, |m| tick(m, P.down_out_interval_ms, &[], &P));
        assert!(step(&mut map, |m| mark_out(m, 1, false)), "admin out overrides auto out");
        step(&mut map, |m| handle_boot(m, &boot(0, 50, "h0"), 0, &P));
        step(&mut map, |m| handle_boot(m, &boot(1, 51, "h1"), 0, &P));
        let (a, b) = (osd(&map, 0), osd(&map, 1));
        assert!(a.up && a.in_ && !a.auto_out);
        assert!(b.up && !b.in_ && !b.auto_out);
    }

    /// That mark_out/mark_in set `in_` and the auto flag, and report no change when
    /// the OSD is already there or unknown.
    #[test]
    fn mark_out_and_in() {
        let mut map = cluster(1);
        assert!(!mark_in(&mut map, 0));
        assert!(mark_out(&mut map, 0, true));
        assert!(!osd(&map, 0).in_ && osd(&map, 0).auto_out);
        assert!(!mark_out(&mut map, 0, true));
        assert!(mark_in(&mut map, 0));
        assert!(osd(&map, 0).in_ && !osd(&map, 0).auto_out);
        assert!(mark_out(&mut map, 0, false));
        assert!(!osd(&map, 0).auto_out);
        assert!(!mark_out(&mut map, 0, false) && !mark_out(&mut map, 0, true));
        assert!(!mark_out(&mut map, 9, false) && !mark_in(&mut map, 9));
    }

    /// That an up OSD's full report sets and clears its flag (a change only when it
    /// differs), a down or unknown OSD's report changes nothing, and a new instance
    /// booting starts not full.
    #[test]
    fn full_reports_set_and_clear_the_flag() {
        let mut map = cluster(2);
        assert!(step(&mut map, |m| handle_full(m, 0, true)));
        assert!(osd(&map, 0).full && !osd(&map, 1).full);
        assert!(!handle_full(&mut map, 0, true), "already full");
        assert!(step(&mut map, |m| handle_full(m, 0, false)));
        assert!(!osd(&map, 0).full);
        assert!(!handle_full(&mut map, 9, true), "unknown OSD");
        step(&mut map, |m| mark_down(m, 1, 100));
        assert!(!handle_full(&mut map, 1, true), "down OSD");
        assert!(step(&mut map, |m| handle_full(m, 0, true)));
        step(&mut map, |m| mark_down(m, 0, 100));
        assert!(step(&mut map, |m| handle_boot(m, &boot(0, 50, "h0"), 200, &P)));
        assert!(!osd(&map, 0).full, "a new instance reports afresh");
    }

    /// That `up_thru` becomes the epoch being made only for an up OSD asking for more
    /// than it has.
    #[test]
    fn alive_raises_up_thru() {
        let mut map = cluster(2);
        let next = map.epoch + 1;
        assert!(step(&mut map, |m| handle_alive(m, &OsdAlive { id: 0, want: 2 })));
        assert_eq!(osd(&map, 0).up_thru, next);
        assert!(!handle_alive(&mut map, &OsdAlive { id: 0, want: next }), "already there");
        step(&mut map, |m| mark_down(m, 1, 0));
        assert!(!handle_alive(&mut map, &OsdAlive { id: 1, want: 50 }), "down OSD");
        assert!(!handle_alive(&mut map, &OsdAlive { id: 7, want: 50 }), "unknown OSD");
        assert_eq!(osd(&map, 1).up_thru, 0);
    }

    /// That an OSD is ready to be marked down only with enough distinct reporters
    /// that are up and not itself, and that cancel and forget withdraw reports.
    #[test]
    fn failure_reports_need_a_quorum_of_live_reporters() {
        let mut map = cluster(5);
        let mut r = FailureReports::default();
        let fail =
            |target, reporter| OsdFailure { target, reporter, failed_for_ms: 20_000, epoch: 1 };
        r.report(&fail(0, 1), T + 10);
        r.report(&fail(0, 1), T + 20);
        r.report(&fail(0, 0), T + 20);
        assert_eq!(r.reporters(0), vec![1], "duplicates and self-reports do not count");
        assert!(r.ready_to_mark_down(&map, &P, T + 100).is_empty());
        r.report(&fail(0, 2), T + 30);
        assert_eq!(r.ready_to_mark_down(&map, &P, T + 100), vec![0]);
        mark_down(&mut map, 2, 40);
        assert!(r.ready_to_mark_down(&map, &P, T + 100).is_empty(), "a down reporter does not count");
        r.report(&fail(0, 3), T + 50);
        assert_eq!(r.ready_to_mark_down(&map, &P, T + 100), vec![0]);
        r.cancel(0, 3);
        assert_eq!(r.reporters(0), vec![1, 2]);
        assert!(r.ready_to_mark_down(&map, &P, T + 100).is_empty());
        r.report(&fail(4, 1), T + 60);
        r.report(&fail(4, 3), T + 60);
        mark_down(&mut map, 4, 70);
        assert!(r.ready_to_mark_down(&map, &P, T + 100).is_empty(), "a down target is not ready");
        r.forget(0);
        assert!(r.reporters(0).is_empty() && r.reporters(4) == vec![1, 3]);
    }

    /// That a target needs no more reporters than there are other up OSDs: in a
    /// two-OSD cluster one report marks the other down; with three, one stalled OSD
    /// reporting both peers marks neither down, and two reporters mark a dead one.
    #[test]
    fn reporters_needed_are_capped_by_the_up_osds() {
        let fail = |target, reporter| OsdFailure { target, reporter, failed_for_ms: 1_900, epoch: 1 };
        let two = cluster(2);
        let mut r = FailureReports::default();
        r.report(&fail(1, 0), T + 10);
        assert_eq!(r.ready_to_mark_down(&two, &P, T + 100), vec![1], "the only other OSD is enough");
        let three = cluster(3);
        let mut r = FailureReports::default();
        r.report(&fail(0, 2), T + 10);
        r.report(&fail(1, 2), T + 10);
        assert!(r.ready_to_mark_down(&three, &P, T + 100).is_empty(), "one stalled reporter marks nobody down");
        r.report(&fail(2, 0), T + 20);
        r.report(&fail(2, 1), T + 20);
        assert_eq!(r.ready_to_mark_down(&three, &P, T + 100), vec![2]);
        let mut one_left = cluster(3);
        mark_down(&mut one_left, 2, 30);
        let mut r = FailureReports::default();
        r.report(&fail(1, 0), T + 40);
        assert_eq!(r.ready_to_mark_down(&one_left, &P, T + 100), vec![1], "two up: one report is enough");
    }

    /// That a report counts only while the target has been silent for the grace
    /// and while it is renewed (four graces), and that an OSD wrongly marked down
    /// (the same instance boots again) gets a longer grace by its laggy history,
    /// which a fresh instance makes decay (Ceph's laggy adjustment).
    #[test]
    fn laggy_osds_get_a_longer_grace() {
        let l = Laggy { weight: 0.3, halflife_ms: 3_600_000, max_interval_ms: 300_000 };
        let p = OsdParams { laggy: Some(l), ..P };
        let mut map = cluster(3);
        let fail = |target, reporter, failed_for_ms| OsdFailure { target, reporter, failed_for_ms, epoch: 1 };
        let mut r = FailureReports::default();
        r.report(&fail(0, 1, 900), T);
        r.report(&fail(0, 2, 900), T);
        assert!(r.ready_to_mark_down(&map, &p, T + 50).is_empty(), "silent 950 ms, grace 1 s");
        assert_eq!(r.ready_to_mark_down(&map, &p, T + 100), vec![0]);
        assert!(r.ready_to_mark_down(&map, &p, T + 4_001).is_empty(), "reports not renewed are stale");

        // Marked down at T, the same instance (nonce 0) boots 2 s later: laggy.
        mark_down(&mut map, 0, T);
        assert!(step(&mut map, |m| handle_boot(m, &boot(0, 0, "h0"), T + 2_000, &p)));
        let o = osd(&map, 0).clone();
        assert_eq!((o.laggy_ppm, o.laggy_interval_ms), (300_000, 600));
        assert_eq!(l.extra_grace_ms(&o, 0), 180, "0.3 x 600 ms");
        let mut r = FailureReports::default();
        r.report(&fail(0, 1, 1_100), T + 10_000);
        r.report(&fail(0, 2, 1_100), T + 10_000);
        assert!(r.ready_to_mark_down(&map, &p, T + 10_000).is_empty(), "silent 1.1 s, grace 1.18 s");
        assert_eq!(r.ready_to_mark_down(&map, &p, T + 10_080), vec![0]);
        assert_eq!(r.ready_to_mark_down(&map, &P, T + 10_000), vec![0], "without the adjustment: 1 s");

        // Again: the probability and interval grow; a fresh instance makes them decay.
        mark_down(&mut map, 0, T + 20_000);
        step(&mut map, |m| handle_boot(m, &boot(0, 0, "h0"), T + 21_000, &p));
        assert_eq!((osd(&map, 0).laggy_ppm, osd(&map, 0).laggy_interval_ms), (510_000, 720));
        mark_down(&mut map, 0, T + 30_000);
        step(&mut map, |m| handle_boot(m, &boot(0, 1, "h0"), T + 90_000, &p));
        assert_eq!((osd(&map, 0).laggy_ppm, osd(&map, 0).laggy_interval_ms), (357_000, 504));
        // An hour-long failure has half the adjustment.
        assert_eq!(l.extra_grace_ms(osd(&map, 0), 3_600_000), 89);
    }

    /// That the tick drops blocklist entries whose expiry has come and keeps the rest.
    #[test]
    fn tick_expires_blocklist_entries() {
        let mut map = cluster(1);
        map.blocklist.insert(addr(100), 5_000);
        map.blocklist.insert(addr(101), 5_001);
        assert!(!tick(&mut map, 4_999, &[], &P));
        assert!(tick(&mut map, 5_000, &[], &P));
        assert_eq!(map.blocklist.keys().copied().collect::<Vec<_>>(), vec![addr(101)]);
        assert!(!tick(&mut map, 5_000, &[], &P));
    }

    /// That pool creation allocates consecutive ids from `pool_max` and stores the
    /// requested parameters.
    #[test]
    fn pool_create_allocates_ids() {
        let mut map = OsdMap { pool_max: 7, ..OsdMap::default() };
        assert_eq!(pool_create(&mut map, "rbd", 32, 3, 2, FailureDomain::Host), Ok(8));
        assert_eq!(pool_create(&mut map, "cephfs.meta-1_x", 8, 1, 1, FailureDomain::Osd), Ok(9));
        assert_eq!(map.pool_max, 9);
        let want = Pool {
            id: 8,
            name: "rbd".into(),
            size: 3,
            min_size: 2,
            pg_num: 32,
            failure_domain: FailureDomain::Host,
        };
        assert_eq!(map.pools.get(&8), Some(&want));
    }

    /// That bad names and out-of-range numbers are EINVAL naming the value, a taken
    /// name is EEXIST, and a refused creation leaves the map unchanged.
    #[test]
    fn pool_create_validates() {
        let mut map = OsdMap::default();
        pool_create(&mut map, "rbd", 8, 3, 2, FailureDomain::Host).expect("valid pool");
        let before = map.clone();
        let long = "p".repeat(129);
        let mut bad = |name: &str, pg: u32, size: u32, min: u32| {
            pool_create(&mut map, name, pg, size, min, FailureDomain::Host)
                .map_err(|e| (e.errno, e.message))
        };
        for name in ["", "a b", "x/y", "é", long.as_str()] {
            assert_eq!(bad(name, 8, 3, 2).map_err(|e| e.0), Err(Errno::EINVAL), "{name:?}");
        }
        assert_eq!(bad("rbd", 8, 3, 2), Err((Errno::EEXIST, "pool 'rbd' already exists".into())));
        for (pg, size, min, v) in [
            (0, 3, 2, "pg_num 0"),
            (65537, 3, 2, "pg_num 65537"),
            (8, 0, 1, "size 0"),
            (8, 11, 2, "size 11"),
            (8, 3, 0, "min_size 0"),
            (8, 3, 4, "min_size 4"),
        ] {
            let e = bad("new", pg, size, min);
            assert!(matches!(&e, Err((Errno::EINVAL, m)) if m.contains(v)), "{e:?}");
        }
        assert!(bad(&"p".repeat(128), 65536, 10, 10).is_ok());
        assert_eq!(map.pools.len(), before.pools.len() + 1);
    }
}
