//! Open files: the handle layer a mount (FUSE) drives. `open` asks the MDS (permission
//! checks, O_TRUNC) and registers the handle's wanted caps; reads and writes run under
//! caps (`caps.rs`): reads need `Fr` and use the `Fc` page cache when held; writes need
//! `Fw` and stay in the `Fb` write-back buffer when held (else go straight to the
//! OSDs), within the writable range the MDS granted. The data and the size and mtime
//! the writes produced reach the OSDs and the MDS (a cap flush) when the handle is
//! flushed (close(2)), fsync'ed or released, or when the MDS revokes the caps.
//! `Invalidate` events tell the mount which kernel cache entries to drop.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::behind::behind_unit;
use super::caps::{FETCH_CHUNK, MAX_BUFFER, MAX_PAGES, MAX_SPANS, PAGE, READAHEAD};
use super::session::lock;
use super::Client;
use crate::error::{CmdError, Errno};
use crate::msg::caps::Caps;
use crate::msg::mds::{Ino, InodeStat, MdsOp, ReplyBody, O_ACCMODE, S_IFDIR, S_IFMT};

/// What `Client::page_stamp` returns.
type PageStamp = (Option<u64>, Option<u64>);

/// A handle number as the mount sees it.
pub type Fh = u64;

/// `O_APPEND` (Linux value).
pub const O_APPEND: u32 = 0o2000;

/// What the mount should drop from the kernel's caches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidate {
    /// Attributes (and cached pages) of an inode.
    Inode(Ino),
    /// One directory entry.
    Entry { parent: Ino, name: String },
}

/// One open file.
#[derive(Clone, Debug)]
pub struct Handle {
    pub ino: Ino,
    pub flags: u32,
}

/// The client's open handles and invalidation subscribers.
#[derive(Default)]
pub(super) struct Files {
    next: AtomicU64,
    handles: Mutex<HashMap<Fh, Handle>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Invalidate>>>,
}

impl Files {
    /// Sends `inv` to every subscriber still listening (the caps layer calls it).
    pub(super) fn invalidate(&self, inv: Invalidate) {
        lock(&self.subscribers).retain(|s| s.send(inv.clone()).is_ok());
    }
}

