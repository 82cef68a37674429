//! The Locker's events (what the rank tells it) and queries. Every event returns the
//! commands it produced; see `locker.rs` for the model.
use std::collections::BTreeMap;

use super::{Acquire, Capability, ClientId, Command, Held, InodeInfo, Locker, Parked, ReqId};
use crate::msg::caps::{Caps, FileMode};
use crate::msg::mds::Ino;
use crate::roles::mds::locks::{LockKind, LockMode, LockState};

impl Locker {
    /// `client` was given inode `ino` in a reply (lookup, getattr, create...) or, with
    /// `open`, opened it: it gets a cap (wanting the mode's caps) and whatever the lock
    /// states allow; other clients may be revoked.
    pub fn issue(&mut self, client: &str, ino: Ino, info: InodeInfo, open: Option<FileMode>) -> Vec<Command> {
        let add = open.map_or(Caps::PIN, Caps::for_mode);
        self.want(client, ino, Some(info), add, None);
        let mut out = Vec::new();
        if open.is_some_and(|m| m.write) {
            // Seed 004, step 3: the opener's writable range is journaled now when the
            // file lock admits the MDS's wrlock (it does in excl->mix), else at grant.
            self.grow_ranges(ino, &[client.to_string()], 0, &mut out);
        }
        self.eval(ino, &mut out);
        out
    }

    /// The client says which caps it wants now (e.g. fewer after a close).
    pub fn update_wanted(&mut self, client: &str, ino: Ino, wanted: Caps) -> Vec<Command> {
        let mut out = Vec::new();
        if !self.inodes.get(&ino).is_some_and(|i| i.caps.contains_key(client)) {
            return out;
        }
        self.want(client, ino, None, Caps::PIN, Some(wanted));
        self.eval(ino, &mut out);
        out
    }

    /// The client must write up to `want`: grow its range (journaled) and re-grant.
    pub fn want_max_size(&mut self, client: &str, ino: Ino, want: u64) -> Vec<Command> {
        let mut out = Vec::new();
        let has_fw = self.cap(client, ino).is_some_and(|c| c.pending.contains(Caps::FILE_WR));
        if !has_fw || self.ranges(ino).get(client).is_some_and(|r| *r >= want) {
            return out;
        }
        if self.grow_ranges(ino, &[client.to_string()], want, &mut out) {
            self.resend(client, ino, &mut out);
        }
        self.eval(ino, &mut out);
        out
    }

    /// Sends the client its current caps again (a grant carrying a new max_size).
    fn resend(&mut self, client: &str, ino: Ino, out: &mut Vec<Command>) {
        let Some(il) = self.inodes.get_mut(&ino) else { return };
        let max_size = il.ranges.get(client).copied().unwrap_or(0);
        let Some(cap) = il.caps.get_mut(client) else { return };
        cap.seq += 1;
        let (caps, wanted, seq) = (cap.pending, cap.wanted, cap.seq);
        out.push(Command::Caps { client: client.to_string(), ino, revoke: false, caps, wanted, seq, max_size });
    }

    /// The client acknowledged the grant/revoke `seq`; `has` is what it still holds.
    pub fn ack(&mut self, client: &str, ino: Ino, seq: u64, has: Caps, wanted: Option<Caps>) -> Vec<Command> {
        let mut out = Vec::new();
        let Some(cap) = self.inodes.get_mut(&ino).and_then(|i| i.caps.get_mut(client)) else { return out };
        if seq > cap.seq {
            tracing::warn!(%client, ino = format!("{ino:#x}"), seq, sent = cap.seq, "ack of a cap seq never sent; ignored");
            return out;
        }
        // What the client may still hold: what it has now, what later revokes wait
        // for, and what it was told to hold.
        cap.revoking.retain(|(s, _)| *s > seq);
        let later = cap.revoking.iter().fold(Caps::NONE, |acc, (_, before)| acc | *before);
        cap.issued = cap.pending | (cap.issued & (has | later));
        if let Some(w) = wanted {
            cap.wanted = w;
        }
        self.eval(ino, &mut out);
        out
    }

