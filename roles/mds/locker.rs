//! The Locker (pure, no I/O): per inode the four lock states, per client and inode a
//! `Capability`, the loner, the clients' writable ranges, and requests parked until a
//! lock admits them. It takes events (a client was given an inode or opened it, wants
//! other caps, acked a revoke, released; a request needs rd/wr/x locks and later
//! drops them; a range was journaled; a session went stale or away) and returns
//! `Command`s for the rank to carry out: send a grant or a revoke, journal the client
//! ranges, wake a parked request. It never waits: a lock that must change state starts
//! the move, revokes what the move forbids, and finishes it when the acks are in.
//!
//! Loner: when exactly one client wants more than shared caps of a file (or is the
//! only client of a directory) it becomes the loner and the locks go to EXCL for it.
//! When a second client comes, the locks leave EXCL (excl->mix for two writers,
//! excl->sync otherwise) and the loner is dropped only once no lock is in a loner state.
use std::collections::{BTreeMap, HashMap};

use super::locks::{LockKind, LockMode, LockState};
use crate::msg::caps::Caps;
use crate::msg::mds::Ino;

/// A client, by entity name (`client.4127`).
pub type ClientId = String;
/// The rank's id of a request that may be parked.
pub type ReqId = u64;

/// Writable ranges grow in steps of this much (Ceph grows by object-size multiples).
pub const RANGE_STEP: u64 = 64 << 20;

/// One client's caps on one inode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capability {
    /// What the client may still hold: `pending` plus bits being revoked and not acked.
    pub issued: Caps,
    /// What the MDS last told the client to hold.
    pub pending: Caps,
    /// What the client wants (from its open files).
    pub wanted: Caps,
    /// Sequence number of the last grant or revoke sent.
    pub seq: u64,
    /// The session is stale: the caps were taken back without an ack.
    pub stale: bool,
    /// Revokes not yet acknowledged: their seq and what the client might hold before
    /// it applied them. An ack of an older seq (sent before the client saw later
    /// grants and revokes) must not clear bits a later revoke still waits for.
    pub revoking: Vec<(u64, Caps)>,
}

impl Capability {
    pub fn is_revoking(&self) -> bool {
        self.issued != self.pending
    }
}

/// What the rank must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Send `MClientCaps` Grant (only additions) or Revoke (some bits taken away).
    Caps { client: ClientId, ino: Ino, revoke: bool, caps: Caps, wanted: Caps, seq: u64, max_size: u64 },
    /// Journal the inode's client ranges (the Locker holds a wrlock on the file lock
    /// until `range_journaled`).
    /// `locked`: the wrlock is held (give it back with `range_journaled(ino, true)`);
    /// dropping a range needs none.
    JournalRanges { ino: Ino, ranges: BTreeMap<ClientId, u64>, locked: bool },
    /// Run a parked request again.
    Wake(ReqId),
}

/// The request locks one request holds, to give back with `release_locks`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held(Vec<(Ino, LockKind, LockMode)>);

impl Held {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The answer to `acquire`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    Granted(Held),
    /// Parked on this inode; a `Command::Wake` comes when it may be admitted.
    Parked(Ino),
}

/// What the Locker knows of an inode's type and size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InodeInfo {
    pub is_dir: bool,
    pub size: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Holders {
    rd: u32,
    wr: u32,
    x: bool,
}

impl Holders {
    fn is_free(&self) -> bool {
        self.rd == 0 && self.wr == 0 && !self.x
    }
    fn admits(&self, mode: LockMode) -> bool {
        match mode {
            LockMode::Rd | LockMode::Wr => !self.x,
            LockMode::X => self.is_free(),
        }
    }
}

#[derive(Clone, Debug)]
struct Parked {
    req: ReqId,
    client: ClientId,
    needs: Vec<(LockKind, LockMode)>,
}

