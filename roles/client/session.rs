//! The client's MDS session: mount (find rank 0 of the file system, open a session),
//! the request path (tid-matched `MClientReply`s; an op returns on its first reply, the
//! request is kept until its safe reply), renewals, and reconnection when the FSMap
//! names another rank-0 daemon (pending and unsafe requests are re-sent to it).
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};

use super::path::DentryCache;
use super::Client;
use crate::auth::Identity;
use crate::config::ClusterConfig;
use crate::error::{CmdError, Errno};
use crate::ids::{EntityName, Gid, PoolId};
use crate::maps::{FsMap, MdsState};
use crate::monc::MonClient;
use crate::msg::caps::ClientCaps;
use crate::msg::mds::{Caller, ClientRequest, Ino, MdsOp, MdsReply, ReplyBody, SessionOp, SessionReply};
use crate::msg::{Message, MonSubscribe};
use crate::net::{ConnHandle, FaultRules, Incoming, Messenger, MsgrOptions};
use crate::objecter::Objecter;

tokio::task_local! {
    /// Credentials of the request being served, when they differ per request (a FUSE
    /// mount serves many users through one session); see `Client::with_caller`.
    static CALLER: Caller;
}

struct Pending {
    req: ClientRequest,
    /// The inodes the op names, and the one its first reply returned (a create's):
    /// what an fsync of one of them waits for (`Client::sync_ino`).
    inos: Vec<Ino>,
    /// Taken by the first reply; `None` afterwards while waiting for the safe one.
    waiter: Option<oneshot::Sender<Result<ReplyBody, Errno>>>,
}

/// The rank-0 daemon the session is with.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct MdsTarget {
    pub gid: Gid,
    pub peer: EntityName,
    pub addr: SocketAddr,
}

pub(super) struct Inner {
    pub monc: Arc<MonClient>,
    pub msgr: Messenger,
    pub objecter: Arc<Objecter>,
    pub fs_name: String,
    pub root_path: String,
    pub root_ino: AtomicU64,
    pub caller: Mutex<Caller>,
    pub timeout: Duration,
    renew_every: Duration,
    next_tid: AtomicU64,
    pending: Mutex<BTreeMap<u64, Pending>>,
    safe_changed: Notify,
    pub(super) conn: Mutex<Option<(MdsTarget, ConnHandle)>>,
    kick: Notify,
    closed: AtomicBool,
    pub dcache: Mutex<DentryCache>,
    pub(super) files: super::file::Files,
    /// Why the mount was evicted, once it was (`session_faults.rs`).
    blocklisted: Mutex<Option<String>>,
    /// Caps per inode, with the cached and buffered data they cover.
    pub(super) caps: super::caps::CapTable,
    /// Async creates/unlinks: delegated inode numbers, ops in flight, late errors.
    pub(super) asyncops: super::async_ops::AsyncState,
    /// The MDS daemon (gid) our session is with: a new one for the rank is sent a
    /// reconnect instead of a session open (`session_faults.rs`).
    session_gid: Mutex<Option<Gid>>,
    /// Inodes with attribute changes made under exclusive caps and not yet sent
    /// (`Client::local_setattr`); sent before the next request.
    pub(super) attrs_dirty: Mutex<HashSet<Ino>>,
}

