//! The rank's caps side: which request locks each op needs (`op_locks`, pure), and
//! the thin actor glue around the Locker: requests take their locks before they run
//! (or are parked and rerun on wake), replies are followed by cap grants, the
//! Locker's commands are carried out (cap messages, journaled writable ranges — the
//! grants that follow them leave once they are durable — and wakes), and clients'
//! `MClientCaps` (acks, flushes of size/mtime, wanted changes, releases) are applied.
//! Nothing here waits for a client: every wait is a parked request or a lock state.
use actix::prelude::*;
use std::collections::{BTreeMap, HashMap};

use super::cache::MdCache;
use super::events::LogEvent;
use super::locker::{Acquire, Command, Held, InodeInfo, Locker, ReqId};
use super::locks::{LockKind, LockMode};
use super::rank::MdsRank;
use super::rank_client::Work;
use super::server::update_inode;
use super::types::Ino;
use crate::error::Errno;
use crate::msg::caps::{CapOp, Caps, ClientCaps, FileMode};
use crate::msg::mds::{ClientRequest, MdsOp, ReplyBody, O_ACCMODE, O_TRUNC, S_IFDIR, S_IFMT};
use crate::msg::Message;
use crate::net::ConnHandle;

/// Fires once a journal entry is durable.
type Durable = tokio::sync::oneshot::Receiver<()>;

/// The rank's caps state: the Locker, how to reach each client, parked requests.
#[derive(Default)]
pub(super) struct CapsState {
    pub locker: Locker,
    conns: HashMap<String, ConnHandle>,
    parked: HashMap<ReqId, Work>,
    next_req: ReqId,
}

/// The inode a dentry of `dir` named `name` points at, if it is in cache.
fn child(cache: &MdCache, dir: Ino, name: &str) -> Option<Ino> {
    cache.dir(dir).and_then(|d| d.dentries.get(name)).map(|l| l.ino())
}

/// The request locks an op needs, from what the cache knows now: reads rdlock what
/// they return (so no client holds it exclusively or dirty), namespace changes wrlock
/// the parent directory (clients lose their cached entries) and xlock the link lock of
/// the inode they unlink, attribute changes xlock the lock of what they change.
pub fn op_locks(op: &MdsOp, cache: &MdCache) -> Vec<(Ino, LockKind, LockMode)> {
    use LockKind::*;
    use LockMode::*;
    let attrs = |i: Ino| vec![(i, Auth, Rd), (i, Link, Rd), (i, File, Rd)];
    let mut v = match op {
        MdsOp::Lookup { parent, name } => match name.as_str() {
            "." => attrs(*parent),
            ".." => vec![],
            n => child(cache, *parent, n).map(attrs).unwrap_or_default(),
        },
        MdsOp::LookupIno { ino } | MdsOp::Getattr { ino } => attrs(*ino),
        MdsOp::Setattr { ino, set } => {
            let mut v = Vec::new();
            if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
                v.push((*ino, Auth, X));
            }
            if set.size.is_some() || set.mtime.is_some() || set.atime.is_some() {
                v.push((*ino, File, X));
            }
            v
        }
        MdsOp::Create { parent, .. }
        | MdsOp::CreateIno { parent, .. }
        | MdsOp::MkdirIno { parent, .. }
        | MdsOp::Mknod { parent, .. }
        | MdsOp::Mkdir { parent, .. } => {
            vec![(*parent, File, Wr)]
        }
        MdsOp::Symlink { parent, .. } => vec![(*parent, File, Wr)],
        MdsOp::Open { ino, flags } if flags & O_TRUNC != 0 && flags & O_ACCMODE != 0 => vec![(*ino, File, X)],
        MdsOp::Open { .. } | MdsOp::Readlink { .. } | MdsOp::Statfs => vec![],
        MdsOp::Link { ino, new_parent, .. } => vec![(*ino, Link, X), (*new_parent, File, Wr)],
        MdsOp::Unlink { parent, name } | MdsOp::Rmdir { parent, name } => {
            let mut v = vec![(*parent, File, Wr)];
            v.extend(child(cache, *parent, name).map(|t| (t, Link, X)));
            v
        }
        MdsOp::Rename { src_parent, src_name, dst_parent, dst_name } => {
            let mut v = vec![(*src_parent, File, Wr), (*dst_parent, File, Wr)];
            v.extend(child(cache, *src_parent, src_name).map(|t| (t, Link, X)));
            v.extend(child(cache, *dst_parent, dst_name).map(|t| (t, Link, X)));
            v
        }
        MdsOp::Readdir { ino, .. } => vec![(*ino, File, Rd)],
        MdsOp::Getxattr { ino, .. } | MdsOp::Listxattr { ino } | MdsOp::Getxattrs { ino } => vec![(*ino, Xattr, Rd)],
        MdsOp::Setxattr { ino, .. } => vec![(*ino, Xattr, X)],
        // Removing a name the inode does not have changes nothing (ENODATA): the
        // kernel asks that of every chown (`security.capability`), which should not
        // take the xattr caps back from every client.
        MdsOp::Removexattr { ino, name } => {
            let has = cache.inode(*ino).is_some_and(|i| i.xattrs.contains_key(name.as_str()));
            vec![(*ino, Xattr, if has { X } else { Rd })]
        }
        MdsOp::SetSize { ino, .. } => vec![(*ino, File, Wr)],
    };
    v.sort();
    // One entry per lock, the strongest mode (X > Wr > Rd sorts last).
    let mut out: Vec<(Ino, LockKind, LockMode)> = Vec::new();
    for n in v {
        match out.last_mut() {
            Some(l) if (l.0, l.1) == (n.0, n.1) => l.2 = n.2,
            _ => out.push(n),
        }
    }
    out
}

