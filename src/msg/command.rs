//! Monitor commands (`MMonCommand`) and their typed replies. The CLI formats replies;
//! the monitor never produces presentation text beyond one-line confirmations.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ids::{EntityAddr, EntityName, OsdId};
use crate::maps::{FsMap, MonMap, OsdMap};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MonCommand {
    Status,
    MonStat,
    /// Answered by the monitor that receives it, from its own state (`cephr tell`).
    LocalStatus,
    /// All maps, for the read-only listing commands the CLI formats itself.
    GetMaps,
    /// Every PG's latest reported state (unknown when no primary reported it).
    PgDump,
    /// Raw space and objects per pool (`cephr df`).
    Df,
    FsNew { name: String, metadata_pool: String, data_pool: String },
    FsSet { name: String, var: String, val: String },
    FsFail { name: String },
    FsRm { name: String, confirm: bool },
    MdsFail { who: String },
    OsdPoolCreate { name: String, pg_num: Option<u32>, size: Option<u32>, min_size: Option<u32> },
    OsdDown { id: OsdId },
    OsdOut { id: OsdId },
    OsdIn { id: OsdId },
    OsdBlocklistAdd { addr: EntityAddr, expire_secs: Option<f64> },
    OsdBlocklistRm { addr: EntityAddr },
    AuthAdd { entity: EntityName, caps: BTreeMap<String, String> },
    AuthRm { entity: EntityName },
    AuthLs,
    AuthGet { entity: EntityName },
}

impl MonCommand {
    /// Commands that change a map go through consensus; the rest are answered by the
    /// leader from its committed state.
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            MonCommand::Status
                | MonCommand::MonStat
                | MonCommand::LocalStatus
                | MonCommand::PgDump
                | MonCommand::Df
                | MonCommand::GetMaps
                | MonCommand::AuthLs
                | MonCommand::AuthGet { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CommandReply {
    /// A one-line confirmation of a change.
    Done(String),
    Status(Box<StatusReport>),
    MonStat(MonStatus),
    Maps(Box<Maps>),
    Local(LocalStatus),
    PgDump(Vec<crate::msg::osd::PgStat>),
    Df(DfReport),
    Auth(Vec<AuthEntry>),
}

/// `cephr df`: raw space summed over the up OSDs' reports, and objects per pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DfReport {
    pub total_bytes: u64,
    pub used_bytes: u64,
    pub avail_bytes: u64,
    /// (pool name, objects) from the PG reports.
    pub pools: Vec<(String, u64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Maps {
    pub monmap: MonMap,
    pub osdmap: OsdMap,
    pub fsmap: FsMap,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonStatus {
    pub monmap: MonMap,
    pub leader: String,
    /// Monitors the leader has heard from within an election timeout, itself included.
    pub quorum: Vec<String>,
    /// Consensus term (Ceph's election epoch).
    pub term: u64,
    pub committed_index: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HealthStatus {
    #[serde(rename = "HEALTH_OK")]
    Ok,
    #[serde(rename = "HEALTH_WARN")]
    Warn,
    #[serde(rename = "HEALTH_ERR")]
    Err,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub code: String,
    pub severity: HealthStatus,
    pub summary: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub fsid: String,
    /// PG state → number of PGs.
    pub pg_states: std::collections::BTreeMap<String, u64>,
    pub num_objects: u64,
    pub degraded_objects: u64,
    pub misplaced_objects: u64,
    pub health: HealthStatus,
    pub checks: Vec<HealthCheck>,
    pub mon: MonStatus,
    pub osdmap: OsdMap,
    pub fsmap: FsMap,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthEntry {
    pub entity: EntityName,
    /// service (`mon`, `osd`, `mds`) → capability string, e.g. `allow rw path=/x`.
    pub caps: BTreeMap<String, String>,
}

/// One monitor's own view (not forwarded to the leader).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalStatus {
    pub name: String,
    /// `leader`, `peon` or `electing`.
    pub role: String,
    pub leader: String,
    pub term: u64,
    pub applied_index: u64,
    pub monmap_epoch: u64,
    pub osdmap_epoch: u64,
    pub fsmap_epoch: u64,
}