impl Client {
    /// A stream of cache invalidations for a mount to apply to the kernel.
    pub fn invalidations(&self) -> mpsc::UnboundedReceiver<Invalidate> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.files.subscribers).push(tx);
        rx
    }

    fn new_handle(&self, ino: Ino, flags: u32) -> Fh {
        self.cap_open(ino, flags);
        self.add_handle(ino, flags)
    }

    /// A handle whose open the caps layer already counts.
    fn add_handle(&self, ino: Ino, flags: u32) -> Fh {
        let fh = self.inner.files.next.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.inner.files.handles).insert(fh, Handle { ino, flags });
        fh
    }

    fn handle(&self, fh: Fh) -> Result<Handle, CmdError> {
        lock(&self.inner.files.handles)
            .get(&fh)
            .cloned()
            .ok_or_else(|| CmdError::new(Errno::EINVAL, format!("no open file handle {fh}")))
    }

    /// Opens inode `ino` with open(2) `flags`.
    /// The open counts before the request goes out: a revoke racing with the reply is
    /// then acked with the new mode's wanted caps, not without them.
    pub async fn open(&self, ino: Ino, flags: u32) -> Result<(InodeStat, Fh), CmdError> {
        self.cap_open(ino, flags);
        let st = match self.request(MdsOp::Open { ino, flags }).await {
            Ok(ReplyBody::Inode(st)) => st,
            other => {
                self.cap_close(ino, flags);
                return Err(match other {
                    Err(e) => e,
                    Ok(b) => CmdError::new(Errno::EIO, format!("open: unexpected reply {b:?}")),
                });
            }
        };
        lock(&self.inner.dcache).update_attrs(&st);
        Ok((st.clone(), self.add_handle(ino, flags)))
    }

    /// Creates `name` in `parent` and opens it.
    pub async fn create_open(
        &self,
        parent: Ino,
        name: &str,
        mode: u32,
        flags: u32,
        excl: bool,
    ) -> Result<(InodeStat, Fh), CmdError> {
        if let Some(r) = self.create_open_now(parent, name, mode, flags) {
            return r;
        }
        let st = self.create(parent, name, mode, excl).await?;
        let fh = self.new_handle(st.ino, flags);
        // The MDS took a create as a read-write open; say what this handle wants.
        self.send_wanted(st.ino);
        Ok((st, fh))
    }

    /// `create_open` when it needs no waiting (`create_now`); `None`: it would.
    /// The MDS takes the async create as a read-write open, which covers the
    /// handle; what it wants is said once it closes.
    pub fn create_open_now(&self, parent: Ino, name: &str, mode: u32, flags: u32) -> Option<Result<(InodeStat, Fh), CmdError>> {
        Some(self.create_now(parent, name, mode)?.map(|st| {
            let fh = self.new_handle(st.ino, flags);
            (st, fh)
        }))
    }

    /// The size (and attributes) reads and appends go by: the cached ones while `Fs` or
    /// `Fx` is held, else the MDS's (which makes writers report theirs first).
    async fn size_view(&self, ino: Ino) -> Result<InodeStat, CmdError> {
        match self.cached_attrs(ino) {
            Some(st) if self.caps_of(ino).intersects(Caps::FILE_SHARED | Caps::FILE_EXCL) => Ok(st),
            _ => {
                let mut st = self.getattr(ino).await?;
                if let Some((end, _)) = lock(&self.inner.caps.map).get(&ino).and_then(|c| c.unreported()) {
                    st.size = st.size.max(end);
                }
                Ok(st)
            }
        }
    }

    /// Reads up to `len` bytes at `off` through handle `fh` (needs `Fr`; `Fc` caches).
    pub async fn fh_read(&self, fh: Fh, off: u64, len: u64) -> Result<Vec<u8>, CmdError> {
        Ok(self.fh_read_bytes(fh, off, len).await?.to_vec())
    }

    /// `fh_read` as a shared buffer: a read whose pages are slices of one object's
    /// read buffer is that buffer's slice, not a copy.
    pub async fn fh_read_bytes(&self, fh: Fh, off: u64, len: u64) -> Result<Bytes, CmdError> {
        let h = self.handle(fh)?;
        let caps = self.get_caps(h.ino, Caps::FILE_RD, Caps::FILE_CACHE).await?;
        // Taken before the size: pages read now may be cached only if no write,
        // truncate or flush came after it (the size still holds then).
        let stamp = self.page_stamp(h.ino);
        let st = self.size_view(h.ino).await?;
        // No buffered bytes may land between the OSD reads and the overlay below.
        // Taken before the cap reference: a revoke waits for references, and its
        // flush (which may need the MDS) for this.
        let landing = lock(&self.inner.caps.map).entry(h.ino).or_default().landing.clone();
        let stable = match landing.try_read() {
            Ok(g) => g,
            Err(_) => self.landing_guard(h.ino, landing.read()).await,
        };
        let Some(_r) = self.cap_ref(h.ino, Caps::FILE_RD) else {
            drop(stable);
            return Box::pin(self.fh_read_bytes(fh, off, len)).await;
        };
        if off >= st.size {
            return Ok(Bytes::new());
        }
        let len = len.min(st.size - off);
        let out = if caps.contains(Caps::FILE_CACHE) {
            self.read_cached(&st, off, len, stamp).await?
        } else {
            Bytes::from(self.read_with(&st, off, len).await?)
        };
        let map = lock(&self.inner.caps.map);
        match map.get(&h.ino) {
            Some(c) if c.buffer.range(..off + len).any(|(o, d)| o + d.len() as u64 > off) => {
                let mut out = out.to_vec();
                c.overlay(off, &mut out);
                Ok(Bytes::from(out))
            }
            _ => Ok(out),
        }
    }

    /// Reads through the `Fc` page cache. Missing pages are fetched in one read that
    /// also covers up to `FETCH_CHUNK` bytes beyond the request (sequential readers
    /// then hit the cache), split into pages afterwards. A miss on pages that a fetch
    /// under way covers (the kernel's concurrent read-ahead requests, or this
    /// client's read-ahead) waits for that fetch instead of repeating it.
    async fn read_cached(&self, st: &InodeStat, off: u64, len: u64, stamp: PageStamp) -> Result<Bytes, CmdError> {
        let (first, last) = (off / PAGE, (off + len).div_ceil(PAGE));
        let end = st.size.div_ceil(PAGE);
        let mut fetched: HashMap<u64, Bytes> = HashMap::new();
        let sequential = {
            let mut map = lock(&self.inner.caps.map);
            let c = map.entry(st.ino).or_default();
            // The kernel's concurrent requests of one sequential reader arrive a
            // little out of order.
            let near = SEQUENTIAL_SLACK / PAGE;
            let seq = first == 0 || (c.read_next.saturating_sub(near)..=c.read_next + near).contains(&first);
            c.read_next = c.read_next.max(last);
            if !seq {
                c.read_next = last;
            }
            seq
        };
        loop {
            let landed = self.inner.caps.changed.notified();
            let claim = {
                let mut map = lock(&self.inner.caps.map);
                let c = map.entry(st.ino).or_default();
                let missing: Vec<u64> = (first..last).filter(|p| !fetched.contains_key(p) && !c.pages.contains_key(p)).collect();
                if missing.is_empty() {
                    break;
                }
                match missing.iter().find(|p| !c.being_fetched(**p)) {
                    // A sequential reader's miss reads a whole chunk, a random one its pages.
                    Some(&lo) => {
                        let want = if sequential { lo + FETCH_CHUNK / PAGE } else { last };
                        Some(claim_pages(c, lo, want.max(last).min(end).max(lo + 1)))
                    }
                    None => None,
                }
            };
            match claim {
                Some(range) => {
                    let _claimed = Claimed(self, st.ino, range);
                    fetched.extend(self.fetch_pages(st, range, last, stamp).await?);
                }
                // Another fetch covers them: its end (or a revoke) wakes this one.
                None => {
                    let _ = tokio::time::timeout(self.inner.timeout, landed).await;
                }
            }
        }
        let whole = lock(&self.inner.caps.map).get(&st.ino).and_then(|c| c.span_slice(off, len));
        if let Some(b) = whole {
            if sequential {
                self.read_ahead(st, last, stamp);
            }
            return Ok(b);
        }
        let mut out = Vec::with_capacity(len as usize);
        for p in first..last {
            let cached = fetched.remove(&p).or_else(|| lock(&self.inner.caps.map).get(&st.ino).and_then(|c| c.pages.get(&p).cloned()));
            let page = match cached {
                Some(d) => d,
                // Dropped meanwhile (a revoke or the cache bound): read it directly.
                None => Bytes::from(self.read_with(st, p * PAGE, PAGE).await?),
            };
            // A page cached short (the end of the file then) reads as zeros past its
            // bytes: a later write there would have dropped it.
            let from = if p == first { (off - p * PAGE) as usize } else { 0 };
            let to = ((off + len).min((p + 1) * PAGE) - p * PAGE) as usize;
            out.extend_from_slice(&page[from.min(page.len())..to.min(page.len())]);
            out.resize(out.len() + to.saturating_sub(page.len().max(from)), 0);
        }
        out.resize(len as usize, 0);
        if sequential {
            self.read_ahead(st, last, stamp);
        }
        Ok(Bytes::from(out))
    }

    /// Asynchronous read-ahead: keeps the `READAHEAD` bytes after page `last` (where
    /// a sequential reader got to) cached or in flight, starting a background fetch of up to
    /// `FETCH_CHUNK` for each stretch that is neither, so a sequential reader finds
    /// its pages cached and the OSDs always have reads in hand. Skipped while a
    /// flush is landing: the fetch takes the landing guard only if it is free, so it
    /// never waits behind a flush that waits on a reader.
    fn read_ahead(&self, st: &InodeStat, last: u64, stamp: PageStamp) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        let end = st.size.div_ceil(PAGE).min(last + READAHEAD / PAGE);
        let (landing, claims) = {
            let mut map = lock(&self.inner.caps.map);
            let Some(c) = map.get_mut(&st.ino) else { return };
            let mut claims = Vec::new();
            // The hint holds for a reader inside the window it was set for; a reader
            // that starts again further back (a second pass) scans from where it is.
            let mut p = if (last..=end).contains(&c.ahead) { c.ahead } else { last };
            while p < end {
                if c.page_busy(p) {
                    p += 1;
                    continue;
                }
                let range = claim_pages(c, p, (p + FETCH_CHUNK / PAGE).min(end));
                claims.push(range);
                p = range.1;
            }
            c.ahead = end;
            (c.landing.clone(), claims)
        };
        for range in claims {
            let (me, st, landing) = (self.clone(), st.clone(), landing.clone());
            rt.spawn(async move {
                let _claimed = Claimed(&me, st.ino, range);
                let Ok(_stable) = landing.try_read() else { return };
                if let Err(e) = me.fetch_pages(&st, range, range.0, stamp).await {
                    tracing::debug!(ino = st.ino, "read-ahead failed: {e}");
                    if let Some(c) = lock(&me.inner.caps.map).get_mut(&st.ino) {
                        c.ahead = 0;
                    }
                }
            });
        }
    }

    /// The cache epoch (while `Fc` is held) and page generation of `ino`: pages
    /// read across a lost and regained `Fc` may predate another client's write, and
    /// pages read across a write, truncate or flush of this client may be stale.
    fn page_stamp(&self, ino: Ino) -> PageStamp {
        (self.cache_epoch(ino), lock(&self.inner.caps.map).get(&ino).map(|c| c.page_gen))
    }

    /// Reads pages `lo..hi` into the cache (unless `stamp`, taken before `st`, is no
    /// longer current); returns the fetched pages below `last` (the ones the caller
    /// asked for).
    async fn fetch_pages(
        &self,
        st: &InodeStat,
        (lo, hi): (u64, u64),
        last: u64,
        (epoch, gen): PageStamp,
    ) -> Result<HashMap<u64, Bytes>, CmdError> {
        let (len, pieces) = self.read_pieces(st, lo * PAGE, (hi - lo) * PAGE).await?;
        let spans: Vec<(u64, Bytes)> = pieces.iter().map(|(o, b)| (lo * PAGE + o, b.clone())).collect();
        let pages: Vec<(u64, Bytes)> = split_pages(len, pieces).into_iter().zip(lo..).map(|(d, p)| (p, d)).collect();
        let fetched = pages.iter().filter(|(p, _)| *p < last).map(|(p, d)| (*p, d.clone())).collect();
        let t = &self.inner.caps;
        let mut map = lock(&t.map);
        // A write or truncate while the fetch ran: what it read may be older.
        let current = |c: &&mut super::caps::InodeCaps| {
            t.live(c).contains(Caps::FILE_CACHE) && Some(c.cache_epoch) == epoch && Some(c.page_gen) == gen
        };
        if let Some(c) = map.get_mut(&st.ino).filter(current) {
            for (p, d) in pages {
                if c.pages.len() >= MAX_PAGES {
                    // Pages well behind this fetch go first (a sequential reader is
                    // past them); if that is not enough, the cache starts over.
                    let keep_from = lo.saturating_sub(READAHEAD / PAGE);
                    c.pages.retain(|k, _| *k >= keep_from);
                    c.spans.retain(|o, b| o + b.len() as u64 > keep_from * PAGE);
                    c.ahead = 0;
                    if c.pages.len() >= MAX_PAGES {
                        c.pages.clear();
                        c.spans.clear();
                    }
                }
                // What this client buffered (nothing lands while the read runs).
                let d = c.overlay_page(p * PAGE, d);
                c.pages.insert(p, d);
            }
            for (o, b) in spans {
                c.spans.insert(o, b);
            }
            while c.spans.len() > MAX_SPANS {
                c.spans.pop_first();
            }
        } else if let Some(c) = map.get_mut(&st.ino) {
            // Nothing of this fetch is cached: read-ahead must look at these pages again.
            c.ahead = 0;
        }
        Ok(fetched)
    }

    /// Writes `data` at `off` (at the end for `O_APPEND` handles); returns bytes written.
    /// Needs `Fw` and a writable range reaching the end; `Fb` buffers the data.
    pub async fn fh_write(&self, fh: Fh, off: u64, data: &[u8]) -> Result<usize, CmdError> {
        let h = self.handle(fh)?;
        if h.flags & O_ACCMODE == 0 {
            return Err(CmdError::new(Errno::EINVAL, "handle is not open for writing"));
        }
        let ino = h.ino;
        let caps = self.get_caps(ino, Caps::FILE_WR, Caps::FILE_BUFFER).await?;
        let off = if h.flags & O_APPEND != 0 { self.size_view(ino).await?.size } else { off };
        let end = off.saturating_add(data.len() as u64);
        self.inner.check_file_end(end)?;
        self.ensure_max_size(ino, end).await?;
        let Some(_r) = self.cap_ref(ino, Caps::FILE_WR) else {
            return Box::pin(self.fh_write(fh, off, data)).await;
        };
        let buffered = caps.contains(Caps::FILE_BUFFER) && self.buffer_write(ino, off, data).await?;
        if !buffered {
            // Older buffered bytes must not land over these later.
            self.flush_buffer(ino).await?;
            let st = self.layout_of(ino).await?;
            self.write_data(&st, off, Bytes::copy_from_slice(data)).await?;
        }
        if let Some(c) = lock(&self.inner.caps.map).get_mut(&ino) {
            c.wrote(off, end);
        }
        Ok(data.len())
    }

    /// [`Client::fh_write`] when it needs no waiting and no request: `Fw` and `Fb` held,
    /// the range within the granted max size, the layout cached, room in the buffer,
    /// not `O_APPEND`. The bytes are copied once, into the buffer, under the caps lock
    /// (a revoke cannot come between the check and the append). None: nothing was
    /// done, take the asynchronous path. Call it inside the runtime (it may start the
    /// write-behind flusher).
    pub fn fh_write_now(&self, fh: Fh, off: u64, data: &[u8]) -> Option<usize> {
        let h = self.handle(fh).ok()?;
        if h.flags & O_ACCMODE == 0 || h.flags & O_APPEND != 0 {
            return None;
        }
        let ino = h.ino;
        let st = lock(&self.inner.dcache).attrs_of(ino)?;
        let end = off.checked_add(data.len() as u64)?;
        let spawn = {
            let t = &self.inner.caps;
            let mut map = lock(&t.map);
            let c = map.get_mut(&ino)?;
            if !t.live(c).contains(Caps::FILE_WR | Caps::FILE_BUFFER) || c.max_size < end {
                return None;
            }
            let spawn = c.buffer_if_room(off, data, behind_unit(&st))?;
            c.wrote(off, end);
            spawn
        };
        if spawn {
            self.spawn_behind(ino, st);
        }
        Some(data.len())
    }

    /// Buffers a write under `Fb`. A write that reaches an object boundary hands the
    /// objects before it to the write-behind flusher (`behind.rs`); past
    /// `MAX_BUFFER` buffered (or `BEHIND_LIMIT` with what is in flight) it waits
    /// for landings, or flushes the buffer itself when no flusher runs. False when
    /// `Fb` is gone or the write alone is larger than the buffer.
    async fn buffer_write(&self, ino: Ino, off: u64, data: &[u8]) -> Result<bool, CmdError> {
        if data.len() > MAX_BUFFER {
            return Ok(false);
        }
        let st = self.layout_of(ino).await?;
        let unit = behind_unit(&st);
        enum Next {
            Done(bool),
            Spawn,
            Flush,
            Wait,
        }
        loop {
            let landed = self.inner.caps.changed.notified();
            let next = {
                let t = &self.inner.caps;
                let mut map = lock(&t.map);
                match map.get_mut(&ino).filter(|c| t.live(c).contains(Caps::FILE_BUFFER)) {
                    None => Next::Done(false),
                    Some(c) => match c.buffer_if_room(off, data, unit) {
                        Some(false) => Next::Done(true),
                        Some(true) => Next::Spawn,
                        None if c.behind => Next::Wait,
                        None => Next::Flush,
                    },
                }
            };
            match next {
                Next::Done(b) => return Ok(b),
                Next::Spawn => {
                    self.spawn_behind(ino, st);
                    return Ok(true);
                }
                Next::Flush => self.flush_buffer(ino).await?,
                Next::Wait => landed.await,
            }
        }
    }

    /// close(2): buffered data to the OSDs, then size, mtime and attributes changed
    /// under caps to the MDS (journaled). (Not waiting for the journal, as Ceph's
    /// client does, needs `Client::with_own_changes` in cached lookups; see
    /// docs/design.md.)
    pub async fn fh_flush(&self, fh: Fh) -> Result<(), CmdError> {
        let ino = self.handle(fh)?.ino;
        self.flush_ino(ino).await
    }

    /// fsync(2): flushes the handle, then waits until every metadata change of its
    /// inode so far is journaled (safe): `Client::sync_ino`.
    pub async fn fh_fsync(&self, fh: Fh, _datasync: bool) -> Result<(), CmdError> {
        let ino = self.handle(fh)?.ino;
        self.flush_ino(ino).await?;
        self.sync_ino(ino).await
    }

    /// Closes handle `fh` for good (flushing it first); the caps it wanted are given
    /// back a little later unless the file is opened again.
    pub async fn fh_release(&self, fh: Fh) -> Result<(), CmdError> {
        let r = self.fh_flush(fh).await;
        if let Some(h) = lock(&self.inner.files.handles).remove(&fh) {
            self.cap_close(h.ino, h.flags);
        }
        r
    }

    /// Closes handle `fh` at once if its file has nothing to flush (what
    /// `fh_release` would do without waiting for anything); false if a flush is
    /// needed (or the handle is unknown), and the handle stays open. Must run
    /// inside the runtime (the caps' later release is a task).
    pub fn fh_release_clean(&self, fh: Fh) -> bool {
        let mut handles = lock(&self.inner.files.handles);
        let Some(h) = handles.get(&fh).cloned() else { return false };
        if !self.is_clean(h.ino) {
            return false;
        }
        handles.remove(&fh);
        drop(handles);
        self.cap_close(h.ino, h.flags);
        true
    }

    /// The inode handle `fh` is open on.
    pub fn fh_ino(&self, fh: Fh) -> Option<Ino> {
        lock(&self.inner.files.handles).get(&fh).map(|h| h.ino)
    }

    /// Whether `st` is a directory (for mounts deciding between opendir and open).
    pub fn is_directory(st: &InodeStat) -> bool {
        st.mode & S_IFMT == S_IFDIR
    }
}

