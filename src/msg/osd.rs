//! OSD wire types: client operations on objects (`MOsdOp`), replication between a
//! PG's primary and its replicas (`MOsdRepOp`), and peering/recovery messages.
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::payload::Payload;
use crate::error::Errno;
use crate::ids::{EntityName, Epoch};
use crate::maps::PgId;

/// One operation on an object; several in one request apply atomically, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OsdOp {
    Create { exclusive: bool },
    WriteFull { data: Payload },
    Write { off: u64, data: Payload },
    Append { data: Payload },
    Truncate { size: u64 },
    Remove,
    SetXattr { name: String, value: ByteBuf },
    RmXattr { name: String },
    OmapSet { entries: Vec<(String, ByteBuf)> },
    OmapRm { keys: Vec<String> },
    OmapClear,
    Read { off: u64, len: Option<u64> },
    Stat,
    GetXattr { name: String },
    GetXattrs,
    OmapGet { keys: Vec<String> },
    OmapList { after: Option<String>, max: u32 },
}

impl OsdOp {
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            OsdOp::Read { .. } | OsdOp::Stat | OsdOp::GetXattr { .. } | OsdOp::GetXattrs | OsdOp::OmapGet { .. } | OsdOp::OmapList { .. }
        )
    }

    /// A write that may take more space (refused by a full OSD); removing an object,
    /// its xattrs or omap keys, or truncating it, never does.
    pub fn may_grow(&self) -> bool {
        self.is_write() && !matches!(self, OsdOp::Remove | OsdOp::RmXattr { .. } | OsdOp::OmapRm { .. } | OsdOp::OmapClear | OsdOp::Truncate { .. })
    }
}

/// What one operation returned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpOut {
    None,
    Data(Payload),
    Stat { size: u64, mtime_ms: u64 },
    Xattr(Option<ByteBuf>),
    Pairs(Vec<(String, ByteBuf)>),
}

/// Identifies a client request across re-sends, so a write is applied once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReqId {
    pub client: EntityName,
    pub nonce: u64,
    pub tid: u64,
}

/// A PG log version: the epoch of the interval that wrote it and a counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Eversion {
    pub epoch: Epoch,
    pub v: u64,
}

impl std::fmt::Display for Eversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}'{}", self.epoch, self.v)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsdOpRequest {
    pub reqid: ReqId,
    pub pg: PgId,
    pub oid: String,
    pub ops: Vec<OsdOp>,
    /// The client's OSDMap epoch when it sent this.
    pub epoch: Epoch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsdError {
    pub errno: Errno,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OsdOpResult {
    Ok { outs: Vec<OpOut>, version: Eversion },
    Err(OsdError),
    /// Not the primary for this PG at `epoch` (or not yet there): refresh the map and resend.
    Retry { epoch: Epoch, why: String },
}

/// A PG log entry: which object a write touched, at which version, for whom.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PgLogEntry {
    pub version: Eversion,
    pub oid: String,
    pub reqid: Option<ReqId>,
    /// The object no longer exists after this entry.
    pub deleted: bool,
}

/// What a PG member reports about its copy during peering.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PgInfo {
    pub pg: Option<PgId>,
    pub last_update: Eversion,
    /// Oldest entry still in the log (entries after it are kept).
    pub log_tail: Eversion,
    /// Last epoch in which this copy was part of an active acting set.
    pub last_epoch_started: Epoch,
}

/// An object copy, for recovery and backfill: the whole object, or one piece of an
/// object too large for one push part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectCopy {
    pub oid: String,
    pub version: Eversion,
    /// None: the object is deleted at `version`.
    pub data: Option<Payload>,
    pub mtime_ms: u64,
    pub xattrs: Vec<(String, ByteBuf)>,
    pub omap: Vec<(String, ByteBuf)>,
    /// Where `data` starts in the object (0 unless `cont`).
    #[serde(default)]
    pub data_off: u64,
    /// A later piece: it adds its data at `data_off` and its omap pairs to what the
    /// earlier pieces made (the first piece replaces the object and has the xattrs).
    #[serde(default)]
    pub cont: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OsdPeerMsg {
    /// Primary → replica: apply this write (already ordered) and acknowledge when durable.
    RepOp { pg: PgId, epoch: Epoch, entry: PgLogEntry, ops: Vec<OsdOp>, mtime_ms: u64 },
    RepOpReply { pg: PgId, version: Eversion, ok: bool },
    /// Primary → member: report your info and log for `pg`.
    Query { pg: PgId, epoch: Epoch },
    Notify { pg: PgId, epoch: Epoch, info: PgInfo, log: Vec<PgLogEntry> },
    /// Primary → member: send these objects (or, with `all`, every object) as copies.
    Pull { pg: PgId, epoch: Epoch, oids: Vec<String>, all: bool },
    /// Objects for a member (recovery) or for the primary (a pull's answer), in parts
    /// numbered from 0 that each fit a frame: `complete` (first part only) replaces the
    /// whole PG; `info` and `log` are adopted with the last part (`more` false). The
    /// sender sends the next part when the receiver has acknowledged this one.
    Push {
        pg: PgId,
        epoch: Epoch,
        objects: Vec<ObjectCopy>,
        info: PgInfo,
        log: Vec<PgLogEntry>,
        complete: bool,
        #[serde(default)]
        part: u32,
        #[serde(default)]
        more: bool,
    },
    /// Acknowledges part `part` of a push (the last part's reply ends a recovery).
    PushReply {
        pg: PgId,
        epoch: Epoch,
        ok: bool,
        #[serde(default)]
        part: u32,
    },
    /// Primary → member: the PG is active at `epoch` with this info.
    Activate { pg: PgId, epoch: Epoch, info: PgInfo },
    /// Objects of a PG, for listing a pool.
    List { pg: PgId, after: Option<String>, max: u32 },
    ListReply { objects: Vec<String>, done: bool },
}

/// An OSD's space, sent with its PG reports: the file system holding its store (`total`,
/// `avail`) and the store itself (`used`), in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OsdSpace {
    pub total: u64,
    pub used: u64,
    pub avail: u64,
}

/// Client ops an OSD has held longer than `osd_op_complaint_time` (Ceph's slow
/// requests), sent with its PG reports; the monitors raise `SLOW_OPS` while any
/// up OSD reports some.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowOps {
    pub count: u32,
    /// How long the oldest of them has waited, in milliseconds.
    pub oldest_ms: u64,
}

/// A primary's report on one PG (`MPgStats`), kept by the monitor leader.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PgStat {
    pub pg: PgId,
    /// Ceph's spelling: `active+clean`, `active+undersized+degraded`, `peering`, `down`...
    pub state: String,
    pub acting: Vec<crate::ids::OsdId>,
    pub primary: Option<crate::ids::OsdId>,
    pub last_update: Eversion,
    pub num_objects: u64,
    pub degraded_objects: u64,
    pub misplaced_objects: u64,
    /// The OSDMap epoch the reporter had.
    pub epoch: Epoch,
}
