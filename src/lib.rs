//! cephr: a distributed POSIX file system modelled on CephFS.
//!
//! `src/` is the shared core (wire messages, messenger, maps, config, auth); `roles/`
//! holds one folder per daemon role. Dependencies run one way: core ← roles ← binary.
pub mod auth;
pub mod config;
pub mod crc;
pub mod crush;
pub mod error;
pub mod ids;
pub mod maps;
pub mod monc;
pub mod objecter;
pub mod msg;
pub mod net;

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Wall-clock nanoseconds since the Unix epoch (inode times; 0 if the clock is before it).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[path = "../roles/mod.rs"]
pub mod roles;