/// How far from where the last read ended a read may start and still count as
/// sequential.
const SEQUENTIAL_SLACK: u64 = 4 << 20;

/// Registers pages `lo..hi` of `c` as being fetched (`hi` cut at the first page
/// cached or already being fetched); returns the range claimed.
fn claim_pages(c: &mut super::caps::InodeCaps, lo: u64, hi: u64) -> (u64, u64) {
    let hi = (lo + 1..hi).find(|p| c.page_busy(*p)).unwrap_or(hi);
    c.fetching.push((lo, hi));
    (lo, hi)
}

/// A claimed page range: unregistered (and waiting readers woken) however the fetch
/// ends.
struct Claimed<'a>(&'a Client, Ino, (u64, u64));

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        if let Some(c) = lock(&self.0.inner.caps.map).get_mut(&self.1) {
            if let Some(i) = c.fetching.iter().position(|r| *r == self.2) {
                c.fetching.swap_remove(i);
            }
        }
        self.0.inner.caps.changed.notify_waiters();
    }
}

/// Cuts `len` bytes, given as sorted pieces `(offset, bytes)` covering them, into
/// [`PAGE`]-sized pages (the last one shorter). A page inside one piece shares its
/// bytes; a page across pieces is assembled.
fn split_pages(len: u64, pieces: Vec<(u64, Bytes)>) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(len.div_ceil(PAGE) as usize);
    let mut first = 0usize;
    let mut from = 0u64;
    while from < len {
        let to = (from + PAGE).min(len);
        while pieces.get(first).is_some_and(|(at, d)| at + d.len() as u64 <= from) {
            first += 1;
        }
        let page = match pieces.get(first) {
            Some((at, d)) if *at <= from && at + d.len() as u64 >= to => d.slice((from - at) as usize..(to - at) as usize),
            _ => {
                let mut buf = vec![0u8; (to - from) as usize];
                for (at, d) in pieces[first..].iter().take_while(|(at, _)| *at < to) {
                    let (lo, hi) = ((*at).max(from), (at + d.len() as u64).min(to));
                    if lo < hi {
                        buf[(lo - from) as usize..(hi - from) as usize].copy_from_slice(&d[(lo - at) as usize..(hi - at) as usize]);
                    }
                }
                Bytes::from(buf)
            }
        };
        out.push(page);
        from = to;
    }
    out
}

#[cfg(test)]
mod split_tests {
    use super::*;

    /// That pages cut from pieces hold the bytes of the range in order, whether a page
    /// lies inside one piece, spans several, or the range ends mid-page.
    #[test]
    fn pages_match_the_range() {
        let len = 3 * PAGE + 100;
        let whole: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        for cuts in [vec![0, len], vec![0, PAGE, 2 * PAGE, len], vec![0, 1000, PAGE + 7, 3 * PAGE, len]] {
            let pieces = cuts.windows(2).map(|w| (w[0], Bytes::copy_from_slice(&whole[w[0] as usize..w[1] as usize]))).collect();
            let pages = split_pages(len, pieces);
            assert_eq!(pages.len(), 4);
            assert_eq!(pages[3].len(), 100);
            assert_eq!(pages.concat(), whole, "cuts {cuts:?}");
        }
        assert!(split_pages(0, Vec::new()).is_empty());
    }
}