#[path = "session_faults.rs"]
mod faults;

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A short description of an errno, for messages.
pub fn errno_text(e: Errno) -> &'static str {
    match e {
        Errno::EPERM => "operation not permitted",
        Errno::ENOENT => "no such file or directory",
        Errno::EIO => "input/output error",
        Errno::EAGAIN => "try again",
        Errno::EACCES => "permission denied",
        Errno::EBUSY => "busy",
        Errno::EEXIST => "file exists",
        Errno::EXDEV => "cross-device link",
        Errno::ENOTDIR => "not a directory",
        Errno::EISDIR => "is a directory",
        Errno::EINVAL => "invalid argument",
        Errno::ENOSPC => "no space left",
        Errno::ERANGE => "result out of range",
        Errno::ENAMETOOLONG => "file name too long",
        Errno::ENOTEMPTY => "directory not empty",
        Errno::ENOTSUP => "operation not supported",
        Errno::ETIMEDOUT => "timed out",
        Errno::EDQUOT => "quota exceeded",
        Errno::ESTALE => "stale file handle",
        Errno::ENOTCONN => "not connected",
        Errno::ENODATA => "no such attribute",
        Errno::EMLINK => "too many links",
        Errno::EBLOCKLISTED => "client is blocklisted",
        Errno::EFBIG => "file too large",
        Errno::EMSGSIZE => "message too long",
    }
}

/// Rank 0's daemon of `fs` if it is up:active with an address; `Err` when the file
/// system does not exist.
pub(super) fn rank0(map: &FsMap, fs: &str) -> Result<Option<MdsTarget>, CmdError> {
    let f = map.by_name(fs).ok_or_else(|| CmdError::enoent(format!("no file system named '{fs}'")))?;
    Ok(f.mdsmap.rank_holder(0).filter(|i| i.state == MdsState::Active).and_then(|i| {
        i.addr.map(|a| MdsTarget { gid: i.gid, peer: EntityName::mds(&i.name), addr: a.addr })
    }))
}

/// The file system to mount: `name`, or the only one there is.
fn pick_fs(map: &FsMap, name: Option<&str>) -> Result<String, CmdError> {
    if let Some(n) = name {
        map.by_name(n).ok_or_else(|| CmdError::enoent(format!("no file system named '{n}'")))?;
        return Ok(n.to_string());
    }
    let mut names = map.filesystems.values().map(|f| f.mdsmap.fs_name.clone());
    match (names.next(), names.next()) {
        (Some(n), None) => Ok(n),
        (None, _) => Err(CmdError::enoent("there is no file system (create one with `cephr fs new`)")),
        (Some(_), Some(_)) => Err(CmdError::einval("several file systems exist: choose one with --fs NAME")),
    }
}

impl Client {
    /// Mounts `fs_name` (or the only file system) as `entity`, keys from the cluster's
    /// key directory, confined to `root` (default "/").
    pub async fn mount(
        cfg: &ClusterConfig,
        entity: &EntityName,
        fs_name: Option<&str>,
        root: Option<&str>,
    ) -> Result<Client, CmdError> {
        Client::mount_with_keys(cfg, &cfg.key_dir, entity, fs_name, root).await
    }

