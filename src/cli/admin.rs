//! Admin commands: map each CLI command to a `MonCommand`, send it through a
//! MonClient authenticated as `--name`, and print the reply (plain or JSON).
use std::collections::BTreeMap;

use super::format;
use super::{load_config, AuthCmd, BlocklistCmd, Cli, Cmd, FsCmd, MdsCmd, MonCmd, OsdCmd, PoolCmd};
use cephr::auth::{parse_caps, ClusterCa, Identity};
use cephr::error::{CmdError, Errno};
use cephr::ids::{EntityAddr, EntityName, OsdId};
use cephr::monc::{MonClient, MoncError};
use cephr::msg::MonCommand;
use cephr::net::{FaultRules, Messenger, MsgrOptions};

/// The CLI's messenger (as `name`, keys from `key_dir`) and a monitor client on it;
/// call inside a runtime.
pub(super) fn connect(
    key_dir: &std::path::Path,
    name: &EntityName,
    cfg: &cephr::config::ClusterConfig,
) -> anyhow::Result<(Messenger, std::sync::Arc<MonClient>)> {
    let id = Identity::load(key_dir, name)
        .map_err(|e| CmdError::new(Errno::EACCES, format!("cannot load identity {name}: {e}")))?;
    let bind = cephr::net::client_bind_addr(cfg.mon_addrs().values());
    let (msgr, _rx) = Messenger::bind(&id, bind, false, MsgrOptions::from_options(&cfg.global), FaultRules::default())?;
    let monc = MonClient::new(msgr.clone(), cfg);
    Ok((msgr, monc))
}

