//! MonClient: how daemons, clients and the CLI talk to the monitors. Commands go to
//! any monitor (peons forward to the leader) and are retried on another monitor
//! when one is down or answers EAGAIN (election under way), until a deadline.
//! Subscriptions keep one monitor session open, hunting for another monitor when it
//! drops, and hand the pushed maps to a watch channel; maps only move forward.
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::ClusterConfig;
use crate::error::{CmdError, Errno};
use crate::ids::EntityName;
use crate::maps::{FsMap, MonMap, OsdMap};
use crate::msg::{CommandReply, Message, MonCommand, MonSubscribe};
use crate::net::Messenger;

#[derive(Debug, thiserror::Error)]
pub enum MoncError {
    #[error("{0}")]
    Command(#[from] CmdError),
    #[error("no monitor answered within {secs:.0} s (last error: {last})")]
    Unreachable { secs: f64, last: String },
    #[error("cannot start a client: {0}")]
    Setup(String),
}

/// The newest maps this client has seen.
#[derive(Clone, Debug, Default)]
pub struct MapSet {
    pub monmap: Option<Arc<MonMap>>,
    pub osdmap: Option<Arc<OsdMap>>,
    pub fsmap: Option<Arc<FsMap>>,
    pub auth: Option<Arc<crate::msg::AuthDb>>,
}

/// Replaces `slot` with `m` when `m`'s epoch is newer; maps only move forward.
fn take_newer<T: Clone + HasEpoch>(slot: &mut Option<Arc<T>>, m: &T) -> bool {
    let newer = slot.as_ref().is_none_or(|x| m.epoch() > x.epoch());
    if newer {
        *slot = Some(Arc::new(m.clone()));
    }
    newer
}

trait HasEpoch {
    fn epoch(&self) -> u64;
}

macro_rules! has_epoch {
    ($($t:ty),*) => { $(impl HasEpoch for $t { fn epoch(&self) -> u64 { self.epoch } })* };
}
has_epoch!(MonMap, OsdMap, FsMap, crate::msg::AuthDb);

pub struct MonClient {
    msgr: Messenger,
    mons: Vec<(EntityName, SocketAddr)>,
    timeout: Duration,
    preferred: AtomicUsize,
    maps: watch::Sender<MapSet>,
}

impl MonClient {
    pub fn new(msgr: Messenger, cfg: &ClusterConfig) -> Arc<MonClient> {
        let mons = cfg.mon.iter().map(|(n, d)| (EntityName::mon(n), d.addr)).collect();
        Arc::new(MonClient {
            msgr,
            mons,
            timeout: cfg.global.command_timeout(),
            preferred: AtomicUsize::new(rand::random::<usize>()),
            maps: watch::channel(MapSet::default()).0,
        })
    }

    /// A client process's MonClient: binds a client-only messenger as `entity` (keys
    /// from `key_dir`), feeds every map pushed to it into `watch()`, and subscribes to
    /// `want`. For processes whose only incoming traffic is maps and replies (the CLI,
    /// tools, tests); daemons bind their own messenger and call `handle_map`.
    /// Must be called inside a tokio runtime.
    pub fn start_client(
        cfg: &ClusterConfig,
        key_dir: &std::path::Path,
        entity: &EntityName,
        want: MonSubscribe,
    ) -> Result<Arc<MonClient>, MoncError> {
        let setup = |e: &dyn std::fmt::Display| MoncError::Setup(format!("{entity}: {e}"));
        let id = crate::auth::Identity::load(key_dir, entity).map_err(|e| setup(&e))?;
        let bind = crate::net::client_bind_addr(cfg.mon_addrs().values());
        let opts = crate::net::MsgrOptions::from_options(&cfg.global);
        let (msgr, mut rx) =
            Messenger::bind(&id, bind, false, opts, crate::net::FaultRules::default()).map_err(|e| setup(&e))?;
        let monc = MonClient::new(msgr, cfg);
        let feed = monc.clone();
        tokio::spawn(async move {
            while let Some(inc) = rx.recv().await {
                feed.handle_map(&inc.msg);
            }
        });
        monc.start_subscription(want);
        Ok(monc)
    }

    pub fn messenger(&self) -> &Messenger {
        &self.msgr
    }

    fn pick(&self, attempt: usize) -> &(EntityName, SocketAddr) {
        let i = self.preferred.load(Ordering::Relaxed).wrapping_add(attempt) % self.mons.len().max(1);
        &self.mons[i]
    }

    /// Runs a command, trying monitors in turn until one answers or the deadline.
    pub async fn command(&self, cmd: MonCommand) -> Result<CommandReply, MoncError> {
        self.command_with_timeout(cmd, self.timeout).await
    }

