//! The cluster maps the monitors keep by consensus and push to subscribers.
//! Every change bumps the map's epoch; subscribers may see epochs skip.
pub mod fsmap;
pub mod mds_state;
pub mod monmap;
pub mod osdmap;

pub use fsmap::{Filesystem, FsMap, MdsInfo, MdsMap};
pub use mds_state::{state_transition_valid, MdsState};
pub use monmap::{MonInfo, MonMap};
pub use osdmap::{CrushMap, FailureDomain, OsdInfo, OsdMap, PgId, Pool, WEIGHT_ONE};