    pub async fn mount_with_keys(
        cfg: &ClusterConfig,
        key_dir: &Path,
        entity: &EntityName,
        fs_name: Option<&str>,
        root: Option<&str>,
    ) -> Result<Client, CmdError> {
        let id = Identity::load(key_dir, entity)
            .map_err(|e| CmdError::new(Errno::EACCES, format!("cannot load identity {entity}: {e}")))?;
        let bind = crate::net::client_bind_addr(cfg.mon_addrs().values());
        let opts = MsgrOptions::from_options(&cfg.global);
        let (msgr, rx) = Messenger::bind(&id, bind, false, opts, FaultRules::default())
            .map_err(|e| CmdError::new(Errno::EIO, format!("cannot bind a client endpoint: {e}")))?;
        let monc = MonClient::new(msgr.clone(), cfg);
        let cell: Arc<OnceLock<Arc<Inner>>> = Arc::new(OnceLock::new());
        tokio::spawn(receive_loop(monc.clone(), cell.clone(), rx));
        monc.start_subscription(MonSubscribe { osdmap: Some(0), fsmap: Some(0), ..Default::default() });
        let timeout = cfg.global.request_timeout().max(Duration::from_secs(5));
        let objecter = Objecter::new(monc.clone(), timeout);

        // Wait (bounded) for an FSMap naming the file system with an active rank 0.
        let wait = cfg.global.command_timeout().max(Duration::from_secs(5));
        let mut w = monc.watch();
        let deadline = tokio::time::Instant::now() + wait;
        let (fs, target) = loop {
            let map = w.borrow_and_update().fsmap.clone();
            if let Some(map) = map {
                let fs = pick_fs(&map, fs_name)?;
                if let Some(t) = rank0(&map, &fs)? {
                    break (fs, t);
                }
            }
            match tokio::time::timeout_at(deadline, w.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    msgr.shutdown();
                    let what = fs_name.map(|f| format!("file system '{f}'")).unwrap_or("the file system".into());
                    let seen = monc.current().fsmap.is_some();
                    return Err(CmdError::new(
                        Errno::ETIMEDOUT,
                        if seen {
                            format!("{what} has no active MDS for rank 0 after {:.0} s", wait.as_secs_f64())
                        } else {
                            format!("no FSMap from the monitors after {:.0} s", wait.as_secs_f64())
                        },
                    ));
                }
            }
        };
        let inner = Arc::new(Inner {
            monc,
            msgr: msgr.clone(),
            objecter,
            fs_name: fs,
            root_path: root.unwrap_or("/").to_string(),
            root_ino: AtomicU64::new(0),
            caller: Mutex::new(Caller::root()),
            timeout,
            renew_every: Duration::from_secs_f64(cfg.global.client_renew_interval.max(0.5)),
            next_tid: AtomicU64::new(1),
            pending: Mutex::new(BTreeMap::new()),
            safe_changed: Notify::new(),
            conn: Mutex::new(None),
            kick: Notify::new(),
            closed: AtomicBool::new(false),
            dcache: Mutex::new(DentryCache::new(usize::try_from(cfg.global.client_cache_size).unwrap_or(usize::MAX))),
            files: Default::default(),
            blocklisted: Mutex::new(None),
            caps: Default::default(),
            asyncops: Default::default(),
            session_gid: Mutex::new(None),
            attrs_dirty: Mutex::new(HashSet::new()),
        });
        // A map can name an instance that is gone (all daemons restarted, the monitors not
        // yet past the beacon grace): the daemon now at that address says EAGAIN (or
        // doesn't answer), and we wait for a newer map until the deadline.
        let mut target = target;
        loop {
            let err = match inner.open_session(&target).await {
                Ok(()) => break,
                Err(e) => e,
            };
            let retry = matches!(err.errno, Errno::EAGAIN | Errno::ETIMEDOUT | Errno::ENOTCONN);
            let next = if retry && tokio::time::Instant::now() < deadline {
                let _ = tokio::time::timeout(Duration::from_millis(300), w.changed()).await;
                let map = w.borrow_and_update().fsmap.clone();
                map.and_then(|m| rank0(&m, &inner.fs_name).ok().flatten())
            } else {
                None
            };
            match next {
                Some(t) => target = t,
                None if retry && tokio::time::Instant::now() < deadline => {}
                None => {
                    inner.closed.store(true, Ordering::Relaxed);
                    msgr.shutdown();
                    return Err(err);
                }
            }
        }
        let _ = cell.set(inner.clone());
        tokio::spawn(manager(inner.clone()));
        Ok(Client { inner })
    }

    /// The inode number of the mount root.
    pub fn root_ino(&self) -> Ino {
        self.inner.root_ino.load(Ordering::Relaxed)
    }

    pub fn fs_name(&self) -> &str {
        &self.inner.fs_name
    }

    /// Replaces this client's message fault rules (`ms_inject_faults` syntax; empty
    /// clears them), for tests that make its links to some daemons fail for a while.
    pub fn inject_faults(&self, rules: &str) -> Result<(), String> {
        self.inner.msgr.set_faults(FaultRules::parse(rules)?);
        Ok(())
    }

    /// Credentials sent with every request (default: root).
    pub fn set_caller(&self, c: Caller) {
        *lock(&self.inner.caller) = c;
    }

    /// Runs `fut` with every MDS request it makes sent as `caller` instead of the
    /// client-wide credentials of `set_caller` (tasks it spawns are not covered).
    pub async fn with_caller<F: std::future::Future>(caller: Caller, fut: F) -> F::Output {
        CALLER.scope(caller, fut).await
    }

    /// `with_caller` for code that does not wait (a mount's request thread).
    pub fn with_caller_sync<R>(caller: Caller, f: impl FnOnce() -> R) -> R {
        CALLER.sync_scope(caller, f)
    }

    /// Sends one metadata op and returns its first reply (unsafe or safe).
    pub async fn request(&self, op: MdsOp) -> Result<ReplyBody, CmdError> {
        self.inner.request(op).await
    }

    /// Waits until every request issued so far has its safe (journaled) reply.
    pub async fn sync(&self) -> Result<(), CmdError> {
        self.sync_where(None).await
    }

    /// The metadata part of an fsync of `ino`, as Ceph's client does it: the inode's
    /// cap flush and every request naming it (its create, a setattr; a create, unlink
    /// or rename in it when it is a directory) reach the journal. Requests about
    /// other inodes are not waited for. (The journal is one ordered log, so whatever
    /// such a request depended on, e.g. its directory's mkdir, is journaled before it.)
    pub async fn sync_ino(&self, ino: Ino) -> Result<(), CmdError> {
        self.sync_where(Some(ino)).await
    }

    async fn sync_where(&self, only: Option<Ino>) -> Result<(), CmdError> {
        let mine = |i: Ino| only.is_none_or(|o| o == i);
        // Cap flushes (sizes of closed files, attributes changed under exclusive
        // caps) are journaled too.
        self.inner.flush_dirty_attrs();
        let flushes: Vec<(Ino, u64)> = lock(&self.inner.caps.map)
            .iter()
            .filter(|(ino, c)| mine(**ino) && c.flush_acked < c.flush_tid)
            .map(|(ino, c)| (*ino, c.flush_tid))
            .collect();
        // One deadline for all of them (each wait has its own as well).
        let all = async {
            for (ino, tid) in flushes {
                self.wait_flushed(ino, tid).await?;
            }
            Ok::<(), CmdError>(())
        };
        tokio::time::timeout(self.inner.timeout, all).await.map_err(|_| {
            CmdError::new(Errno::ETIMEDOUT, format!("cap flushes not acknowledged within {:.0} s", self.inner.timeout.as_secs_f64()))
        })??;
        let upto = self.inner.next_tid.load(Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        loop {
            let notified = self.inner.safe_changed.notified();
            let left = lock(&self.inner.pending).range(..upto).filter(|(_, p)| only.is_none_or(|o| p.inos.contains(&o))).count();
            if left == 0 {
                // An async create/unlink that failed after it was acknowledged: reported
                // here (fsync), as Ceph does.
                return match self.inner.asyncops.take_any_error() {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(CmdError::new(
                    Errno::ETIMEDOUT,
                    format!("{left} request(s) still not safe after {:.0} s", self.inner.timeout.as_secs_f64()),
                ));
            }
        }
    }

    /// Requests naming `ino` not yet safe (what `sync_ino` waits for; for tests).
    pub fn unsafe_about(&self, ino: Ino) -> usize {
        lock(&self.inner.pending).values().filter(|p| p.inos.contains(&ino)).count()
    }

    /// Number of requests answered unsafe and not yet safe (or not answered at all).
    pub fn unsafe_count(&self) -> usize {
        lock(&self.inner.pending).len()
    }

    /// Waits for safe replies, closes the session and the endpoint.
    pub async fn unmount(self) -> Result<(), CmdError> {
        let r = self.sync().await;
        let conn = lock(&self.inner.conn).clone();
        if let Some((_, c)) = conn {
            let close = c.request(Message::MClientSession(SessionOp::Close), Duration::from_secs(2));
            let _ = close.await;
        }
        self.inner.closed.store(true, Ordering::Relaxed);
        self.inner.kick.notify_one();
        self.inner.msgr.shutdown();
        r
    }

    /// Name of pool `id` in the newest OSDMap.
    pub(super) fn pool_name(&self, id: PoolId) -> Result<String, CmdError> {
        let map = self.inner.monc.current().osdmap;
        map.and_then(|m| m.pools.get(&id).map(|p| p.name.clone()))
            .ok_or_else(|| CmdError::enoent(format!("data pool {id} is not in the OSDMap")))
    }
}

impl Inner {
    /// Connects to `t` and opens a session there; on success makes it the current one
    /// and re-sends every request still waiting for an answer or a safe reply.
    pub(super) async fn open_session(&self, t: &MdsTarget) -> Result<(), CmdError> {
        let open = SessionOp::Open { root: self.root_path.clone(), metadata: BTreeMap::new() };
        let conn = self.session_handshake(t, Message::MClientSession(open), "session open").await?;
        // Delegated inode numbers are learned again from the next create's safe reply
        // (the session may be a new one); unsafe async ops keep theirs.
        self.asyncops.forget_delegated();
        self.install_session(t, conn, "client session open");
        Ok(())
    }

    /// Connects to `t` and sends `msg` (a session open or a reconnect, named `what` in
    /// errors); the session is ours once `t` answers `Opened` (its root inode is kept).
    pub(super) async fn session_handshake(&self, t: &MdsTarget, msg: Message, what: &str) -> Result<ConnHandle, CmdError> {
        let conn = self
            .msgr
            .connect(&t.peer, t.addr, true)
            .await
            .map_err(|e| CmdError::new(Errno::ENOTCONN, format!("cannot reach {}: {e}", t.peer)))?;
        let reply = conn
            .request(msg, self.timeout.min(Duration::from_secs(3)))
            .await
            .map_err(|e| CmdError::new(Errno::ETIMEDOUT, format!("{what} with {}: {e}", t.peer)))?;
        match reply {
            Message::MClientSessionReply(SessionReply::Opened { root_ino, session_timeout_ms }) => {
                self.root_ino.store(root_ino, Ordering::Relaxed);
                self.caps.lease.set_timeout(Duration::from_millis(session_timeout_ms));
                Ok(conn)
            }
            Message::MClientSessionReply(SessionReply::Rejected { errno, reason }) => {
                Err(CmdError::new(errno, format!("{} refused the {what}: {reason}", t.peer)))
            }
            Message::MError { message } => Err(CmdError::new(Errno::EIO, format!("{}: {message}", t.peer))),
            other => Err(CmdError::new(Errno::EIO, format!("{} answered the {what} with {}", t.peer, other.name()))),
        }
    }

    /// The credentials of the request being made.
    pub(super) fn current_caller(&self) -> Caller {
        CALLER.try_with(Caller::clone).unwrap_or_else(|_| lock(&self.caller).clone())
    }

    /// A fresh request tid.
    pub(super) fn next_tid(&self) -> u64 {
        self.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends request `tid` without waiting; the receiver gets its first reply. It stays
    /// pending (re-sent after a reconnect) until its safe reply.
    pub(super) fn submit(&self, tid: u64, op: MdsOp) -> oneshot::Receiver<Result<ReplyBody, Errno>> {
        // The MDS judges requests by the attributes it has: this client's own
        // changes under exclusive caps reach it first (the same ordered connection).
        self.flush_dirty_attrs();
        let (tx, rx) = oneshot::channel();
        let mut pending = lock(&self.pending);
        // Every request below the oldest one pending has had its safe reply.
        let oldest_tid = pending.keys().next().map_or(tid, |&t| t.min(tid));
        let req = ClientRequest { tid, op, caller: self.current_caller(), oldest_tid };
        let msg = Message::MClientRequest(req.clone());
        let inos = super::async_ops::op_inos(&req.op);
        pending.insert(tid, Pending { req, inos, waiter: Some(tx) });
        let sent = lock(&self.conn).as_ref().map(|(_, c)| c.send(msg).is_ok()).unwrap_or(false);
        if !sent {
            self.kick.notify_one();
        }
        rx
    }

    /// Sends the attribute changes made under exclusive caps as cap flushes (not the
    /// size of writes, whose data may not have landed).
    pub(super) fn flush_dirty_attrs(&self) {
        let inos: Vec<Ino> = {
            let mut d = lock(&self.attrs_dirty);
            if d.is_empty() {
                return;
            }
            d.drain().collect()
        };
        let msgs: Vec<ClientCaps> = {
            let mut map = lock(&self.caps.map);
            inos.iter().filter_map(|ino| map.get_mut(ino).and_then(|c| c.take_flush(*ino, false))).collect()
        };
        if let Some((_, conn)) = lock(&self.conn).as_ref() {
            for m in msgs {
                let _ = conn.send(Message::MClientCaps(m));
            }
        }
    }

    /// Forgets a request that will not be waited for any more (timed out).
    pub(super) fn abandon(&self, tid: u64) -> Option<ClientRequest> {
        let p = lock(&self.pending).remove(&tid).map(|p| p.req);
        self.safe_changed.notify_waiters();
        p
    }

    async fn request(&self, op: MdsOp) -> Result<ReplyBody, CmdError> {
        if let Some(e) = self.blocklisted_error() {
            return Err(e);
        }
        // An op on what an async create makes (or in a directory with async ops in
        // flight) goes after their replies, so the MDS sees them first.
        self.asyncops.wait_ordered(&op, self.timeout).await;
        let tid = self.next_tid();
        let rx = self.submit(tid, op);
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(body))) => Ok(body),
            Ok(Ok(Err(errno))) => {
                if errno == Errno::EBLOCKLISTED {
                    self.on_blocklisted("the MDS refused a request: this instance is blocklisted");
                }
                Err(CmdError::new(errno, errno_text(errno)))
            }
            Ok(Err(_)) => Err(CmdError::new(Errno::ENOTCONN, "client is shutting down")),
            Err(_) => {
                // Described only now: formatting every request up front cost more than
                // the rest of the client's bookkeeping.
                let what = self.abandon(tid).map(|r| format!("{:?}", r.op)).unwrap_or_default();
                let short: String = what.chars().take(80).collect();
                Err(CmdError::new(
                    Errno::ETIMEDOUT,
                    format!("no answer from the MDS within {:.0} s to {short}", self.timeout.as_secs_f64()),
                ))
            }
        }
    }

    fn dispatch(&self, r: MdsReply) {
        let mut pending = lock(&self.pending);
        let Some(p) = pending.get_mut(&r.tid) else { return };
        let done = r.safe || r.result.is_err();
        if let Ok(ReplyBody::Inode(st)) = &r.result {
            if !done && !p.inos.contains(&st.ino) {
                p.inos.push(st.ino);
            }
        }
        if let Some(w) = p.waiter.take() {
            let _ = w.send(r.result);
        }
        if done {
            pending.remove(&r.tid);
            drop(pending);
            self.safe_changed.notify_waiters();
        }
    }

    /// Sends a session renewal. One-way: the MDS's `RenewAck` (or `Rejected`) comes
    /// in message order, after any revokes it sent first (`lease.rs`).
    pub(super) fn renew(&self) {
        let conn = lock(&self.conn).clone();
        let Some((t, c)) = conn else { return };
        let seq = self.caps.lease.renewing();
        if let Err(e) = c.send(Message::MClientSession(SessionOp::Renew { seq })) {
            tracing::debug!(mds = %t.peer, "renewal not sent: {e}");
        }
    }

    /// The MDS acknowledged renewal `seq`: the caps' lease runs on.
    fn renewed(&self, seq: u64) {
        if self.caps.lease.acked(seq) {
            tracing::debug!(seq, "caps trusted again (a renewal acknowledged after the lease ran out)");
            self.caps.changed.notify_waiters();
        }
    }

    fn drop_conn(&self) {
        *lock(&self.conn) = None;
        self.kick.notify_one();
    }
}

