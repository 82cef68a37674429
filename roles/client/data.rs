//! File data: reads and writes go straight to the data objects `<ino hex>.<objno 08x>`
//! in the layout's pool, striped by `striping::file_to_extents`; the object pieces of
//! one call are written or read in parallel. Missing or short objects read as zeros
//! (holes), bounded by the file size the MDS holds. After writes the client reports
//! the new size and mtime with `SetSize` (which only grows the size); shrinking is a
//! setattr, after which the client cuts or removes the objects past the new end.
use futures::stream::{self, StreamExt, TryStreamExt};
use bytes::Bytes;

use super::session::lock;
use super::striping::{file_to_extents, truncate_plan};
use super::Client;
use crate::error::{CmdError, Errno};
use crate::msg::mds::{Ino, InodeStat, MdsOp, ReplyBody, S_IFMT, S_IFREG};
use crate::msg::osd::OsdOp;
use crate::msg::payload::Payload;
use crate::objecter::ObjError;

/// Object operations in flight at once for one read or write call.
const PARALLEL_OBJECTS: usize = 8;

/// Name of data object `objno` of inode `ino`.
pub fn data_object(ino: Ino, objno: u64) -> String {
    format!("{ino:x}.{objno:08x}")
}

fn obj_err(what: String) -> impl FnOnce(ObjError) -> CmdError {
    move |e| CmdError::new(e.errno(), format!("{what}: {e}"))
}

use crate::now_ns;

fn check_regular(st: &InodeStat) -> Result<(), CmdError> {
    match st.mode & S_IFMT {
        S_IFREG => Ok(()),
        crate::msg::mds::S_IFDIR => Err(CmdError::new(Errno::EISDIR, format!("inode {:#x} is a directory", st.ino))),
        _ => Err(CmdError::new(Errno::EINVAL, format!("inode {:#x} is not a regular file", st.ino))),
    }
}

impl Client {
    /// Attributes for data I/O: the cached ones will do for the layout.
    pub(super) async fn layout_of(&self, ino: Ino) -> Result<InodeStat, CmdError> {
        let cached = lock(&self.inner.dcache).attrs_of(ino);
        match cached {
            Some(st) => Ok(st),
            None => self.getattr(ino).await,
        }
    }

    /// Writes the objects only (no size report): the building block of `write`. Each
    /// object's piece is a slice of `data` (sent from it as it is).
    pub async fn write_data(&self, st: &InodeStat, off: u64, data: Bytes) -> Result<(), CmdError> {
        self.write_runs(st, &[(off, data)]).await
    }

