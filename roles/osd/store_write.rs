//! The write path of the object store: each transaction of a batch is checked against
//! the headers it touches (the only place an op can fail), then applied to the batch's
//! write transaction, whole chunks staged in the block file.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use fjall::{Slice, TxPartitionHandle, WriteTransaction};

use super::blocks::{Blocks, Extent, Staged, SLOT};
use super::keys::*;
use super::wal::{Changes, Table};
use super::{
    encode_header, get_header, Kv, ObjStat, Parts, StoreError, Transaction, TxOp, View, CHUNK_SIZE, MAX_NAME_LEN,
    MAX_OBJECT_SIZE,
};
use crate::maps::PgId;

/// Chunks dropped by point lookups at most; more are dropped by one range scan (16 MiB).
const POINT_DROP_MAX: u64 = 256;

fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(StoreError::Invalid(format!("{what} must be 1..={MAX_NAME_LEN} bytes")));
    }
    Ok(())
}

/// Omap keys may be empty but not longer than [`MAX_NAME_LEN`] (the table key must stay short).
fn check_omap_keys<'k>(mut keys: impl Iterator<Item = &'k String>) -> Result<(), StoreError> {
    match keys.find(|k| k.len() > MAX_NAME_LEN) {
        Some(_) => Err(StoreError::Invalid(format!("omap keys must be at most {MAX_NAME_LEN} bytes"))),
        None => Ok(()),
    }
}

/// `base + len`, checked against [`MAX_OBJECT_SIZE`].
fn end_of(base: u64, len: usize) -> Result<u64, StoreError> {
    let end = u64::try_from(len).ok().and_then(|l| base.checked_add(l)).filter(|&e| e <= MAX_OBJECT_SIZE);
    end.ok_or_else(|| StoreError::Invalid(format!("object size would exceed {MAX_OBJECT_SIZE} bytes")))
}

/// The header after `op` given the current one (`None`: absent), or why `op` fails.
fn next_header(op: &TxOp, cur: Option<ObjStat>, now: u64) -> Result<Option<ObjStat>, StoreError> {
    let oid = op.oid().ok_or_else(|| StoreError::Invalid("not an object op".into()))?;
    check_name("object name", oid)?;
    let size = cur.as_ref().map_or(0, |h| h.size);
    let exists = cur.is_some();
    let missing = || StoreError::NoObject(oid.to_string());
    let new_size = match op {
        TxOp::Create { exclusive, .. } => match cur {
            Some(_) if *exclusive => return Err(StoreError::Exists(oid.to_string())),
            Some(h) => return Ok(Some(h)),
            None => 0,
        },
        TxOp::WriteFull { data, .. } => end_of(0, data.len())?,
        TxOp::Write { off, data, .. } if data.is_empty() => end_of(*off, 0).map(|_| size)?,
        TxOp::Write { off, data, .. } => end_of(*off, data.len())?.max(size),
        TxOp::Append { data, .. } => end_of(size, data.len())?,
        TxOp::Truncate { size: new, .. } => end_of(*new, 0)?,
        TxOp::Remove { .. } => return if exists { Ok(None) } else { Err(missing()) },
        TxOp::SetXattr { name, .. } => check_name("xattr name", name).map(|_| size)?,
        TxOp::RmXattr { name, .. } if exists => check_name("xattr name", name).map(|_| size)?,
        TxOp::OmapSet { entries, .. } => check_omap_keys(entries.iter().map(|(k, _)| k)).map(|_| size)?,
        TxOp::OmapRm { keys, .. } if exists => check_omap_keys(keys.iter()).map(|_| size)?,
        TxOp::OmapClear { .. } if exists => size,
        TxOp::SetMtime { mtime_ms, .. } if exists => return Ok(Some(ObjStat { size, mtime_ms: *mtime_ms })),
        _ => return Err(missing()),
    };
    Ok(Some(ObjStat { size: new_size, mtime_ms: now }))
}

