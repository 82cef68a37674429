//! The OSD role: one `Osd` actor per daemon. It boots into the OSDMap, follows map
//! epochs from the monitors, heartbeats the other up OSDs, reports peers that stop
//! answering, and serves the placement groups it is primary or replica for.
pub mod heartbeat;
pub mod ops;
pub mod osd;
mod osd_pg;
mod osd_recovery;
mod osd_wait;
pub mod peering;
pub mod pg;
pub mod store;
pub mod worker;

pub use osd::{start, Osd};
