//! The MDS role's pure core: the metadata cache, request handlers, journal format and
//! events, replay, inode table and session map. No I/O and no actors here: the rank
//! actor (to come) feeds requests to `server::handle`, journals the blobs it returns,
//! loads what `server::Need` asks for, and writes back what the cache reports dirty.
pub mod cache;
pub mod events;
pub mod inotable;
pub mod journal;
pub mod replay;
pub mod server;
pub mod sessionmap;
pub mod types;
