//! Wire types only: the envelope every frame carries and the typed messages.
//! Frames are length-prefixed MessagePack with named fields (rmp-serde); the
//! message type is the enum variant's name on the wire. Decoding is done by
//! `net::frame`, which treats every byte as hostile.
use serde::{Deserialize, Serialize};

use crate::ids::{EntityAddr, EntityName, Epoch, Gid, OsdId};
use crate::maps::{FsMap, MdsState, MonMap, OsdMap};

pub mod caps;
pub mod command;
pub mod mds;
pub mod osd;
pub mod payload;
pub use command::{CommandReply, MonCommand};

/// Version of the envelope and message set. A peer speaking another major version is
/// refused at the first frame.
pub const PROTOCOL_VERSION: u16 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version of the sender.
    pub v: u16,
    /// Sender as it names itself; must match its certificate.
    pub src: EntityName,
    /// Sender's instance nonce (see `EntityAddr`).
    pub nonce: u64,
    /// Transaction id, unique per sender connection; replies carry the request's.
    pub tid: u64,
    /// Non-zero when this frame answers the request with that tid.
    pub reply_to: u64,
    pub msg: Message,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Message {
    /// Generic error answer to a request that could not be handled at all.
    MError { message: String },

    // --- monitor ---
    MMonCommand(MonCommand),
    MMonCommandReply(Result<CommandReply, crate::error::CmdError>),
    /// A message a peon monitor passes to the leader on behalf of `origin`; the
    /// leader's answer (if any) comes back as the reply.
    MMonForward { origin: EntityName, nonce: u64, msg: Box<Message> },
    /// Consensus traffic between monitors (an encoded raft message).
    MMonRaft {
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    MMonSubscribe(MonSubscribe),
    /// Old OSDMap epochs (for past intervals); answered with `MOsdMaps`.
    MMonGetOsdMaps { first: Epoch, last: Epoch },
    MOsdMaps(Vec<OsdMap>),
    MMonMap(MonMap),
    MOsdMap(OsdMap),
    MFsMap(FsMap),
    MAuthDb(AuthDb),

    // --- mds ---
    MMdsBeacon(MdsBeacon),

    // --- client <-> mds ---
    /// Session open/renew/close; answered (as a reply) with `MClientSessionReply`.
    MClientSession(mds::SessionOp),
    MClientSessionReply(mds::SessionReply),
    /// A metadata request, sent one-way: the MDS answers with `MClientReply` messages
    /// carrying the request's own `tid`, first unsafe (applied in memory), then safe
    /// (journaled), or a single safe one for reads and errors.
    MClientRequest(mds::ClientRequest),
    MClientReply(mds::MdsReply),
    /// Admin commands to the MDS holding a rank (`cephr client ls|evict`).
    MMdsCommand(mds::MdsCommand),
    MMdsCommandReply(Result<mds::MdsCommandReply, crate::error::CmdError>),
    /// Caps of one inode, both ways (grant, revoke, ack, flush, release); one-way.
    MClientCaps(caps::ClientCaps),
    /// A client's caps, open files and writable ranges, sent to a new active MDS of
    /// its rank in `up:reconnect`; answered (as a reply) with `MClientSessionReply`
    /// (`Opened`: the session and caps survive; `Rejected`: open a new session).
    MClientReconnect(caps::ClientReconnect),

    // --- osd ---
    MOsdBoot(OsdBoot),
    MOsdFailure(OsdFailure),
    MOsdAlive(OsdAlive),
    MOsdBeacon { id: OsdId, epoch: Epoch },
    /// A primary asks for (non-empty) or clears (empty) `pg_temp` acting sets.
    MOsdPgTemp { osd: OsdId, entries: Vec<(crate::maps::PgId, Vec<OsdId>)> },
    /// An OSD's disk crossed `osd_failsafe_full_ratio` (either way); Ceph's MOSDFull.
    MOsdFull { osd: OsdId, full: bool },
    /// Heartbeat between OSDs; answered with `reply: true` carrying the same stamp.
    MOsdPing { from: OsdId, epoch: Epoch, stamp_ms: u64, reply: bool },
    MOsdOp(osd::OsdOpRequest),
    MOsdOpReply(osd::OsdOpResult),
    /// Between OSDs: replication, peering and recovery.
    MOsdPeer(osd::OsdPeerMsg),
    /// A primary's periodic report of its PGs' states.
    MPgStats {
        osd: OsdId,
        stats: Vec<osd::PgStat>,
        #[serde(default)]
        space: Option<osd::OsdSpace>,
        #[serde(default)]
        slow: osd::SlowOps,
    },
}

impl Message {
    /// The message type as Ceph would name it, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::MError { .. } => "MError",
            Message::MMonCommand(_) => "MMonCommand",
            Message::MMonCommandReply(_) => "MMonCommandReply",
            Message::MMonForward { .. } => "MMonForward",
            Message::MMonRaft { .. } => "MMonRaft",
            Message::MMonSubscribe(_) => "MMonSubscribe",
            Message::MMonGetOsdMaps { .. } => "MMonGetOsdMaps",
            Message::MOsdMaps(_) => "MOsdMaps",
            Message::MMonMap(_) => "MMonMap",
            Message::MOsdMap(_) => "MOsdMap",
            Message::MFsMap(_) => "MFsMap",
            Message::MAuthDb(_) => "MAuthDb",
            Message::MMdsBeacon(_) => "MMdsBeacon",
            Message::MClientSession(_) => "MClientSession",
            Message::MClientSessionReply(_) => "MClientSessionReply",
            Message::MClientRequest(_) => "MClientRequest",
            Message::MClientReply(_) => "MClientReply",
            Message::MMdsCommand(_) => "MMdsCommand",
            Message::MMdsCommandReply(_) => "MMdsCommandReply",
            Message::MClientCaps(_) => "MClientCaps",
            Message::MClientReconnect(_) => "MClientReconnect",
            Message::MOsdBoot(_) => "MOsdBoot",
            Message::MOsdFailure(_) => "MOsdFailure",
            Message::MOsdAlive(_) => "MOsdAlive",
            Message::MOsdBeacon { .. } => "MOsdBeacon",
            Message::MOsdPgTemp { .. } => "MOsdPgTemp",
            Message::MOsdFull { .. } => "MOsdFull",
            Message::MOsdPing { .. } => "MOsdPing",
            Message::MOsdOp(_) => "MOsdOp",
            Message::MOsdOpReply(_) => "MOsdOpReply",
            Message::MOsdPeer(_) => "MOsdPeer",
            Message::MPgStats { .. } => "MPgStats",
        }
    }
}

