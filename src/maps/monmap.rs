//! MonMap: the monitors of the cluster, their addresses and their consensus ids.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::ids::Epoch;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonInfo {
    pub name: String,
    pub addr: SocketAddr,
    /// Id in the consensus group (1-based, stable).
    pub rank: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonMap {
    pub epoch: Epoch,
    pub fsid: String,
    pub mons: BTreeMap<String, MonInfo>,
}

impl MonMap {
    /// Monitors ranked in name order, 1-based, as Ceph ranks them by address.
    pub fn new(fsid: &str, mons: &BTreeMap<String, SocketAddr>) -> Self {
        let mons = mons
            .iter()
            .enumerate()
            .map(|(i, (name, addr))| {
                (name.clone(), MonInfo { name: name.clone(), addr: *addr, rank: i as u64 + 1 })
            })
            .collect();
        MonMap { epoch: 1, fsid: fsid.to_string(), mons }
    }
    pub fn by_rank(&self, rank: u64) -> Option<&MonInfo> {
        self.mons.values().find(|m| m.rank == rank)
    }
}