    /// Writes runs of file data (non-overlapping), one request per object: the runs'
    /// pieces in one object go as one compound op. A buffer of scattered small writes
    /// (glibc's `posix_fallocate` without `fallocate` writes a byte per 4 KiB block)
    /// so costs an OSD op per object, not one per piece: thousands of pieces queued
    /// behind each other at one object's primary kept later writes waiting for many
    /// seconds. Waits for every write's answer however long it takes
    /// (`Objecter::op_patient`): the caps that cover the data go back only after.
    pub async fn write_runs(&self, st: &InodeStat, runs: &[(u64, Bytes)]) -> Result<(), CmdError> {
        check_regular(st)?;
        let pool = self.pool_name(st.layout.pool)?;
        let obj = &self.inner.objecter;
        let ino = st.ino;
        let mut per_object: std::collections::BTreeMap<u64, Vec<OsdOp>> = Default::default();
        for (off, data) in runs {
            for e in file_to_extents(&st.layout, *off, data.len() as u64) {
                let piece = Payload::from(data.slice(e.buf_off as usize..(e.buf_off + e.len) as usize));
                // A whole object replaces the old one outright (no partial update).
                let op = if e.obj_off == 0 && e.len == u64::from(st.layout.object_size) {
                    OsdOp::WriteFull { data: piece }
                } else {
                    OsdOp::Write { off: e.obj_off, data: piece }
                };
                per_object.entry(e.objno).or_default().push(op);
            }
        }
        stream::iter(per_object)
            .map(|(objno, ops)| {
                let oid = data_object(ino, objno);
                let pool = pool.clone();
                async move { obj.op_patient(&pool, &oid, ops).await.map_err(obj_err(format!("write {pool}/{oid}"))) }
            })
            .buffer_unordered(PARALLEL_OBJECTS)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Reports a writer's size and mtime to the MDS (the size only grows).
    pub async fn set_size(&self, ino: Ino, size: u64, mtime: i64) -> Result<InodeStat, CmdError> {
        match self.request(MdsOp::SetSize { ino, size, mtime }).await? {
            ReplyBody::Inode(st) => {
                lock(&self.inner.dcache).update_attrs(&st);
                Ok(st)
            }
            other => Err(CmdError::new(Errno::EIO, format!("set size: unexpected reply {other:?}"))),
        }
    }

    /// Writes `data` at `off` of file `ino` and reports the new end to the MDS.
    pub async fn write(&self, ino: Ino, off: u64, data: &[u8]) -> Result<InodeStat, CmdError> {
        self.inner.check_file_end(off.saturating_add(data.len() as u64))?;
        let st = self.layout_of(ino).await?;
        self.write_data(&st, off, Bytes::copy_from_slice(data)).await?;
        self.set_size(ino, off + data.len() as u64, now_ns()).await
    }

    /// Reads up to `len` bytes at `off` (fewer at the end of the file).
    pub async fn read(&self, ino: Ino, off: u64, len: u64) -> Result<Vec<u8>, CmdError> {
        let st = self.getattr(ino).await?;
        self.read_with(&st, off, len).await
    }

    /// Reads with attributes the caller already has (the size bounds the read).
    pub async fn read_with(&self, st: &InodeStat, off: u64, len: u64) -> Result<Vec<u8>, CmdError> {
        let (len, pieces) = self.read_pieces(st, off, len).await?;
        let mut out = vec![0u8; len as usize];
        for (at, d) in pieces {
            out[at as usize..at as usize + d.len()].copy_from_slice(&d);
        }
        Ok(out)
    }

    /// Reads `len` bytes at `off` (fewer at the end of the file) as the pieces the
    /// objects returned, each at its offset in the range, together covering it
    /// exactly (holes read as zeros); the range's length. No bytes are copied.
    pub async fn read_pieces(&self, st: &InodeStat, off: u64, len: u64) -> Result<(u64, Vec<(u64, Bytes)>), CmdError> {
        check_regular(st)?;
        if off >= st.size {
            return Ok((0, Vec::new()));
        }
        let len = len.min(st.size - off);
        let pool = self.pool_name(st.layout.pool)?;
        let obj = &self.inner.objecter;
        let ino = st.ino;
        let mut pieces: Vec<(u64, Bytes)> = stream::iter(file_to_extents(&st.layout, off, len))
            .map(|e| {
                let oid = data_object(ino, e.objno);
                let pool = pool.clone();
                async move {
                    let got = match obj.read(&pool, &oid, e.obj_off, Some(e.len)).await {
                        Ok(d) => d,
                        Err(err) if err.errno() == Errno::ENOENT && !matches!(err, ObjError::NoPool(_)) => Bytes::new(),
                        Err(err) => return Err(obj_err(format!("read {pool}/{oid}"))(err)),
                    };
                    // A short object reads as zeros past its end (a hole).
                    let got = match got.len() as u64 {
                        n if n >= e.len => got,
                        _ => {
                            let mut padded = got.to_vec();
                            padded.resize(e.len as usize, 0);
                            Bytes::from(padded)
                        }
                    };
                    Ok::<_, CmdError>((e.buf_off, got))
                }
            })
            .buffer_unordered(PARALLEL_OBJECTS)
            .try_collect()
            .await?;
        pieces.sort_unstable_by_key(|(at, _)| *at);
        Ok((len, pieces))
    }

    /// Cuts the data objects of a file that shrank from `old.size` to `new_size`.
    pub(super) async fn cut_objects(&self, old: &InodeStat, new_size: u64) -> Result<(), CmdError> {
        let pool = self.pool_name(old.layout.pool)?;
        let obj = &self.inner.objecter;
        let ino = old.ino;
        stream::iter(truncate_plan(&old.layout, old.size, new_size))
            .map(|(objno, keep)| {
                let oid = data_object(ino, objno);
                let pool = pool.clone();
                async move {
                    let op = match keep {
                        Some(size) => OsdOp::Truncate { size },
                        None => OsdOp::Remove,
                    };
                    match obj.op(&pool, &oid, vec![op]).await {
                        Ok(_) => Ok(()),
                        Err(e) if e.errno() == Errno::ENOENT => Ok(()),
                        Err(e) => Err(obj_err(format!("truncate {pool}/{oid}"))(e)),
                    }
                }
            })
            .buffer_unordered(PARALLEL_OBJECTS)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// That data objects are named like the MDS names them.
    #[test]
    fn object_names() {
        assert_eq!(super::data_object(0x10000000001, 3), "10000000001.00000003");
        assert_eq!(
            super::data_object(0x1234, 0x1_0000_0000),
            crate::roles::mds::types::data_object(0x1234, 0x1_0000_0000)
        );
    }
}
