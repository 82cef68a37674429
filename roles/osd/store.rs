//! The OSD's local object store: objects grouped by placement group, each with byte data,
//! a size, an mtime, xattrs and an omap, plus per-PG metadata (PG info and PG log). Metadata
//! and short data chunks live in the fjall keyspace `<dir>/meta` (an LSM tree: a commit is
//! one append to its journal and one `fdatasync`); whole data chunks live in slots of the
//! block file `<dir>/blocks.dat` (see `store_blocks.rs`), so bulk data is written once,
//! with `O_DIRECT`, and never rewritten by compaction. Why fjall and not redb (what this
//! store used first): docs/design.md, "Object store".
//!
//! # Layout
//!
//! Every key starts with the PG prefix `pool: u64 BE ‖ seed: u32 BE` (12 bytes), so one PG is
//! one contiguous key range in every table. The tables (fjall partitions) are:
//!
//! | table     | key                                      | value                             |
//! |-----------|------------------------------------------|-----------------------------------|
//! | `pgs`     | pg                                       | empty (the PG exists on this OSD) |
//! | `objects` | pg ‖ oid bytes                           | header: version, size, mtime      |
//! | `data`    | pg ‖ oid len u32 BE ‖ oid ‖ chunk u64 BE | a chunk shorter than [`CHUNK_SIZE`] |
//! | `extents` | pg ‖ oid len u32 BE ‖ oid ‖ chunk u64 BE | slot u64 BE ‖ CRC-32C u32 BE of a whole chunk |
//! | `xattrs`  | pg ‖ oid len u32 BE ‖ oid ‖ name         | value                             |
//! | `omap`    | pg ‖ oid len u32 BE ‖ oid ‖ key          | value                             |
//! | `pgmeta`  | pg ‖ key                                 | value                             |
//!
//! `objects` keys hold the raw oid so a PG's objects list in name order. The other per-object
//! tables length-prefix the oid, so the keys of oid `a` and oid `ab` can never interleave and
//! an object's chunks, xattrs or omap entries are each one contiguous range, ordered by chunk
//! index, xattr name or omap key.
//!
//! Data is sparse: chunk `i` covers bytes `[i·CHUNK_SIZE, (i+1)·CHUNK_SIZE)`; a missing chunk,
//! or bytes past the end of a stored chunk but below the object size, read as zeros. No chunk
//! ever holds bytes at or past the object size (truncation trims them), so growing an object
//! never resurrects old bytes. A small write rewrites only the chunks it touches and a read
//! loads only the chunks it covers.
//!
//! # Atomicity and durability
//!
//! [`ObjectStore::apply_batch`] runs a whole batch in one fjall write transaction whose
//! commit appends it to the journal as one atomic batch and `fdatasync`s it before
//! returning: group commit. Whole chunks the batch writes go to free slots, made durable
//! by one `fdatasync` before that commit; a chunk is in exactly one of `data` and
//! `extents`. Each transaction of
//! the batch is first *checked* against a small shadow of the headers it touches (existence,
//! size, argument limits), which is the only place an op can fail; a failing transaction is
//! skipped whole and its error returned in its slot. Checked transactions are then applied in
//! place. A storage or corruption error while applying aborts the whole batch (nothing of it
//! is committed) and is returned as the outer error. PG metadata ops are part of the same
//! transaction as object ops, so the PG log and the objects never diverge.
//!
//! Records read from disk are validated; malformed ones yield [`StoreError::Corrupt`].
use std::ops::Bound;
use std::path::Path;

use fjall::{PartitionCreateOptions, PersistMode, ReadTransaction, Slice, TxKeyspace, TxPartitionHandle, WriteTransaction};

use crate::maps::PgId;
pub use crate::msg::payload::Payload;

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[path = "store_bench.rs"]
mod bench;

#[path = "store_keys.rs"]
mod keys;
use keys::*;

#[path = "store_blocks.rs"]
mod blocks;
use blocks::{Blocks, Extent, Staged};

#[cfg(test)]
#[path = "store_blocks_tests.rs"]
mod blocks_tests;

#[path = "store_read.rs"]
mod read;
use read::{digest_object, read_data};

#[path = "store_wal.rs"]
mod wal;
use wal::{Changes, Table, Wal};