pub fn run(cli: &Cli, cmd: &Cmd) -> anyhow::Result<()> {
    let cfg = load_config(cli)?;
    let name: EntityName = cli.name.parse().map_err(|e: cephr::error::ParseError| CmdError::einval(e.to_string()))?;
    let key_dir = cli.key_dir.clone().unwrap_or_else(|| cfg.key_dir.clone());
    let (mc, post) = to_command(cmd)?;
    if let Post::IssueCert(_) = post {
        // Only a holder of the CA key can add clients; check before recording anything.
        ClusterCa::load(&key_dir).map_err(|e| CmdError::new(Errno::EACCES, format!("cannot issue certificates: {e}")))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let reply = rt.block_on(async {
        let (msgr, monc) = connect(&key_dir, &name, &cfg)?;
        let r = match cmd {
            Cmd::Tell { daemon, .. } => monc.tell(&entity(daemon)?, mc).await,
            _ => monc.command(mc).await,
        };
        msgr.shutdown();
        r.map_err(|e| match e {
            MoncError::Command(c) => anyhow::Error::from(c),
            MoncError::Unreachable { .. } => CmdError::new(Errno::ETIMEDOUT, e.to_string()).into(),
            MoncError::Setup(_) => CmdError::new(Errno::EACCES, e.to_string()).into(),
        })
    })?;
    if let Post::IssueCert(entity) = &post {
        issue_cert(&key_dir, entity)?;
    }
    format::print(cmd, &reply, cli.format, &post)
}

/// What to do after the monitors answered.
pub enum Post {
    None,
    IssueCert(EntityName),
    PoolDetail(bool),
    FsOne(String),
    FsStatus(Option<String>),
}

fn issue_cert(dir: &std::path::Path, entity: &EntityName) -> anyhow::Result<()> {
    let (crt, _) = cephr::auth::key_dir_entity_files(dir, entity);
    if crt.exists() {
        return Ok(());
    }
    let ca = ClusterCa::load(dir)?;
    ca.issue(dir, entity)?;
    eprintln!("wrote {}.crt and {}.key to {}", entity, entity, dir.display());
    Ok(())
}

fn entity(s: &str) -> Result<EntityName, CmdError> {
    s.parse().map_err(|e: cephr::error::ParseError| CmdError::einval(e.to_string()))
}

fn osd_id(s: &str) -> Result<OsdId, CmdError> {
    s.strip_prefix("osd.")
        .unwrap_or(s)
        .parse()
        .map_err(|_| CmdError::einval(format!("invalid osd id '{s}'")))
}

fn addr(s: &str) -> Result<EntityAddr, CmdError> {
    s.parse().map_err(|e: cephr::error::ParseError| CmdError::einval(e.to_string()))
}

fn caps_map(caps: &[String]) -> Result<BTreeMap<String, String>, CmdError> {
    let mut m = BTreeMap::new();
    for c in caps {
        let (svc, v) = c
            .split_once('=')
            .ok_or_else(|| CmdError::einval(format!("caps '{c}' are not SERVICE=CAPS, e.g. 'mds=allow rw path=/x'")))?;
        parse_caps(svc.trim(), v.trim()).map_err(|e| CmdError::einval(e.to_string()))?;
        m.insert(svc.trim().to_string(), v.trim().to_string());
    }
    Ok(m)
}

fn to_command(cmd: &Cmd) -> Result<(MonCommand, Post), CmdError> {
    use MonCommand as M;
    let plain = |c| Ok((c, Post::None));
    match cmd {
        Cmd::Status => plain(M::Status),
        Cmd::Tell { daemon, what } => {
            let d = entity(daemon)?;
            if d.kind != cephr::ids::EntityKind::Mon || what != "status" {
                return Err(CmdError::einval(format!("only 'tell mon.X status' is supported, not '{daemon} {what}'")));
            }
            plain(M::LocalStatus)
        }
        Cmd::Mon(MonCmd::Stat) => plain(M::MonStat),
        Cmd::Auth(a) => match a {
            AuthCmd::Add { entity: e, caps } => {
                let e = entity(e)?;
                Ok((M::AuthAdd { entity: e.clone(), caps: caps_map(caps)? }, Post::IssueCert(e)))
            }
            AuthCmd::Ls => plain(M::AuthLs),
            AuthCmd::Get { entity: e } => plain(M::AuthGet { entity: entity(e)? }),
            AuthCmd::Rm { entity: e } => plain(M::AuthRm { entity: entity(e)? }),
        },
        Cmd::Fs(f) => match f {
            FsCmd::New { fs, metadata_pool, data_pool } => plain(M::FsNew {
                name: fs.clone(),
                metadata_pool: metadata_pool.clone(),
                data_pool: data_pool.clone(),
            }),
            FsCmd::Ls { .. } | FsCmd::Dump => plain(M::GetMaps),
            FsCmd::Get { fs, .. } => Ok((M::GetMaps, Post::FsOne(fs.clone()))),
            FsCmd::Status { fs } => Ok((M::GetMaps, Post::FsStatus(fs.clone()))),
            FsCmd::Set { fs, var, val } => plain(M::FsSet { name: fs.clone(), var: var.clone(), val: val.clone() }),
            FsCmd::Fail { fs } => plain(M::FsFail { name: fs.clone() }),
            FsCmd::Rm { fs, yes, .. } => plain(M::FsRm { name: fs.clone(), confirm: *yes }),
            other => Err(CmdError::einval(format!("{other:?} is a file command, not a monitor command"))),
        },
        Cmd::Mds(MdsCmd::Fail { who }) => plain(M::MdsFail { who: who.clone() }),
        Cmd::Pg(_) => plain(M::PgDump),
        Cmd::Df => plain(M::Df),
        Cmd::Osd(o) => match o {
            OsdCmd::Tree | OsdCmd::Dump | OsdCmd::Map { .. } => plain(M::GetMaps),
            OsdCmd::Pool(PoolCmd::Create { pool, pg_num, size, min_size }) => plain(M::OsdPoolCreate {
                name: pool.clone(),
                pg_num: *pg_num,
                size: *size,
                min_size: *min_size,
            }),
            OsdCmd::Pool(PoolCmd::Ls { detail }) => match detail.as_deref() {
                None => Ok((M::GetMaps, Post::PoolDetail(false))),
                Some("detail") => Ok((M::GetMaps, Post::PoolDetail(true))),
                Some(x) => Err(CmdError::einval(format!("unexpected '{x}' (only 'detail')"))),
            },
            OsdCmd::Down { id } => plain(M::OsdDown { id: osd_id(id)? }),
            OsdCmd::Out { id } => plain(M::OsdOut { id: osd_id(id)? }),
            OsdCmd::In { id } => plain(M::OsdIn { id: osd_id(id)? }),
            OsdCmd::Blocklist(b) => match b {
                BlocklistCmd::Ls => plain(M::GetMaps),
                BlocklistCmd::Add { addr: a, expire } => plain(M::OsdBlocklistAdd { addr: addr(a)?, expire_secs: *expire }),
                BlocklistCmd::Rm { addr: a } => plain(M::OsdBlocklistRm { addr: addr(a)? }),
            },
        },
        Cmd::Cluster(_) | Cmd::Client(_) | Cmd::Rados { .. } | Cmd::Journal { .. } | Cmd::ObjectstoreTool { .. } | Cmd::Bench(_)
        | Cmd::Mount(_) | Cmd::Umount { .. } => Err(CmdError::einval("not a monitor command")),
    }
}