#[derive(Clone, Debug)]
struct InodeLocks {
    info: InodeInfo,
    state: [LockState; 4],
    holders: [Holders; 4],
    caps: BTreeMap<ClientId, Capability>,
    loner: Option<ClientId>,
    ranges: BTreeMap<ClientId, u64>,
    parked: Vec<Parked>,
}

impl InodeLocks {
    fn new(info: InodeInfo) -> Self {
        InodeLocks {
            info,
            state: [LockState::Sync; 4],
            holders: [Holders::default(); 4],
            caps: BTreeMap::new(),
            loner: None,
            ranges: BTreeMap::new(),
            parked: Vec::new(),
        }
    }

    fn is_idle(&self) -> bool {
        self.caps.is_empty()
            && self.parked.is_empty()
            && self.ranges.is_empty()
            && self.holders.iter().all(Holders::is_free)
            && self.state.iter().all(|s| *s == LockState::Sync)
    }

    fn is_loner(&self, c: &str) -> bool {
        self.loner.as_deref() == Some(c)
    }

    /// Caps a client may hold under the current lock states.
    fn allowed(&self, client: &str) -> Caps {
        if self.caps.get(client).is_some_and(|c| c.stale) {
            return Caps::PIN;
        }
        let loner = self.is_loner(client);
        LockKind::ALL.iter().fold(Caps::PIN, |acc, k| acc | self.state[k.index()].allowed(*k, loner))
    }

    fn admitted(&self, kind: LockKind, mode: LockMode, client: &str) -> bool {
        let i = kind.index();
        self.state[i].admits(kind, mode, self.is_loner(client)) && self.holders[i].admits(mode)
    }

    /// Whether every client's caps of `kind` fit the current (transitional) state.
    fn gathered(&self, kind: LockKind) -> bool {
        let st = self.state[kind.index()];
        self.holders[kind.index()].is_free()
            && self.caps.iter().all(|(c, cap)| st.allowed(kind, self.is_loner(c)).contains(cap.issued & kind.mask()))
    }

    /// The one client that should be the loner, if any.
    fn ideal_loner(&self) -> Option<ClientId> {
        let mut it = self.caps.iter().filter(|(_, c)| !c.stale).filter(|(_, c)| {
            self.info.is_dir || c.wanted.intersects(!(Caps::PIN | Caps::ANY_SHARED))
        });
        match (it.next(), it.next()) {
            (Some((c, _)), None) => Some(c.clone()),
            _ => None,
        }
    }

    /// The stable state lock `kind` should move to.
    fn desired(&self, kind: LockKind, loner_ok: bool) -> LockState {
        let cur = self.state[kind.index()];
        let parked = self.parked.iter().find_map(|p| {
            p.needs.iter().find(|(k, _)| *k == kind).map(|(_, m)| (p.client.as_str(), *m))
        });
        if let Some((client, mode)) = parked {
            if cur.admits(kind, mode, self.is_loner(client)) {
                return cur;
            }
            return match mode {
                LockMode::Rd if loner_ok && self.is_loner(client) => LockState::Excl,
                LockMode::Rd => LockState::Sync,
                LockMode::Wr | LockMode::X => LockState::Lock,
            };
        }
        let loner_wants = match (&self.loner, loner_ok) {
            (Some(l), true) => self.caps.get(l).map(|c| c.wanted),
            _ => None,
        };
        if let Some(w) = loner_wants {
            // Bits only a loner is given: exclusive, plus file cache/read/write/buffer.
            let excl_bits = match kind {
                LockKind::File => Caps::FILE_EXCL | Caps::FILE_CACHE | Caps::FILE_RD | Caps::FILE_WR | Caps::FILE_BUFFER,
                _ => Caps::gen(crate::msg::caps::GEXCL, kind.shift()),
            };
            if (kind == LockKind::File && self.info.is_dir) || w.intersects(excl_bits) {
                return LockState::Excl;
            }
        }
        let writers = self.caps.values().any(|c| !c.stale && c.wanted.contains(Caps::FILE_WR));
        if kind == LockKind::File && !self.info.is_dir && writers {
            LockState::Mix
        } else {
            LockState::Sync
        }
    }
}

