//! Client operations against the local object store: writes become one store
//! transaction (applied atomically, identically on every replica), reads run against
//! the committed state. Errors map to errno values the client sees.
use serde_bytes::ByteBuf;

use super::store::{ObjectStore, StoreError, Transaction, TxOp};
use crate::error::Errno;
use crate::maps::PgId;
use crate::msg::osd::{OpOut, OsdError, OsdOp};
use crate::msg::payload::Payload;

pub fn store_errno(e: &StoreError) -> OsdError {
    let errno = match e {
        StoreError::NoObject(_) => Errno::ENOENT,
        StoreError::Exists(_) => Errno::EEXIST,
        StoreError::Invalid(_) => Errno::EINVAL,
        StoreError::NoSpace(_) => Errno::ENOSPC,
        StoreError::Db(_) | StoreError::Corrupt(_) | StoreError::Poisoned(_) => Errno::EIO,
    };
    OsdError { errno, message: e.to_string() }
}

/// The store ops of the write ops of a request on `oid`; payloads move, not copied.
pub fn write_txn(oid: &str, ops: Vec<OsdOp>, mtime_ms: u64) -> Transaction {
    let o = || oid.to_string();
    let tx = ops
        .into_iter()
        .filter_map(|op| {
            Some(match op {
                OsdOp::Create { exclusive } => TxOp::Create { oid: o(), exclusive },
                OsdOp::WriteFull { data } => TxOp::WriteFull { oid: o(), data },
                OsdOp::Write { off, data } => TxOp::Write { oid: o(), off, data },
                OsdOp::Append { data } => TxOp::Append { oid: o(), data },
                OsdOp::Truncate { size } => TxOp::Truncate { oid: o(), size },
                OsdOp::Remove => TxOp::Remove { oid: o() },
                OsdOp::SetXattr { name, value } => TxOp::SetXattr { oid: o(), name, value: value.into_vec() },
                OsdOp::RmXattr { name } => TxOp::RmXattr { oid: o(), name },
                OsdOp::OmapSet { entries } => TxOp::OmapSet { oid: o(), entries },
                OsdOp::OmapRm { keys } => TxOp::OmapRm { oid: o(), keys },
                OsdOp::OmapClear => TxOp::OmapClear { oid: o() },
                _ => return None,
            })
        })
        .collect();
    Transaction { ops: tx, mtime_ms }
}

/// The write ops of a request, with their data payloads moved out (the request keeps
/// them with empty payloads: after the commit only its read ops matter).
pub fn take_writes(ops: &mut [OsdOp]) -> Vec<OsdOp> {
    let take = |d: &mut Payload| std::mem::take(d);
    ops.iter_mut()
        .filter(|o| o.is_write())
        .map(|op| match op {
            OsdOp::WriteFull { data } => OsdOp::WriteFull { data: take(data) },
            OsdOp::Write { off, data } => OsdOp::Write { off: *off, data: take(data) },
            OsdOp::Append { data } => OsdOp::Append { data: take(data) },
            other => other.clone(),
        })
        .collect()
}

/// Runs the read ops of a request (after its writes, if any, are committed).
pub fn reads(store: &ObjectStore, pg: PgId, oid: &str, ops: &[OsdOp]) -> Result<Vec<OpOut>, OsdError> {
    let e = |e: StoreError| store_errno(&e);
    let bufs = |v: Vec<(String, Vec<u8>)>| v.into_iter().map(|(k, v)| (k, ByteBuf::from(v))).collect();
    ops.iter()
        .map(|op| {
            Ok(match op {
                OsdOp::Read { off, len } => OpOut::Data(Payload::from(store.read_bytes(pg, oid, *off, *len).map_err(e)?)),
                OsdOp::Stat => {
                    let s = store.stat(pg, oid).map_err(e)?;
                    OpOut::Stat { size: s.size, mtime_ms: s.mtime_ms }
                }
                OsdOp::GetXattr { name } => {
                    store.stat(pg, oid).map_err(e)?;
                    OpOut::Xattr(store.xattr_get(pg, oid, name).map_err(e)?.map(ByteBuf::from))
                }
                OsdOp::GetXattrs => OpOut::Pairs(bufs(store.xattrs(pg, oid).map_err(e)?)),
                OsdOp::OmapGet { keys } => OpOut::Pairs(bufs(store.omap_get(pg, oid, keys).map_err(e)?)),
                OsdOp::OmapList { after, max } => {
                    store.stat(pg, oid).map_err(e)?;
                    OpOut::Pairs(bufs(store.omap_list(pg, oid, after.as_deref(), *max as usize).map_err(e)?))
                }
                _ => OpOut::None,
            })
        })
        .collect()
}
