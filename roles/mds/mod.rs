//! The MDS role's pure core: the metadata cache, request handlers, journal format and
//! events, replay, inode table, session map and quotas (no I/O there), plus the daemon around
//! it: `daemon` (process start, beacon, respawn), `rank` + `rank_client` (the MdsRank
//! actor: states, sessions, requests, flush/expire), `rank_sessions` (session
//! timeouts, eviction, cache-pressure recall over the pure `session_timers` and
//! `recall`), `rank_strays` (purging unlinked inodes once unused), `rank_reconnect`
//! (reconnect, rejoin, clientreplay after failover over the pure `reconnect`), `mdlog`
//! (journal writer with group commit), `store` (metadata objects in RADOS) and
//! `logio` (pure journal I/O rules).
pub mod cache;
pub mod daemon;
pub mod events;
pub mod inotable;
pub mod journal;
pub mod locker;
pub mod locks;
pub mod logio;
pub mod mdlog;
pub mod quota;
pub mod rank;
mod rank_caps;
mod rank_client;
mod rank_reply;
mod rank_reconnect;
mod rank_sessions;
mod rank_strays;
pub mod recall;
pub mod reconnect;
pub mod replay;
pub mod reply_caps;
pub mod store;
pub mod server;
pub mod session_timers;
pub mod sessionmap;
pub mod types;