    /// The client gave up its cap on `ino` (it forgot the inode).
    pub fn release(&mut self, client: &str, ino: Ino) -> Vec<Command> {
        let mut out = Vec::new();
        if let Some(il) = self.inodes.get_mut(&ino) {
            il.caps.remove(client);
        }
        self.drop_range(ino, client, &mut out);
        self.eval(ino, &mut out);
        out
    }

    fn drop_range(&mut self, ino: Ino, client: &str, out: &mut Vec<Command>) {
        let Some(il) = self.inodes.get_mut(&ino) else { return };
        if il.ranges.remove(client).is_some() {
            out.push(Command::JournalRanges { ino, ranges: il.ranges.clone(), locked: false });
        }
    }

    /// The inode's size changed (a flush, a setattr): ranges grow from there.
    pub fn set_size(&mut self, ino: Ino, size: u64) {
        if let Some(il) = self.inodes.get_mut(&ino) {
            il.info.size = size;
        }
    }

    /// A request of `client` needs these locks. Either all are taken now, or the request
    /// is parked on the first inode that does not admit it and that inode's locks start
    /// moving; a `Command::Wake(req)` follows when they admit it.
    pub fn acquire(&mut self, req: ReqId, client: &str, needs: &[(Ino, LockKind, LockMode)]) -> (Acquire, Vec<Command>) {
        let mut out = Vec::new();
        let blocked = needs.iter().find(|(ino, k, m)| self.inodes.get(ino).is_some_and(|il| !il.admitted(*k, *m, client)));
        if let Some(&(ino, ..)) = blocked {
            let mine = needs.iter().filter(|(i, ..)| *i == ino).map(|(_, k, m)| (*k, *m)).collect();
            self.entry(ino, None).parked.push(Parked { req, client: client.to_string(), needs: mine });
            self.eval(ino, &mut out);
            if let Some(pos) = out.iter().position(|c| *c == Command::Wake(req)) {
                // Admitted after all (the move finished at once): take the locks now.
                out.remove(pos);
                let (a, more) = self.acquire(req, client, needs);
                out.extend(more);
                return (a, out);
            }
            return (Acquire::Parked(ino), out);
        }
        for &(ino, k, m) in needs {
            // A fresh inode starts in sync, which may not admit `m`: make it move.
            if !self.inodes.contains_key(&ino) && !LockState::Sync.admits(k, m, false) {
                self.entry(ino, None);
                return self.acquire(req, client, needs);
            }
        }
        for &(ino, k, m) in needs {
            let h = &mut self.entry(ino, None).holders[k.index()];
            match m {
                LockMode::Rd => h.rd += 1,
                LockMode::Wr => h.wr += 1,
                LockMode::X => h.x = true,
            }
        }
        (Acquire::Granted(Held(needs.to_vec())), out)
    }

    /// Gives back a request's locks (after its change is journaled).
    pub fn release_locks(&mut self, held: Held) -> Vec<Command> {
        let mut out = Vec::new();
        let mut inos: Vec<Ino> = Vec::new();
        for (ino, k, m) in held.0 {
            let Some(il) = self.inodes.get_mut(&ino) else { continue };
            let h = &mut il.holders[k.index()];
            match m {
                LockMode::Rd => h.rd = h.rd.saturating_sub(1),
                LockMode::Wr => h.wr = h.wr.saturating_sub(1),
                LockMode::X => h.x = false,
            }
            inos.push(ino);
        }
        inos.dedup();
        for ino in inos {
            self.eval(ino, &mut out);
        }
        out
    }

    /// A `JournalRanges` command is durable; `locked` as it said.
    pub fn range_journaled(&mut self, ino: Ino, locked: bool) -> Vec<Command> {
        let mut out = Vec::new();
        if locked {
            if let Some(il) = self.inodes.get_mut(&ino) {
                let h = &mut il.holders[LockKind::File.index()];
                h.wr = h.wr.saturating_sub(1);
            }
        }
        self.eval(ino, &mut out);
        out
    }

    /// Forgets a parked request (its client went away, or the rank gave up on it).
    pub fn cancel(&mut self, req: ReqId) {
        for il in self.inodes.values_mut() {
            il.parked.retain(|p| p.req != req);
        }
    }