/// Caps every client likes to hold on an inode it knows (attribute caching); on a
/// directory also `Fx`, which only its loner is allowed: with it (and `Fs` over a
/// complete listing) the client creates and unlinks there asynchronously (Ceph's
/// `DIR_CREATE`/`DIR_UNLINK`), and any other client's change revokes it first.
fn liked(is_dir: bool) -> Caps {
    let c = Caps::PIN | Caps::ANY_SHARED;
    if is_dir {
        c | Caps::FILE_EXCL
    } else {
        c
    }
}

/// The caps, lock states and writable ranges of the rank's inodes.
#[derive(Debug, Default)]
pub struct Locker {
    inodes: HashMap<Ino, InodeLocks>,
    /// Byte limits from quotas (`ceph.quota.max_bytes`), by inode: writable ranges
    /// never reach past them.
    quota_limits: HashMap<Ino, u64>,
}

#[path = "locker_api.rs"]
mod api;
#[path = "locker_recover.rs"]
mod recover;
pub use recover::Reclaimed;

impl Locker {
    pub fn new() -> Self {
        Locker::default()
    }

    fn entry(&mut self, ino: Ino, info: Option<InodeInfo>) -> &mut InodeLocks {
        let e = self.inodes.entry(ino).or_insert_with(|| InodeLocks::new(info.unwrap_or_default()));
        if let Some(i) = info {
            e.info = i;
        }
        e
    }

    /// The writable range to give a client of a file of `size` that needs `want`. The
    /// one place where a quota limit caps it.
    fn range_for(&self, ino: Ino, size: u64, want: u64) -> u64 {
        let base = size.max(want);
        let proposed = (base / RANGE_STEP + 1) * RANGE_STEP;
        match self.quota_limits.get(&ino) {
            Some(limit) => proposed.min((*limit).max(size)),
            None => proposed,
        }
    }

