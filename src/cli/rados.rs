//! `cephr rados -p POOL ...`: object commands through the objecter, straight to the
//! OSDs (the monitors only provide the OSDMap).
use std::io::{Read, Write};
use std::time::Duration;

use serde_bytes::ByteBuf;

use super::{load_config, Cli, RadosCmd};
use cephr::error::{CmdError, Errno};
use cephr::ids::EntityName;
use cephr::monc::MonClient;
use cephr::msg::osd::{OpOut, OsdOp};
use cephr::msg::payload::Payload;
use cephr::msg::MonSubscribe;
use cephr::net::Messenger;
use cephr::objecter::{ObjError, Objecter};
use cephr::roles::osd::store::MAX_OBJECT_SIZE;

fn input(path: &str) -> anyhow::Result<Vec<u8>> {
    let mut v = Vec::new();
    if path == "-" {
        std::io::stdin().read_to_end(&mut v)?;
    } else {
        v = std::fs::read(path).map_err(|e| CmdError::new(Errno::ENOENT, format!("{path}: {e}")))?;
    }
    Ok(v)
}

fn output(path: &str, data: &[u8]) -> anyhow::Result<()> {
    if path == "-" {
        let mut o = std::io::stdout();
        if let Err(e) = o.write_all(data).and_then(|_| o.flush()) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(e.into());
            }
        }
        Ok(())
    } else {
        Ok(std::fs::write(path, data)?)
    }
}

/// Bytes per op of a put, get or append (Ceph's `rados` op size): a large object goes
/// as several ops, each far below the messenger's frame limit.
const OP_SIZE: usize = 4 << 20;

/// Omap pairs per listing op.
const OMAP_PAGE: u32 = 1000;

fn too_big(len: usize) -> anyhow::Result<()> {
    if len as u64 > MAX_OBJECT_SIZE {
        let m = format!("{len} bytes exceed the largest object size ({MAX_OBJECT_SIZE} bytes)");
        return Err(CmdError::new(Errno::EFBIG, m).into());
    }
    Ok(())
}

fn obj_err(e: ObjError) -> anyhow::Error {
    CmdError::new(e.errno(), e.to_string()).into()
}

/// A runtime with an objecter as the CLI's entity, subscribed to the OSDMap.
pub fn connect(cli: &Cli) -> anyhow::Result<(tokio::runtime::Runtime, std::sync::Arc<Objecter>, Messenger)> {
    connect_with(cli, 2)
}

/// [`connect`] on a runtime of `workers` threads (0: everything on the calling thread).
pub fn connect_with(cli: &Cli, workers: usize) -> anyhow::Result<(tokio::runtime::Runtime, std::sync::Arc<Objecter>, Messenger)> {
    let cfg = load_config(cli)?;
    let name: EntityName = cli.name.parse().map_err(|e: cephr::error::ParseError| CmdError::einval(e.to_string()))?;
    let key_dir = cli.key_dir.clone().unwrap_or_else(|| cfg.key_dir.clone());
    let rt = match workers {
        0 => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
    };
    let want = MonSubscribe { osdmap: Some(0), ..Default::default() };
    let monc = rt
        .block_on(async { MonClient::start_client(&cfg, &key_dir, &name, want) })
        .map_err(|e| CmdError::new(Errno::EACCES, e.to_string()))?;
    let msgr = monc.messenger().clone();
    let obj = Objecter::new(monc, Duration::from_secs_f64(cfg.global.mon_command_timeout.max(5.0)));
    Ok((rt, obj, msgr))
}

pub fn run(cli: &Cli, pool: &str, cmd: &RadosCmd) -> anyhow::Result<()> {
    let (rt, obj, msgr) = connect(cli)?;
    let r = rt.block_on(execute(&obj, pool, cmd));
    msgr.shutdown();
    r
}

async fn execute(obj: &Objecter, pool: &str, cmd: &RadosCmd) -> anyhow::Result<()> {
    let one = |oid: &str, ops: Vec<OsdOp>| {
        let oid = oid.to_string();
        async move { obj.op(pool, &oid, ops).await.map_err(obj_err) }
    };
    match cmd {
        RadosCmd::Put { object, file } => {
            // Like Ceph's `rados put`: the first op replaces the object, the rest write
            // at their offsets.
            let data = bytes::Bytes::from(input(file)?);
            too_big(data.len())?;
            let first = Payload::from(data.slice(0..data.len().min(OP_SIZE)));
            obj.write_full(pool, object, first).await.map_err(obj_err)?;
            for off in (OP_SIZE..data.len()).step_by(OP_SIZE) {
                let part = Payload::from(data.slice(off..data.len().min(off + OP_SIZE)));
                one(object, vec![OsdOp::Write { off: off as u64, data: part }]).await?;
            }
        }
        RadosCmd::Append { object, file } => {
            let data = bytes::Bytes::from(input(file)?);
            too_big(data.len())?;
            for off in (0..data.len()).step_by(OP_SIZE) {
                let part = Payload::from(data.slice(off..data.len().min(off + OP_SIZE)));
                one(object, vec![OsdOp::Append { data: part }]).await?;
            }
        }
        RadosCmd::Get { object, file } => {
            let mut data = Vec::new();
            loop {
                let got = obj.read(pool, object, data.len() as u64, Some(OP_SIZE as u64)).await.map_err(obj_err)?;
                data.extend_from_slice(&got);
                if got.len() < OP_SIZE {
                    break;
                }
            }
            output(file, &data)?
        }
        RadosCmd::Rm { object } => {
            one(object, vec![OsdOp::Remove]).await?;
        }
        RadosCmd::Truncate { object, size } => {
            one(object, vec![OsdOp::Truncate { size: *size }]).await?;
        }
        RadosCmd::Stat { object } => {
            let (size, mtime) = obj.stat(pool, object).await.map_err(obj_err)?;
            println!("{pool}/{object} mtime {:.3}, size {size}", mtime as f64 / 1000.0);
        }
        RadosCmd::Ls => {
            let mut out = String::new();
            for o in obj.list(pool).await.map_err(obj_err)? {
                out.push_str(&o);
                out.push('\n');
            }
            output("-", out.as_bytes())?;
        }
        RadosCmd::Listomapkeys { object } => {
            let (mut keys, mut after) = (String::new(), None);
            loop {
                let Some(OpOut::Pairs(p)) = one(object, vec![OsdOp::OmapList { after, max: OMAP_PAGE }]).await?.pop() else { break };
                p.iter().for_each(|(k, _)| {
                    keys.push_str(k);
                    keys.push('\n');
                });
                after = p.last().map(|(k, _)| k.clone());
                if p.len() < OMAP_PAGE as usize {
                    break;
                }
            }
            output("-", keys.as_bytes())?;
        }
        RadosCmd::Getomapval { object, key } => {
            match one(object, vec![OsdOp::OmapGet { keys: vec![key.clone()] }]).await?.pop() {
                Some(OpOut::Pairs(p)) if !p.is_empty() => output("-", &p[0].1)?,
                _ => return Err(CmdError::enoent(format!("no key '{key}' in the omap of {object}")).into()),
            }
        }
        RadosCmd::Setomapval { object, key, value } => {
            let entries = vec![(key.clone(), ByteBuf::from(value.as_bytes().to_vec()))];
            one(object, vec![OsdOp::OmapSet { entries }]).await?;
        }
    }
    Ok(())
}
