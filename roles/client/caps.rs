//! The client's caps: per inode what the MDS granted (`MClientCaps`), what open files
//! want, in-flight I/O references, the `Fc` page cache and the `Fb` write-back buffer
//! with the size/mtime those writes produced.
//!
//! Grants apply at once (in message order; older `seq`s are ignored). A revoke first
//! narrows the caps (new I/O waits in `get_caps`), then a task waits for in-flight I/O,
//! writes buffered data to the OSDs and sends the size/mtime as a cap `Flush` when `Fb`
//! or `Fw` goes, drops cached pages when `Fc` goes, drops a directory's dentries when
//! its `Fs` goes (telling the mount through `Files::invalidate`), and acks. It never
//! waits for the MDS, so the MDS's revoke cannot deadlock with this client's requests.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::file::Invalidate;
use super::session::{lock, Inner};
use super::Client;

/// Attributes under caps: the cache with this client's own changes, setattr under `Ax`/`Fx`.
#[path = "caps_attrs.rs"]
mod attrs;
/// `MClientCaps` from the MDS: grants, revokes (flush, ack), flush acks.
#[path = "caps_revoke.rs"]
mod revoke;
use crate::error::{CmdError, Errno};
use crate::msg::caps::{CapAttrs, CapOp, Caps, ClientCaps};
use crate::msg::mds::{Ino, InodeStat};
use crate::msg::Message;
use crate::now_ns;

/// Page size of the `Fc` read cache.
pub const PAGE: u64 = 64 << 10;
/// Bytes read ahead of a sequential reader: kept in flight or cached beyond the page
/// it reads (sixteen default objects), in fetches of `FETCH_CHUNK`, so that the OSDs
/// always have several reads of this reader at hand.
pub const READAHEAD: u64 = 64 << 20;
/// Bytes one fetch reads (four default objects, in parallel); a fetch's pages are
/// cached when it completes, and the read-ahead then tops the window up again.
pub const FETCH_CHUNK: u64 = 16 << 20;
/// Pages cached per inode before the cache of that inode starts over.
pub(super) const MAX_PAGES: usize = 2048;
/// Read buffers kept per inode for answering reads without a copy (`InodeCaps::spans`).
pub(super) const MAX_SPANS: usize = 24;
/// Bytes buffered per inode under `Fb`; a write that would go beyond flushes the
/// buffer first (four default objects, written in parallel).
pub(super) const MAX_BUFFER: usize = 16 << 20;

/// How long caps nobody wants are kept after the last close.
const RELEASE_DELAY: Duration = Duration::from_millis(500);
/// Entry/attribute TTL the mount may give the kernel while caps allow caching.
const KERNEL_TTL: Duration = Duration::from_secs(30);

/// Contiguous runs of a write-back buffer (adjacent pieces joined), so that a
/// sequential writer's buffer goes out as whole objects.
pub(super) fn coalesce(buf: &BTreeMap<u64, Vec<u8>>) -> Vec<(u64, Vec<u8>)> {
    let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
    for (off, data) in buf {
        match runs.last_mut() {
            Some((o, d)) if *o + d.len() as u64 == *off => d.extend_from_slice(data),
            _ => runs.push((*off, data.clone())),
        }
    }
    runs
}

/// Errors of a data write that may pass if it is tried again: the OSD did not answer
/// in time, or answered "not now" (peering, a map change under way).
pub(super) fn is_transient(errno: Errno) -> bool {
    matches!(errno, Errno::ETIMEDOUT | Errno::EAGAIN | Errno::ENOTCONN | Errno::EIO)
}

/// Caps whose holder may serve attributes from its cache.
fn attr_caps() -> Caps {
    Caps::AUTH_SHARED | Caps::LINK_SHARED | Caps::FILE_SHARED
}

