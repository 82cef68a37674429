//! The OSD role: one `Osd` actor per daemon. It boots into the OSDMap, follows map
//! epochs from the monitors, heartbeats the other up OSDs, reports peers that stop
//! answering, and beacons to the monitors so a silent OSD is marked down.
pub mod heartbeat;
pub mod osd;

pub use osd::{start, Osd};