    /// Drives an inode's locks as far as they go, then issues caps and wakes requests.
    fn eval(&mut self, ino: Ino, out: &mut Vec<Command>) {
        let Some(il) = self.inodes.get_mut(&ino) else { return };
        for _ in 0..32 {
            let mut changed = false;
            for k in LockKind::ALL {
                let st = il.state[k.index()];
                if !st.is_stable() && il.gathered(k) {
                    tracing::debug!(ino = format!("{ino:#x}"), lock = ?k, "{st} -> {}", st.target());
                    il.state[k.index()] = st.target();
                    changed = true;
                }
            }
            let ideal = il.ideal_loner();
            let loner_ok = il.loner == ideal;
            if !loner_ok && il.state.iter().zip(LockKind::ALL).all(|(s, k)| !s.props(k).loner) {
                il.loner = ideal;
                continue;
            }
            for k in LockKind::ALL {
                let st = il.state[k.index()];
                if !st.is_stable() {
                    continue;
                }
                let d = il.desired(k, loner_ok);
                if let Some(t) = st.via(d).filter(|t| t.valid_for(k)) {
                    il.state[k.index()] = t;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        self.issue_caps(ino, out);
        self.wake(ino, out);
        if self.inodes.get(&ino).is_some_and(InodeLocks::is_idle) {
            self.inodes.remove(&ino);
            // (Set again before the next range grows: `MdsRank::refresh_quota_limit`.)
            self.quota_limits.remove(&ino);
        }
    }

    /// Sends every client of the inode what the lock states now allow it.
    fn issue_caps(&mut self, ino: Ino, out: &mut Vec<Command>) {
        let Some(il) = self.inodes.get(&ino) else { return };
        let clients: Vec<ClientId> = il.caps.keys().cloned().collect();
        let liked = liked(il.info.is_dir);
        let mut need_range = Vec::new();
        let mut msgs = Vec::new();
        for c in clients {
            let Some(il) = self.inodes.get_mut(&ino) else { return };
            let allowed = il.allowed(&c);
            let Some(cap) = il.caps.get_mut(&c) else { continue };
            let new = (cap.pending & allowed) | (allowed & (cap.wanted | liked));
            if new == cap.pending {
                continue;
            }
            let revoke = cap.pending.intersects(!new);
            cap.seq += 1;
            if revoke {
                cap.revoking.push((cap.seq, cap.issued));
            }
            cap.pending = new;
            cap.issued |= new;
            let (wanted, seq) = (cap.wanted, cap.seq);
            if new.contains(Caps::FILE_WR) && !il.ranges.contains_key(&c) {
                need_range.push(c.clone());
            }
            msgs.push(Command::Caps { client: c, ino, revoke, caps: new, wanted, seq, max_size: 0 });
        }
        // Ranges first: the rank sends the grants once the ranges are journaled.
        self.grow_ranges(ino, &need_range, 0, out);
        self.fill_max_size(ino, &mut msgs);
        out.extend(msgs);
    }

    /// Gives `clients` writable ranges reaching at least `want` and journals them
    /// (under a wrlock on the file lock). Returns false if the lock does not admit it.
    fn grow_ranges(&mut self, ino: Ino, clients: &[ClientId], want: u64, out: &mut Vec<Command>) -> bool {
        if clients.is_empty() {
            return true;
        }
        let size = self.inodes.get(&ino).map_or(0, |i| i.info.size);
        let range = self.range_for(ino, size, want);
        let Some(il) = self.inodes.get_mut(&ino) else { return false };
        let f = LockKind::File.index();
        if !il.state[f].admits(LockKind::File, LockMode::Wr, true) || !il.holders[f].admits(LockMode::Wr) {
            return false;
        }
        let mut changed = false;
        for c in clients {
            let cur = il.ranges.get(c).copied().unwrap_or(0);
            // (A quota can hold the range where it is: nothing to journal then.)
            if (cur == 0 || cur < want) && range > cur {
                il.ranges.insert(c.clone(), range);
                changed = true;
            }
        }
        if changed {
            il.holders[f].wr += 1;
            out.push(Command::JournalRanges { ino, ranges: il.ranges.clone(), locked: true });
        }
        true
    }

    /// Puts each client's writable range into its cap messages of this batch.
    fn fill_max_size(&self, ino: Ino, out: &mut [Command]) {
        let Some(il) = self.inodes.get(&ino) else { return };
        for cmd in out.iter_mut() {
            if let Command::Caps { client, ino: i, caps, max_size, .. } = cmd {
                if *i == ino && caps.contains(Caps::FILE_WR) {
                    *max_size = il.ranges.get(client.as_str()).copied().unwrap_or(0);
                }
            }
        }
    }

    /// Wakes parked requests whose locks on `ino` are now admitted.
    fn wake(&mut self, ino: Ino, out: &mut Vec<Command>) {
        let Some(il) = self.inodes.get_mut(&ino) else { return };
        let parked = std::mem::take(&mut il.parked);
        for p in parked {
            if p.needs.iter().all(|(k, m)| il.admitted(*k, *m, &p.client)) {
                out.push(Command::Wake(p.req));
            } else {
                il.parked.push(p);
            }
        }
    }

    /// Records a client's new wants (an open adds `FileMode`'s caps).
    fn want(&mut self, client: &str, ino: Ino, info: Option<InodeInfo>, add: Caps, set: Option<Caps>) {
        let il = self.entry(ino, info);
        let cap = il.caps.entry(client.to_string()).or_default();
        cap.wanted = set.unwrap_or(cap.wanted) | add;
    }
}

#[cfg(test)]
#[path = "locker_tests.rs"]
mod tests;
