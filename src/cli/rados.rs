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
            obj.write_full(pool, object, input(file)?).await.map_err(obj_err)?;
        }
        RadosCmd::Append { object, file } => {
            one(object, vec![OsdOp::Append { data: Payload::from(input(file)?) }]).await?;
        }
        RadosCmd::Get { object, file } => output(file, &obj.read(pool, object, 0, None).await.map_err(obj_err)?)?,
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
            if let Some(OpOut::Pairs(p)) = one(object, vec![OsdOp::OmapList { after: None, max: 100_000 }]).await?.pop() {
                let keys: String = p.iter().map(|(k, _)| format!("{k}\n")).collect();
                output("-", keys.as_bytes())?;
            }
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
