//! `cephr journal --fs NAME --rank N header|event list|event get SEQ|inspect`: a look
//! at a rank's journal straight from RADOS, like cephfs-journal-tool. Read-only; a
//! damaged journal is reported (position and kind), never a crash.
use std::sync::Arc;
use std::time::Duration;

use super::{load_config, Cli, EventCmd, JournalCmd};
use cephr::error::{CmdError, Errno};
use cephr::ids::{EntityName, Rank};
use cephr::monc::MonClient;
use cephr::msg::MonSubscribe;
use cephr::objecter::Objecter;
use cephr::roles::mds::events::LogEvent;
use cephr::roles::mds::journal::{JournalEntry, JournalHeader, JournalReader};
use cephr::roles::mds::logio::judge_stream;
use cephr::roles::mds::store::{LoadError, MetaStore};

pub fn run(cli: &Cli, fs: &str, rank: Rank, cmd: &JournalCmd) -> anyhow::Result<()> {
    let cfg = load_config(cli)?;
    let name: EntityName = cli.name.parse().map_err(|e: cephr::error::ParseError| CmdError::einval(e.to_string()))?;
    let key_dir = cli.key_dir.clone().unwrap_or_else(|| cfg.key_dir.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let want = MonSubscribe { osdmap: Some(0), fsmap: Some(0), ..Default::default() };
    let monc = rt
        .block_on(async { MonClient::start_client(&cfg, &key_dir, &name, want) })
        .map_err(|e| CmdError::new(Errno::EACCES, e.to_string()))?;
    let timeout = Duration::from_secs_f64(cfg.global.mon_command_timeout.max(5.0));
    let r = rt.block_on(async {
        let store = open(&monc, fs, rank, timeout).await?;
        execute(&store, cmd).await
    });
    monc.messenger().shutdown();
    r
}

async fn open(monc: &Arc<MonClient>, fs: &str, rank: Rank, timeout: Duration) -> anyhow::Result<MetaStore> {
    let mut w = monc.watch();
    let ready = tokio::time::timeout(timeout, w.wait_for(|m| m.fsmap.is_some() && m.osdmap.is_some())).await;
    let maps = ready.ok().and_then(|r| r.ok()).map(|m| (m.fsmap.clone(), m.osdmap.clone()));
    let Some((Some(fsmap), Some(osdmap))) = maps else {
        return Err(CmdError::new(Errno::ETIMEDOUT, "no FSMap/OSDMap from the monitors").into());
    };
    let f = fsmap.by_name(fs).ok_or_else(|| CmdError::enoent(format!("no file system '{fs}'")))?;
    let pool = osdmap
        .pools
        .get(&f.mdsmap.metadata_pool)
        .map(|p| p.name.clone())
        .ok_or_else(|| CmdError::enoent("metadata pool not in the OSDMap"))?;
    Ok(MetaStore { obj: Objecter::new(monc.clone(), timeout), pool, rank })
}

fn kind(e: &LogEvent) -> String {
    match e {
        LogEvent::Subtrees { segment } => format!("SUBTREES segment {segment}"),
        LogEvent::Update(b) => format!("UPDATE {}", b.desc),
        LogEvent::Session(s) => format!("SESSION {s:?}"),
        LogEvent::InoTableAlloc { start, len } => format!("INOTABLE_ALLOC {start:#x}+{len}"),
        LogEvent::ResetJournal => "RESET_JOURNAL".into(),
        LogEvent::NoOp => "NOOP".into(),
    }
}

fn load_err(e: LoadError) -> anyhow::Error {
    match e {
        LoadError::Io(o) => CmdError::new(o.errno(), o.to_string()).into(),
        LoadError::Damaged(why) => CmdError::new(Errno::EIO, why).into(),
    }
}

async fn entries(store: &MetaStore, h: &JournalHeader) -> anyhow::Result<(Vec<JournalEntry>, Option<String>)> {
    let bytes = store.read_stream(h).await.map_err(|e| CmdError::new(e.errno(), e.to_string()))?;
    let (v, d) = JournalReader::new(&bytes, h.expire_pos, None).read_prefix();
    Ok((v, d.map(|d| format!("{d}"))))
}

async fn execute(store: &MetaStore, cmd: &JournalCmd) -> anyhow::Result<()> {
    match cmd {
        JournalCmd::Header => {
            let h = store.read_header().await.map_err(load_err)?;
            println!("magic: {:#x}\nversion: {}\nobject_size: {}", h.magic, h.version, h.object_size);
            println!("write_pos: {:#x}\nexpire_pos: {:#x}\ntrim_pos: {:#x}", h.write_pos, h.expire_pos, h.trim_pos);
        }
        JournalCmd::Event(EventCmd::List) => {
            let h = store.read_header().await.map_err(load_err)?;
            let (v, dmg) = entries(store, &h).await?;
            for e in &v {
                println!("{:>8} {:#012x} {}", e.seq, e.pos, kind(&e.event));
            }
            if let Some(d) = dmg {
                println!("(stops at: {d})");
            }
        }
        JournalCmd::Event(EventCmd::Get { seq }) => {
            let h = store.read_header().await.map_err(load_err)?;
            let (v, _) = entries(store, &h).await?;
            let e = v.iter().find(|e| e.seq == *seq).ok_or_else(|| CmdError::enoent(format!("no event {seq}")))?;
            println!("seq {} at {:#x}\n{:#?}", e.seq, e.pos, e.event);
        }
        JournalCmd::Inspect => {
            let h = match store.read_header().await {
                Ok(h) => h,
                Err(LoadError::Damaged(why)) => {
                    println!("Bad journal header: {why}\nOverall journal integrity: DAMAGED");
                    return Ok(());
                }
                Err(e) => return Err(load_err(e)),
            };
            let bytes = store.read_stream(&h).await.map_err(|e| CmdError::new(e.errno(), e.to_string()))?;
            match judge_stream(&bytes, h.expire_pos, h.write_pos) {
                Ok(r) => {
                    if let Some(t) = r.torn_tail {
                        println!("Torn last entry at {:#x} ({:?}), ignored by replay", t.pos, t.kind);
                    }
                    println!("{} events, {:#x}..{:#x}", r.entries.len(), h.expire_pos, r.end);
                    println!("Overall journal integrity: OK");
                }
                Err(d) => {
                    println!("Corrupt region at {:#x}: {:?}", d.pos, d.kind);
                    println!("Overall journal integrity: DAMAGED");
                }
            }
        }
    }
    Ok(())
}