/// One inode's caps and cached/buffered state.
#[derive(Default, Debug)]
pub(super) struct InodeCaps {
    pub caps: Caps,
    pub seq: u64,
    pub max_size: u64,
    /// The MDS refused to grow the writable range to this (a quota): writes past
    /// `max_size` up to here fail with EDQUOT. Cleared when the client asks again.
    pub refused_max: u64,
    pub is_dir: bool,
    /// Open handles by mode: (readers, writers).
    pub opens: (u32, u32),
    /// I/O in flight under these caps.
    pub users: u32,
    /// End and mtime of writes not yet reported to the MDS.
    pub dirty: Option<(u64, i64)>,
    /// `Fb`: written data not yet sent to the OSDs, by offset (non-overlapping).
    pub buffer: BTreeMap<u64, Vec<u8>>,
    pub buffered: usize,
    /// Written (exclusively) by `flush_buffer` from taking the buffer until its runs
    /// landed, so that a flush that finds another under way waits for it (a caller
    /// of a flush relies on the data being on the OSDs when it returns); read by
    /// reads from their first OSD read until they laid the buffer over what they
    /// read, so that no buffered bytes land unseen in between.
    pub landing: Arc<tokio::sync::RwLock<()>>,
    /// Write-behind (`behind.rs`): a flusher runs; the bytes it took from the buffer
    /// that have not landed; the writer's nudge when it buffered another unit; reads
    /// and flushes waiting for `landing` (the flusher takes nothing more while there
    /// are any, so they get it once what is in flight landed).
    pub behind: bool,
    pub behind_bytes: usize,
    pub behind_wake: Arc<Notify>,
    pub landing_waiters: u32,
    /// `Fc`: cached pages by page number (with the buffered bytes of their range
    /// laid over them: what the file holds).
    pub pages: HashMap<u64, Bytes>,
    /// The objects' read buffers cached pages were cut from, by file offset (at most
    /// `MAX_SPANS`): a read whose pages are all still slices of one of them is
    /// answered with one slice of it instead of a copy of each page.
    pub spans: BTreeMap<u64, Bytes>,
    pub flush_tid: u64,
    pub flush_acked: u64,
    /// Page ranges `lo..hi` being fetched, so that concurrent misses (the kernel's
    /// read-ahead requests) wait for a fetch under way instead of repeating it.
    pub fetching: Vec<(u64, u64)>,
    /// The page after the last read (read-ahead is for readers that continue there).
    pub read_next: u64,
    /// Read-ahead has cached or claimed every page from the reader's position up to
    /// this one, so its next scan starts here instead of looking each page up again.
    /// A hint: a page dropped since is read when the reader gets to it, and dropping
    /// pages resets it.
    pub ahead: u64,
    /// Counts the changes that made cached pages stale (writes, truncates): a page
    /// fetch that raced with one must not insert what it read.
    pub page_gen: u64,
    /// Counts the times `Fc` was granted after not being held: pages cached under
    /// an older epoch may be stale.
    pub cache_epoch: u64,
    /// The size/mtime of the newest cap flush sent (re-sent after an MDS failover
    /// until acknowledged).
    pub flushing: Option<(u64, i64)>,
    /// Attributes changed here under `Ax`/`Fx` (`Client::local_setattr`) and not yet
    /// sent to the MDS.
    pub attrs: Option<CapAttrs>,
    /// Attributes sent in cap flushes up to `attrs_tid` and not yet acknowledged
    /// (laid over cached attributes meanwhile; re-sent after an MDS failover).
    pub attrs_flushing: Option<CapAttrs>,
    pub attrs_tid: u64,
    /// Under `Xs`: the inode's xattrs (`xattrs.rs`), dropped when `Xs` goes.
    pub xattrs: Option<super::xattrs::Xattrs>,
    /// Why buffered data was dropped unwritten (a revoke's flush the OSDs refused for
    /// good): the next flush (fsync, close) fails with it, once.
    pub write_error: Option<CmdError>,
}

impl InodeCaps {
    /// Caps the open handles want.
    pub fn wanted(&self) -> Caps {
        if self.opens == (0, 0) {
            return Caps::NONE;
        }
        Caps::for_mode(crate::msg::caps::FileMode { read: self.opens.0 > 0, write: self.opens.1 > 0 })
    }

