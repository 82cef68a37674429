//! Presentation of monitor replies: Ceph-like plain text, or JSON with `--format json`.
use serde_json::json;
use std::fmt::Write as _;

use super::admin::Post;
use super::{BlocklistCmd, Cmd, Format, FsCmd, OsdCmd};
use cephr::error::CmdError;
use cephr::maps::{FsMap, MdsMap, OsdMap, WEIGHT_ONE};
use cephr::msg::command::{Maps, MonStatus, StatusReport};
use cephr::msg::CommandReply;

pub fn print(cmd: &Cmd, reply: &CommandReply, fmt: Format, post: &Post) -> anyhow::Result<()> {
    let json = fmt == Format::Json;
    let out = match reply {
        CommandReply::Done(s) if json => json!({ "result": s }).to_string(),
        CommandReply::Done(s) => s.clone(),
        CommandReply::Status(s) if json => serde_json::to_string_pretty(s)?,
        CommandReply::Status(s) => status(s),
        CommandReply::MonStat(m) if json => serde_json::to_string_pretty(m)?,
        CommandReply::MonStat(m) => mon_stat(m),
        CommandReply::Auth(a) if json => serde_json::to_string_pretty(a)?,
        CommandReply::Auth(a) => a
            .iter()
            .map(|e| {
                let caps: String = e.caps.iter().map(|(k, v)| format!("\tcaps: [{k}] {v}\n")).collect();
                format!("{}\n{caps}", e.entity)
            })
            .collect::<String>()
            .trim_end()
            .to_string(),
        CommandReply::Maps(m) => maps(cmd, m, json, post)?,
        CommandReply::PgDump(p) if json => serde_json::to_string_pretty(p)?,
        CommandReply::PgDump(p) if matches!(cmd, Cmd::Pg(super::PgCmd::Stat)) => pg_stat(p),
        CommandReply::PgDump(p) => pg_dump(p),
        CommandReply::Df(d) if json => serde_json::to_string_pretty(d)?,
        CommandReply::Df(d) => df(d),
        CommandReply::Local(l) if json => serde_json::to_string_pretty(l)?,
        CommandReply::Local(l) => format!(
            "mon.{} {} (leader {}) term {} applied {} monmap e{} osdmap e{} fsmap e{}",
            l.name, l.role, l.leader, l.term, l.applied_index, l.monmap_epoch, l.osdmap_epoch, l.fsmap_epoch
        ),
    };
    if !out.is_empty() {
        use std::io::Write;
        // A closed stdout (`| head`) is not an error of the command.
        if let Err(e) = writeln!(std::io::stdout(), "{out}") {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

fn maps(cmd: &Cmd, m: &Maps, json: bool, post: &Post) -> anyhow::Result<String> {
    let fsm = &m.fsmap;
    let osdm = &m.osdmap;
    Ok(match (cmd, post) {
        (Cmd::Fs(FsCmd::Ls { .. }), _) if json => serde_json::to_string_pretty(&fs_ls_json(fsm, osdm))?,
        (Cmd::Fs(FsCmd::Ls { .. }), _) => fs_ls(fsm, osdm),
        (Cmd::Fs(FsCmd::Dump), _) if json => serde_json::to_string_pretty(fsm)?,
        (Cmd::Fs(FsCmd::Dump), _) => fs_dump(fsm),
        (_, Post::FsOne(name)) => {
            let fs = fsm
                .by_name(name)
                .ok_or_else(|| CmdError::enoent(format!("file system '{name}' does not exist")))?;
            if json {
                serde_json::to_string_pretty(fs)?
            } else {
                mdsmap(&fs.mdsmap, osdm)
            }
        }
        (_, Post::FsStatus(name)) => {
            if let Some(n) = name {
                fsm.by_name(n).ok_or_else(|| CmdError::enoent(format!("file system '{n}' does not exist")))?;
            }
            if json {
                serde_json::to_string_pretty(&fs_status_json(fsm, name.as_deref()))?
            } else {
                fs_status(fsm, osdm, name.as_deref())
            }
        }
        (Cmd::Osd(OsdCmd::Tree), _) if json => serde_json::to_string_pretty(&json!({"hosts": osdm.crush.hosts, "osds": osdm.osds}))?,
        (Cmd::Osd(OsdCmd::Tree), _) => osd_tree(osdm),
        (Cmd::Osd(OsdCmd::Dump), _) if json => serde_json::to_string_pretty(osdm)?,
        (Cmd::Osd(OsdCmd::Dump), _) => osd_dump(osdm),
        (Cmd::Osd(OsdCmd::Map { pool, object }), _) => osd_map(osdm, pool, object, json)?,
        (_, Post::PoolDetail(_)) if json => serde_json::to_string_pretty(&osdm.pools.values().collect::<Vec<_>>())?,
        (_, Post::PoolDetail(detail)) => pool_ls(osdm, *detail),
        (Cmd::Osd(OsdCmd::Blocklist(BlocklistCmd::Ls)), _) if json => serde_json::to_string_pretty(
            &osdm.blocklist.iter().map(|(a, e)| json!({"addr": a.to_string(), "until_ms": e})).collect::<Vec<_>>(),
        )?,
        (Cmd::Osd(OsdCmd::Blocklist(BlocklistCmd::Ls)), _) => blocklist(osdm),
        _ => serde_json::to_string_pretty(m)?,
    })
}

fn pool_name(osdm: &OsdMap, id: u64) -> String {
    osdm.pools.get(&id).map(|p| p.name.clone()).unwrap_or_else(|| format!("<pool {id}>"))
}

fn status(s: &StatusReport) -> String {
    let mut o = String::new();
    let h = serde_json::to_value(s.health).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let _ = writeln!(o, "  cluster:\n    id:     {}\n    health: {h}", s.fsid);
    for c in &s.checks {
        let _ = writeln!(o, "            {}", c.summary);
    }
    let _ = writeln!(o, "\n  services:");
    let m = &s.mon;
    let _ = writeln!(
        o,
        "    mon: {} daemons, quorum {} (leader {}, term {})",
        m.monmap.mons.len(),
        m.quorum.join(","),
        m.leader,
        m.term
    );
    for fs in s.fsmap.filesystems.values() {
        let mm = &fs.mdsmap;
        let ranks: Vec<String> = mm
            .up
            .iter()
            .filter_map(|(r, g)| mm.mds_info.get(g).map(|i| format!("{r}={}={}", i.name, i.state)))
            .collect();
        let up = format!("{}/{}", mm.up.len(), mm.max_mds);
        let _ = writeln!(o, "    mds: {}:{up} {{{}}}", mm.fs_name, ranks.join(","));
    }
    let standbys = s.fsmap.standbys.len()
        + s.fsmap.filesystems.values().map(|f| f.mdsmap.count_in_state(cephr::maps::MdsState::StandbyReplay)).sum::<usize>();
    if standbys > 0 || !s.fsmap.filesystems.is_empty() {
        let _ = writeln!(o, "    mds standby: {standbys} up:standby");
    }
    let om = &s.osdmap;
    let _ = writeln!(o, "    osd: {} osds: {} up, {} in; epoch e{}", om.osds.len(), om.num_up(), om.num_in(), om.epoch);
    let pgs: u32 = om.pools.values().map(|p| p.pg_num).sum();
    let _ = writeln!(o, "\n  data:\n    pools:   {} pools, {pgs} pgs\n    objects: {}", om.pools.len(), s.num_objects);
    if s.degraded_objects > 0 || s.misplaced_objects > 0 {
        let _ = writeln!(o, "    usage:   {} objects degraded, {} misplaced", s.degraded_objects, s.misplaced_objects);
    }
    let states: Vec<String> = s.pg_states.iter().map(|(k, n)| format!("{n} {k}")).collect();
    if !states.is_empty() {
        let _ = writeln!(o, "    pgs:     {}", states.join(", "));
    }
    let _ = write!(o, "    fsmap:   e{}", s.fsmap.epoch);
    o
}

fn pg_stat(p: &[cephr::msg::osd::PgStat]) -> String {
    let mut by: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for s in p {
        *by.entry(s.state.as_str()).or_insert(0) += 1;
    }
    let states: Vec<String> = by.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let objs: u64 = p.iter().map(|s| s.num_objects).sum();
    let deg: u64 = p.iter().map(|s| s.degraded_objects).sum();
    format!("{} pgs: {}; {objs} objects; {deg} degraded", p.len(), states.join(", "))
}

fn pg_dump(p: &[cephr::msg::osd::PgStat]) -> String {
    let mut o = String::from("PG_STAT  STATE                       OBJECTS  DEGRADED  LAST_UPDATE  ACTING   PRIMARY\n");
    for s in p {
        let prim = s.primary.map_or("-1".to_string(), |x| x.to_string());
        let _ = writeln!(
            o,
            "{:<8} {:<27} {:>7}  {:>8}  {:<11}  {:<8} {prim}",
            s.pg.to_string(),
            s.state,
            s.num_objects,
            s.degraded_objects,
            s.last_update.to_string(),
            format!("{:?}", s.acting)
        );
    }
    o.trim_end().to_string()
}

fn mon_stat(m: &MonStatus) -> String {
    let mons: Vec<String> = m.monmap.mons.values().map(|i| format!("{}={}", i.name, i.addr)).collect();
    format!(
        "e{}: {} mons at {{{}}}, term {}, leader {}, quorum {}",
        m.monmap.epoch,
        m.monmap.mons.len(),
        mons.join(","),
        m.term,
        m.leader,
        m.quorum.join(",")
    )
}

fn fs_ls(fsm: &FsMap, osdm: &OsdMap) -> String {
    if fsm.filesystems.is_empty() {
        return "No filesystems enabled".into();
    }
    fsm.filesystems
        .values()
        .map(|f| {
            let d: Vec<String> = f.mdsmap.data_pools.iter().map(|p| pool_name(osdm, *p)).collect();
            format!(
                "name: {}, metadata pool: {}, data pools: [{} ]",
                f.mdsmap.fs_name,
                pool_name(osdm, f.mdsmap.metadata_pool),
                d.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn fs_ls_json(fsm: &FsMap, osdm: &OsdMap) -> serde_json::Value {
    json!(fsm
        .filesystems
        .values()
        .map(|f| json!({
            "name": f.mdsmap.fs_name,
            "metadata_pool": pool_name(osdm, f.mdsmap.metadata_pool),
            "data_pools": f.mdsmap.data_pools.iter().map(|p| pool_name(osdm, *p)).collect::<Vec<_>>(),
        }))
        .collect::<Vec<_>>())
}

fn mdsmap(m: &MdsMap, osdm: &OsdMap) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "fs_name\t{}\nepoch\t{}\njoinable\t{}", m.fs_name, m.epoch, m.joinable);
    let _ = writeln!(o, "max_mds\t{}\nallow_standby_replay\t{}", m.max_mds, m.allow_standby_replay);
    let _ = writeln!(o, "session_timeout\t{}\nsession_autoclose\t{}", m.session_timeout, m.session_autoclose);
    let _ = writeln!(o, "metadata_pool\t{}", pool_name(osdm, m.metadata_pool));
    let d: Vec<String> = m.data_pools.iter().map(|p| pool_name(osdm, *p)).collect();
    let _ = writeln!(o, "data_pools\t[{}]", d.join(","));
    let list = |s: &std::collections::BTreeSet<u32>| s.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(",");
    let _ = writeln!(o, "in\t{}\nup\t{:?}", list(&m.in_), m.up);
    let _ = writeln!(o, "failed\t{}\ndamaged\t{}\nstopped\t{}", list(&m.failed), list(&m.damaged), list(&m.stopped));
    for i in m.mds_info.values() {
        let rank = i.rank.map(|r| r.to_string()).unwrap_or_else(|| "-".into());
        let addr = i.addr.map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(o, "[mds.{}{{{rank}:{}}} state {} seq {} addr {addr}]", i.name, i.gid, i.state, i.state_seq);
    }
    o.trim_end().to_string()
}

fn fs_dump(fsm: &FsMap) -> String {
    let mut o = format!("e{}\n", fsm.epoch);
    for f in fsm.filesystems.values() {
        let _ = writeln!(o, "Filesystem '{}' ({})", f.mdsmap.fs_name, f.fscid);
        let _ = writeln!(o, "{}\n", mdsmap(&f.mdsmap, &OsdMap::default()));
    }
    o.push_str("Standby daemons:\n");
    for i in fsm.standbys.values() {
        let _ = writeln!(o, "[mds.{}{{-1:{}}} state {} seq {}]", i.name, i.gid, i.state, i.state_seq);
    }
    o.trim_end().to_string()
}

fn fs_status(fsm: &FsMap, osdm: &OsdMap, only: Option<&str>) -> String {
    let mut o = String::new();
    for f in fsm.filesystems.values().filter(|f| only.is_none_or(|n| n == f.mdsmap.fs_name)) {
        let m = &f.mdsmap;
        let _ = writeln!(o, "{} - epoch {}\nRANK  STATE              MDS", m.fs_name, m.epoch);
        for r in 0..m.max_mds.max(m.in_.iter().max().map_or(0, |x| x + 1)) {
            let (state, name) = match m.rank_holder(r) {
                Some(i) => (i.state.name().trim_start_matches("up:").to_string(), i.name.clone()),
                None if m.failed.contains(&r) => ("failed".into(), String::new()),
                None if m.damaged.contains(&r) => ("damaged".into(), String::new()),
                None if m.stopped.contains(&r) => ("stopped".into(), String::new()),
                None => ("-".into(), String::new()),
            };
            let _ = writeln!(o, "{r:>4}  {state:<17}  {name}");
        }
        for i in m.mds_info.values().filter(|i| i.standby_for_rank.is_some()) {
            let _ = writeln!(o, "{:>4}  {:<17}  {}", format!("{}-s", i.standby_for_rank.unwrap_or(0)), "standby-replay", i.name);
        }
        let _ = writeln!(o, "      POOL          TYPE\n  {:<16} metadata", pool_name(osdm, m.metadata_pool));
        for p in &m.data_pools {
            let _ = writeln!(o, "  {:<16} data", pool_name(osdm, *p));
        }
        o.push('\n');
    }
    let names: Vec<&str> = fsm.standbys.values().map(|i| i.name.as_str()).collect();
    let _ = write!(o, "STANDBY MDS\n  {}", names.join("\n  "));
    o
}

fn fs_status_json(fsm: &FsMap, only: Option<&str>) -> serde_json::Value {
    let fss: Vec<serde_json::Value> = fsm
        .filesystems
        .values()
        .filter(|f| only.is_none_or(|n| n == f.mdsmap.fs_name))
        .map(|f| {
            let ranks: Vec<serde_json::Value> = f
                .mdsmap
                .mds_info
                .values()
                .map(|i| json!({"name": i.name, "gid": i.gid, "rank": i.rank, "state": i.state.name(), "standby_for_rank": i.standby_for_rank}))
                .collect();
            json!({"name": f.mdsmap.fs_name, "epoch": f.mdsmap.epoch, "max_mds": f.mdsmap.max_mds,
                   "failed": f.mdsmap.failed, "damaged": f.mdsmap.damaged, "daemons": ranks})
        })
        .collect();
    let standbys: Vec<&str> = fsm.standbys.values().map(|i| i.name.as_str()).collect();
    json!({"epoch": fsm.epoch, "filesystems": fss, "standbys": standbys})
}

fn w(x: u32) -> f64 {
    x as f64 / WEIGHT_ONE as f64
}

fn osd_tree(m: &OsdMap) -> String {
    let mut o = String::from("ID   WEIGHT    TYPE NAME          STATUS  REWEIGHT\n");
    let total: u32 = m.osds.values().map(|x| x.weight).sum();
    let _ = writeln!(o, "{:<4} {:>8.5}  root default", -1, w(total));
    for (i, (host, osds)) in m.crush.hosts.iter().enumerate() {
        let hw: u32 = osds.iter().filter_map(|id| m.osds.get(id)).map(|x| x.weight).sum();
        let _ = writeln!(o, "{:<4} {:>8.5}      host {host}", -(i as i64) - 2, w(hw));
        for id in osds {
            if let Some(x) = m.osds.get(id) {
                let st = if x.up { "up" } else { "down" };
                let rw = if x.in_ { 1.0 } else { 0.0 };
                let _ = writeln!(o, "{:<4} {:>8.5}          osd.{id:<8} {st:<7} {rw:.5}", id, w(x.weight));
            }
        }
    }
    o.trim_end().to_string()
}

fn osd_map(m: &OsdMap, pool: &str, object: &str, json: bool) -> anyhow::Result<String> {
    let p = m.pool_by_name(pool).ok_or_else(|| CmdError::enoent(format!("pool '{pool}' does not exist")))?;
    let pg = cephr::crush::object_to_pg(p, object);
    let pm = cephr::crush::pg_mapping(m, pg);
    let prim = |p: Option<u32>| p.map_or("-1".to_string(), |x| x.to_string());
    Ok(if json {
        serde_json::to_string_pretty(&json!({"epoch": m.epoch, "pool": pool, "pool_id": p.id, "objname": object,
            "pgid": pg.to_string(), "up": pm.up, "up_primary": pm.up_primary, "acting": pm.acting, "acting_primary": pm.acting_primary}))?
    } else {
        format!(
            "osdmap e{} pool '{pool}' ({}) object '{object}' -> pg {pg} -> up ({:?}, p{}) acting ({:?}, p{})",
            m.epoch, p.id, pm.up, prim(pm.up_primary), pm.acting, prim(pm.acting_primary)
        )
    })
}

fn osd_dump(m: &OsdMap) -> String {
    let mut o = format!("epoch {}\nfsid {}\n", m.epoch, m.fsid);
    o.push_str(&pool_ls(m, true));
    o.push('\n');
    for x in m.osds.values() {
        let st = format!("{} {}{}", if x.up { "up" } else { "down" }, if x.in_ { "in" } else { "out" }, if x.full { " full" } else { "" });
        let addr = x.addr.map(|a| a.to_string()).unwrap_or_default();
        let laggy = if x.laggy_ppm > 0 {
            format!(" laggy_probability {:.3} laggy_interval {:.1}s", f64::from(x.laggy_ppm) / 1e6, x.laggy_interval_ms as f64 / 1000.0)
        } else {
            String::new()
        };
        let _ = writeln!(o, "osd.{} {st} weight {:.5} up_from {} up_thru {} down_at {} {addr}{laggy}", x.id, w(x.weight), x.up_from, x.up_thru, x.down_at);
    }
    for (pg, a) in &m.pg_temp {
        let _ = writeln!(o, "pg_temp {pg} {a:?}");
    }
    for (a, until) in &m.blocklist {
        let _ = writeln!(o, "blocklist {a} expires {}", until / 1000);
    }
    o.trim_end().to_string()
}

fn pool_ls(m: &OsdMap, detail: bool) -> String {
    m.pools
        .values()
        .map(|p| {
            if detail {
                format!(
                    "pool {} '{}' replicated size {} min_size {} pg_num {} failure_domain {}",
                    p.id,
                    p.name,
                    p.size,
                    p.min_size,
                    p.pg_num,
                    p.failure_domain.name()
                )
            } else {
                p.name.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn blocklist(m: &OsdMap) -> String {
    let mut o = String::new();
    for (a, until) in &m.blocklist {
        let _ = writeln!(o, "{a} expires {}", until / 1000);
    }
    let _ = write!(o, "listed {} entries", m.blocklist.len());
    o
}

fn df(d: &cephr::msg::command::DfReport) -> String {
    let gib = |b: u64| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64);
    let mut o = format!(
        "--- RAW STORAGE ---\nSIZE        AVAIL       USED\n{:<12}{:<12}{}\n\n--- POOLS ---\nPOOL              OBJECTS\n",
        gib(d.total_bytes),
        gib(d.avail_bytes),
        gib(d.used_bytes)
    );
    for (name, objects) in &d.pools {
        let _ = writeln!(o, "{name:<18}{objects}");
    }
    o.trim_end().to_string()
}
