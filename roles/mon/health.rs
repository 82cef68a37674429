//! Health checks for `cephr status`, computed from the committed maps and the
//! leader's view of the monitor quorum. Pure: no I/O.
use super::state::MonState;
use crate::maps::MdsState;
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

pub fn overall(checks: &[HealthCheck]) -> HealthStatus {
    if checks.iter().any(|c| c.severity == HealthStatus::Err) {
        HealthStatus::Err
    } else if checks.is_empty() {
        HealthStatus::Ok
    } else {
        HealthStatus::Warn
    }
}