#[cfg(test)]
#[path = "store_wal_tests.rs"]
mod wal_tests;

#[path = "store_write.rs"]
mod write;
use write::Tables;
pub use bench::{bench, BenchReport};

/// Size of one data chunk: the unit a write rewrites and a read loads.
pub const CHUNK_SIZE: u64 = 64 * 1024;
/// Largest object size (Ceph's `osd_max_object_size` default).
pub const MAX_OBJECT_SIZE: u64 = 128 * 1024 * 1024;
/// Longest object name, xattr name or omap key, in bytes.
pub const MAX_NAME_LEN: usize = 4096;

type Bounds<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);
type Pair = (Slice, Slice);
type Pairs<'s> = Box<dyn Iterator<Item = Result<Pair, StoreError>> + 's>;

/// Read access to one table: through a read snapshot, or through the batch's write
/// transaction (which sees its own writes).
trait Kv {
    fn get(&self, key: &[u8]) -> Result<Option<Slice>, StoreError>;
    fn range<'s>(&'s self, bounds: Bounds<'s>) -> Pairs<'s>;
}

/// One table seen through a transaction.
struct View<'a, T> {
    tx: &'a T,
    part: &'a TxPartitionHandle,
}

macro_rules! kv_view {
    ($t:ty) => {
        impl Kv for View<'_, $t> {
            fn get(&self, key: &[u8]) -> Result<Option<Slice>, StoreError> {
                Ok(self.tx.get(self.part, key)?)
            }
            fn range<'s>(&'s self, bounds: Bounds<'s>) -> Pairs<'s> {
                Box::new(self.tx.range::<&[u8], _>(self.part, bounds).map(|r| r.map_err(StoreError::from)))
            }
        }
    };
}
kv_view!(ReadTransaction);
kv_view!(WriteTransaction<'_>);

/// The tables, as partitions of the keyspace.
struct Parts {
    pgs: TxPartitionHandle,
    objects: TxPartitionHandle,
    data: TxPartitionHandle,
    extents: TxPartitionHandle,
    xattrs: TxPartitionHandle,
    omap: TxPartitionHandle,
    meta: TxPartitionHandle,
    /// The last write-ahead log record applied (see `store_wal.rs`).
    wal: TxPartitionHandle,
}

impl Parts {
    fn of(&self, table: Table) -> &TxPartitionHandle {
        match table {
            Table::Pgs => &self.pgs,
            Table::Objects => &self.objects,
            Table::Data => &self.data,
            Table::Extents => &self.extents,
            Table::Xattrs => &self.xattrs,
            Table::Omap => &self.omap,
            Table::Meta => &self.meta,
            Table::Wal => &self.wal,
        }
    }
}

/// The keyspace's directory under the store's.
const META_DIR: &str = "meta";
/// Memtable bytes before a flush to a table file (fjall's minimum is 1 MiB).
const WRITE_BUFFER: u64 = 64 << 20;
/// Block cache of the table files.
const CACHE_BYTES: u64 = 64 << 20;

/// Version byte leading every object header record.
const HEADER_VERSION: u8 = 1;
const HEADER_LEN: usize = 17;
const PG_PREFIX_LEN: usize = 12;

/// Errors of the object store.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {0} does not exist")]
    NoObject(String),
    #[error("object {0} already exists")]
    Exists(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("store: {0}")]
    Db(String),
    #[error("store record corrupt: {0}")]
    Corrupt(String),
    #[error("store: no space left on the OSD's disk: {0}")]
    NoSpace(String),
    /// The keyspace refuses every write after a failed commit (fjall "poisoned"): only a
    /// restart, which recovers from the journals, makes the store usable again.
    #[error("store unusable after a failed commit: {0}")]
    Poisoned(String),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            StoreError::NoSpace(e.to_string())
        } else {
            StoreError::Db(e.to_string())
        }
    }
}

impl From<fjall::LsmError> for StoreError {
    fn from(e: fjall::LsmError) -> Self {
        match e {
            fjall::LsmError::Io(e) => e.into(),
            e => StoreError::Db(e.to_string()),
        }
    }
}

impl From<fjall::Error> for StoreError {
    fn from(e: fjall::Error) -> Self {
        match e {
            fjall::Error::Poisoned => StoreError::Poisoned(e.to_string()),
            fjall::Error::Io(e) => e.into(),
            fjall::Error::Storage(e) => e.into(),
            e => StoreError::Db(e.to_string()),
        }
    }
}