/// How many ops from the first of `ops` on are writes at an offset to one object.
fn write_run(ops: &[TxOp]) -> usize {
    let Some(TxOp::Write { oid, .. }) = ops.first() else { return 0 };
    ops.iter().take_while(|o| matches!(o, TxOp::Write { oid: other, .. } if other == oid)).count()
}

/// What one object op of a checked transaction does to its object's header: the size
/// before it and the header after it (`None`: removed).
type Step = (u64, Option<ObjStat>);

/// Decides whether `txn` can apply on top of the current state, reading only headers;
/// the [`Step`] of each object op, in order.
pub(super) fn check_txn(objects: &impl Kv, pg: PgId, txn: &Transaction) -> Result<Vec<Step>, StoreError> {
    let mut steps = Vec::with_capacity(txn.ops.len());
    let mut shadow: HashMap<&str, Option<ObjStat>> = HashMap::new();
    let mut wiped = false;
    for op in &txn.ops {
        let Some(oid) = op.oid() else {
            if matches!(op, TxOp::RemovePg) {
                shadow.clear();
                wiped = true;
            }
            continue;
        };
        let cur = match shadow.get(oid) {
            Some(h) => h.clone(),
            None if wiped => None,
            None => get_header(objects, pg, oid)?,
        };
        let old_size = cur.as_ref().map_or(0, |h| h.size);
        let next = next_header(op, cur, txn.mtime_ms)?;
        steps.push((old_size, next.clone()));
        shadow.insert(oid, next);
    }
    Ok(steps)
}

/// One batch's write transaction, and the chunk writes it staged in the block file.
pub(super) struct Tables<'t, 'a> {
    pub(super) wt: WriteTransaction<'t>,
    pub(super) p: &'t Parts,
    pub(super) blocks: &'t Blocks,
    pub(super) staged: Staged<'a>,
    /// Every put and remove, for the write-ahead log.
    pub(super) changes: Changes,
}