    /// Adds a write to the buffer, replacing what it overlaps.
    pub fn buffer_write(&mut self, off: u64, data: &[u8]) {
        let end = off + data.len() as u64;
        let overlapping: Vec<u64> = self.buffer.range(..end).filter(|(o, d)| **o + d.len() as u64 > off).map(|(o, _)| *o).collect();
        for o in overlapping {
            let Some(d) = self.buffer.remove(&o) else { continue };
            self.buffered -= d.len();
            let dend = o + d.len() as u64;
            if o < off {
                let head = d[..(off - o) as usize].to_vec();
                self.buffered += head.len();
                self.buffer.insert(o, head);
            }
            if dend > end {
                let tail = d[(end - o) as usize..].to_vec();
                self.buffered += tail.len();
                self.buffer.insert(end, tail);
            }
        }
        self.buffered += data.len();
        self.buffer.insert(off, data.to_vec());
    }

    /// Copies buffered data over `out`, which holds file bytes from `off` as the
    /// OSDs have them (read under `landing`).
    /// `page` (the bytes at `off`) with the buffered bytes laid over it; copied only
    /// where the buffer overlaps it.
    pub fn overlay_page(&self, off: u64, page: Bytes) -> Bytes {
        let end = off + page.len() as u64;
        let overlaps = self.buffer.range(..end).any(|(o, d)| o + d.len() as u64 > off);
        if !overlaps {
            return page;
        }
        let mut d = page.to_vec();
        self.overlay(off, &mut d);
        Bytes::from(d)
    }

    pub fn overlay(&self, off: u64, out: &mut [u8]) {
        let end = off + out.len() as u64;
        for (o, d) in self.buffer.range(..end) {
            let dend = o + d.len() as u64;
            if dend <= off {
                continue;
            }
            let from = off.max(*o);
            let to = end.min(dend);
            out[(from - off) as usize..(to - off) as usize].copy_from_slice(&d[(from - o) as usize..(to - o) as usize]);
        }
    }

    /// Whether a fetch under way covers page `p`.
    pub fn being_fetched(&self, p: u64) -> bool {
        self.fetching.iter().any(|(lo, hi)| (*lo..*hi).contains(&p))
    }

    /// Whether page `p` is cached or being fetched (nothing to start for it).
    pub fn page_busy(&self, p: u64) -> bool {
        self.pages.contains_key(&p) || self.being_fetched(p)
    }

    /// No data of this inode waits to reach the OSDs (buffered or in flight).
    pub fn nothing_buffered(&self) -> bool {
        self.buffer.is_empty() && !self.behind
    }

    /// Nothing of this inode waits to be sent: no data, no written size, no
    /// attribute change (what was sent may still wait for its acknowledgement).
    pub fn nothing_unsent(&self) -> bool {
        self.nothing_buffered() && self.dirty.is_none() && self.attrs.is_none()
    }

    /// The MDS took every cap on this inode to purge it (unlinked, and open nowhere as
    /// far as it knows): drops what was never sent (buffered data, a written size,
    /// attribute changes) unless a handle here still has it open. Such data belongs to
    /// no name and no open file; sent later (a close whose flush failed is retried by
    /// write-behind) it would recreate objects after the purge removed them, leaked.
    /// Returns whether anything was dropped.
    pub fn discard_unsent_of_purged(&mut self) -> bool {
        if self.opens != (0, 0) || self.nothing_unsent() {
            return false;
        }
        self.drop_buffer();
        self.dirty = None;
        self.attrs = None;
        true
    }

    /// Forgets the buffered data (it will never be written).
    pub fn drop_buffer(&mut self) {
        self.buffer.clear();
        self.buffered = 0;
    }

    /// Attribute changes sent in a cap flush the MDS has not acknowledged yet.
    pub fn attrs_in_flight(&self) -> Option<CapAttrs> {
        self.attrs_flushing.filter(|_| self.flush_acked < self.attrs_tid)
    }

    /// The end of the size/mtime this client wrote and the MDS may not have
    /// journaled yet: unreported, or in a cap flush not yet acknowledged.
    pub fn unreported(&self) -> Option<(u64, i64)> {
        let flushing = self.flushing.filter(|_| self.flush_acked < self.flush_tid);
        match (self.dirty, flushing) {
            (Some((e1, m1)), Some((e2, m2))) => Some((e1.max(e2), m1.max(m2))),
            (a, b) => a.or(b),
        }
    }