/// One operation of a transaction. Ops run in order; see [`ObjectStore::apply_batch`].
///
/// Ops that create a missing object: `Create`, `WriteFull`, `Write`, `Append`, `Truncate`,
/// `SetXattr`, `OmapSet`. Ops that fail with `NoObject` on a missing object: `Remove`,
/// `RmXattr`, `OmapRm`, `OmapClear`, `SetMtime`. Every op that creates or changes an object
/// sets its mtime to the transaction's `mtime_ms` (`SetMtime` sets the given one; a
/// non-exclusive `Create` of an existing object changes nothing).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TxOp {
    /// Creates an empty object; `exclusive` and the object exists → `Exists`.
    Create {
        oid: String,
        exclusive: bool,
    },
    /// Replaces the whole data; the size becomes `data.len()`.
    WriteFull {
        oid: String,
        data: Payload,
    },
    /// Writes at `off`, zero-filling any gap past the old end. An empty write does not extend.
    Write {
        oid: String,
        off: u64,
        data: Payload,
    },
    /// Writes at the current end.
    Append {
        oid: String,
        data: Payload,
    },
    /// Sets the size, growing with zeros or dropping the tail.
    Truncate {
        oid: String,
        size: u64,
    },
    /// Removes the object with its data, xattrs and omap.
    Remove {
        oid: String,
    },
    SetXattr {
        oid: String,
        name: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// Removes an xattr; removing an absent name is not an error.
    RmXattr {
        oid: String,
        name: String,
    },
    OmapSet {
        oid: String,
        entries: Vec<(String, serde_bytes::ByteBuf)>,
    },
    /// Removes omap keys; absent keys are ignored.
    OmapRm {
        oid: String,
        keys: Vec<String>,
    },
    OmapClear {
        oid: String,
    },
    SetMtime {
        oid: String,
        mtime_ms: u64,
    },
    PgMetaSet {
        key: String,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    PgMetaRm {
        key: String,
    },
    /// Drops every object and every metadata key of the PG.
    RemovePg,
}

impl TxOp {
    /// The object this op works on, `None` for PG-level ops.
    pub fn oid(&self) -> Option<&str> {
        match self {
            TxOp::Create { oid, .. }
            | TxOp::WriteFull { oid, .. }
            | TxOp::Write { oid, .. }
            | TxOp::Append { oid, .. }
            | TxOp::Truncate { oid, .. }
            | TxOp::Remove { oid }
            | TxOp::SetXattr { oid, .. }
            | TxOp::RmXattr { oid, .. }
            | TxOp::OmapSet { oid, .. }
            | TxOp::OmapRm { oid, .. }
            | TxOp::OmapClear { oid }
            | TxOp::SetMtime { oid, .. } => Some(oid),
            TxOp::PgMetaSet { .. } | TxOp::PgMetaRm { .. } | TxOp::RemovePg => None,
        }
    }
}

/// Ops applied atomically to one PG; `mtime_ms` is the time stamped on changed objects.
#[derive(Clone, Debug, Default)]
pub struct Transaction {
    pub ops: Vec<TxOp>,
    pub mtime_ms: u64,
}

/// Size and modification time of an object.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjStat {
    pub size: u64,
    pub mtime_ms: u64,
}

/// The object store of one OSD; safe to share between threads.
pub struct ObjectStore {
    ks: TxKeyspace,
    parts: Parts,
    blocks: Blocks,
    /// Held for a whole commit, so records go to the log in sequence order.
    wal: std::sync::Mutex<LogState>,
}

/// The write-ahead log and the number of its next record.
struct LogState {
    log: Wal,
    next_seq: u64,
}

// ---- Records ----

fn encode_header(h: &ObjStat) -> Vec<u8> {
    [&[HEADER_VERSION][..], &h.size.to_be_bytes(), &h.mtime_ms.to_be_bytes()].concat()
}

fn decode_header(oid: &str, raw: &[u8]) -> Result<ObjStat, StoreError> {
    let word = |at: usize| raw.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    match (raw.len(), raw.first(), word(1), word(9)) {
        (HEADER_LEN, Some(&HEADER_VERSION), Some(size), Some(mtime_ms)) if size <= MAX_OBJECT_SIZE => {
            Ok(ObjStat { size, mtime_ms })
        }
        _ => Err(StoreError::Corrupt(format!("header of {oid}: bad length, version or size"))),
    }
}

