//! Monitor commands that change state, applied as part of a committed `MonOp`.
//! Each returns a one-line confirmation or an errno-coded error naming the culprit.
use std::collections::BTreeMap;

use super::mds_monitor;
use super::osd_monitor;
use super::state::{MonParams, MonState};
use crate::auth::parse_caps;
use crate::error::{CmdError, Errno};
use crate::ids::{EntityKind, EntityName, OsdId};
use crate::maps::{FailureDomain, Filesystem, MdsMap};
use crate::msg::{CommandReply, MonCommand};

fn done(s: impl Into<String>) -> Result<CommandReply, CmdError> {
    Ok(CommandReply::Done(s.into()))
}

pub fn apply(st: &mut MonState, cmd: &MonCommand, now_ms: u64, p: &MonParams) -> Result<CommandReply, CmdError> {
    match cmd {
        MonCommand::FsNew { name, metadata_pool, data_pool } => fs_new(st, name, metadata_pool, data_pool, now_ms, p),
        MonCommand::FsSet { name, var, val } => fs_set(st, name, var, val),
        MonCommand::FsFail { name } => {
            mds_monitor::fs_fail(&mut st.fsmap, &mut st.osdmap, name, now_ms, &p.mds)?;
            done(format!("{name} marked not joinable; MDS cannot join the cluster. All MDS ranks marked failed."))
        }
        MonCommand::FsRm { name, confirm } => fs_rm(st, name, *confirm),
        MonCommand::MdsFail { who } => {
            mds_monitor::mds_fail(&mut st.fsmap, &mut st.osdmap, who, now_ms, &p.mds)?;
            done(format!("failed mds.{who}"))
        }
        MonCommand::OsdPoolCreate { name, pg_num, size, min_size } => {
            let size = size.unwrap_or(p.pool_size);
            let min = min_size.unwrap_or(p.pool_min_size.min(size));
            let pg = pg_num.unwrap_or(p.pool_pg_num);
            match osd_monitor::pool_create(&mut st.osdmap, name, pg, size, min, FailureDomain::Host) {
                Ok(_) => done(format!("pool '{name}' created")),
                Err(e) if e.errno == Errno::EEXIST => done(format!("pool '{name}' already exists")),
                Err(e) => Err(e),
            }
        }
        MonCommand::OsdDown { id } => osd_change(st, *id, "down", |m, id| osd_monitor::mark_down(m, id, now_ms)),
        MonCommand::OsdOut { id } => osd_change(st, *id, "out", |m, id| osd_monitor::mark_out(m, id, false)),
        MonCommand::OsdIn { id } => osd_change(st, *id, "in", osd_monitor::mark_in),
        MonCommand::OsdBlocklistAdd { addr, expire_secs } => {
            let secs = expire_secs.unwrap_or(p.mds.blocklist_expire_ms as f64 / 1000.0);
            if !(secs.is_finite() && secs > 0.0) {
                return Err(CmdError::einval(format!("expire must be a positive number of seconds (got {secs})")));
            }
            let until = now_ms + (secs * 1000.0) as u64;
            st.osdmap.blocklist.insert(*addr, until);
            done(format!("blocklisting {addr} for {secs} s"))
        }
        MonCommand::OsdBlocklistRm { addr } => match st.osdmap.blocklist.remove(addr) {
            Some(_) => done(format!("un-blocklisting {addr}")),
            None => done(format!("{addr} isn't blocklisted")),
        },
        MonCommand::AuthAdd { entity, caps } => auth_add(st, entity, caps),
        MonCommand::AuthRm { entity } => {
            if *entity == EntityName::client("admin") {
                return Err(CmdError::new(Errno::EPERM, "refusing to remove client.admin"));
            }
            match st.auth.remove(entity) {
                Some(_) => done(format!("removed {entity}")),
                None => Err(CmdError::enoent(format!("entity {entity} does not exist"))),
            }
        }
        MonCommand::Status | MonCommand::MonStat | MonCommand::LocalStatus | MonCommand::PgDump | MonCommand::Df | MonCommand::GetMaps | MonCommand::AuthLs | MonCommand::AuthGet { .. } => {
            read(st, cmd).unwrap_or_else(|| Err(CmdError::einval("not a state-changing command")))
        }
    }
}

/// Read-only commands answered from the committed state (None: not one of them).
pub fn read(st: &MonState, cmd: &MonCommand) -> Option<Result<CommandReply, CmdError>> {
    Some(match cmd {
        MonCommand::GetMaps => Ok(CommandReply::Maps(Box::new(crate::msg::command::Maps {
            monmap: st.monmap.clone(),
            osdmap: st.osdmap.clone(),
            fsmap: st.fsmap.clone(),
        }))),
        MonCommand::AuthLs => Ok(CommandReply::Auth(
            st.auth
                .iter()
                .map(|(e, c)| crate::msg::command::AuthEntry { entity: e.clone(), caps: c.clone() })
                .collect(),
        )),
        MonCommand::AuthGet { entity } => match st.auth.get(entity) {
            Some(c) => Ok(CommandReply::Auth(vec![crate::msg::command::AuthEntry {
                entity: entity.clone(),
                caps: c.clone(),
            }])),
            None => Err(CmdError::enoent(format!("entity {entity} does not exist"))),
        },
        _ => return None,
    })
}

fn valid_fs_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

