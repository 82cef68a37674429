//! The rank's metadata objects in RADOS: reading and writing the journal header,
//! tables, base inodes and directory fragments through the objecter, creating a new
//! file system (`boot_create`) and loading a rank for replay.
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_bytes::ByteBuf;

use super::cache::{FlushPayload, FlushTarget, MdCache};
use super::events::LogEvent;
use super::inotable::InoTable;
use super::journal::{JournalCursor, JournalHeader, DEFAULT_OBJECT_SIZE};
use super::logio::judge_stream;
use super::replay::RankState;
use super::sessionmap::SessionMap;
use super::types::*;
use crate::error::Errno;
use crate::ids::Rank;
use crate::msg::osd::{OpOut, OsdOp};
use crate::objecter::{ObjError, Objecter};

/// Why a rank could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// RADOS did not answer: retry later (respawn), the metadata may be fine.
    #[error("rados: {0}")]
    Io(#[from] ObjError),
    /// The metadata is broken: the rank must be marked damaged.
    #[error("damaged: {0}")]
    Damaged(String),
}

/// The metadata pool of one rank.
pub struct MetaStore {
    pub obj: Arc<Objecter>,
    pub pool: String,
    pub rank: Rank,
}

/// A rank loaded and replayed.
pub struct Loaded {
    pub state: RankState,
    pub header: JournalHeader,
    pub cursor: JournalCursor,
    /// Segment number → stream position of its first entry.
    pub segments: BTreeMap<u64, u64>,
    pub events: usize,
}

/// Bytes of omap changes per op of a directory write-back: a directory with many
/// changes goes in several ops, each far below a frame and an OSD's batch limit.
const DIR_FLUSH_PART_BYTES: usize = 4 << 20;