fn get_header(objects: &impl Kv, pg: PgId, oid: &str) -> Result<Option<ObjStat>, StoreError> {
    objects.get(&obj_key(pg, oid))?.map(|v| decode_header(oid, &v)).transpose()
}

/// Collects `(key suffix as string, value)` pairs of a range, at most `max`.
fn collect_named(t: &impl Kv, skip: usize, range: &KeyRange, max: usize) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for item in t.range(range.bounds()).take(max) {
        let (k, v) = item?;
        let name = k.get(skip..).ok_or_else(|| StoreError::Corrupt("short key".into()))?;
        out.push((utf8(name, "name")?, v.to_vec()));
    }
    Ok(out)
}

/// Called once a batch is durable, with each transaction's result.
pub type OnDurable<'a> = dyn FnMut(&[Result<(), StoreError>]) + 'a;

impl ObjectStore {
    /// Opens (creating if needed) the store at `dir/meta` and `dir/blocks.dat`.
    pub fn open(dir: &Path) -> Result<ObjectStore, StoreError> {
        std::fs::create_dir_all(dir)?;
        if dir.join("objects.redb").exists() {
            return Err(StoreError::Invalid(format!(
                "{} holds a store of the old format (objects.redb); recreate this OSD",
                dir.display()
            )));
        }
        let ks = fjall::Config::new(dir.join(META_DIR))
            .max_write_buffer_size(WRITE_BUFFER)
            .cache_size(CACHE_BYTES)
            .flush_workers(1)
            .compaction_workers(1)
            .open_transactional()?;
        let part = |name: &str| ks.open_partition(name, PartitionCreateOptions::default());
        let parts = Parts {
            pgs: part("pgs")?,
            objects: part("objects")?,
            data: part("data")?,
            extents: part("extents")?,
            xattrs: part("xattrs")?,
            omap: part("omap")?,
            meta: part("pgmeta")?,
            wal: part("wal")?,
        };
        let applied = applied_seq(&ks, &parts)?;
        let (log, records, last) = Wal::open(dir, applied)?;
        replay(&ks, &parts, applied, &records)?;
        let next_seq = last.map_or(applied, |l| l.max(applied)) + 1;
        ks.persist(PersistMode::SyncAll)?;
        let mut used = Vec::new();
        for item in ks.read_tx().iter(&parts.extents) {
            used.push(Extent::decode(&item?.1)?.slot);
        }
        let blocks = Blocks::open(dir, used.into_iter())?;
        Ok(ObjectStore { ks, parts, blocks, wal: std::sync::Mutex::new(LogState { log, next_seq }) })
    }

    /// Applies many (pg, txn) in ONE durable commit (group commit). Each txn is atomic: if any
    /// op of a txn fails, that txn has no effect and its error is returned in its slot, the
    /// others still commit. Later txns see the effects of earlier ones. An outer error means
    /// nothing of the batch was committed.
    pub fn apply_batch(&self, batch: &[(PgId, Transaction)]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.apply_batch_notify(batch, &mut |_| {})
    }

    /// [`apply_batch`](Self::apply_batch), calling `on_durable` with the per-transaction
    /// results as soon as the batch is durable, which for a logged batch is before its
    /// changes are visible to reads (Ceph's "commit" before "apply"). If the batch then
    /// fails to apply, the error is [`StoreError::Poisoned`]: the log holds the batch
    /// and only a restart, which replays it, makes the store usable again.
    pub fn apply_batch_notify(
        &self,
        batch: &[(PgId, Transaction)],
        on_durable: &mut OnDurable<'_>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.commit_batch(batch.iter().map(|(pg, t)| (*pg, t)), on_durable)
    }

    /// Applies one transaction durably; a failing op leaves no trace.
    pub fn apply(&self, pg: PgId, txn: &Transaction) -> Result<(), StoreError> {
        let mut slots = self.commit_batch(std::iter::once((pg, txn)), &mut |_| {})?;
        slots.pop().unwrap_or(Ok(()))
    }