    /// The client is gone (session closed or evicted): its caps, ranges and parked
    /// requests go, and the inodes it held move on.
    pub fn drop_client(&mut self, client: &str) -> Vec<Command> {
        let mut out = Vec::new();
        for ino in self.inodes_of(client) {
            if let Some(il) = self.inodes.get_mut(&ino) {
                il.caps.remove(client);
                il.parked.retain(|p| p.client != client);
            }
            self.drop_range(ino, client, &mut out);
            self.eval(ino, &mut out);
        }
        out
    }

    /// The client's session is stale: its caps are taken back without waiting for an
    /// ack (only `p` stays), so other clients are not held up; `mark_fresh` undoes it.
    pub fn mark_stale(&mut self, client: &str) -> Vec<Command> {
        self.set_stale(client, true)
    }

    /// The client renewed its session (or reopened it): its caps may be issued
    /// again. It never learned that they were taken, so each is first revoked down
    /// to `p` (a new seq; the MDS does not wait for the ack): the client drops what
    /// it cached under them before the grants that follow, on the same ordered
    /// connection, give caps back.
    pub fn mark_fresh(&mut self, client: &str) -> Vec<Command> {
        self.set_stale(client, false)
    }

    fn set_stale(&mut self, client: &str, stale: bool) -> Vec<Command> {
        let mut out = Vec::new();
        for ino in self.inodes_of(client) {
            let Some(cap) = self.inodes.get_mut(&ino).and_then(|il| il.caps.get_mut(client)) else { continue };
            if cap.stale == stale {
                continue;
            }
            cap.stale = stale;
            if stale {
                cap.issued = Caps::PIN;
                cap.pending = Caps::PIN;
                cap.revoking.clear();
            } else {
                cap.seq += 1;
                let (wanted, seq) = (cap.wanted, cap.seq);
                out.push(Command::Caps { client: client.to_string(), ino, revoke: true, caps: Caps::PIN, wanted, seq, max_size: 0 });
            }
            self.eval(ino, &mut out);
        }
        out
    }

    fn inodes_of(&self, client: &str) -> Vec<Ino> {
        let mut v: Vec<Ino> = self
            .inodes
            .iter()
            .filter(|(_, il)| {
                il.caps.contains_key(client) || il.ranges.contains_key(client) || il.parked.iter().any(|p| p.client == client)
            })
            .map(|(i, _)| *i)
            .collect();
        v.sort_unstable();
        v
    }

    /// How many inodes the client holds caps on.
    pub fn cap_count(&self, client: &str) -> usize {
        self.inodes.values().filter(|il| il.caps.contains_key(client)).count()
    }

    /// How many clients hold a cap on `ino`.
    pub fn cap_holders(&self, ino: Ino) -> usize {
        self.inodes.get(&ino).map_or(0, |il| il.caps.len())
    }

    pub fn cap(&self, client: &str, ino: Ino) -> Option<&Capability> {
        self.inodes.get(&ino).and_then(|il| il.caps.get(client))
    }

    /// The state of one lock (sync for an inode the Locker holds nothing about).
    pub fn state(&self, ino: Ino, kind: LockKind) -> LockState {
        self.inodes.get(&ino).map_or(LockState::Sync, |il| il.state[kind.index()])
    }

    pub fn loner(&self, ino: Ino) -> Option<&str> {
        self.inodes.get(&ino).and_then(|il| il.loner.as_deref())
    }

    /// The clients' writable ranges (max_size) of a file.
    pub fn ranges(&self, ino: Ino) -> BTreeMap<ClientId, u64> {
        self.inodes.get(&ino).map(|il| il.ranges.clone()).unwrap_or_default()
    }

    /// Ranges found in the metadata after replay (the clients reconnect to them).
    pub fn restore_ranges(&mut self, ino: Ino, info: InodeInfo, ranges: BTreeMap<ClientId, u64>) {
        if !ranges.is_empty() {
            self.entry(ino, Some(info)).ranges = ranges;
        }
    }

    /// A quota's byte limit on a file (None lifts it); writable ranges stop there.
    pub fn set_quota_limit(&mut self, ino: Ino, limit: Option<u64>) {
        match limit {
            Some(l) => self.quota_limits.insert(ino, l),
            None => self.quota_limits.remove(&ino),
        };
    }

    /// Whether any request is parked.
    pub fn parked_count(&self) -> usize {
        self.inodes.values().map(|il| il.parked.len()).sum()
    }
}