    pub async fn command_with_timeout(&self, cmd: MonCommand, timeout: Duration) -> Result<CommandReply, MoncError> {
        if self.mons.is_empty() {
            return Err(MoncError::Unreachable { secs: 0.0, last: "no monitors configured".into() });
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("none tried");
        // Monitors that could not be reached during this call are skipped while any
        // other remains, so a dead monitor costs one connect timeout, not one per round.
        let mut unreachable = std::collections::HashSet::new();
        for attempt in 0.. {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            if unreachable.len() >= self.mons.len() {
                unreachable.clear();
            }
            let (peer, addr) = self.pick(attempt).clone();
            if unreachable.contains(&peer) {
                continue;
            }
            let per_try = left.min(Duration::from_secs(3));
            let reply = match self.msgr.connect(&peer, addr, false).await {
                Ok(conn) => conn.request(Message::MMonCommand(cmd.clone()), per_try).await,
                Err(e) => {
                    unreachable.insert(peer.clone());
                    Err(e)
                }
            };
            match reply {
                Ok(Message::MMonCommandReply(Ok(r))) => {
                    self.preferred.fetch_add(attempt, Ordering::Relaxed);
                    return Ok(r);
                }
                Ok(Message::MMonCommandReply(Err(e))) if e.errno == Errno::EAGAIN => {
                    last = format!("{peer}: {}", e.message);
                    tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                }
                Ok(Message::MMonCommandReply(Err(e))) => return Err(e.into()),
                Ok(other) => last = format!("{peer} answered {}", other.name()),
                Err(e) => last = e.to_string(),
            }
        }
        Err(MoncError::Unreachable { secs: timeout.as_secs_f64(), last })
    }

    /// Sends a one-way message (beacon, boot, failure report) to a monitor, moving on
    /// to the next monitor when one cannot be reached.
    pub async fn send(&self, msg: Message) -> Result<(), MoncError> {
        let mut last = String::from("no monitors configured");
        for attempt in 0..self.mons.len() {
            let (peer, addr) = self.pick(attempt).clone();
            match self.msgr.connect(&peer, addr, false).await.and_then(|c| c.send(msg.clone())) {
                Ok(()) => {
                    self.preferred.fetch_add(attempt, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(MoncError::Unreachable { secs: 0.0, last })
    }

    /// A request any monitor can answer (e.g. old maps), trying each in turn.
    pub async fn request(&self, msg: Message, timeout: Duration) -> Result<Message, MoncError> {
        let mut last = String::from("no monitors configured");
        for attempt in 0..self.mons.len() {
            let (peer, addr) = self.pick(attempt).clone();
            let r = match self.msgr.connect(&peer, addr, false).await {
                Ok(c) => c.request(msg.clone(), timeout).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(m) => return Ok(m),
                Err(e) => last = e.to_string(),
            }
        }
        Err(MoncError::Unreachable { secs: timeout.as_secs_f64(), last })
    }

    /// Sends a command to one named monitor only (no hunting): `cephr tell mon.X`.
    pub async fn tell(&self, mon: &EntityName, cmd: MonCommand) -> Result<CommandReply, MoncError> {
        let Some((peer, addr)) = self.mons.iter().find(|(n, _)| n == mon).cloned() else {
            return Err(CmdError::enoent(format!("{mon} is not in the configuration")).into());
        };
        match self.msgr.request(&peer, addr, Message::MMonCommand(cmd), self.timeout).await {
            Ok(Message::MMonCommandReply(r)) => Ok(r?),
            Ok(other) => Err(MoncError::Unreachable { secs: 0.0, last: format!("{peer} answered {}", other.name()) }),
            Err(e) => Err(MoncError::Unreachable { secs: self.timeout.as_secs_f64(), last: e.to_string() }),
        }
    }

    pub fn watch(&self) -> watch::Receiver<MapSet> {
        self.maps.subscribe()
    }

    /// Every later change of the maps, as `pick` sees them (`None` skipped): e.g. each new
    /// OSDMap as a stream for an actor's `ctx.add_stream`.
    pub fn map_updates<T>(&self, pick: fn(&MapSet) -> Option<T>) -> impl futures::Stream<Item = T> {
        let changes = futures::stream::unfold(self.watch(), move |mut w| async move {
            w.changed().await.ok()?;
            let m = pick(&w.borrow_and_update());
            Some((m, w))
        });
        futures::StreamExt::filter_map(changes, |m| async move { m })
    }

    /// The newest maps held now (cheap: clones of `Arc`s).
    pub fn current(&self) -> MapSet {
        self.maps.borrow().clone()
    }

    /// Takes a pushed map if it is newer than the one held; true when `msg` was a map.
    pub fn handle_map(&self, msg: &Message) -> bool {
        match msg {
            Message::MMonMap(m) => self.maps.send_if_modified(|s| take_newer(&mut s.monmap, m)),
            Message::MOsdMap(m) => self.maps.send_if_modified(|s| take_newer(&mut s.osdmap, m)),
            Message::MFsMap(m) => self.maps.send_if_modified(|s| take_newer(&mut s.fsmap, m)),
            Message::MAuthDb(m) => self.maps.send_if_modified(|s| take_newer(&mut s.auth, m)),
            _ => return false,
        };
        true
    }

    /// Keeps a subscription to `want` (which maps) open on some monitor, moving to
    /// another when its monitor goes away, and re-stating the epochs already held.
    pub fn start_subscription(self: &Arc<Self>, want: MonSubscribe) {
        let me = self.clone();
        tokio::spawn(async move {
            for attempt in 0usize.. {
                let (peer, addr) = me.pick(attempt).clone();
                let conn = match me.msgr.connect(&peer, addr, true).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!("subscription: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let have = me.maps.borrow().clone();
                let sub = MonSubscribe {
                    monmap: want.monmap.map(|_| have.monmap.as_ref().map_or(0, |m| m.epoch)),
                    osdmap: want.osdmap.map(|_| have.osdmap.as_ref().map_or(0, |m| m.epoch)),
                    fsmap: want.fsmap.map(|_| have.fsmap.as_ref().map_or(0, |m| m.epoch)),
                    auth: want.auth.map(|_| have.auth.as_ref().map_or(0, |m| m.epoch)),
                };
                if conn.send(Message::MMonSubscribe(sub)).is_ok() {
                    tracing::debug!(mon = %peer, "subscribed");
                    conn.closed().await;
                    tracing::info!(mon = %peer, "monitor session lost; hunting for another monitor");
                }
                if me.maps.is_closed() && Arc::strong_count(&me) == 1 {
                    return;
                }
            }
        });
    }
}