/// Which maps a subscriber wants, with the epoch it already has (0: none).
/// A subscriber behind gets the latest full map, then every new epoch.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MonSubscribe {
    pub monmap: Option<Epoch>,
    pub osdmap: Option<Epoch>,
    pub fsmap: Option<Epoch>,
    /// The auth database (client caps), for daemons only.
    #[serde(default)]
    pub auth: Option<Epoch>,
}

/// Client capabilities as the monitors record them, pushed to daemons.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthDb {
    pub epoch: Epoch,
    pub entries: std::collections::BTreeMap<EntityName, std::collections::BTreeMap<String, String>>,
}

/// `MMdsBeacon`: sent every `mds_beacon_interval` by each MDS daemon.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MdsBeacon {
    pub gid: Gid,
    pub name: String,
    pub addr: Option<EntityAddr>,
    /// The file system the daemon prefers (`mds_join_fs`).
    pub fs: Option<String>,
    pub want_state: MdsState,
    pub seq: u64,
    /// The daemon's own health warnings (e.g. MDS_CLIENT_RECALL); empty when healthy.
    #[serde(default)]
    pub health: Vec<command::HealthCheck>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsdBoot {
    pub id: OsdId,
    pub addr: EntityAddr,
    pub host: String,
    /// Epoch of the newest map the OSD has.
    pub epoch: Epoch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsdFailure {
    pub target: OsdId,
    pub reporter: OsdId,
    /// Seconds the reporter has not heard from the target.
    pub failed_for_ms: u64,
    pub epoch: Epoch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsdAlive {
    pub id: OsdId,
    /// The epoch the OSD wants `up_thru` to reach.
    pub want: Epoch,
}
