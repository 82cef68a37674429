//! Async creates, mkdirs and unlinks (Ceph's async dirops). When the client holds `As Fs Fx` on
//! a directory, nobody else can change that directory without revoking those caps
//! first, so where the client knows the name's state — a cached entry to unlink, a name
//! known absent to create (the listing is whole, `DentryCache` complete, or the MDS said
//! "no such entry" under those caps, a negative entry) — it knows the outcome of the
//! op: it answers at once and sends the request pipelined, without waiting for the MDS.
//!
//! - Creates use inode numbers the MDS delegated to the session (`MdsReply::deleg`,
//!   journaled by the MDS before the safe reply that announces them; `Deleg`).
//! - Each op holds a reference on the directory's caps until its first reply, so a
//!   revoke of them (another client wants the directory) is acked only after the MDS has
//!   applied every op the client already acknowledged (`caps.rs` waits for references).
//! - A later op that names what an async create makes, or the directory, waits for the
//!   replies first (`InFlight::blocks`), so the MDS sees them in order.
//! - A request stays pending until safe and is re-sent after a reconnect or failover
//!   (the MDS answers a re-sent request that already completed from its metadata), so a
//!   failover loses nothing acknowledged; `fsync`/`sync` waits for the safe replies.
//! - An error that comes back late (EDQUOT, a permission above the directory, ...) is
//!   kept per directory and reported by the next create/unlink there or by the next
//!   `sync`/`fsync`; the directory stops being complete.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};

use super::caps::CapRef;
use super::file::Invalidate;
use super::session::{errno_text, lock};
use super::Client;
use crate::error::{CmdError, Errno};
use crate::msg::caps::Caps;
use crate::msg::mds::{check_name, Ino, InodeStat, MdsOp, ReplyBody, S_IFDIR, S_IFMT, S_IFREG, S_ISGID, S_ISVTX};

/// Longest delegated range taken from one reply (a bound against a bad message).
const MAX_DELEG_RANGE: u64 = 1 << 16;

/// Inode numbers the client may give new files, and those it already gave.
#[derive(Debug, Default)]
pub struct Deleg {
    free: BTreeSet<Ino>,
    /// Given to creates the MDS may not have applied yet; never handed out twice.
    used: HashSet<Ino>,
}

impl Deleg {
    /// The MDS's current delegation `(start, len)` ranges (which still holds numbers
    /// of creates it has not seen yet): everything not used yet is free.
    pub fn set(&mut self, ranges: &[(Ino, u64)]) {
        let all: BTreeSet<Ino> = ranges.iter().flat_map(|&(s, l)| s..s.saturating_add(l.min(MAX_DELEG_RANGE))).collect();
        self.used.retain(|i| all.contains(i));
        self.free = all.into_iter().filter(|i| !self.used.contains(i)).collect();
    }

    pub fn take(&mut self) -> Option<Ino> {
        let i = self.free.pop_first()?;
        self.used.insert(i);
        Some(i)
    }

    /// A number taken but not sent after all.
    pub fn put_back(&mut self, ino: Ino) {
        if self.used.remove(&ino) {
            self.free.insert(ino);
        }
    }

    /// After a reconnect: the set is learned again (numbers in use stay used).
    pub fn forget(&mut self) {
        self.free.clear();
    }

    pub fn free(&self) -> usize {
        self.free.len()
    }
}

