//! Open files: the handle layer a mount (FUSE) drives. `open` asks the MDS (permission
//! checks, O_TRUNC), reads and writes go to the data objects, and the size and mtime a
//! handle's writes produced reach the MDS when the handle is flushed (close(2)),
//! fsync'ed or released, not after every write.
//!
//! This is the seam for caps: the Locker's grants decide what a handle may cache
//! (Fc/Fb) and when buffered state must be flushed; `Invalidate` events tell the
//! mount which kernel cache entries to drop.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::session::lock;
use super::Client;
use crate::error::{CmdError, Errno};
use crate::msg::mds::{Ino, InodeStat, MdsOp, ReplyBody, O_ACCMODE, S_IFDIR, S_IFMT};
use crate::now_ns;

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
    /// End of the data this handle wrote and has not yet reported, and its mtime.
    dirty: Option<(u64, i64)>,
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
    #[allow(dead_code)]
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
        let fh = self.inner.files.next.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.inner.files.handles).insert(fh, Handle { ino, flags, dirty: None });
        fh
    }

    fn handle(&self, fh: Fh) -> Result<Handle, CmdError> {
        lock(&self.inner.files.handles)
            .get(&fh)
            .cloned()
            .ok_or_else(|| CmdError::new(Errno::EINVAL, format!("no open file handle {fh}")))
    }

    /// Opens inode `ino` with open(2) `flags`.
    pub async fn open(&self, ino: Ino, flags: u32) -> Result<(InodeStat, Fh), CmdError> {
        let st = match self.request(MdsOp::Open { ino, flags }).await? {
            ReplyBody::Inode(st) => st,
            other => return Err(CmdError::new(Errno::EIO, format!("open: unexpected reply {other:?}"))),
        };
        lock(&self.inner.dcache).update_attrs(&st);
        Ok((st.clone(), self.new_handle(st.ino, flags)))
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
        let st = self.create(parent, name, mode, excl).await?;
        Ok((st.clone(), self.new_handle(st.ino, flags)))
    }

    /// Reads up to `len` bytes at `off` through handle `fh`.
    pub async fn fh_read(&self, fh: Fh, off: u64, len: u64) -> Result<Vec<u8>, CmdError> {
        let h = self.handle(fh)?;
        let mut st = self.getattr(h.ino).await?;
        if let Some((end, _)) = self.handle(fh)?.dirty {
            st.size = st.size.max(end);
        }
        self.read_with(&st, off, len).await
    }

    /// Writes `data` at `off` (at the end for `O_APPEND` handles); returns bytes written.
    pub async fn fh_write(&self, fh: Fh, off: u64, data: &[u8]) -> Result<usize, CmdError> {
        let h = self.handle(fh)?;
        if h.flags & O_ACCMODE == 0 {
            return Err(CmdError::new(Errno::EINVAL, "handle is not open for writing"));
        }
        let st = self.getattr(h.ino).await?;
        let off = if h.flags & O_APPEND != 0 { st.size.max(h.dirty.map_or(0, |d| d.0)) } else { off };
        self.write_data(&st, off, data).await?;
        let end = off + data.len() as u64;
        if let Some(h) = lock(&self.inner.files.handles).get_mut(&fh) {
            let e = h.dirty.map_or(end, |(e, _)| e.max(end));
            h.dirty = Some((e, now_ns()));
        }
        Ok(data.len())
    }

    /// Reports what the handle's writes produced (size, mtime) to the MDS.
    pub async fn fh_flush(&self, fh: Fh) -> Result<(), CmdError> {
        let dirty = lock(&self.inner.files.handles).get_mut(&fh).and_then(|h| h.dirty.take());
        let Some((end, mtime)) = dirty else { return Ok(()) };
        let ino = self.handle(fh)?.ino;
        if let Err(e) = self.set_size(ino, end, mtime).await {
            if let Some(h) = lock(&self.inner.files.handles).get_mut(&fh) {
                h.dirty = Some((end, mtime));
            }
            return Err(e);
        }
        Ok(())
    }

    /// fsync(2): flushes the handle, then waits until every metadata change so far is
    /// journaled (safe).
    pub async fn fh_fsync(&self, fh: Fh, _datasync: bool) -> Result<(), CmdError> {
        self.fh_flush(fh).await?;
        self.sync().await
    }

    /// Closes handle `fh` for good (flushing it first).
    pub async fn fh_release(&self, fh: Fh) -> Result<(), CmdError> {
        let r = self.fh_flush(fh).await;
        lock(&self.inner.files.handles).remove(&fh);
        r
    }

    /// Whether `st` is a directory (for mounts deciding between opendir and open).
    pub fn is_directory(st: &InodeStat) -> bool {
        st.mode & S_IFMT == S_IFDIR
    }
}