/// The open mode an op opens its result with, if it is an open.
fn open_mode(op: &MdsOp) -> Option<FileMode> {
    match op {
        MdsOp::Open { flags, .. } => Some(FileMode::from_flags(*flags)),
        MdsOp::Create { .. } | MdsOp::CreateIno { .. } => Some(FileMode { read: true, write: true }),
        _ => None,
    }
}

fn info_of(cache: &MdCache, ino: Ino) -> InodeInfo {
    cache.inode(ino).map_or(InodeInfo::default(), |i| InodeInfo { is_dir: i.is_dir(), size: i.size })
}

/// A request's locks to give back once its change is durable (sent to the rank by the
/// task that waits for the journal, so no future per request sits on the actor).
pub(super) struct ReleaseHeld(pub Held);

impl actix::Message for ReleaseHeld {
    type Result = ();
}

impl Handler<ReleaseHeld> for MdsRank {
    type Result = ();
    fn handle(&mut self, m: ReleaseHeld, ctx: &mut Context<Self>) {
        self.release_held(m.0, ctx);
    }
}

/// Writable ranges journaled inside a request's own blob are durable: the Locker's
/// wrlocks for them go back (`(ino, locked)` as the `JournalRanges` command said).
pub(super) struct RangesDurable(pub Vec<(Ino, bool)>);

impl actix::Message for RangesDurable {
    type Result = ();
}

impl Handler<RangesDurable> for MdsRank {
    type Result = ();
    fn handle(&mut self, m: RangesDurable, ctx: &mut Context<Self>) {
        for (ino, locked) in m.0 {
            let cmds = self.locker().range_journaled(ino, locked);
            self.exec_caps(cmds, ctx);
        }
    }
}

impl MdsRank {
    pub(super) fn locker(&mut self) -> &mut Locker {
        &mut self.caps.locker
    }

    /// Remembers the connection a client's messages come on (revokes go there).
    pub(super) fn note_conn(&mut self, client: &str, conn: &ConnHandle) {
        if self.caps.conns.get(client).is_none_or(|c| c.id() != conn.id()) {
            self.caps.conns.insert(client.to_string(), conn.clone());
        }
    }

