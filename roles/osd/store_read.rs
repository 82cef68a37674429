//! Reading object data back from its two homes — short chunks inline in the `data` table,
//! whole chunks in slots of the block file (`extents` table) — and the per-object digest
//! of `pg_digest`, which streams both in chunk order.
use std::ops::Bound;

use bytes::Bytes;

use super::blocks::{Blocks, Extent, ALIGN, SLOT};
use super::keys::{chunk_key, decode_chunk_idx, KeyRange};
use super::{Kv, StoreError, CHUNK_SIZE};

/// The whole slots read with one system call, at most.
const MAX_READ_RUN: usize = 64;

/// Copies the part of a chunk starting at `start` that falls in `[off, end)` into `buf`
/// (which holds `[off, end)`).
fn place(buf: &mut [u8], off: u64, end: u64, start: u64, chunk: &[u8]) -> Result<(), StoreError> {
    if chunk.len() as u64 > CHUNK_SIZE {
        return Err(StoreError::Corrupt("data chunk larger than the chunk size".into()));
    }
    let from = start.max(off);
    let to = start.saturating_add(chunk.len() as u64).min(end);
    if from < to {
        let src = &chunk[(from - start) as usize..(to - start) as usize];
        buf[(from - off) as usize..(to - off) as usize].copy_from_slice(src);
    }
    Ok(())
}

/// Consecutive whole chunks in consecutive slots, read straight into the result.
struct Run {
    start: u64,
    exts: Vec<Extent>,
}

impl Run {
    fn extends(&self, start: u64, e: &Extent) -> bool {
        let n = self.exts.len() as u64;
        let next_slot = self.exts.last().map(|l| l.slot + 1);
        self.start + n * CHUNK_SIZE == start && next_slot == Some(e.slot) && self.exts.len() < MAX_READ_RUN
    }

    fn read(&mut self, blocks: &Blocks, buf: &mut [u8], off: u64) -> Result<(), StoreError> {
        if self.exts.is_empty() {
            return Ok(());
        }
        let at = (self.start - off) as usize;
        blocks.read_run(&self.exts, &mut buf[at..at + self.exts.len() * SLOT])?;
        self.exts.clear();
        Ok(())
    }
}

/// Reads `[off, end)` of an object's data (already clipped to its size); `sp` is the
/// object's key prefix. Missing chunks and bytes past a short chunk read as zeros. The
/// result starts page-aligned, so that long runs of slots are read into it with
/// `O_DIRECT` straight from the disk.
pub(super) fn read_data(
    data: &impl Kv,
    extents: &impl Kv,
    blocks: &Blocks,
    sp: &[u8],
    off: u64,
    end: u64,
) -> Result<Bytes, StoreError> {
    if end <= off {
        return Ok(Bytes::new());
    }
    let len = usize::try_from(end - off).map_err(|_| StoreError::Invalid("read too large".into()))?;
    let mut raw = vec![0u8; len + ALIGN];
    let at = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
    read_into(data, extents, blocks, sp, off, end, &mut raw[at..at + len])?;
    Ok(Bytes::from(raw).slice(at..at + len))
}

#[allow(clippy::too_many_arguments)]
fn read_into(data: &impl Kv, extents: &impl Kv, blocks: &Blocks, sp: &[u8], off: u64, end: u64, buf: &mut [u8]) -> Result<(), StoreError> {
    let (lo, hi) = (chunk_key(sp, off / CHUNK_SIZE), chunk_key(sp, (end - 1) / CHUNK_SIZE));
    let bounds = || (Bound::Included(&lo[..]), Bound::Included(&hi[..]));
    for item in data.range(bounds()) {
        let (k, v) = item?;
        let start = decode_chunk_idx(&k, sp.len())?.saturating_mul(CHUNK_SIZE);
        place(buf, off, end, start, &v)?;
    }
    let mut run = Run { start: 0, exts: Vec::new() };
    let mut edge = Vec::new();
    for item in extents.range(bounds()) {
        let (k, v) = item?;
        let start = decode_chunk_idx(&k, sp.len())?.saturating_mul(CHUNK_SIZE);
        let e = Extent::decode(&v)?;
        if start >= off && start + CHUNK_SIZE <= end {
            if !run.extends(start, &e) {
                run.read(blocks, buf, off)?;
                run.start = start;
            }
            run.exts.push(e);
        } else {
            edge.resize(SLOT, 0);
            blocks.read_run(&[e], &mut edge)?;
            place(buf, off, end, start, &edge)?;
        }
    }
    run.read(blocks, buf, off)
}