/// The ops that write a fragment's changes: removals, then the changed entries, the
/// fragment header last; each list at most about `DIR_FLUSH_PART_BYTES`, the first
/// creating the object if it is missing. Not atomic as a whole, and it need not be:
/// the journal keeps every change until all parts are written, and writing the same
/// changes again gives the same object.
fn dir_flush_ops(mut set: BTreeMap<String, Vec<u8>>, rm: Vec<String>) -> Vec<Vec<OsdOp>> {
    let header = set.remove(super::cache::FNODE_KEY);
    let mut out: Vec<Vec<OsdOp>> = Vec::new();
    let mut cur: Vec<OsdOp> = vec![OsdOp::Create { exclusive: false }];
    let mut bytes = 0usize;
    let mut keys: Vec<String> = Vec::new();
    for k in rm {
        bytes += k.len() + 16;
        keys.push(k);
        if bytes >= DIR_FLUSH_PART_BYTES {
            cur.push(OsdOp::OmapRm { keys: std::mem::take(&mut keys) });
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
    }
    if !keys.is_empty() {
        cur.push(OsdOp::OmapRm { keys });
    }
    let mut entries: Vec<(String, ByteBuf)> = Vec::new();
    for (k, v) in set {
        bytes += k.len() + v.len() + 16;
        entries.push((k, ByteBuf::from(v)));
        if bytes >= DIR_FLUSH_PART_BYTES {
            cur.push(OsdOp::OmapSet { entries: std::mem::take(&mut entries) });
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
    }
    if let Some(h) = header {
        entries.push((super::cache::FNODE_KEY.to_string(), ByteBuf::from(h)));
    }
    if !entries.is_empty() {
        cur.push(OsdOp::OmapSet { entries });
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn enoent(e: &ObjError) -> bool {
    e.errno() == Errno::ENOENT
}

impl MetaStore {
    pub async fn read_opt(&self, oid: &str) -> Result<Option<Vec<u8>>, ObjError> {
        match self.obj.read(&self.pool, oid, 0, None).await {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if enoent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn write_full(&self, oid: &str, data: Vec<u8>) -> Result<(), ObjError> {
        self.obj.write_full(&self.pool, oid, data).await
    }

    pub async fn remove(&self, oid: &str) -> Result<(), ObjError> {
        match self.obj.op(&self.pool, oid, vec![OsdOp::Remove]).await {
            Err(e) if !enoent(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Every omap entry of an object; an absent object has none.
    pub async fn omap_all(&self, oid: &str) -> Result<BTreeMap<String, Vec<u8>>, ObjError> {
        let mut out = BTreeMap::new();
        let mut after = None;
        loop {
            let r = self.obj.op(&self.pool, oid, vec![OsdOp::OmapList { after: after.clone(), max: 1000 }]).await;
            let pairs = match r {
                Ok(mut v) => match v.pop() {
                    Some(OpOut::Pairs(p)) => p,
                    _ => Vec::new(),
                },
                Err(e) if enoent(&e) => Vec::new(),
                Err(e) => return Err(e),
            };
            let n = pairs.len();
            after = pairs.last().map(|(k, _)| k.clone());
            out.extend(pairs.into_iter().map(|(k, v)| (k, v.into_vec())));
            if n < 1000 {
                return Ok(out);
            }
        }
    }

    /// Loads directory `ino`'s fragment into the cache.
    pub async fn fetch_dir(&self, ino: Ino) -> Result<BTreeMap<String, Vec<u8>>, ObjError> {
        self.omap_all(&dirfrag_object(ino, 0)).await
    }

    /// Writes one flush target's payload.
    pub async fn flush(&self, t: &FlushTarget, p: FlushPayload) -> Result<(), ObjError> {
        match (t, p) {
            (FlushTarget::Dir(d), FlushPayload::Dir { set, rm }) => {
                let oid = dirfrag_object(*d, 0);
                for ops in dir_flush_ops(set, rm) {
                    self.obj.op(&self.pool, &oid, ops).await?;
                }
                Ok(())
            }
            (FlushTarget::Dir(d), _) => self.remove(&dirfrag_object(*d, 0)).await,
            (FlushTarget::BaseInode(i), FlushPayload::BaseInode(b)) => self.write_full(&base_inode_object(*i), b).await,
            (_, FlushPayload::Anchors(b)) => self.write_full(&anchortable_object(self.rank), b).await,
            _ => Ok(()),
        }
    }

    /// Writes everything dirty in `cache` (all segments) and marks it clean.
    pub async fn flush_all(&self, cache: &mut MdCache) -> Result<(), ObjError> {
        let mut targets: Vec<FlushTarget> = Vec::new();
        while let Some(seg) = cache.oldest_dirty_segment() {
            let ts = cache.dirty_for_segment(seg);
            for t in &ts {
                let (p, v) = cache.flush_payload(t);
                self.flush(t, p).await?;
                cache.mark_flushed(t, v);
            }
            targets.extend(ts);
            if targets.len() > 1_000_000 {
                break;
            }
        }
        Ok(())
    }

    pub async fn write_tables(&self, st: &RankState) -> Result<(), ObjError> {
        self.write_full(&inotable_object(self.rank), st.inotable.encode()).await?;
        self.write_full(&sessionmap_object(self.rank), st.sessions.encode()).await
    }

    /// `boot_create`: root (rank 0 only) and the rank's mdsdir, empty tables, an empty
    /// open file table, and last the journal header (whose presence marks a created rank).
    pub async fn create(&self, data_pool: crate::ids::PoolId, now: i64) -> Result<(RankState, JournalHeader), ObjError> {
        let mut cache = MdCache::create_fs(self.rank, now, FileLayout::default_for(data_pool));
        self.flush_all(&mut cache).await?;
        let st = RankState { cache, inotable: InoTable::new(self.rank), sessions: SessionMap::default() };
        self.write_tables(&st).await?;
        self.write_full(&openfiles_object(self.rank), Vec::new()).await?;
        let h = JournalHeader::new(DEFAULT_OBJECT_SIZE);
        self.write_full(&journal_header_object(self.rank), h.encode()).await?;
        Ok((st, h))
    }

    /// Whether the rank was ever created (its journal header exists).
    pub async fn exists(&self) -> Result<bool, ObjError> {
        Ok(self.read_opt(&journal_header_object(self.rank)).await?.is_some())
    }

    pub async fn read_header(&self) -> Result<JournalHeader, LoadError> {
        let b = self.read_opt(&journal_header_object(self.rank)).await?;
        let b = b.ok_or_else(|| LoadError::Damaged("journal header missing".into()))?;
        JournalHeader::decode(&b).map_err(|e| LoadError::Damaged(e.to_string()))
    }

    /// The stream from `h.expire_pos`, object by object until a missing one or one
    /// shorter than the object size.
    pub async fn read_stream(&self, h: &JournalHeader) -> Result<Vec<u8>, ObjError> {
        let os = h.object_size as u64;
        let mut out = Vec::new();
        let mut objno = h.expire_pos / os;
        let mut skip = (h.expire_pos % os) as usize;
        loop {
            let Some(b) = self.read_opt(&journal_object(self.rank, objno)).await? else { break };
            let full = b.len() as u64 >= os;
            if b.len() > skip {
                out.extend_from_slice(&b[skip..]);
            } else if !b.is_empty() || skip > 0 {
                break;
            }
            skip = 0;
            objno += 1;
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Loads tables and base inodes, then reads and replays the journal.
    pub async fn load(&self) -> Result<Loaded, LoadError> {
        let damaged = |e: DecodeError| LoadError::Damaged(e.to_string());
        let header = self.read_header().await?;
        let inotable = match self.read_opt(&inotable_object(self.rank)).await? {
            Some(b) => InoTable::decode(&b).map_err(damaged)?,
            None => return Err(LoadError::Damaged("inotable missing".into())),
        };
        let sessions = match self.read_opt(&sessionmap_object(self.rank)).await? {
            Some(b) => SessionMap::decode(&b).map_err(damaged)?,
            None => return Err(LoadError::Damaged("sessionmap missing".into())),
        };
        let mut cache = MdCache::new(self.rank);
        for ino in [ROOT_INO, mdsdir_ino(self.rank)] {
            match self.read_opt(&base_inode_object(ino)).await? {
                Some(b) => {
                    cache.load_base(&b).map_err(damaged)?;
                }
                None if ino == ROOT_INO && self.rank != 0 => {}
                None => return Err(LoadError::Damaged(format!("base inode {ino:#x} missing"))),
            }
        }
        if let Some(b) = self.read_opt(&anchortable_object(self.rank)).await? {
            cache.load_anchors(&b).map_err(damaged)?;
        }
        let mut state = RankState { cache, inotable, sessions };
        let bytes = self.read_stream(&header).await?;
        let read = judge_stream(&bytes, header.expire_pos, header.write_pos)
            .map_err(|d| LoadError::Damaged(format!("journal: {d}")))?;
        if let Some(t) = &read.torn_tail {
            tracing::warn!(rank = self.rank, "journal ends in a torn entry at {} ({:?}); ignored", t.pos, t.kind);
        }
        let from = read.entries.iter().rposition(|e| e.event == LogEvent::ResetJournal).unwrap_or(0);
        let mut segments = BTreeMap::new();
        for e in &read.entries[from..] {
            match &e.event {
                LogEvent::Subtrees { segment } => {
                    segments.insert(*segment, e.pos);
                }
                LogEvent::Update(blob) => {
                    for d in blob.dirs_touched() {
                        if state.cache.dir(d).is_none_or(|f| !f.complete) {
                            let m = self.fetch_dir(d).await?;
                            state.cache.load_dir(d, &m).map_err(damaged)?;
                        }
                    }
                }
                _ => {}
            }
            state.apply_event(&e.event);
        }
        let next_seq = read.entries.last().map_or(1, |e| e.seq + 1);
        let cursor = JournalCursor { pos: read.end, next_seq };
        Ok(Loaded { state, header, cursor, segments, events: read.entries.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::mds::cache::FNODE_KEY;

    /// That a large write-back is split into ops of about `DIR_FLUSH_PART_BYTES`, the
    /// first creating the object and the header going last, with every removal and
    /// entry sent exactly once; and that a small one is a single op list.
    #[test]
    fn dir_flush_parts() {
        let small = dir_flush_ops(BTreeMap::from([("a".to_string(), vec![1]), (FNODE_KEY.to_string(), vec![9])]), vec!["b".into()]);
        assert_eq!(small.len(), 1);
        assert!(matches!(small[0][0], OsdOp::Create { exclusive: false }));
        let mut set: BTreeMap<String, Vec<u8>> = (0..30_000).map(|i| (format!("name-{i:06}"), vec![7u8; 300])).collect();
        set.insert(FNODE_KEY.to_string(), vec![9]);
        let rm: Vec<String> = (0..50_000).map(|i| format!("gone-{i:06}")).collect();
        let parts = dir_flush_ops(set, rm);
        assert!(parts.len() >= 3, "{} parts", parts.len());
        assert!(matches!(parts[0][0], OsdOp::Create { exclusive: false }));
        let (mut sets, mut rms) = (Vec::new(), Vec::new());
        for (i, ops) in parts.iter().enumerate() {
            let mut bytes = 0;
            for op in ops {
                match op {
                    OsdOp::OmapSet { entries } => {
                        bytes += entries.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
                        sets.extend(entries.iter().map(|(k, _)| k.clone()));
                    }
                    OsdOp::OmapRm { keys } => {
                        bytes += keys.iter().map(String::len).sum::<usize>();
                        rms.extend(keys.iter().cloned());
                    }
                    OsdOp::Create { .. } => assert_eq!(i, 0, "only the first part creates"),
                    other => panic!("unexpected op {other:?}"),
                }
            }
            assert!(bytes <= DIR_FLUSH_PART_BYTES + 1024, "part {i}: {bytes} bytes");
        }
        assert_eq!(sets.len(), 30_001);
        assert_eq!(sets.last().map(String::as_str), Some(FNODE_KEY), "the header last");
        assert_eq!(rms.len(), 50_000);
        let unique: std::collections::BTreeSet<&String> = sets.iter().chain(rms.iter()).collect();
        assert_eq!(unique.len(), 80_001);
    }
}
