//! `cephr client ls|evict FS`: the client sessions of a file system's rank 0. The
//! FSMap (from the monitors) names the daemon holding rank 0; the command goes to that
//! daemon as an `MMdsCommand`, which only an `mds 'allow *'` identity may send.
//! `evict` returns once the client's instance is blocklisted in the OSDMap.
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use super::{load_config, Cli, ClientCmd, Format};
use cephr::error::{CmdError, Errno};
use cephr::ids::EntityName;
use cephr::maps::{FsMap, MdsState};
use cephr::monc::MonClient;
use cephr::msg::mds::{MdsCommand, MdsCommandReply, SessionListing};
use cephr::msg::{CommandReply, Message, MonCommand};
use cephr::net::Messenger;

pub fn run(cli: &Cli, cmd: &ClientCmd) -> anyhow::Result<()> {
    let cfg = load_config(cli)?;
    let name: EntityName = cli.name.parse().map_err(|e: cephr::error::ParseError| CmdError::einval(e.to_string()))?;
    let key_dir = cli.key_dir.clone().unwrap_or_else(|| cfg.key_dir.clone());
    let (fs, mcmd) = match cmd {
        ClientCmd::Ls { fs } => (fs, MdsCommand::SessionLs),
        ClientCmd::Evict { fs, client } => (fs, MdsCommand::SessionEvict { who: client.clone() }),
    };
    // An eviction waits for the monitors to commit the blocklist entry.
    let timeout = cfg.global.command_timeout().max(Duration::from_secs(10)) + Duration::from_secs(20);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let reply = rt.block_on(async {
        let (msgr, monc) = super::admin::connect(&key_dir, &name, &cfg)?;
        let r = ask_rank0(&monc, &msgr, fs, mcmd, timeout).await;
        msgr.shutdown();
        r
    })?;
    let out = match (&reply, cli.format) {
        (MdsCommandReply::Sessions(s), Format::Json) => serde_json::to_string_pretty(s)?,
        (MdsCommandReply::Sessions(s), Format::Plain) => table(s),
        (MdsCommandReply::Done(d), Format::Json) => serde_json::json!({ "result": d }).to_string(),
        (MdsCommandReply::Done(d), Format::Plain) => d.clone(),
    };
    println!("{out}");
    Ok(())
}

/// Finds rank 0 of `fs` in the FSMap and sends it `cmd`.
async fn ask_rank0(
    monc: &MonClient,
    msgr: &Messenger,
    fs: &str,
    cmd: MdsCommand,
    timeout: Duration,
) -> anyhow::Result<MdsCommandReply> {
    let maps = match monc.command(MonCommand::GetMaps).await.map_err(|e| CmdError::new(Errno::ETIMEDOUT, e.to_string()))? {
        CommandReply::Maps(m) => m,
        other => return Err(CmdError::new(Errno::EIO, format!("monitors answered {other:?}")).into()),
    };
    let (peer, addr) = rank0(&maps.fsmap, fs)?;
    let reply = msgr
        .request(&peer, addr, Message::MMdsCommand(cmd), timeout)
        .await
        .map_err(|e| CmdError::new(Errno::ETIMEDOUT, format!("{peer}: {e}")))?;
    match reply {
        Message::MMdsCommandReply(Ok(r)) => Ok(r),
        Message::MMdsCommandReply(Err(e)) => Err(e.into()),
        other => Err(CmdError::new(Errno::EIO, format!("{peer} answered {}", other.name())).into()),
    }
}

/// The daemon holding rank 0 of `fs`, if it is active and has an address.
fn rank0(map: &FsMap, fs: &str) -> Result<(EntityName, SocketAddr), CmdError> {
    let f = map.by_name(fs).ok_or_else(|| CmdError::enoent(format!("file system '{fs}' does not exist")))?;
    let info = f.mdsmap.rank_holder(0).ok_or_else(|| CmdError::new(Errno::EAGAIN, format!("rank 0 of {fs} is not up")))?;
    if info.state != MdsState::Active {
        return Err(CmdError::new(Errno::EAGAIN, format!("rank 0 of {fs} (mds.{}) is {}, not active", info.name, info.state)));
    }
    let addr = info.addr.ok_or_else(|| CmdError::new(Errno::EAGAIN, format!("mds.{} has no address yet", info.name)))?;
    Ok((EntityName::mds(&info.name), addr.addr))
}

fn table(sessions: &[SessionListing]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<36} {:<20} {:<28} {:<8} {:<8} {:>10} {:>6} {:>9}",
        "ID", "ENTITY", "ADDRESS", "STATE", "ROOT", "RENEWED", "CAPS", "COMPLETED"
    );
    for s in sessions {
        let addr = s.addr.map_or("-".to_string(), |a| a.to_string());
        let age = format!("{:.1}s ago", s.renew_age_ms as f64 / 1000.0);
        let state = if s.recall_overdue { format!("{}*", s.state) } else { s.state.clone() };
        let root = format!("{:#x}", s.root);
        let _ = writeln!(
            o,
            "{:<36} {:<20} {:<28} {:<8} {:<8} {:>10} {:>6} {:>9}",
            s.id, s.entity, addr, state, root, age, s.caps, s.completed_requests
        );
    }
    let overdue = sessions.iter().filter(|s| s.recall_overdue).count();
    let _ = write!(o, "{} sessions", sessions.len());
    if overdue > 0 {
        let _ = write!(o, " (* {overdue} failing to respond to cache pressure)");
    }
    o
}