    /// Takes the locks `req` needs. `None`: the request is parked and reruns on wake.
    pub(super) fn lock_request(&mut self, client: &str, conn: &ConnHandle, req: &ClientRequest, ctx: &mut Context<Self>) -> Option<Held> {
        let needs = match self.rs.as_ref() {
            Some(rs) => op_locks(&req.op, &rs.cache),
            None => return Some(Held::default()),
        };
        if needs.is_empty() {
            return Some(Held::default());
        }
        self.caps.next_req += 1;
        let id = self.caps.next_req;
        let (a, cmds) = self.locker().acquire(id, client, &needs);
        let held = match a {
            Acquire::Granted(h) => Some(h),
            Acquire::Parked(ino) => {
                tracing::debug!(%client, tid = req.tid, ino = format!("{ino:#x}"), "request waits for locks");
                let w = Work::Request { client: client.to_string(), conn: conn.clone(), req: req.clone() };
                self.caps.parked.insert(id, w);
                None
            }
        };
        self.exec_caps(cmds, ctx);
        held
    }

    /// Gives back a request's locks.
    pub(super) fn release_held(&mut self, held: Held, ctx: &mut Context<Self>) {
        if !held.is_empty() {
            let cmds = self.locker().release_locks(held);
            self.exec_caps(cmds, ctx);
        }
    }

    /// The Locker's commands for giving `client` caps on what a reply returns (the
    /// inode, and for a lookup its parent; for a readdir the directory).
    pub(super) fn issue_cmds_for_reply(&mut self, client: &str, op: &MdsOp, result: &Result<ReplyBody, Errno>) -> Vec<Command> {
        let Some(rs) = self.rs.as_ref() else { return Vec::new() };
        let mut todo: Vec<(Ino, InodeInfo, Option<FileMode>)> = Vec::new();
        match result {
            Ok(ReplyBody::Inode(st)) => {
                let info = InodeInfo { is_dir: st.mode & S_IFMT == S_IFDIR, size: st.size };
                todo.push((st.ino, info, open_mode(op).filter(|_| !info.is_dir)));
                if let MdsOp::Lookup { parent, .. } = op {
                    todo.push((*parent, info_of(&rs.cache, *parent), None));
                }
            }
            Ok(ReplyBody::Dir { .. }) => {
                if let MdsOp::Readdir { ino, .. } = op {
                    todo.push((*ino, info_of(&rs.cache, *ino), None));
                }
            }
            _ => {}
        }
        let mut out = Vec::new();
        for (ino, info, mode) in todo {
            self.restore_ranges(ino, info);
            if mode.is_some_and(|m| m.write) {
                self.refresh_quota_limit(ino);
            }
            out.extend(self.locker().issue(client, ino, info, mode));
        }
        out
    }

    /// Tells the Locker how far file `ino` may grow under the quotas above it (its
    /// size plus the room left under the tightest `ceph.quota.max_bytes`; none without
    /// a quota), so that no writable range goes past it. Called before ranges grow.
    /// Files below one quota share its room: each may be granted all of it, so
    /// concurrent writers of several files can overshoot (as in Ceph, quotas are
    /// enforced against the statistics at the time of the grant).
    fn refresh_quota_limit(&mut self, ino: Ino) -> Option<u64> {
        let limit = self.rs.as_ref().and_then(|rs| {
            let i = rs.cache.inode(ino).filter(|i| !i.is_dir())?;
            super::quota::quota_room(&rs.cache, ino).map(|room| i.size.saturating_add(room))
        });
        self.caps.locker.set_quota_limit(ino, limit);
        limit
    }

    /// The `MClientCaps` a Locker `Caps` command stands for, with the inode's
    /// attributes as the cache has them.
    pub(super) fn caps_message(&self, ino: Ino, revoke: bool, caps: Caps, wanted: Caps, seq: u64, max_size: u64) -> ClientCaps {
        let mut m = ClientCaps::new(if revoke { CapOp::Revoke } else { CapOp::Grant }, ino, caps, seq);
        (m.wanted, m.max_size) = (wanted, max_size);
        if let Some(i) = self.rs.as_ref().and_then(|rs| rs.cache.inode(ino)) {
            (m.size, m.mtime, m.atime, m.stat) = (i.size, i.mtime, i.atime, Some(i.stat()));
        }
        m
    }

