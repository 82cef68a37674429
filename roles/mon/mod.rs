//! The monitor role: a consensus group (raft-rs) that owns the cluster maps.
//! `monitor` is the actor (messages in, proposals out, maps pushed to subscribers);
//! `state` + `commands` are the deterministic state machine applied from the log;
//! `mds_monitor`/`osd_monitor` are the pure map logic; `store` is the durable log.
pub mod commands;
pub mod health;
pub mod mds_monitor;
pub mod monitor;
pub mod osd_monitor;
pub mod state;
pub mod store;

pub use monitor::{start, Monitor};
