//! Daemon start-up: `--role mon --id a` runs one monitor; `--role all` runs every
//! daemon of the configuration in one process, each on its own arbiter (thread), so
//! a daemon's connections and actors stay together.
use std::sync::Arc;

use super::{load_config, Cli, Role};
use cephr::error::CmdError;

fn init_logging(filter: &str) {
    let f = tracing_subscriber::EnvFilter::try_from_env("CEPHR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt().with_env_filter(f).with_writer(std::io::stderr).try_init();
}

pub fn run(cli: &Cli, role: Role) -> anyhow::Result<()> {
    let cfg = Arc::new(load_config(cli)?);
    init_logging(&cfg.global.log_level);
    let daemons: Vec<(String, String)> = match role {
        Role::Mds => {
            let id = cli.id.clone().ok_or_else(|| CmdError::einval("--role mds needs --id"))?;
            vec![("mds".to_string(), id)]
        }
        Role::Mon | Role::Osd => {
            let kind = if role == Role::Mon { "mon" } else { "osd" };
            let id = cli.id.clone().ok_or_else(|| CmdError::einval(format!("--role {kind} needs --id")))?;
            let known = if role == Role::Mon { cfg.mon.contains_key(&id) } else { cfg.osd.contains_key(&id) };
            if !known {
                return Err(CmdError::enoent(format!("{kind}.{id} is not in the configuration")).into());
            }
            vec![(kind.to_string(), id)]
        }
        Role::All => cfg
            .mon
            .keys()
            .map(|m| ("mon".to_string(), m.clone()))
            .chain(cfg.osd.keys().map(|o| ("osd".to_string(), o.clone())))
            .chain(cfg.mds.keys().map(|m| ("mds".to_string(), m.clone())))
            .collect(),
    };
    let sys = actix::System::new();
    sys.block_on(async move {
        let mut arbiters = Vec::new();
        for (kind, id) in daemons {
            let arb = actix::Arbiter::new();
            let cfg = cfg.clone();
            arb.spawn(async move {
                if let Err(e) = start_daemon(cfg, &kind, &id).await {
                    tracing::error!("{kind}.{id} failed to start: {e:#}");
                    std::process::exit(1);
                }
            });
            arbiters.push(arb);
        }
        wait_for_signal().await;
        tracing::info!("signal received, exiting");
    });
    Ok(())
}

async fn start_daemon(cfg: Arc<cephr::config::ClusterConfig>, kind: &str, id: &str) -> anyhow::Result<()> {
    match kind {
        "mon" => cephr::roles::mon::start(cfg, id).await.map(|_| ()),
        "mds" => cephr::roles::mds::daemon::start(cfg, id).await.map(|_| ()),
        _ => {
            let n: u32 = id.parse().map_err(|_| anyhow::anyhow!("osd id '{id}' is not a number"))?;
            cephr::roles::osd::start(cfg, n).await.map(|_| ())
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
        _ => std::future::pending::<()>().await,
    }
}