/// Feeds maps to the MonClient and replies to the session (once mounted).
async fn receive_loop(monc: Arc<MonClient>, cell: Arc<OnceLock<Arc<Inner>>>, mut rx: mpsc::UnboundedReceiver<Incoming>) {
    while let Some(inc) = rx.recv().await {
        if monc.handle_map(&inc.msg) {
            continue;
        }
        let Some(inner) = cell.get() else { continue };
        match inc.msg {
            Message::MClientReply(mut r) => {
                // Caps and delegated inode numbers inside the reply apply before the op
                // that waits for it returns.
                let caps = std::mem::take(&mut r.caps);
                if !caps.is_empty() {
                    let c = Client { inner: inner.clone() };
                    for m in caps {
                        c.handle_caps(m);
                    }
                }
                if let Some(d) = r.deleg.take() {
                    inner.asyncops.set_delegated(&d);
                }
                inner.dispatch(r)
            }
            Message::MClientSessionReply(SessionReply::RenewAck { seq }) => inner.renewed(seq),
            Message::MClientSessionReply(SessionReply::Rejected { errno, reason }) => inner.on_rejected(errno, &reason),
            Message::MClientCaps(m) => Client { inner: inner.clone() }.handle_caps(m),
            Message::MClientSessionReply(SessionReply::Closed) => {
                tracing::warn!(from = %inc.from, "MDS closed our session; reopening");
                inner.drop_conn();
            }
            Message::MClientSessionReply(SessionReply::Recall { seq, max_caps }) => inner.on_recall(&inc.conn, seq, max_caps),
            other => tracing::debug!(from = %inc.from, "client ignores {}", other.name()),
        }
    }
}