    /// `off..off + len` as one slice of a read buffer, if every page it covers is
    /// cached as a slice of that same buffer (the bytes are then exactly the pages').
    pub fn span_slice(&self, off: u64, len: u64) -> Option<Bytes> {
        let (&at, span) = self.spans.range(..=off).next_back()?;
        let end = off.checked_add(len)?;
        if len == 0 || end > at + span.len() as u64 {
            return None;
        }
        for p in off / PAGE..end.div_ceil(PAGE) {
            let page = self.pages.get(&p)?;
            let from = (p * PAGE).checked_sub(at)? as usize;
            let want = (span.len() - from).min(PAGE as usize);
            if page.len() != want || page.as_ptr() != span[from..].as_ptr() {
                return None;
            }
        }
        Some(span.slice((off - at) as usize..(end - at) as usize))
    }

    /// After this client wrote `off..end`: the pages it made stale go, and the size and
    /// mtime to report grow.
    pub fn wrote(&mut self, off: u64, end: u64) {
        self.drop_pages(off, end);
        self.dirty = Some((self.dirty.map_or(end, |(e, _)| e.max(end)), now_ns()));
        // A write after a set mtime moves it on: the write's own mtime wins.
        for a in [&mut self.attrs, &mut self.attrs_flushing].into_iter().flatten() {
            a.mtime = None;
        }
    }

    /// Attribute changes of this client the MDS has not acknowledged, oldest first.
    pub fn attrs_unacked(&self) -> Option<CapAttrs> {
        match (self.attrs_in_flight(), self.attrs) {
            (Some(f), Some(d)) => Some(f.then(d)),
            (f, d) => f.or(d),
        }
    }

    /// A cap flush of what is dirty (the size and mtime of writes only `with_size`:
    /// their data must have landed first), recorded as flushing; `None` if nothing is.
    pub fn take_flush(&mut self, ino: Ino, with_size: bool) -> Option<ClientCaps> {
        let size = if with_size { self.dirty.take() } else { None };
        let attrs = self.attrs.take();
        if size.is_none() && attrs.is_none() {
            return None;
        }
        self.flush_tid += 1;
        if size.is_some() {
            self.flushing = size;
        }
        if let Some(a) = attrs {
            self.attrs_flushing = Some(self.attrs_in_flight().map_or(a, |e| e.then(a)));
            self.attrs_tid = self.flush_tid;
        }
        Some(self.flush_message(ino, size, attrs))
    }

    /// The cap `Flush` (tid `flush_tid`) of a written size/mtime and attribute changes.
    pub fn flush_message(&self, ino: Ino, size: Option<(u64, i64)>, attrs: Option<CapAttrs>) -> ClientCaps {
        let mut m = ClientCaps::new(CapOp::Flush, ino, self.caps, self.seq);
        (m.wanted, m.flush_tid) = (self.wanted(), self.flush_tid);
        if let Some((size, mtime)) = size {
            (m.dirty, m.size, m.mtime) = (Caps::FILE_WR, size, mtime);
        }
        if let Some(a) = attrs {
            m.dirty |= a.needs();
            m.attrs = Some(a);
        }
        m
    }

    /// Drops cached pages that a write of `off..end` makes stale.
    pub fn drop_pages(&mut self, off: u64, end: u64) {
        let (first, last) = (off / PAGE, end.div_ceil(PAGE));
        self.pages.retain(|p, _| *p < first || *p >= last);
        self.page_gen += 1;
        self.ahead = 0;
    }

    /// Drops every cached page (a truncate, a lost `Fc`).
    pub fn clear_pages(&mut self) {
        self.pages.clear();
        self.spans.clear();
        self.page_gen += 1;
        self.ahead = 0;
    }
}

/// Every inode's caps, and a notifier for those waiting on them.
#[derive(Default)]
pub(super) struct CapTable {
    pub map: Mutex<HashMap<Ino, InodeCaps>>,
    pub changed: Notify,
    /// Counts the times any inode's `Xs` came or went (or this client changed
    /// xattrs), changed under `map`'s lock: xattrs fetched across a change are
    /// not cached.
    pub xattr_gen: AtomicU64,
    /// How long the caps may be trusted (`lease.rs`).
    pub lease: super::lease::CapLease,
}

impl CapTable {
    /// The caps of `c` that may be used now: only `p` once the lease ran out (the
    /// MDS may have taken the rest from a stale session).
    pub fn live(&self, c: &InodeCaps) -> Caps {
        if self.lease.valid() {
            c.caps
        } else {
            c.caps & Caps::PIN
        }
    }
}