/// FNV-1a 64 over a stream of bytes and length-delimited fields.
pub(super) struct Fnv(pub(super) u64);

impl Fnv {
    fn byte(&mut self, x: u8) {
        self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    pub(super) fn bytes(&mut self, b: &[u8]) {
        b.iter().for_each(|&x| self.byte(x));
    }
    fn zeros(&mut self, n: u64) {
        (0..n).for_each(|_| self.byte(0));
    }
    pub(super) fn field(&mut self, b: &[u8]) {
        self.bytes(&(b.len() as u64).to_be_bytes());
        self.bytes(b);
    }
}

/// The data bytes of one object fed to a digest in order, zero-filling gaps.
struct DataFeed<'h> {
    h: &'h mut Fnv,
    pos: u64,
    size: u64,
}

impl DataFeed<'_> {
    /// Feeds the chunk at `start`; `false` once chunks lie past the size.
    fn chunk(&mut self, oid: &str, start: u64, bytes: &[u8]) -> Result<bool, StoreError> {
        if bytes.len() as u64 > CHUNK_SIZE || start < self.pos {
            return Err(StoreError::Corrupt(format!("data chunk of {oid}")));
        }
        if start >= self.size {
            return Ok(false);
        }
        self.h.zeros(start - self.pos);
        let used = (bytes.len() as u64).min(self.size - start) as usize;
        self.h.bytes(&bytes[..used]);
        self.pos = start + used as u64;
        Ok(true)
    }
}

/// Digest of one object; `tables` are `[data, xattrs, omap, extents]`. Streams: never
/// holds more than one chunk.
pub(super) fn digest_object<T: Kv>(tables: &[T; 4], blocks: &Blocks, sp: &[u8], oid: &str, size: u64) -> Result<u64, StoreError> {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.field(oid.as_bytes());
    h.bytes(&size.to_be_bytes());
    let range = KeyRange::prefix(sp.to_vec());
    let mut slots = Vec::new();
    for item in tables[3].range(range.bounds()) {
        let (k, v) = item?;
        slots.push((decode_chunk_idx(&k, sp.len())?.saturating_mul(CHUNK_SIZE), Extent::decode(&v)?));
    }
    let mut slots = slots.into_iter().peekable();
    let mut slot_buf = vec![0u8; if slots.peek().is_some() { SLOT } else { 0 }];
    let mut feed = DataFeed { h: &mut h, pos: 0, size };
    let mut more = true;
    let mut from_slots = |feed: &mut DataFeed, before: u64| -> Result<bool, StoreError> {
        while let Some((start, e)) = slots.next_if(|(s, _)| *s < before) {
            blocks.read_run(&[e], &mut slot_buf)?;
            if !feed.chunk(oid, start, &slot_buf)? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    for item in tables[0].range(range.bounds()) {
        let (k, v) = item?;
        let start = decode_chunk_idx(&k, sp.len())?.saturating_mul(CHUNK_SIZE);
        more = from_slots(&mut feed, start)? && feed.chunk(oid, start, &v)?;
        if !more {
            break;
        }
    }
    if more {
        from_slots(&mut feed, u64::MAX)?;
    }
    let pos = feed.pos;
    h.zeros(size - pos);
    for t in &tables[1..3] {
        for item in t.range(range.bounds()) {
            let (k, v) = item?;
            h.field(k.get(sp.len()..).unwrap_or_default());
            h.field(&v);
        }
        h.bytes(b"|");
    }
    Ok(h.0)
}