/// Keeps the session alive: renews it, and re-opens it (with back-off) when the
/// connection drops or the FSMap names another rank-0 daemon.
async fn manager(inner: Arc<Inner>) {
    let mut w = inner.monc.watch();
    let mut tick = tokio::time::interval(inner.renew_every);
    tick.tick().await;
    let mut backoff = Duration::from_millis(100);
    loop {
        let conn = lock(&inner.conn).clone();
        let closed = async {
            match &conn {
                Some((_, c)) => c.closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = w.changed() => {}
            _ = inner.kick.notified() => {}
            _ = closed => {}
            _ = tick.tick() => inner.renew(),
        }
        if inner.finished() {
            return;
        }
        let want = inner.monc.current().fsmap.and_then(|m| inner.session_target(&m));
        let current = lock(&inner.conn).clone();
        let healthy = matches!((&current, &want), (Some((t, c)), Some(w)) if t == w && !c.is_closed());
        let no_active_but_alive = want.is_none() && current.as_ref().is_some_and(|(_, c)| !c.is_closed());
        if healthy || no_active_but_alive {
            backoff = Duration::from_millis(100);
            continue;
        }
        if let Some((t, _)) = &current {
            inner.msgr.forget(&t.peer, t.addr).await;
        }
        *lock(&inner.conn) = None;
        let Some(target) = want else {
            // No active rank 0 yet: the FSMap watch wakes us when one appears.
            continue;
        };
        match inner.connect_session(&target).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) if e.errno == Errno::EBLOCKLISTED => inner.on_blocklisted(&e.message),
            Err(e) => {
                tracing::warn!("reconnecting to {}: {e}", target.peer);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                inner.kick.notify_one();
            }
        }
    }
}