/// An in-flight I/O reference: a revoke waits until it is dropped.
pub(super) struct CapRef {
    inner: Arc<Inner>,
    ino: Ino,
}

impl Drop for CapRef {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.inner.caps.map).get_mut(&self.ino) {
            c.users = c.users.saturating_sub(1);
        }
        self.inner.caps.changed.notify_waiters();
    }
}

impl Client {
    /// The caps this client holds on `ino` (for tools and tests).
    pub fn held_caps(&self, ino: Ino) -> Caps {
        lock(&self.inner.caps.map).get(&ino).map_or(Caps::NONE, |c| c.caps)
    }

    /// Whether the caps may be trusted now (the session's lease, `lease.rs`).
    pub fn caps_trusted(&self) -> bool {
        self.inner.caps.lease.valid()
    }

    /// The caps of `ino` that may be used now (`CapTable::live`).
    pub(super) fn caps_of(&self, ino: Ino) -> Caps {
        let t = &self.inner.caps;
        lock(&t.map).get(&ino).map_or(Caps::NONE, |c| t.live(c))
    }

    fn send_caps(&self, m: ClientCaps) {
        if let Some((_, c)) = lock(&self.inner.conn).as_ref() {
            let _ = c.send(Message::MClientCaps(m));
        }
    }

    /// Waits (bounded) until `ino` holds `need`; returns what it holds of `need | want`.
    pub(super) async fn get_caps(&self, ino: Ino, need: Caps, want: Caps) -> Result<Caps, CmdError> {
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        loop {
            let notified = self.inner.caps.changed.notified();
            let have = self.caps_of(ino);
            if have.contains(need) {
                return Ok(have & (need | want));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(CmdError::new(
                    Errno::ETIMEDOUT,
                    format!("inode {ino:#x}: caps {need} not granted within {:.0} s (holding {have})", self.inner.timeout.as_secs_f64()),
                ));
            }
        }
    }

    /// Waits until the writable range of `ino` reaches `end`, asking the MDS for more.
    pub(super) async fn ensure_max_size(&self, ino: Ino, end: u64) -> Result<(), CmdError> {
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        let mut asked = false;
        loop {
            let notified = self.inner.caps.changed.notified();
            let (max, wanted, refused) =
                lock(&self.inner.caps.map).get(&ino).map_or((0, Caps::NONE, 0), |c| (c.max_size, c.wanted(), c.refused_max));
            if max >= end {
                return Ok(());
            }
            if asked && refused >= end {
                return Err(CmdError::new(Errno::EDQUOT, format!("inode {ino:#x}: writing up to {end} would pass a quota (ceph.quota.max_bytes)")));
            }
            if !asked {
                if let Some(c) = lock(&self.inner.caps.map).get_mut(&ino) {
                    c.refused_max = 0;
                }
                let mut m = ClientCaps::new(CapOp::Update, ino, self.held_caps(ino), 0);
                (m.wanted, m.want_max) = (wanted, end);
                self.send_caps(m);
                asked = true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(CmdError::new(Errno::ETIMEDOUT, format!("inode {ino:#x}: no writable range up to {end}")));
            }
        }
    }

    /// Caps the client assumes on an inode it created asynchronously, until the
    /// MDS's reply issues the real ones (Ceph's client does the same): the shared
    /// bits, which the MDS gives the creator, the only client that can know the
    /// inode while it holds the parent's `Fx`. The kernel may then cache the new
    /// entry's attributes at once. A grant that turns out narrower drops what the
    /// missing bits covered.
    pub(super) fn assume_caps(&self, ino: Ino) {
        let mut map = lock(&self.inner.caps.map);
        let c = map.entry(ino).or_default();
        if c.seq == 0 {
            c.caps |= Caps::PIN | Caps::ANY_SHARED;
        }
    }

    /// An async create failed: caps assumed on its inode go (nothing was issued).
    pub(super) fn unassume_caps(&self, ino: Ino) {
        let dropped = {
            let mut map = lock(&self.inner.caps.map);
            map.get_mut(&ino).filter(|c| c.seq == 0).is_some_and(|c| !std::mem::take(&mut c.caps).is_empty())
        };
        if dropped {
            self.inner.files.invalidate(Invalidate::Inode(ino));
        }
    }

