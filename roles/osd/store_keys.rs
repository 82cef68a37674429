//! Key encoding of the object store's tables (see the layout in `store.rs`): the PG
//! prefix, object and chunk keys, and key ranges over a prefix.
use std::ops::Bound;

use super::StoreError;
use crate::maps::PgId;

pub(super) fn pg_prefix(pg: PgId) -> Vec<u8> {
    [&pg.pool.to_be_bytes()[..], &pg.seed.to_be_bytes()].concat()
}

pub(super) fn decode_pg(key: &[u8]) -> Result<PgId, StoreError> {
    let bad = || StoreError::Corrupt(format!("pg key of {} bytes", key.len()));
    let (pool, seed) = key.split_first_chunk::<8>().ok_or_else(bad)?;
    let seed: [u8; 4] = seed.try_into().map_err(|_| bad())?;
    Ok(PgId { pool: u64::from_be_bytes(*pool), seed: u32::from_be_bytes(seed) })
}

pub(super) fn joined(prefix: &[u8], suffix: &[u8]) -> Vec<u8> {
    [prefix, suffix].concat()
}

/// `objects` table key: pg ‖ raw oid (sorts a PG's objects by name).
pub(super) fn obj_key(pg: PgId, oid: &str) -> Vec<u8> {
    joined(&pg_prefix(pg), oid.as_bytes())
}

/// Prefix of an object's keys in `data`, `xattrs` and `omap`: pg ‖ oid length ‖ oid.
pub(super) fn sub_prefix(pg: PgId, oid: &str) -> Vec<u8> {
    // Names are limited to MAX_NAME_LEN, so the length always fits in u32.
    [&pg_prefix(pg)[..], &(oid.len() as u32).to_be_bytes(), oid.as_bytes()].concat()
}

pub(super) fn chunk_key(prefix: &[u8], idx: u64) -> Vec<u8> {
    joined(prefix, &idx.to_be_bytes())
}

/// The chunk index of a `data` key whose object prefix is `sp_len` bytes long.
pub(super) fn decode_chunk_idx(key: &[u8], sp_len: usize) -> Result<u64, StoreError> {
    let idx = key.get(sp_len..).and_then(|b| <[u8; 8]>::try_from(b).ok());
    idx.map(u64::from_be_bytes).ok_or_else(|| StoreError::Corrupt("malformed data chunk key".into()))
}

pub(super) fn utf8(bytes: &[u8], what: &str) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| StoreError::Corrupt(format!("{what} is not UTF-8")))
}

/// A key range `[lo or (lo, hi)` where `hi` is the end of a prefix (`None`: unbounded).
pub(super) struct KeyRange {
    pub(super) lo: Vec<u8>,
    pub(super) lo_inclusive: bool,
    pub(super) hi: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key starting with `prefix`.
    pub(super) fn prefix(prefix: Vec<u8>) -> Self {
        let hi = prefix_end(&prefix);
        KeyRange { lo: prefix, lo_inclusive: true, hi }
    }

    /// Keys starting with `prefix` that sort after `prefix ‖ after` (or all, if `None`).
    pub(super) fn after(prefix: Vec<u8>, after: Option<&[u8]>) -> Self {
        let hi = prefix_end(&prefix);
        let lo = after.map_or_else(|| prefix.clone(), |a| joined(&prefix, a));
        KeyRange { lo, lo_inclusive: after.is_none(), hi }
    }

    pub(super) fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        let lo = if self.lo_inclusive { Bound::Included(&self.lo[..]) } else { Bound::Excluded(&self.lo[..]) };
        let hi = self.hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        (lo, hi)
    }
}

/// The smallest key greater than every key starting with `p`, if any.
pub(super) fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let i = p.iter().rposition(|&b| b < 0xFF)?;
    let mut v = p[..=i].to_vec();
    v[i] += 1;
    Some(v)
}
