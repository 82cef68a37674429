//! Health checks for `cephr status`, computed from the committed maps and the
//! leader's view of the monitor quorum. Pure: no I/O.
use super::state::MonState;
use std::collections::HashMap;

use crate::ids::Gid;
use crate::maps::{FsMap, MdsState};
use crate::msg::command::{HealthCheck, HealthStatus, MonStatus};

fn check(code: &str, severity: HealthStatus, summary: String) -> HealthCheck {
    HealthCheck { code: code.into(), severity, summary }
}

pub fn checks(st: &MonState, mon: &MonStatus) -> Vec<HealthCheck> {
    let mut out = Vec::new();
    let total = st.monmap.mons.len();
    if mon.quorum.len() < total {
        let down: Vec<&str> = st
            .monmap
            .mons
            .keys()
            .filter(|m| !mon.quorum.contains(m))
            .map(String::as_str)
            .collect();
        out.push(check(
            "MON_DOWN",
            HealthStatus::Warn,
            format!("{}/{} mons down ({}), quorum {}", down.len(), total, down.join(","), mon.quorum.join(",")),
        ));
    }
    let down = st.osdmap.osds.values().filter(|o| !o.up && o.in_).count();
    if down > 0 {
        out.push(check("OSD_DOWN", HealthStatus::Warn, format!("{down} osds down")));
    }
    let full: Vec<String> = st.osdmap.osds.values().filter(|o| o.up && o.full).map(|o| format!("osd.{}", o.id)).collect();
    if !full.is_empty() {
        out.push(check("OSD_FULL", HealthStatus::Err, format!("{} full osd(s): {}", full.len(), full.join(","))));
    }
    for fs in st.fsmap.filesystems.values() {
        let m = &fs.mdsmap;
        let name = &m.fs_name;
        let active = m.up.values().filter(|g| m.mds_info.get(g).is_some_and(|i| i.state == MdsState::Active)).count();
        if !m.damaged.is_empty() {
            out.push(check("MDS_DAMAGE", HealthStatus::Err, format!("fs {name} has {} damaged ranks", m.damaged.len())));
        }
        if m.up.is_empty() {
            out.push(check("MDS_ALL_DOWN", HealthStatus::Err, format!("fs {name} is offline because no MDS is active for it")));
        } else if active < m.up.len() || !m.failed.is_empty() {
            out.push(check("FS_DEGRADED", HealthStatus::Warn, format!("fs {name} is degraded")));
        }
        if !m.failed.is_empty() {
            out.push(check("FS_WITH_FAILED_MDS", HealthStatus::Warn, format!("fs {name} has {} failed mds", m.failed.len())));
        }
    }
    out
}

/// PG availability and redundancy warnings from the primaries' reports.
pub fn pg_checks(pgs: &[crate::msg::osd::PgStat]) -> Vec<HealthCheck> {
    let mut out = Vec::new();
    let inactive = pgs.iter().filter(|p| !p.state.starts_with("active")).count();
    if inactive > 0 {
        let down = pgs.iter().filter(|p| p.state.contains("down")).count();
        out.push(check(
            "PG_AVAILABILITY",
            HealthStatus::Warn,
            format!("Reduced data availability: {inactive} pgs inactive, {down} pgs down"),
        ));
    }
    let degraded: Vec<_> = pgs.iter().filter(|p| p.state.contains("degraded")).collect();
    if !degraded.is_empty() {
        let objs: u64 = degraded.iter().map(|p| p.degraded_objects).sum();
        out.push(check(
            "PG_DEGRADED",
            HealthStatus::Warn,
            format!("Degraded data redundancy: {objs} objects degraded, {} pgs degraded", degraded.len()),
        ));
    }
    out
}

/// `SLOW_OPS`: client ops that up OSDs have held past `osd_op_complaint_time`, in
/// Ceph's words ("3 slow ops, oldest one blocked for 31 sec, osd.1 has slow ops").
pub fn slow_ops(osdmap: &crate::maps::OsdMap, reports: &HashMap<crate::ids::OsdId, crate::msg::osd::SlowOps>) -> Vec<HealthCheck> {
    let mut slow: Vec<_> = reports.iter().filter(|(o, s)| s.count > 0 && osdmap.osds.get(o).is_some_and(|i| i.up)).collect();
    if slow.is_empty() {
        return Vec::new();
    }
    slow.sort_by_key(|(o, _)| **o);
    let count: u64 = slow.iter().map(|(_, s)| u64::from(s.count)).sum();
    let oldest = slow.iter().map(|(_, s)| s.oldest_ms).max().unwrap_or(0) / 1000;
    let osds: Vec<String> = slow.iter().map(|(o, _)| format!("osd.{o}")).collect();
    let have = if osds.len() == 1 { "has" } else { "have" };
    vec![check("SLOW_OPS", HealthStatus::Warn, format!("{count} slow ops, oldest one blocked for {oldest} sec, {} {have} slow ops", osds.join(",")))]
}