    /// Takes an I/O reference if `ino` still holds `need`.
    pub(super) fn cap_ref(&self, ino: Ino, need: Caps) -> Option<CapRef> {
        let t = &self.inner.caps;
        let mut map = lock(&t.map);
        let c = map.get_mut(&ino).filter(|c| t.live(c).contains(need))?;
        c.users += 1;
        Some(CapRef { inner: self.inner.clone(), ino })
    }

    /// The child `name` of `dir` from the dentry cache while the directory's caps
    /// allow serving its entries (what `lookup` answers without the MDS).
    pub(super) fn cached_entry(&self, dir: Ino, name: &str) -> Option<InodeStat> {
        if name == "." || name == ".." || !self.dir_cached(dir) {
            return None;
        }
        lock(&self.inner.dcache).get(dir, name)
    }

    /// While `Fc` is held on `ino`: its cache epoch (pages cached under this epoch
    /// are current; a lost and regained `Fc` starts a new one).
    pub fn cache_epoch(&self, ino: Ino) -> Option<u64> {
        let t = &self.inner.caps;
        lock(&t.map).get(&ino).filter(|c| t.live(c).contains(Caps::FILE_CACHE)).map(|c| c.cache_epoch)
    }

    /// Forgets the cached attributes of `ino`, which changed at the MDS in a way no
    /// reply told this client (a directory's mtime/ctime after a create or unlink in
    /// it): the next getattr asks the MDS.
    pub(super) fn attrs_changed(&self, ino: Ino) {
        lock(&self.inner.dcache).forget_attrs(ino);
    }

    /// Whether `ino` has nothing for a flush to do: no buffered data, no unreported
    /// size/mtime, no cap flush waiting for its ack.
    pub fn is_clean(&self, ino: Ino) -> bool {
        lock(&self.inner.caps.map)
            .get(&ino)
            .is_none_or(|c| c.nothing_unsent() && c.flush_acked >= c.flush_tid)
    }

    /// Whether the directory's entries may be served from the dentry cache.
    pub(super) fn dir_cached(&self, dir: Ino) -> bool {
        self.caps_of(dir).contains(Caps::FILE_SHARED)
    }

    /// How long the mount may let the kernel cache `ino`'s entry and attributes: long
    /// while the caps allow caching (a revoke invalidates it), but not past the caps'
    /// lease (a stopped client's kernel asks again after it resumes); zero otherwise.
    pub fn kernel_ttl(&self, ino: Ino) -> Duration {
        if self.caps_of(ino).contains(attr_caps()) {
            KERNEL_TTL.min(self.inner.caps.lease.remaining())
        } else {
            Duration::ZERO
        }
    }

    /// An open handle of `flags` on `ino` (the MDS recorded the wanted caps already).
    pub(super) fn cap_open(&self, ino: Ino, flags: u32) {
        let mode = crate::msg::caps::FileMode::from_flags(flags);
        let mut map = lock(&self.inner.caps.map);
        let c = map.entry(ino).or_default();
        c.opens.0 += mode.read as u32;
        c.opens.1 += mode.write as u32;
    }

    /// A handle closed: once nothing wants the caps (after a short delay), tell the MDS.
    pub(super) fn cap_close(&self, ino: Ino, flags: u32) {
        let mode = crate::msg::caps::FileMode::from_flags(flags);
        if let Some(c) = lock(&self.inner.caps.map).get_mut(&ino) {
            c.opens.0 = c.opens.0.saturating_sub(mode.read as u32);
            c.opens.1 = c.opens.1.saturating_sub(mode.write as u32);
        }
        self.send_wanted_later(ino);
    }