    /// The first time the Locker sees a file after a restart, it takes the writable
    /// ranges the journal kept, for clients that still have a session.
    fn restore_ranges(&mut self, ino: Ino, info: InodeInfo) {
        let Some(rs) = self.rs.as_ref() else { return };
        if !self.caps.locker.ranges(ino).is_empty() || self.caps.locker.cap_holders(ino) > 0 {
            return;
        }
        let Some(i) = rs.cache.inode(ino) else { return };
        let live: BTreeMap<String, u64> =
            i.client_ranges.iter().filter(|(c, _)| rs.sessions.get(c).is_some()).map(|(c, r)| (c.clone(), *r)).collect();
        self.caps.locker.restore_ranges(ino, info, live);
    }

    /// Carries out Locker commands. Cap messages of a batch that journals writable
    /// ranges leave once those are durable, so no client writes past a range a
    /// restarted MDS would not know.
    pub(super) fn exec_caps(&mut self, cmds: Vec<Command>, ctx: &mut Context<Self>) {
        let mut sends = Vec::new();
        let mut journals = Vec::new();
        let mut wakes = Vec::new();
        for cmd in cmds {
            match cmd {
                Command::Caps { client, ino, revoke, caps, wanted, seq, max_size } => {
                    let m = self.caps_message(ino, revoke, caps, wanted, seq, max_size);
                    match self.caps.conns.get(&client) {
                        Some(conn) => sends.push((conn.clone(), m)),
                        None => tracing::debug!(%client, "no connection for a cap message"),
                    }
                }
                Command::JournalRanges { ino, ranges, locked } => journals.push(self.journal_ranges(ino, ranges, locked)),
                Command::Wake(id) => wakes.push(id),
            }
        }
        self.send_after(journals, sends, ctx);
        for id in wakes {
            if let Some(w) = self.caps.parked.remove(&id) {
                self.run(w, 0, ctx);
            }
        }
    }

    /// Sends cap messages once the journal entries are durable (at once if none), then
    /// gives the range wrlocks back to the Locker.
    fn send_after(&mut self, journals: Vec<(Ino, bool, Option<Durable>)>, sends: Vec<(ConnHandle, ClientCaps)>, ctx: &mut Context<Self>) {
        if journals.is_empty() {
            for (conn, m) in sends {
                let _ = conn.send(Message::MClientCaps(m));
            }
            return;
        }
        let fut = async move {
            let mut done = Vec::new();
            for (ino, locked, rx) in journals {
                if let Some(rx) = rx {
                    let _ = rx.await;
                }
                done.push((ino, locked));
            }
            for (conn, m) in sends {
                let _ = conn.send(Message::MClientCaps(m));
            }
            done
        };
        ctx.spawn(fut.into_actor(self).map(|done, act, ctx| {
            for (ino, locked) in done {
                let cmds = act.locker().range_journaled(ino, locked);
                act.exec_caps(cmds, ctx);
            }
        }));
    }

    /// Records the writable ranges in the inode (journaled); the receiver fires once
    /// durable (`None`: nothing to journal).
    fn journal_ranges(&mut self, ino: Ino, ranges: BTreeMap<String, u64>, locked: bool) -> (Ino, bool, Option<Durable>) {
        self.maybe_segment();
        let Some(rs) = self.rs.as_mut() else { return (ino, locked, None) };
        match update_inode(&mut rs.cache, format!("client ranges {ino:#x}"), ino, true, |i| i.client_ranges = ranges) {
            Ok(Some(blob)) => (ino, locked, Some(self.journal(LogEvent::Update(blob), false))),
            Ok(None) => (ino, locked, None),
            Err(_) => {
                tracing::warn!(ino = format!("{ino:#x}"), "writable ranges of an inode not in cache; not journaled");
                (ino, locked, None)
            }
        }
    }