/// Every inode number an op names.
pub fn op_inos(op: &MdsOp) -> Vec<Ino> {
    match op {
        MdsOp::Lookup { parent, .. }
        | MdsOp::Create { parent, .. }
        | MdsOp::Mknod { parent, .. }
        | MdsOp::Mkdir { parent, .. }
        | MdsOp::Symlink { parent, .. }
        | MdsOp::Unlink { parent, .. }
        | MdsOp::Rmdir { parent, .. } => vec![*parent],
        MdsOp::CreateIno { parent, ino, .. } | MdsOp::MkdirIno { parent, ino, .. } => vec![*parent, *ino],
        MdsOp::LookupIno { ino }
        | MdsOp::Getattr { ino }
        | MdsOp::Setattr { ino, .. }
        | MdsOp::Open { ino, .. }
        | MdsOp::Readlink { ino }
        | MdsOp::Readdir { ino, .. }
        | MdsOp::Getxattr { ino, .. }
        | MdsOp::Setxattr { ino, .. }
        | MdsOp::Listxattr { ino }
        | MdsOp::Getxattrs { ino }
        | MdsOp::Removexattr { ino, .. }
        | MdsOp::SetSize { ino, .. } => vec![*ino],
        MdsOp::Link { ino, new_parent, .. } => vec![*ino, *new_parent],
        MdsOp::Rename { src_parent, dst_parent, .. } => vec![*src_parent, *dst_parent],
        MdsOp::Statfs => vec![],
    }
}

/// Async ops sent and not yet answered, by tid.
#[derive(Debug, Default)]
pub struct InFlight {
    ops: HashMap<u64, (Ino, String, Option<Ino>)>,
    dirs: HashMap<Ino, u32>,
    /// Ops in flight per entry (directory, name).
    names: HashMap<(Ino, String), u32>,
    created: HashSet<Ino>,
}

impl InFlight {
    /// Op `tid` on entry `name` of directory `dir`; `created`: the inode a create makes.
    pub fn add(&mut self, tid: u64, dir: Ino, name: &str, created: Option<Ino>) {
        self.ops.insert(tid, (dir, name.to_string(), created));
        *self.dirs.entry(dir).or_default() += 1;
        *self.names.entry((dir, name.to_string())).or_default() += 1;
        self.created.extend(created);
    }

