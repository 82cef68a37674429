//! FSMap: the file systems of the cluster, each with its MDSMap (ranks and the
//! daemons holding them), plus the standby daemons not yet in any file system.
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use super::mds_state::MdsState;
use crate::ids::{EntityAddr, Epoch, Fscid, Gid, PoolId, Rank};

/// One MDS daemon instance as the monitors know it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MdsInfo {
    pub gid: Gid,
    pub name: String,
    pub addr: Option<EntityAddr>,
    pub rank: Option<Rank>,
    pub state: MdsState,
    /// Bumped each time the daemon is given a rank.
    pub incarnation: u64,
    /// The rank a standby-replay daemon follows.
    pub standby_for_rank: Option<Rank>,
    /// The file system this daemon prefers to join (`mds_join_fs`).
    pub join_fs: Option<String>,
    /// Sequence number of the last beacon that changed this record.
    pub state_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MdsMap {
    /// FSMap epoch of the last change to this file system.
    pub epoch: Epoch,
    pub fs_name: String,
    /// False after `fs fail`: no standby is given a rank until set joinable again.
    pub joinable: bool,
    pub max_mds: u32,
    pub metadata_pool: PoolId,
    pub data_pools: Vec<PoolId>,
    /// Ranks that exist (have been created).
    pub in_: BTreeSet<Rank>,
    pub up: BTreeMap<Rank, Gid>,
    pub failed: BTreeSet<Rank>,
    pub stopped: BTreeSet<Rank>,
    pub damaged: BTreeSet<Rank>,
    pub mds_info: BTreeMap<Gid, MdsInfo>,
    pub allow_standby_replay: bool,
    /// Seconds of client silence before its caps go stale.
    pub session_timeout: u32,
    /// Seconds of client silence before it is evicted.
    pub session_autoclose: u32,
    /// Milliseconds since the epoch when the file system was made.
    pub created_ms: u64,
    /// Largest file size (Ceph's `max_file_size`): writes, truncates and fallocates
    /// past it fail with EFBIG. It bounds what truncating or purging a file visits.
    #[serde(default = "default_max_file_size")]
    pub max_file_size: u64,
}

/// Ceph's default `max_file_size`: 1 TiB.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 1 << 40;

fn default_max_file_size() -> u64 {
    DEFAULT_MAX_FILE_SIZE
}

impl MdsMap {
    pub fn new(name: &str, metadata_pool: PoolId, data_pool: PoolId, now_ms: u64) -> Self {
        MdsMap {
            epoch: 0,
            fs_name: name.to_string(),
            joinable: true,
            max_mds: 1,
            metadata_pool,
            data_pools: vec![data_pool],
            in_: BTreeSet::new(),
            up: BTreeMap::new(),
            failed: BTreeSet::new(),
            stopped: BTreeSet::new(),
            damaged: BTreeSet::new(),
            mds_info: BTreeMap::new(),
            allow_standby_replay: false,
            session_timeout: 60,
            session_autoclose: 300,
            created_ms: now_ms,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }

    /// The daemon holding `rank`, if any.
    pub fn rank_holder(&self, rank: Rank) -> Option<&MdsInfo> {
        self.up.get(&rank).and_then(|g| self.mds_info.get(g))
    }

    /// The standby-replay daemon following `rank`, if any.
    pub fn follower_of(&self, rank: Rank) -> Option<&MdsInfo> {
        self.mds_info
            .values()
            .find(|i| i.state == MdsState::StandbyReplay && i.standby_for_rank == Some(rank))
    }

    pub fn count_in_state(&self, state: MdsState) -> usize {
        self.mds_info.values().filter(|i| i.state == state).count()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Filesystem {
    pub fscid: Fscid,
    pub mdsmap: MdsMap,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct FsMap {
    pub epoch: Epoch,
    pub next_fscid: Fscid,
    pub filesystems: BTreeMap<Fscid, Filesystem>,
    /// Daemons in up:standby, not part of any file system.
    pub standbys: BTreeMap<Gid, MdsInfo>,
}

impl FsMap {
    pub fn by_name(&self, name: &str) -> Option<&Filesystem> {
        self.filesystems.values().find(|f| f.mdsmap.fs_name == name)
    }
    pub fn by_name_mut(&mut self, name: &str) -> Option<&mut Filesystem> {
        self.filesystems.values_mut().find(|f| f.mdsmap.fs_name == name)
    }

    /// Where a daemon is: `None` for standbys, `Some(fscid)` inside a file system.
    pub fn locate_gid(&self, gid: Gid) -> Option<Option<Fscid>> {
        if self.standbys.contains_key(&gid) {
            return Some(None);
        }
        self.filesystems
            .values()
            .find(|f| f.mdsmap.mds_info.contains_key(&gid))
            .map(|f| Some(f.fscid))
    }

    pub fn info(&self, gid: Gid) -> Option<&MdsInfo> {
        self.standbys.get(&gid).or_else(|| {
            self.filesystems.values().find_map(|f| f.mdsmap.mds_info.get(&gid))
        })
    }

    /// Every daemon record, standbys and members alike.
    pub fn all_infos(&self) -> impl Iterator<Item = &MdsInfo> {
        self.standbys
            .values()
            .chain(self.filesystems.values().flat_map(|f| f.mdsmap.mds_info.values()))
    }

    pub fn gid_by_name(&self, name: &str) -> Option<Gid> {
        self.all_infos().find(|i| i.name == name).map(|i| i.gid)
    }

    /// True when any file system uses `pool`.
    pub fn uses_pool(&self, pool: PoolId) -> bool {
        self.filesystems.values().any(|f| {
            f.mdsmap.metadata_pool == pool || f.mdsmap.data_pools.contains(&pool)
        })
    }
}
