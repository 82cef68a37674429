//! cephr: a distributed POSIX file system modelled on CephFS.
//!
//! `src/` is the shared core (wire messages, messenger, maps, config, auth); `roles/`
//! holds one folder per daemon role. Dependencies run one way: core ← roles ← binary.
pub mod auth;
pub mod config;
pub mod crush;
pub mod error;
pub mod ids;
pub mod maps;
pub mod monc;
pub mod objecter;
pub mod msg;
pub mod net;

#[path = "../roles/mod.rs"]
pub mod roles;