impl<'t, 'a> Tables<'t, 'a> {
    /// Table `part` as this transaction sees it.
    fn view<'s>(&'s self, part: &'s TxPartitionHandle) -> View<'s, WriteTransaction<'t>> {
        View { tx: &self.wt, part }
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.changes.put(table, key, value);
        self.wt.insert(self.p.of(table), key, value);
    }

    fn del(&mut self, table: Table, key: &[u8]) {
        self.changes.remove(table, key);
        self.wt.remove(self.p.of(table), key);
    }

    /// Removes every key of `table` in `range`, as this transaction sees them.
    fn drop_range(&mut self, table: Table, range: &KeyRange) -> Result<(), StoreError> {
        let part = self.p.of(table);
        let keys: Vec<Slice> = self.view(part).range(range.bounds()).map(|r| r.map(|(k, _)| k)).collect::<Result<_, _>>()?;
        for k in keys {
            self.del(table, &k);
        }
        Ok(())
    }

    /// Checks and applies each transaction; the per-transaction results, or the storage
    /// error that aborts the batch.
    pub(super) fn apply_all(
        &mut self,
        batch: impl Iterator<Item = (PgId, &'a Transaction)>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut results = Vec::new();
        for (pg, txn) in batch {
            match check_txn(&self.view(&self.p.objects), pg, txn) {
                Ok(steps) => {
                    self.apply_txn(pg, txn, steps)?;
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        Ok(results)
    }

    fn apply_txn(&mut self, pg: PgId, txn: &'a Transaction, steps: Vec<Step>) -> Result<(), StoreError> {
        let mut steps = steps.into_iter();
        // Whether an op after the last `RemovePg` (if any) put the PG to use.
        let mut in_use = false;
        let mut i = 0;
        while i < txn.ops.len() {
            let op = &txn.ops[i];
            i += 1;
            // Several writes in a row to one object (a client's compound op of the
            // scattered pieces of its buffer) rewrite each chunk they touch once.
            let run = write_run(&txn.ops[i - 1..]);
            if run > 1 {
                let oid = op.oid().unwrap_or_default();
                let writes: Vec<(u64, &'a [u8])> = txn.ops[i - 1..i - 1 + run]
                    .iter()
                    .filter_map(|o| match o {
                        TxOp::Write { off, data, .. } => Some((*off, &data[..])),
                        _ => None,
                    })
                    .collect();
                let mut last = None;
                for _ in 0..run {
                    last = steps.next();
                }
                let (_, next) = last.ok_or_else(|| StoreError::Invalid("object op without a checked step".into()))?;
                self.write_many(&sub_prefix(pg, oid), &writes)?;
                let key = obj_key(pg, oid);
                match next {
                    Some(h) => self.put(Table::Objects, &key, &encode_header(&h)),
                    None => self.del(Table::Objects, &key),
                }
                i += run - 1;
                in_use = true;
                continue;
            }
            match op {
                TxOp::PgMetaSet { key, value } => self.put(Table::Meta, &joined(&pg_prefix(pg), key.as_bytes()), value),
                TxOp::PgMetaRm { key } => self.del(Table::Meta, &joined(&pg_prefix(pg), key.as_bytes())),
                TxOp::RemovePg => {
                    self.wipe_pg(pg)?;
                    in_use = false;
                    continue;
                }
                _ => {
                    let step = steps.next().ok_or_else(|| StoreError::Invalid("object op without a checked step".into()))?;
                    self.apply_obj_op(pg, op, step)?
                }
            }
            in_use = true;
        }
        if in_use {
            self.note_pg(pg)?;
        }
        Ok(())
    }

    /// Records that the PG exists, once per transaction (written only when it is new).
    fn note_pg(&mut self, pg: PgId) -> Result<(), StoreError> {
        let key = pg_prefix(pg);
        if self.view(&self.p.pgs).get(&key)?.is_none() {
            self.put(Table::Pgs, &key, &[]);
        }
        Ok(())
    }

    fn wipe_pg(&mut self, pg: PgId) -> Result<(), StoreError> {
        let range = KeyRange::prefix(pg_prefix(pg));
        self.drop_chunks(&range)?;
        for t in [Table::Objects, Table::Xattrs, Table::Omap, Table::Meta] {
            self.drop_range(t, &range)?;
        }
        self.del(Table::Pgs, &pg_prefix(pg));
        Ok(())
    }

    fn apply_obj_op(&mut self, pg: PgId, op: &'a TxOp, (old_size, next): Step) -> Result<(), StoreError> {
        let oid = op.oid().ok_or_else(|| StoreError::Invalid("not an object op".into()))?;
        let sp = sub_prefix(pg, oid);
        self.apply_body(&sp, op, old_size)?;
        let key = obj_key(pg, oid);
        match next {
            Some(h) => self.put(Table::Objects, &key, &encode_header(&h)),
            None => self.del(Table::Objects, &key),
        };
        Ok(())
    }

    /// Changes data, xattrs and omap for `op`; `sp` is the object's sub-table prefix.
    fn apply_body(&mut self, sp: &[u8], op: &'a TxOp, old_size: u64) -> Result<(), StoreError> {
        let key = |name: &str| joined(sp, name.as_bytes());
        let all = || KeyRange::prefix(sp.to_vec());
        match op {
            TxOp::WriteFull { data, .. } => return self.replace_data(sp, data, old_size),
            TxOp::Write { off, data, .. } => return self.write_at(sp, *off, data),
            TxOp::Append { data, .. } => return self.write_at(sp, old_size, data),
            TxOp::Truncate { size, .. } if *size < old_size => return self.trim_data(sp, *size, old_size),
            TxOp::Remove { .. } => {
                self.drop_chunks_from(sp, 0, old_size)?;
                self.drop_range(Table::Xattrs, &all())?;
                return self.drop_range(Table::Omap, &all());
            }
            TxOp::OmapClear { .. } => return self.drop_range(Table::Omap, &all()),
            TxOp::SetXattr { name, value, .. } => self.put(Table::Xattrs, &key(name), value),
            TxOp::RmXattr { name, .. } => self.del(Table::Xattrs, &key(name)),
            TxOp::OmapSet { entries, .. } => entries.iter().for_each(|(k, v)| self.put(Table::Omap, &key(k), v)),
            TxOp::OmapRm { keys, .. } => keys.iter().for_each(|k| self.del(Table::Omap, &key(k))),
            _ => {}
        }
        Ok(())
    }

    /// Writes `data` at `off`, rewriting only the chunks it touches.
    fn write_at(&mut self, sp: &[u8], off: u64, data: &'a [u8]) -> Result<(), StoreError> {
        let mut pos = 0usize;
        while pos < data.len() {
            let abs = off + pos as u64;
            let (idx, in_chunk) = (abs / CHUNK_SIZE, (abs % CHUNK_SIZE) as usize);
            let n = (SLOT - in_chunk).min(data.len() - pos);
            let piece = &data[pos..pos + n];
            let key = chunk_key(sp, idx);
            if in_chunk == 0 && n == SLOT {
                self.store_chunk(&key, Cow::Borrowed(piece))?;
            } else {
                let mut buf = self.load_chunk(&key)?.unwrap_or_default();
                buf.resize(buf.len().max(in_chunk + n), 0);
                buf[in_chunk..in_chunk + n].copy_from_slice(piece);
                self.store_chunk(&key, Cow::Owned(buf))?;
            }
            pos += n;
        }
        Ok(())
    }

    /// Writes each `(off, data)` in order, loading and storing each chunk they touch
    /// once rather than once per write.
    fn write_many(&mut self, sp: &[u8], writes: &[(u64, &'a [u8])]) -> Result<(), StoreError> {
        let mut per_chunk: BTreeMap<u64, Vec<(usize, &'a [u8])>> = BTreeMap::new();
        for (off, data) in writes {
            let mut pos = 0usize;
            while pos < data.len() {
                let abs = off + pos as u64;
                let (idx, in_chunk) = (abs / CHUNK_SIZE, (abs % CHUNK_SIZE) as usize);
                let n = (SLOT - in_chunk).min(data.len() - pos);
                per_chunk.entry(idx).or_default().push((in_chunk, &data[pos..pos + n]));
                pos += n;
            }
        }
        for (idx, pieces) in per_chunk {
            let key = chunk_key(sp, idx);
            // A last piece covering the whole chunk replaces it, whatever came before.
            if let Some((0, piece)) = pieces.last().filter(|(at, p)| *at == 0 && p.len() == SLOT) {
                self.store_chunk(&key, Cow::Borrowed(*piece))?;
                continue;
            }
            let mut buf = self.load_chunk(&key)?.unwrap_or_default();
            for (at, piece) in pieces {
                buf.resize(buf.len().max(at + piece.len()), 0);
                buf[at..at + piece.len()].copy_from_slice(piece);
            }
            self.store_chunk(&key, Cow::Owned(buf))?;
        }
        Ok(())
    }

    /// Makes `data` the whole content of an object of `old_size` bytes: each chunk of `data`
    /// is stored as it is (no old bytes to merge), then the chunks past it are dropped.
    fn replace_data(&mut self, sp: &[u8], data: &'a [u8], old_size: u64) -> Result<(), StoreError> {
        for (idx, piece) in data.chunks(SLOT).enumerate() {
            self.store_chunk(&chunk_key(sp, idx as u64), Cow::Borrowed(piece))?;
        }
        self.drop_chunks_from(sp, data.len().div_ceil(SLOT) as u64, old_size)
    }

    /// Drops every data byte at or past `size` of an object of `old_size` bytes.
    fn trim_data(&mut self, sp: &[u8], size: u64, old_size: u64) -> Result<(), StoreError> {
        let (idx, rem) = (size / CHUNK_SIZE, (size % CHUNK_SIZE) as usize);
        let mut first_dropped = idx;
        if rem > 0 {
            first_dropped = idx + 1;
            let key = chunk_key(sp, idx);
            if let Some(mut kept) = self.load_chunk(&key)?.filter(|c| c.len() > rem) {
                kept.truncate(rem);
                self.store_chunk(&key, Cow::Owned(kept))?;
            }
        }
        self.drop_chunks_from(sp, first_dropped, old_size)
    }

    /// Drops chunks `first..` of an object of `old_size` bytes. No chunk lies at or past an
    /// object's size, so the chunks that can exist are known: up to [`POINT_DROP_MAX`] of
    /// them are looked up one by one (bloom filters answer most lookups of absent keys),
    /// more by one range scan, whose cost grows with the segments and deleted keys it meets.
    fn drop_chunks_from(&mut self, sp: &[u8], first: u64, old_size: u64) -> Result<(), StoreError> {
        let end = old_size.div_ceil(CHUNK_SIZE);
        if end.saturating_sub(first) > POINT_DROP_MAX {
            return self.drop_chunks(&KeyRange { lo: chunk_key(sp, first), lo_inclusive: true, hi: prefix_end(sp) });
        }
        for idx in first..end {
            let key = chunk_key(sp, idx);
            self.unlink_extent(&key)?;
            self.del_data(&key)?;
        }
        Ok(())
    }

    /// Removes inline chunk `key` if there is one (no tombstone for a key that never was).
    fn del_data(&mut self, key: &[u8]) -> Result<(), StoreError> {
        if self.view(&self.p.data).get(key)?.is_some() {
            self.del(Table::Data, key);
        }
        Ok(())
    }

    /// The bytes of chunk `key` wherever they are: inline, staged by this batch, or in a slot.
    fn load_chunk(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.view(&self.p.data).get(key)? {
            return Ok(Some(v.to_vec()));
        }
        let Some(raw) = self.view(&self.p.extents).get(key)? else { return Ok(None) };
        let e = Extent::decode(&raw)?;
        if let Some(b) = self.staged.get(e.slot) {
            return Ok(Some(b.to_vec()));
        }
        let mut buf = vec![0u8; SLOT];
        self.blocks.read_run(&[e], &mut buf)?;
        Ok(Some(buf))
    }

    /// Stores chunk `key`: a whole chunk goes to a fresh slot of the block file, a shorter
    /// one inline in `data`. The slot it had before is freed.
    fn store_chunk(&mut self, key: &[u8], bytes: Cow<'a, [u8]>) -> Result<(), StoreError> {
        self.unlink_extent(key)?;
        if bytes.len() == SLOT {
            self.del_data(key)?;
            let e = self.blocks.stage(&mut self.staged, bytes)?;
            self.put(Table::Extents, key, &e.encode());
        } else {
            self.put(Table::Data, key, &bytes);
        }
        Ok(())
    }

    fn unlink_extent(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let p = self.p;
        let Some(raw) = self.view(&p.extents).get(key)? else { return Ok(()) };
        let e = Extent::decode(&raw)?;
        self.del(Table::Extents, key);
        self.staged.free(e.slot);
        Ok(())
    }

    /// Drops every chunk with a key in `range`, inline or in a slot (freeing the slot).
    fn drop_chunks(&mut self, range: &KeyRange) -> Result<(), StoreError> {
        let p = self.p;
        let mut freed = Vec::new();
        for item in self.view(&p.extents).range(range.bounds()) {
            let (k, v) = item?;
            freed.push((k, Extent::decode(&v)?.slot));
        }
        for (k, slot) in freed {
            self.staged.free(slot);
            self.del(Table::Extents, &k);
        }
        self.drop_range(Table::Data, range)
    }
}