    /// After a short delay, tells the MDS what the open handles of `ino` want (so caps
    /// nobody wants go back, without thrashing on close-reopen).
    pub(super) fn send_wanted_later(&self, ino: Ino) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RELEASE_DELAY).await;
            me.send_wanted(ino);
        });
    }

    /// Tells the MDS what the open handles of `ino` want now.
    pub(super) fn send_wanted(&self, ino: Ino) {
        let Some((caps, wanted)) = lock(&self.inner.caps.map).get(&ino).map(|c| (c.caps, c.wanted())) else { return };
        let mut m = ClientCaps::new(CapOp::Update, ino, caps, 0);
        m.wanted = wanted;
        self.send_caps(m);
    }

    /// Writes the `Fb` buffer of `ino` to the OSDs (the size/mtime stay dirty): its
    /// contiguous runs all at once, each run's objects in parallel (`write_data`).
    /// Holds `landing` meanwhile: reads wait, and so does a second flush. On an
    /// error the runs go back under anything buffered since (rewriting what did
    /// land is harmless), so a later flush retries them.
    pub(super) async fn flush_buffer(&self, ino: Ino) -> Result<(), CmdError> {
        let landing = match lock(&self.inner.caps.map).get_mut(&ino) {
            Some(c) => match c.write_error.take() {
                Some(e) => return Err(e),
                None => c.landing.clone(),
            },
            None => return Ok(()),
        };
        let _landing = self.landing_guard(ino, landing.write()).await;
        let runs = match lock(&self.inner.caps.map).get_mut(&ino) {
            Some(c) if !c.buffer.is_empty() => {
                c.buffered = 0;
                coalesce(&std::mem::take(&mut c.buffer)).into_iter().map(|(o, d)| (o, Bytes::from(d))).collect::<Vec<_>>()
            }
            _ => return Ok(()),
        };
        let written = match self.layout_of(ino).await {
            Ok(st) => self.write_runs(&st, &runs).await,
            Err(e) => Err(e),
        };
        let mut map = lock(&self.inner.caps.map);
        let c = map.entry(ino).or_default();
        // The file's bytes on the OSDs changed under reads that sampled its size.
        c.page_gen += 1;
        if written.is_err() {
            c.put_back(runs.iter().map(|(o, d)| (*o, &d[..])));
        }
        written
    }

    /// Waits for `landing` (`acquire`), counted as a waiter meanwhile so that a
    /// write-behind flusher holding it stops taking new work.
    pub(super) async fn landing_guard<G>(&self, ino: Ino, acquire: impl std::future::Future<Output = G>) -> G {
        /// Uncounts the waiter however the wait ends (also when it is cancelled).
        struct Waiting<'a>(&'a Client, Ino);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                if let Some(c) = lock(&self.0.inner.caps.map).get_mut(&self.1) {
                    c.landing_waiters = c.landing_waiters.saturating_sub(1);
                }
            }
        }
        if let Some(c) = lock(&self.inner.caps.map).get_mut(&ino) {
            c.landing_waiters += 1;
            c.behind_wake.notify_one();
        }
        let _waiting = Waiting(self, ino);
        acquire.await
    }

    /// Sends the dirty size/mtime of `ino` as a cap flush; with `wait`, until it is
    /// journaled (`FlushAck`).
    pub(super) async fn cap_flush(&self, ino: Ino, wait: bool) -> Result<(), CmdError> {
        let (m, tid) = {
            let mut map = lock(&self.inner.caps.map);
            let Some(c) = map.get_mut(&ino) else { return Ok(()) };
            // Nothing new (`None`): an earlier flush may still be on its way.
            (c.take_flush(ino, true), c.flush_tid)
        };
        if let Some(m) = m {
            self.send_caps(m);
        }
        if !wait {
            return Ok(());
        }
        self.wait_flushed(ino, tid).await
    }

    /// Waits until cap flush `tid` of `ino` is acknowledged.
    pub(super) async fn wait_flushed(&self, ino: Ino, tid: u64) -> Result<(), CmdError> {
        let deadline = tokio::time::Instant::now() + self.inner.timeout;
        loop {
            let notified = self.inner.caps.changed.notified();
            if lock(&self.inner.caps.map).get(&ino).is_none_or(|c| c.flush_acked >= tid) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(CmdError::new(Errno::ETIMEDOUT, format!("inode {ino:#x}: cap flush not acknowledged")));
            }
        }
    }

    /// Buffered data to the OSDs, then size/mtime to the MDS (journaled).
    pub(super) async fn flush_ino(&self, ino: Ino) -> Result<(), CmdError> {
        self.flush_buffer(ino).await?;
        self.cap_flush(ino, true).await
    }
}

#[cfg(test)]
#[path = "caps_tests.rs"]
mod tests;
