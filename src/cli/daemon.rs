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
    let ids: Vec<String> = match role {
        Role::Mon => {
            let id = cli.id.clone().ok_or_else(|| CmdError::einval("--role mon needs --id"))?;
            if !cfg.mon.contains_key(&id) {
                return Err(CmdError::enoent(format!("mon.{id} is not in the configuration")).into());
            }
            vec![id]
        }
        Role::All => cfg.mon.keys().cloned().collect(),
    };
    let sys = actix::System::new();
    sys.block_on(async move {
        let mut arbiters = Vec::new();
        for id in ids {
            let arb = actix::Arbiter::new();
            let cfg = cfg.clone();
            arb.spawn(async move {
                if let Err(e) = cephr::roles::mon::start(cfg, &id).await {
                    tracing::error!("mon.{id} failed to start: {e:#}");
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

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
        }
        _ => std::future::pending::<()>().await,
    }
}