/// The warnings MDS daemons report in their beacons (e.g. MDS_CLIENT_RECALL), for
/// daemons still in the FSMap, each prefixed with the daemon and its rank.
pub fn mds_daemon_checks(fsmap: &FsMap, reports: &HashMap<Gid, Vec<HealthCheck>>) -> Vec<HealthCheck> {
    let mut out = Vec::new();
    let mut infos: Vec<_> = fsmap.all_infos().filter(|i| reports.get(&i.gid).is_some_and(|r| !r.is_empty())).collect();
    infos.sort_by_key(|i| (i.name.clone(), i.gid));
    for info in infos {
        let who = match info.rank {
            Some(r) => format!("mds.{}(mds.{r})", info.name),
            None => format!("mds.{}", info.name),
        };
        for c in reports.get(&info.gid).into_iter().flatten() {
            out.push(check(&c.code, c.severity, format!("{who}: {}", c.summary)));
        }
    }
    out
}

pub fn overall(checks: &[HealthCheck]) -> HealthStatus {
    if checks.iter().any(|c| c.severity == HealthStatus::Err) {
        HealthStatus::Err
    } else if checks.is_empty() {
        HealthStatus::Ok
    } else {
        HealthStatus::Warn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::{Filesystem, MdsInfo, MdsMap};

    fn info(gid: Gid, name: &str, rank: Option<u32>, state: MdsState) -> MdsInfo {
        MdsInfo {
            gid,
            name: name.into(),
            addr: None,
            rank,
            state,
            incarnation: 0,
            standby_for_rank: None,
            join_fs: None,
            state_seq: 0,
        }
    }

    fn recall(client: &str) -> HealthCheck {
        check("MDS_CLIENT_RECALL", HealthStatus::Warn, format!("client {client} failing to respond to cache pressure"))
    }

    /// That MDS-reported warnings appear in the status with the daemon and rank
    /// named, that daemons no longer in the FSMap and empty reports add nothing, and
    /// that the overall health follows them (a cleared report clears the warning).
    #[test]
    fn mds_reports_become_checks() {
        let mut mm = MdsMap::new("cephfs", 1, 2, 0);
        mm.mds_info.insert(7, info(7, "a", Some(0), MdsState::Active));
        mm.up.insert(0, 7);
        let mut fsmap = FsMap::default();
        fsmap.filesystems.insert(1, Filesystem { fscid: 1, mdsmap: mm });
        fsmap.standbys.insert(8, info(8, "b", None, MdsState::Standby));
        let mut reports = HashMap::new();
        reports.insert(7, vec![recall("client.x")]);
        reports.insert(8, Vec::new());
        reports.insert(99, vec![recall("client.gone")]);
        let checks = mds_daemon_checks(&fsmap, &reports);
        assert_eq!(checks.len(), 1, "{checks:?}");
        assert_eq!(checks[0].code, "MDS_CLIENT_RECALL");
        assert_eq!(checks[0].summary, "mds.a(mds.0): client client.x failing to respond to cache pressure");
        assert_eq!(overall(&checks), HealthStatus::Warn);
        reports.insert(7, Vec::new());
        let cleared = mds_daemon_checks(&fsmap, &reports);
        assert!(cleared.is_empty());
        assert_eq!(overall(&cleared), HealthStatus::Ok);
    }

    /// That SLOW_OPS sums the up OSDs' reports in Ceph's words and ignores OSDs
    /// reporting none or marked down.
    #[test]
    fn slow_ops_of_up_osds_become_a_warning() {
        use crate::msg::osd::SlowOps;
        let mut map = crate::maps::OsdMap::default();
        for id in 0..3 {
            let mut o = crate::maps::OsdInfo::new(id, &format!("h{id}"));
            o.up = id != 2;
            map.osds.insert(id, o);
        }
        let mut reports = HashMap::new();
        reports.insert(0, SlowOps::default());
        assert!(slow_ops(&map, &reports).is_empty());
        reports.insert(1, SlowOps { count: 2, oldest_ms: 31_400 });
        reports.insert(2, SlowOps { count: 5, oldest_ms: 90_000 });
        let c = slow_ops(&map, &reports);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].code, "SLOW_OPS");
        assert_eq!(c[0].summary, "2 slow ops, oldest one blocked for 31 sec, osd.1 has slow ops");
        reports.insert(0, SlowOps { count: 1, oldest_ms: 6_000 });
        assert_eq!(slow_ops(&map, &reports)[0].summary, "3 slow ops, oldest one blocked for 31 sec, osd.0,osd.1 have slow ops");
    }
}
