//! OSDMap: the OSDs (address, up/down, in/out, weight), the CRUSH hierarchy
//! root → host → osd, pools, `up_thru`, `pg_temp` and the client blocklist.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ids::{EntityAddr, Epoch, OsdId, PoolId};

/// CRUSH weight unit: 0x10000 is 1.0 (as in Ceph), kept integral so every monitor
/// computes placement identically.
pub const WEIGHT_ONE: u32 = 0x10000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsdInfo {
    pub id: OsdId,
    pub addr: Option<EntityAddr>,
    pub up: bool,
    pub in_: bool,
    /// CRUSH weight (WEIGHT_ONE = 1.0).
    pub weight: u32,
    /// Epoch at which the OSD last came up.
    pub up_from: Epoch,
    /// Last epoch the OSD has confirmed it is alive through (after peering).
    pub up_thru: Epoch,
    /// Epoch at which it last went down.
    pub down_at: Epoch,
    /// Wall clock (ms) when marked down; drives `mon_osd_down_out_interval`.
    pub down_stamp_ms: Option<u64>,
    /// Marked out automatically (may come back in on boot) rather than by an admin.
    pub auto_out: bool,
    pub host: String,
    /// The OSD reported its disk past `osd_failsafe_full_ratio` (Ceph's per-OSD `full`
    /// state): primaries refuse writes that take space on PGs it serves.
    #[serde(default)]
    pub full: bool,
    /// How likely a failure report of this OSD is wrong (it was marked down and the
    /// same instance booted again), in millionths; Ceph's `laggy_probability`.
    #[serde(default)]
    pub laggy_ppm: u32,
    /// How long such wrong mark-downs lasted, on a moving average (ms); Ceph's
    /// `laggy_interval`. With `laggy_ppm` it lengthens the grace the monitors give it.
    #[serde(default)]
    pub laggy_interval_ms: u64,
}

impl OsdInfo {
    /// A new OSD as it first enters the map: down, in, weight 1.0, under `host`.
    pub fn new(id: OsdId, host: &str) -> OsdInfo {
        OsdInfo {
            id,
            addr: None,
            up: false,
            in_: true,
            weight: WEIGHT_ONE,
            up_from: 0,
            up_thru: 0,
            down_at: 0,
            down_stamp_ms: None,
            auto_out: false,
            host: host.to_string(),
            full: false,
            laggy_ppm: 0,
            laggy_interval_ms: 0,
        }
    }
}

/// Which level of the hierarchy replicas must be spread over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureDomain {
    Host,
    Osd,
}

impl FailureDomain {
    pub fn name(&self) -> &'static str {
        match self {
            FailureDomain::Host => "host",
            FailureDomain::Osd => "osd",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub id: PoolId,
    pub name: String,
    pub size: u32,
    pub min_size: u32,
    pub pg_num: u32,
    pub failure_domain: FailureDomain,
}

/// Placement group id: pool and seed. Written as `POOL.SEEDHEX` (e.g. `1.1a`) on
/// the wire and in JSON, so it can key maps everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PgId {
    pub pool: PoolId,
    pub seed: u32,
}

impl std::str::FromStr for PgId {
    type Err = crate::error::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || crate::error::ParseError::new("pg id", s, "expected POOL.SEEDHEX, e.g. 1.1a");
        let (p, x) = s.split_once('.').ok_or_else(bad)?;
        Ok(PgId { pool: p.parse().map_err(|_| bad())?, seed: u32::from_str_radix(x, 16).map_err(|_| bad())? })
    }
}

crate::serde_as_text!(PgId);

impl std::fmt::Display for PgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:x}", self.pool, self.seed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CrushMap {
    /// host name → OSDs under it. The root holds every host.
    pub hosts: BTreeMap<String, Vec<OsdId>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OsdMap {
    pub epoch: Epoch,
    pub fsid: String,
    pub osds: BTreeMap<OsdId, OsdInfo>,
    pub crush: CrushMap,
    pub pools: BTreeMap<PoolId, Pool>,
    pub pool_max: PoolId,
    /// PG → acting set overriding the CRUSH up set (while a new primary lacks data).
    pub pg_temp: BTreeMap<PgId, Vec<OsdId>>,
    /// Blocklisted instances → expiry (ms since the Unix epoch).
    pub blocklist: BTreeMap<EntityAddr, u64>,
}

impl OsdMap {
    pub fn pool_by_name(&self, name: &str) -> Option<&Pool> {
        self.pools.values().find(|p| p.name == name)
    }
    pub fn num_up(&self) -> usize {
        self.osds.values().filter(|o| o.up).count()
    }
    pub fn num_in(&self) -> usize {
        self.osds.values().filter(|o| o.in_).count()
    }
    /// Whether an instance is blocklisted at time `now_ms`.
    pub fn is_blocklisted(&self, who: &EntityAddr, now_ms: u64) -> bool {
        self.blocklist
            .iter()
            .any(|(entry, expiry)| *expiry > now_ms && entry.matches(who))
    }
    /// Adds the OSD to the CRUSH hierarchy under `host` (moving it if needed).
    pub fn crush_place(&mut self, id: OsdId, host: &str) {
        for osds in self.crush.hosts.values_mut() {
            osds.retain(|o| *o != id);
        }
        self.crush.hosts.retain(|_, v| !v.is_empty());
        let v = self.crush.hosts.entry(host.to_string()).or_default();
        v.push(id);
        v.sort_unstable();
    }
}