    /// Waits until every batch already durable is also visible to reads (a batch is
    /// applied while the commit lock is held).
    pub fn settle(&self) {
        drop(self.wal.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Commits a batch one of two ways. A batch that writes no block-file slot (and
    /// frees none) goes to the write-ahead log as one record (one `O_DSYNC` overwrite)
    /// and commits to fjall without an `fsync`; any other batch writes its slots,
    /// `fdatasync`s them, then commits to fjall with an `fdatasync` of its journal, which
    /// also makes every logged batch before it durable in fjall, so the log starts over.
    fn commit_batch<'a>(
        &self,
        batch: impl Iterator<Item = (PgId, &'a Transaction)>,
        on_durable: &mut OnDurable<'_>,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut w = self.wal.lock().unwrap_or_else(|p| p.into_inner());
        self.blocks.release_quarantine();
        let wt = self.ks.write_tx();
        let mut tables = Tables { wt, p: &self.parts, blocks: &self.blocks, staged: Staged::default(), changes: Changes::default() };
        // An error from apply_all is a storage/corruption error: abort the whole batch.
        let applied = tables.apply_all(batch);
        let Tables { mut wt, staged, changes, .. } = tables;
        let done = applied.and_then(|results| {
            if changes.len() == 0 && staged.is_empty() {
                // Every transaction failed its checks: nothing to make durable.
                return Ok(results);
            }
            if staged.is_empty() && changes.fits() {
                let seq = w.next_seq;
                wt.insert(&self.parts.wal, wal::SEQ_KEY, seq.to_be_bytes());
                if !w.log.has_room(changes.len()) {
                    // Checkpoint: fjall's journal durable, every record in it.
                    self.ks.persist(PersistMode::SyncData)?;
                    w.log.restart();
                }
                // Durable in the log before it is visible in fjall: the caller may
                // acknowledge it now. (The in-memory commit fails only in a keyspace
                // poisoned by an earlier I/O error; the record is replayed on the next
                // open, so the error says the store needs that restart.)
                w.log.append(seq, changes.as_bytes())?;
                w.next_seq += 1;
                on_durable(&results);
                if let Err(e) = wt.durability(None).commit() {
                    return Err(StoreError::Poisoned(format!("a logged batch failed to apply: {e}")));
                }
                return Ok(results);
            }
            // The chunks must be durable before the commit that points at them.
            self.blocks.flush(&staged)?;
            wt.durability(Some(PersistMode::SyncData)).commit()?;
            w.log.restart();
            on_durable(&results);
            Ok(results)
        });
        match done {
            Ok(_) => self.blocks.committed(staged),
            Err(_) => self.blocks.aborted(staged),
        }
        done
    }

    /// Table `part` in the read snapshot `rt`.
    fn view<'a>(&'a self, rt: &'a ReadTransaction, part: &'a TxPartitionHandle) -> View<'a, ReadTransaction> {
        View { tx: rt, part }
    }

    /// The header of an existing object, from snapshot `rt`.
    fn header(&self, rt: &ReadTransaction, pg: PgId, oid: &str) -> Result<ObjStat, StoreError> {
        get_header(&self.view(rt, &self.parts.objects), pg, oid)?.ok_or_else(|| StoreError::NoObject(oid.to_string()))
    }

    /// A read snapshot in which the object exists.
    fn existing(&self, pg: PgId, oid: &str) -> Result<ReadTransaction, StoreError> {
        let rt = self.ks.read_tx();
        self.header(&rt, pg, oid)?;
        Ok(rt)
    }

    pub fn stat(&self, pg: PgId, oid: &str) -> Result<ObjStat, StoreError> {
        self.header(&self.ks.read_tx(), pg, oid)
    }

    /// Runs the checks a commit of `txn` would run (existence, exclusive create, size,
    /// name and omap key limits) against the committed state, committing nothing, so
    /// a primary refuses a write before it hands out a version and replicates it.
    /// Returns whether `oid` exists before and after `txn`.
    pub fn check(&self, pg: PgId, oid: &str, txn: &Transaction) -> Result<(bool, bool), StoreError> {
        let rt = self.ks.read_tx();
        let objects = self.view(&rt, &self.parts.objects);
        let before = get_header(&objects, pg, oid)?.is_some();
        let steps = write::check_txn(&objects, pg, txn)?;
        // One step per object op, in order.
        let after = txn.ops.iter().filter_map(TxOp::oid).zip(&steps).filter(|(o, _)| *o == oid).last();
        Ok((before, after.map_or(before, |(_, (_, header))| header.is_some())))
    }

    /// Reads `len` bytes (to the end if `None`) from `off`; short or empty past the end.
    pub fn read(&self, pg: PgId, oid: &str, off: u64, len: Option<u64>) -> Result<Vec<u8>, StoreError> {
        Ok(self.read_bytes(pg, oid, off, len)?.to_vec())
    }

    /// `read` into a shared, page-aligned buffer (what replies and copies send).
    pub fn read_bytes(&self, pg: PgId, oid: &str, off: u64, len: Option<u64>) -> Result<bytes::Bytes, StoreError> {
        let _snapshot = self.blocks.reading();
        let rt = self.ks.read_tx();
        let h = self.header(&rt, pg, oid)?;
        let end = len.map_or(h.size, |l| off.saturating_add(l).min(h.size));
        let (data, extents) = (self.view(&rt, &self.parts.data), self.view(&rt, &self.parts.extents));
        read_data(&data, &extents, &self.blocks, &sub_prefix(pg, oid), off, end)
    }

    pub fn xattr_get(&self, pg: PgId, oid: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rt = self.existing(pg, oid)?;
        let key = joined(&sub_prefix(pg, oid), name.as_bytes());
        Ok(self.view(&rt, &self.parts.xattrs).get(&key)?.map(|v| v.to_vec()))
    }

    /// Every xattr of the object, sorted by name.
    pub fn xattrs(&self, pg: PgId, oid: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rt = self.existing(pg, oid)?;
        let sp = sub_prefix(pg, oid);
        collect_named(&self.view(&rt, &self.parts.xattrs), sp.len(), &KeyRange::prefix(sp), usize::MAX)
    }

    /// The requested omap entries that exist, sorted by key, each once.
    pub fn omap_get(&self, pg: PgId, oid: &str, keys: &[String]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rt = self.existing(pg, oid)?;
        let omap = self.view(&rt, &self.parts.omap);
        let sp = sub_prefix(pg, oid);
        let mut out = Vec::new();
        let wanted: std::collections::BTreeSet<&String> = keys.iter().collect();
        for k in wanted {
            if let Some(v) = omap.get(&joined(&sp, k.as_bytes()))? {
                out.push((k.clone(), v.to_vec()));
            }
        }
        Ok(out)
    }

    /// Up to `max` omap entries with keys after `after`, in key order.
    pub fn omap_list(
        &self,
        pg: PgId,
        oid: &str,
        after: Option<&str>,
        max: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rt = self.existing(pg, oid)?;
        let sp = sub_prefix(pg, oid);
        let range = KeyRange::after(sp.clone(), after.map(str::as_bytes));
        collect_named(&self.view(&rt, &self.parts.omap), sp.len(), &range, max)
    }

    /// Up to `max` object names of the PG after `after`, sorted by name.
    pub fn list_objects(&self, pg: PgId, after: Option<&str>, max: usize) -> Result<Vec<String>, StoreError> {
        let rt = self.ks.read_tx();
        let range = KeyRange::after(pg_prefix(pg), after.map(str::as_bytes));
        let mut out = Vec::new();
        for item in self.view(&rt, &self.parts.objects).range(range.bounds()).take(max) {
            let (k, _) = item?;
            let name = k.get(PG_PREFIX_LEN..).unwrap_or_default();
            out.push(utf8(name, "object name")?);
        }
        Ok(out)
    }

    /// Every PG a committed transaction touched and no `RemovePg` dropped since, sorted.
    pub fn list_pgs(&self) -> Result<Vec<PgId>, StoreError> {
        let mut out = Vec::new();
        for item in self.ks.read_tx().iter(&self.parts.pgs) {
            let (k, _) = item?;
            out.push(decode_pg(&k)?);
        }
        Ok(out)
    }

    /// Every metadata entry of the PG whose key starts with `prefix`, in key order.
    pub fn pg_meta_prefixed(&self, pg: PgId, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rt = self.ks.read_tx();
        let start = joined(&pg_prefix(pg), prefix.as_bytes());
        let mut out = Vec::new();
        for item in self.view(&rt, &self.parts.meta).range(KeyRange::prefix(start).bounds()) {
            let (k, v) = item?;
            let key = utf8(k.get(PG_PREFIX_LEN..).unwrap_or_default(), "meta key")?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    pub fn pg_meta_get(&self, pg: PgId, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rt = self.ks.read_tx();
        let k = joined(&pg_prefix(pg), key.as_bytes());
        Ok(self.view(&rt, &self.parts.meta).get(&k)?.map(|v| v.to_vec()))
    }

    /// FNV-1a 64 digest of every object of the PG over name, size, data, xattrs and omap (not
    /// mtime), as `(oid, digest)` sorted by oid. Streams: never holds more than one chunk.
    pub fn pg_digest(&self, pg: PgId) -> Result<Vec<(String, u64)>, StoreError> {
        let _snapshot = self.blocks.reading();
        let rt = self.ks.read_tx();
        let p = &self.parts;
        let tables = [self.view(&rt, &p.data), self.view(&rt, &p.xattrs), self.view(&rt, &p.omap), self.view(&rt, &p.extents)];
        let mut out = Vec::new();
        for item in self.view(&rt, &p.objects).range(KeyRange::prefix(pg_prefix(pg)).bounds()) {
            let (k, v) = item?;
            let oid = utf8(k.get(PG_PREFIX_LEN..).unwrap_or_default(), "object name")?;
            let h = decode_header(&oid, &v)?;
            let digest = digest_object(&tables, &self.blocks, &sub_prefix(pg, &oid), &oid, h.size)?;
            out.push((oid, digest));
        }
        Ok(out)
    }
}

/// The number of the last write-ahead log record fjall has applied (0: none).
fn applied_seq(ks: &TxKeyspace, parts: &Parts) -> Result<u64, StoreError> {
    match ks.read_tx().get(&parts.wal, wal::SEQ_KEY)? {
        None => Ok(0),
        Some(v) => Ok(u64::from_be_bytes(
            v.as_ref().try_into().map_err(|_| StoreError::Corrupt(format!("write-ahead log position of {} bytes", v.len())))?,
        )),
    }
}

/// Applies the log records fjall is missing (`pending`: those after `applied`, the
/// number fjall stored) in one durable commit.
fn replay(ks: &TxKeyspace, parts: &Parts, applied: u64, pending: &[wal::Record]) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (pending.first().map(|r| r.seq), pending.last().map(|r| r.seq)) else {
        return Ok(());
    };
    if first != applied + 1 {
        return Err(StoreError::Corrupt(format!(
            "write-ahead log starts at record {first} but the store has applied only up to {applied}"
        )));
    }
    let mut wt = ks.write_tx().durability(Some(PersistMode::SyncAll));
    for r in pending {
        for c in wal::decode_changes(&r.body)? {
            match c.value {
                Some(v) => wt.insert(parts.of(c.table), c.key, v),
                None => wt.remove(parts.of(c.table), c.key),
            }
        }
    }
    wt.insert(&parts.wal, wal::SEQ_KEY, last.to_be_bytes());
    wt.commit()?;
    tracing::info!(records = pending.len(), last, "replayed the store's write-ahead log");
    Ok(())
}

/// Writes a raw record into table `table` of keyspace `ks`, bypassing every check (for
/// tests of on-disk damage).
#[cfg(test)]
fn raw_put_in(ks: &TxKeyspace, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    let part = ks.open_partition(table, PartitionCreateOptions::default())?;
    let mut wt = ks.write_tx().durability(Some(PersistMode::SyncData));
    wt.insert(&part, key, value);
    Ok(wt.commit()?)
}

/// [`raw_put_in`] the keyspace of the (closed) store in `dir`.
#[cfg(test)]
fn raw_put_at(dir: &Path, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
    raw_put_in(&fjall::Config::new(dir.join(META_DIR)).open_transactional()?, table, key, value)
}

#[cfg(test)]
impl ObjectStore {
    /// [`raw_put_in`] this store's keyspace.
    fn raw_put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        raw_put_in(&self.ks, table, key, value)
    }

    /// The raw record of `key` in the `extents` table.
    fn raw_extent(&self, key: &[u8]) -> Result<Option<Slice>, StoreError> {
        Ok(self.ks.read_tx().get(&self.parts.extents, key)?)
    }
}