fn fs_new(st: &mut MonState, name: &str, mpool: &str, dpool: &str, now_ms: u64, p: &MonParams) -> Result<CommandReply, CmdError> {
    if !valid_fs_name(name) {
        return Err(CmdError::einval(format!("invalid file system name '{name}'")));
    }
    let pool = |n: &str| {
        st.osdmap
            .pool_by_name(n)
            .map(|p| p.id)
            .ok_or_else(|| CmdError::enoent(format!("pool '{n}' does not exist")))
    };
    let (m, d) = (pool(mpool)?, pool(dpool)?);
    if m == d {
        return Err(CmdError::einval("the metadata pool and the data pool must differ"));
    }
    if let Some(fs) = st.fsmap.by_name(name) {
        if fs.mdsmap.metadata_pool == m && fs.mdsmap.data_pools.first() == Some(&d) {
            return done(format!("file system '{name}' already exists"));
        }
        return Err(CmdError::eexist(format!("file system '{name}' already exists with other pools")));
    }
    for (id, pname) in [(m, mpool), (d, dpool)] {
        if let Some(fs) = st.fsmap.filesystems.values().find(|f| {
            f.mdsmap.metadata_pool == id || f.mdsmap.data_pools.contains(&id)
        }) {
            return Err(CmdError::einval(format!(
                "pool '{pname}' is already used by file system '{}'",
                fs.mdsmap.fs_name
            )));
        }
    }
    let fscid = st.fsmap.next_fscid.max(1);
    st.fsmap.next_fscid = fscid + 1;
    let mut mdsmap = MdsMap::new(name, m, d, now_ms);
    mdsmap.session_timeout = p.session_timeout;
    mdsmap.session_autoclose = p.session_autoclose;
    st.fsmap.filesystems.insert(fscid, Filesystem { fscid, mdsmap });
    done(format!("new fs '{name}' with metadata pool {m} and data pool {d}"))
}

fn parse_bool(v: &str) -> Result<bool, CmdError> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(CmdError::einval(format!("'{v}' is not a boolean (true/false)"))),
    }
}

fn parse_num(var: &str, v: &str, min: u32, max: u32) -> Result<u32, CmdError> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(CmdError::einval(format!("{var} must be a whole number in {min}..={max} (got '{v}')"))),
    }
}

fn fs_set(st: &mut MonState, name: &str, var: &str, val: &str) -> Result<CommandReply, CmdError> {
    let fs = st
        .fsmap
        .by_name_mut(name)
        .ok_or_else(|| CmdError::enoent(format!("file system '{name}' does not exist")))?;
    let m = &mut fs.mdsmap;
    match var {
        "max_mds" => m.max_mds = parse_num(var, val, 1, 256)?,
        "allow_standby_replay" => m.allow_standby_replay = parse_bool(val)?,
        "joinable" => m.joinable = parse_bool(val)?,
        "session_timeout" => m.session_timeout = parse_num(var, val, 1, 86400)?,
        "session_autoclose" => m.session_autoclose = parse_num(var, val, 1, 86400 * 7)?,
        "max_file_size" => {
            // Up to 1 PiB: a truncate or purge visits every object up to the old size.
            const MAX: u64 = 1 << 50;
            m.max_file_size = match val.parse::<u64>() {
                Ok(n) if (65536..=MAX).contains(&n) => n,
                _ => return Err(CmdError::einval(format!("max_file_size must be a whole number of bytes in 65536..={MAX} (got '{val}')"))),
            }
        }
        _ => {
            return Err(CmdError::einval(format!(
                "unknown variable '{var}' (max_mds, allow_standby_replay, joinable, session_timeout, session_autoclose, max_file_size)"
            )))
        }
    }
    if m.session_autoclose < m.session_timeout {
        return Err(CmdError::einval(format!(
            "session_autoclose ({}) must be at least session_timeout ({})",
            m.session_autoclose, m.session_timeout
        )));
    }
    done(format!("set {name} {var} to {val}"))
}

fn fs_rm(st: &mut MonState, name: &str, confirm: bool) -> Result<CommandReply, CmdError> {
    let fs = st
        .fsmap
        .by_name(name)
        .ok_or_else(|| CmdError::enoent(format!("file system '{name}' does not exist")))?;
    if !confirm {
        return Err(CmdError::new(
            Errno::EPERM,
            format!("this is a DESTRUCTIVE operation and will make data in file system '{name}' inaccessible; add --yes-i-really-mean-it"),
        ));
    }
    if !fs.mdsmap.up.is_empty() || !fs.mdsmap.mds_info.is_empty() {
        return Err(CmdError::einval(format!(
            "all MDS daemons of '{name}' must be inactive before removing it (run: cephr fs fail {name})"
        )));
    }
    let id = fs.fscid;
    st.fsmap.filesystems.remove(&id);
    done(format!("removed file system '{name}'"))
}

fn osd_change(
    st: &mut MonState,
    id: OsdId,
    what: &str,
    f: impl FnOnce(&mut crate::maps::OsdMap, OsdId) -> bool,
) -> Result<CommandReply, CmdError> {
    if !st.osdmap.osds.contains_key(&id) {
        return Err(CmdError::enoent(format!("osd.{id} does not exist")));
    }
    if f(&mut st.osdmap, id) {
        done(format!("marked {what} osd.{id}"))
    } else {
        done(format!("osd.{id} is already {what}"))
    }
}

fn auth_add(st: &mut MonState, entity: &EntityName, caps: &BTreeMap<String, String>) -> Result<CommandReply, CmdError> {
    if entity.kind != EntityKind::Client {
        return Err(CmdError::einval(format!("{entity}: only client entities are added; daemon keys come with the cluster")));
    }
    for (svc, c) in caps {
        parse_caps(svc, c).map_err(|e| CmdError::einval(e.to_string()))?;
    }
    match st.auth.get(entity) {
        Some(old) if old == caps => done(format!("{entity} already exists")),
        Some(_) => Err(CmdError::einval(format!("entity {entity} exists but caps do not match"))),
        None => {
            st.auth.insert(entity.clone(), caps.clone());
            done(format!("added {entity}"))
        }
    }
}