    pub fn finish(&mut self, tid: u64) {
        let Some((dir, name, created)) = self.ops.remove(&tid) else { return };
        if let Some(n) = self.dirs.get_mut(&dir) {
            *n -= 1;
            if *n == 0 {
                self.dirs.remove(&dir);
            }
        }
        let key = (dir, name);
        if let Some(n) = self.names.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.names.remove(&key);
            }
        }
        if let Some(c) = created {
            self.created.remove(&c);
        }
    }

    /// Whether `op` must wait: it names an inode an async create makes or a directory
    /// with async ops in flight.
    pub fn blocks(&self, op: &MdsOp) -> bool {
        !self.ops.is_empty() && op_inos(op).iter().any(|i| self.dirs.contains_key(i) || self.created.contains(i))
    }

    /// Whether an async op on entry `name` of `dir` is in flight: a new async op on it
    /// could reach the MDS's turn first (an unlink waiting there for a cap revoke, then
    /// a create of the name answered EEXIST after the caller was told it succeeded),
    /// so the next op on the entry goes through the MDS, after the ones in flight.
    pub fn busy(&self, dir: Ino, name: &str) -> bool {
        !self.names.is_empty() && self.names.contains_key(&(dir, name.to_string()))
    }

    pub fn is_created(&self, ino: Ino) -> bool {
        self.created.contains(&ino)
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// The client's async-op state.
pub(super) struct AsyncState {
    enabled: AtomicBool,
    deleg: Mutex<Deleg>,
    inflight: Mutex<InFlight>,
    answered: Notify,
    errors: Mutex<BTreeMap<Ino, CmdError>>,
}

impl Default for AsyncState {
    fn default() -> Self {
        AsyncState {
            enabled: AtomicBool::new(true),
            deleg: Mutex::default(),
            inflight: Mutex::default(),
            answered: Notify::new(),
            errors: Mutex::default(),
        }
    }
}

impl AsyncState {
    pub fn set_delegated(&self, ranges: &[(Ino, u64)]) {
        lock(&self.deleg).set(ranges);
    }

    pub fn forget_delegated(&self) {
        lock(&self.deleg).forget();
    }

    /// Waits (at most `timeout`) until `op` no longer has to wait for async ops.
    pub async fn wait_ordered(&self, op: &MdsOp, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.answered.notified();
            if !lock(&self.inflight).blocks(op) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// The error a late reply brought for directory `dir`, once.
    pub fn take_error(&self, dir: Ino) -> Option<CmdError> {
        lock(&self.errors).remove(&dir)
    }

    /// Any late error (for `sync`), once; the others are dropped with it.
    pub fn take_any_error(&self) -> Option<CmdError> {
        std::mem::take(&mut *lock(&self.errors)).into_values().next()
    }

    fn record_error(&self, dir: Ino, e: CmdError) {
        lock(&self.errors).entry(dir).or_insert(e);
    }

    fn finish(&self, tid: u64) {
        lock(&self.inflight).finish(tid);
        self.answered.notify_waiters();
    }
}

impl Client {
    /// Turns async creates/unlinks on or off (on by default).
    pub fn set_async_dirops(&self, on: bool) {
        self.inner.asyncops.enabled.store(on, Ordering::Relaxed);
    }

    /// Async ops sent and not answered yet, and delegated inode numbers left.
    pub fn async_state(&self) -> (usize, usize) {
        (lock(&self.inner.asyncops.inflight).len(), lock(&self.inner.asyncops.deleg).free())
    }

    /// A late error of an async op in `dir`, if one came back (reported once).
    pub(super) fn async_error(&self, dir: Ino) -> Result<(), CmdError> {
        match self.inner.asyncops.take_error(dir) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A create answered without waiting: a late error of an earlier async op in
    /// `parent`, or the file created asynchronously (the MDS takes it as a read-write
    /// open; the caller says what it wants later). `None`: the caller must ask the
    /// MDS (and wait).
    pub(super) fn create_now(&self, parent: Ino, name: &str, mode: u32) -> Option<Result<InodeStat, CmdError>> {
        if let Err(e) = self.async_error(parent) {
            return Some(Err(e));
        }
        self.try_async_create(parent, name, mode).map(Ok)
    }

    /// `create_now` for mkdir.
    pub fn mkdir_now(&self, parent: Ino, name: &str, mode: u32) -> Option<Result<InodeStat, CmdError>> {
        if let Err(e) = self.async_error(parent) {
            return Some(Err(e));
        }
        self.try_async_mkdir(parent, name, mode).map(Ok)
    }

    /// `create_now` for unlink.
    pub fn unlink_now(&self, parent: Ino, name: &str) -> Option<Result<(), CmdError>> {
        if let Err(e) = self.async_error(parent) {
            return Some(Err(e));
        }
        self.try_async_unlink(parent, name).map(Ok)
    }

    /// Whether `parent` is known to hold no entry `name` (its listing is complete and
    /// its caps cover it): a lookup's ENOENT needs no MDS. Names the MDS would refuse
    /// are never known absent (they get their own error).
    pub fn known_absent(&self, parent: Ino, name: &str) -> bool {
        name != "."
            && name != ".."
            && check_name(name).is_ok()
            && self.dir_cached(parent)
            && lock(&self.inner.dcache).known_absent(parent, name)
    }

    /// The directory's attributes when an async op may run in it: async ops on, `As Fs
    /// Fx` held; plus a reference on its caps. (The caller knows the name's state: a
    /// cached entry to unlink, or `known_absent` to create.)
    fn async_dir(&self, dir: Ino) -> Option<(InodeStat, CapRef)> {
        if !self.inner.asyncops.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let need = Caps::AUTH_SHARED | Caps::FILE_SHARED | Caps::FILE_EXCL;
        let st = lock(&self.inner.dcache).perm_attrs_of(dir).filter(|s| s.mode & S_IFMT == S_IFDIR)?;
        let r = self.cap_ref(dir, need)?;
        let caller = self.inner.current_caller();
        super::fuse_map::access_ok(&st, &caller, 3).ok()?;
        Some((st, r))
    }

    /// Creates `parent/name` asynchronously if the client may (see the module doc);
    /// `None`: it may not, use the MDS.
    pub(super) fn try_async_create(&self, parent: Ino, name: &str, mode: u32) -> Option<InodeStat> {
        self.try_async_new(parent, name, S_IFREG | (mode & 0o7777))
    }

    /// mkdir like `try_async_create`; the new directory is complete (empty), and
    /// creates in it go asynchronous once the reply brought `Fx` on it.
    pub(super) fn try_async_mkdir(&self, parent: Ino, name: &str, mode: u32) -> Option<InodeStat> {
        self.try_async_new(parent, name, S_IFDIR | (mode & 0o7777))
    }

    /// A new regular file or directory of `mode` (type bits included), made locally
    /// with a delegated inode number and sent to the MDS without waiting.
    fn try_async_new(&self, parent: Ino, name: &str, mut mode: u32) -> Option<InodeStat> {
        check_name(name).ok()?;
        if !lock(&self.inner.dcache).known_absent(parent, name) || lock(&self.inner.asyncops.inflight).busy(parent, name) {
            return None;
        }
        let (pst, cap) = self.async_dir(parent)?;
        let ino = lock(&self.inner.asyncops.deleg).take()?;
        let caller = self.inner.current_caller();
        let now = crate::now_ns();
        let (setgid, is_dir) = (pst.mode & S_ISGID != 0, mode & S_IFMT == S_IFDIR);
        if setgid && is_dir {
            mode |= S_ISGID; // as the MDS does: a set-group-id directory passes it on
        }
        let st = InodeStat {
            ino,
            mode,
            uid: caller.uid,
            gid: if setgid { pst.gid } else { caller.gid },
            size: 0,
            nlink: if is_dir { 2 } else { 1 },
            atime: now,
            mtime: now,
            ctime: now,
            rdev: 0,
            blocks: 0,
            layout: pst.layout,
            symlink: None,
            version: 0,
        };
        {
            let mut d = lock(&self.inner.dcache);
            d.insert(parent, name, &st);
            if is_dir {
                // Empty, and no other client can know it yet: its lookups need no MDS.
                let generation = d.generation();
                d.set_complete(ino, generation);
            }
        }
        self.assume_caps(ino);
        let name_s = name.to_string();
        let op = if is_dir {
            MdsOp::MkdirIno { parent, name: name_s, mode, ino, stamp: now }
        } else {
            MdsOp::CreateIno { parent, name: name_s, mode, ino, stamp: now }
        };
        self.send_async(parent, name, Some(ino), op, cap);
        Some(st)
    }

    /// Unlinks `parent/name` asynchronously if the client may; `None`: use the MDS.
    pub(super) fn try_async_unlink(&self, parent: Ino, name: &str) -> Option<()> {
        let st = lock(&self.inner.dcache).get(parent, name)?;
        if st.mode & S_IFMT == S_IFDIR || lock(&self.inner.asyncops.inflight).is_created(st.ino) {
            return None;
        }
        let (pst, cap) = self.async_dir(parent)?;
        let caller = self.inner.current_caller();
        let sticky = pst.mode & S_ISVTX != 0;
        if sticky && caller.uid != 0 && caller.uid != pst.uid && caller.uid != st.uid {
            return None;
        }
        lock(&self.inner.dcache).invalidate(parent, name);
        self.send_async(parent, name, None, MdsOp::Unlink { parent, name: name.to_string() }, cap);
        Some(())
    }

    /// Sends an async op and watches for its first reply in a task of its own.
    fn send_async(&self, dir: Ino, name: &str, created: Option<Ino>, op: MdsOp, cap: CapRef) {
        let tid = self.inner.next_tid();
        lock(&self.inner.asyncops.inflight).add(tid, dir, name, created);
        let rx = self.inner.submit(tid, op);
        let (me, name) = (self.clone(), name.to_string());
        tokio::spawn(async move { me.async_answered(tid, (dir, name), created, rx, cap).await });
    }

    async fn async_answered(
        &self,
        tid: u64,
        (dir, name): (Ino, String),
        created: Option<Ino>,
        rx: oneshot::Receiver<Result<ReplyBody, Errno>>,
        cap: CapRef,
    ) {
        // No timeout: the op was acknowledged, so it stays pending (and is re-sent
        // after a reconnect or failover) until the MDS answers or the client goes away.
        let r = rx.await.unwrap_or(Err(Errno::ENOTCONN));
        drop(cap);
        self.inner.asyncops.finish(tid);
        if let Err(errno) = r {
            tracing::warn!(dir = format!("{dir:#x}"), %name, "async op failed after it was acknowledged: {}", errno_text(errno));
            {
                let mut d = lock(&self.inner.dcache);
                d.invalidate(dir, &name);
                d.set_incomplete(dir);
            }
            self.inner.files.invalidate(Invalidate::Entry { parent: dir, name: name.clone() });
            if let Some(ino) = created {
                self.unassume_caps(ino);
            }
            let msg = format!("async op on {name:?} in {dir:#x} failed: {}", errno_text(errno));
            self.inner.asyncops.record_error(dir, CmdError::new(errno, msg));
        }
        self.inner.caps.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That delegated numbers are handed out once each, also when the MDS's set (sent
    /// before it saw the creates) still holds numbers already given out, and that
    /// numbers the MDS no longer lists are forgotten.
    #[test]
    fn delegation_never_hands_out_twice() {
        let mut d = Deleg::default();
        assert_eq!(d.take(), None);
        d.set(&[(100, 3)]);
        assert_eq!((d.take(), d.take()), (Some(100), Some(101)));
        d.set(&[(100, 3), (200, 2)]);
        assert_eq!(d.take(), Some(102), "100 and 101 are in use");
        d.put_back(102);
        assert_eq!(d.take(), Some(102));
        d.set(&[(102, 1), (200, 2)]);
        d.forget();
        assert_eq!(d.take(), None);
        d.set(&[(100, 1), (102, 1), (200, 2)]);
        assert_eq!(d.take(), Some(100), "100 was dropped from use when the MDS stopped listing it");
        assert_eq!(d.take(), Some(200), "102 is still in use");
        d.set(&[(0, u64::MAX)]);
        assert_eq!(d.free() as u64, MAX_DELEG_RANGE - 3, "bounded, and the three in use stay out");
    }

    /// That ops naming an inode an async create makes, or a directory with async ops in
    /// flight, wait; others do not; finishing releases them.
    #[test]
    fn ordering_against_ops_in_flight() {
        let mut f = InFlight::default();
        let get = |ino| MdsOp::Getattr { ino };
        assert!(!f.blocks(&get(1)));
        f.add(7, 1, "a", Some(50));
        f.add(8, 1, "b", None);
        assert!(f.blocks(&get(50)) && f.blocks(&get(1)));
        assert!(f.busy(1, "a") && f.busy(1, "b") && !f.busy(1, "c") && !f.busy(2, "a"));
        assert!(f.blocks(&MdsOp::Rename { src_parent: 9, src_name: "a".into(), dst_parent: 1, dst_name: "b".into() }));
        assert!(!f.blocks(&get(2)) && !f.blocks(&MdsOp::Statfs));
        f.finish(7);
        assert!(!f.blocks(&get(50)) && f.blocks(&get(1)) && !f.is_created(50));
        assert!(!f.busy(1, "a") && f.busy(1, "b"));
        f.finish(8);
        f.finish(8);
        assert!(!f.blocks(&get(1)) && f.is_empty() && !f.busy(1, "b"));
    }
}