    /// An `MClientCaps` from a client.
    pub(super) fn handle_client_caps(&mut self, client: &str, conn: &ConnHandle, m: ClientCaps, ctx: &mut Context<Self>) {
        let cmds = match m.op {
            CapOp::Ack => self.locker().ack(client, m.ino, m.seq, m.caps, Some(m.wanted)),
            CapOp::Update => {
                let mut cmds = self.locker().update_wanted(client, m.ino, m.wanted);
                if m.want_max > 0 {
                    let limit = self.refresh_quota_limit(m.ino);
                    cmds.extend(self.locker().want_max_size(client, m.ino, m.want_max));
                    if limit.is_some_and(|l| l < m.want_max) {
                        // A quota stops the range short of what the client must write:
                        // say so (seq 0: not a grant), so its write fails with EDQUOT
                        // rather than waiting for a range that cannot come.
                        let mut no = ClientCaps::new(CapOp::Grant, m.ino, Caps::NONE, 0);
                        no.want_max = m.want_max;
                        let _ = conn.send(Message::MClientCaps(no));
                    }
                }
                cmds
            }
            CapOp::Flush => return self.cap_flush(client, conn, &m, ctx),
            CapOp::Release => self.locker().release(client, m.ino),
            CapOp::Grant | CapOp::Revoke | CapOp::FlushAck => {
                tracing::debug!(%client, op = ?m.op, "a client sent an MDS-only cap op; ignored");
                return;
            }
        };
        self.exec_caps(cmds, ctx);
    }

    /// A cap flush: the size (only grows) and mtime a writer produced, and attributes
    /// the client changed under its exclusive caps, journaled; answered with
    /// `FlushAck` once durable. Size and mtime need `Fw`/`Fx`, mode/uid/gid `Ax`,
    /// explicit times `Fx`; what the client does not hold the caps for is ignored.
    fn cap_flush(&mut self, client: &str, conn: &ConnHandle, m: &ClientCaps, ctx: &mut Context<Self>) {
        let held = self.caps.locker.cap(client, m.ino).map_or(Caps::NONE, |c| c.issued);
        let size_ok = held.intersects(Caps::FILE_WR | Caps::FILE_EXCL);
        let attrs = m.attrs.map(|a| a.covered_by(held)).filter(|a| !a.needs().is_empty());
        if m.attrs.is_some_and(|a| a.covered_by(held) != a) {
            tracing::warn!(%client, ino = format!("{:#x}", m.ino), "cap flush of attributes without the caps for them ({held}); those ignored");
        }
        if !size_ok && attrs.is_none() {
            tracing::warn!(%client, ino = format!("{:#x}", m.ino), "cap flush without Fw/Fx ({held}); ignored");
            let _ = conn.send(Message::MClientCaps(ClientCaps { op: CapOp::FlushAck, ..m.clone() }));
            return;
        }
        self.maybe_segment();
        let now = crate::now_ns();
        let (size, mtime) = if size_ok { (m.size, m.mtime) } else { (0, 0) };
        // A size inside the writable range the client was granted was allowed when the
        // range was (quota room included): accounted even if other files under the
        // same quota used the room meanwhile (Ceph's quotas overshoot the same way),
        // rather than refused after the client acknowledged the writes.
        let granted = self.caps.locker.ranges(m.ino).get(client).is_some_and(|r| size <= *r);
        let Some(rs) = self.rs.as_mut() else { return };
        let r = update_inode(&mut rs.cache, format!("cap flush {:#x} {size}", m.ino), m.ino, !granted, |i| {
            i.size = i.size.max(size);
            if mtime > i.mtime {
                i.mtime = mtime;
                i.ctime = now.max(mtime);
            }
            // The client's own changes come after its writes (it drops a write's
            // mtime when it sets one, and an explicit mtime when it writes again).
            if let Some(a) = attrs {
                a.apply_to(&mut i.mode, [&mut i.uid, &mut i.gid], [&mut i.atime, &mut i.mtime, &mut i.ctime]);
            }
        });
        let now_stat = rs.cache.inode(m.ino).map(|i| i.stat());
        let new_size = now_stat.as_ref().map(|st| st.size);
        if let Some(s) = new_size {
            self.caps.locker.set_size(m.ino, s);
        }
        // The ack carries the inode as the MDS now has it, so the writer's cached
        // attributes match what every other client will see.
        let ack = ClientCaps { op: CapOp::FlushAck, size: new_size.unwrap_or(size), stat: now_stat, ..m.clone() };
        let conn = conn.clone();
        match r {
            Ok(Some(blob)) => {
                let rx = self.journal(LogEvent::Update(blob), false);
                ctx.spawn(
                    async move {
                        if rx.await.is_ok() {
                            let _ = conn.send(Message::MClientCaps(ack));
                        }
                    }
                    .into_actor(self),
                );
            }
            Ok(None) => {
                let _ = conn.send(Message::MClientCaps(ack));
            }
            Err(_) => {
                // The ack carries the size the MDS kept, which the client adopts.
                tracing::warn!(%client, ino = format!("{:#x}", m.ino), size, "cap flush refused (a quota, or the inode is not cached)");
                let _ = conn.send(Message::MClientCaps(ack));
            }
        }
    }

    /// A stale session renewed: its client may hold caps again.
    pub(super) fn caps_session_fresh(&mut self, client: &str, ctx: &mut Context<Self>) {
        let cmds = self.locker().mark_fresh(client);
        self.exec_caps(cmds, ctx);
    }

    /// The client's session ended: its caps, ranges and parked requests go.
    pub(super) fn caps_session_gone(&mut self, client: &str, ctx: &mut Context<Self>) {
        self.caps.conns.remove(client);
        let mine: Vec<ReqId> = self
            .caps
            .parked
            .iter()
            .filter(|(_, w)| matches!(w, Work::Request { client: c, .. } if c == client))
            .map(|(id, _)| *id)
            .collect();
        for id in mine {
            self.caps.parked.remove(&id);
            self.caps.locker.cancel(id);
        }
        let cmds = self.locker().drop_client(client);
        self.exec_caps(cmds, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::mds::{SetAttr, S_IFREG};
    use crate::roles::mds::server::tests::Fs;
    use crate::roles::mds::types::ROOT_INO;
    use LockKind::*;
    use LockMode::*;

    /// That ops ask for the locks Ceph's server takes: reads rdlock, namespace changes
    /// wrlock the parent and xlock the unlinked inode's link lock, setattr xlocks what
    /// it changes; one entry per lock with the strongest mode.
    #[test]
    fn locks_per_op() {
        let mut fs = Fs::new();
        let st = Fs::stat_of(fs.run(MdsOp::Create { parent: ROOT_INO, name: "f".into(), mode: S_IFREG | 0o644, excl: true }));
        let f = st.ino;
        let c = &fs.cache;
        let look = MdsOp::Lookup { parent: ROOT_INO, name: "f".into() };
        assert_eq!(op_locks(&look, c), vec![(f, Auth, Rd), (f, Link, Rd), (f, File, Rd)]);
        let missing = MdsOp::Lookup { parent: ROOT_INO, name: "nope".into() };
        assert!(op_locks(&missing, c).is_empty());
        let un = MdsOp::Unlink { parent: ROOT_INO, name: "f".into() };
        assert_eq!(op_locks(&un, c), vec![(ROOT_INO, File, Wr), (f, Link, X)]);
        let set = SetAttr { mode: Some(0o600), size: Some(0), ..Default::default() };
        assert_eq!(op_locks(&MdsOp::Setattr { ino: f, set }, c), vec![(f, Auth, X), (f, File, X)]);
        let ren = MdsOp::Rename { src_parent: ROOT_INO, src_name: "f".into(), dst_parent: ROOT_INO, dst_name: "g".into() };
        assert_eq!(op_locks(&ren, c), vec![(ROOT_INO, File, Wr), (f, Link, X)]);
        assert_eq!(op_locks(&MdsOp::Open { ino: f, flags: 0 }, c), vec![]);
        assert_eq!(op_locks(&MdsOp::Open { ino: f, flags: O_TRUNC | 1 }, c), vec![(f, File, X)]);
        let rm = MdsOp::Removexattr { ino: f, name: "security.capability".into() };
        assert_eq!(op_locks(&rm, c), vec![(f, Xattr, Rd)], "nothing to remove: a read");
        let v = serde_bytes::ByteBuf::from(b"1".to_vec());
        fs.run(MdsOp::Setxattr { ino: f, name: "security.capability".into(), value: v, flags: 0 }).unwrap();
        assert_eq!(op_locks(&rm, &fs.cache), vec![(f, Xattr, X)]);
    }
}
