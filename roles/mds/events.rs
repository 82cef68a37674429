//! Journal events. Every metadata change is described by one `LogEvent` carrying the
//! *new* state of everything it touched (not the operation), so that replay is a plain
//! overwrite: `MdCache::apply` rebuilds the cache from an `EMetaBlob` the same way on the
//! live path and in replay, and applying a blob twice gives the same state.
use serde::{Deserialize, Serialize};

use super::types::{FileLayout, Ino, Inode, Linkage};

/// Identifies a client request, so a request re-sent after failover is not applied twice.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReqRef {
    pub client: String,
    pub tid: u64,
}

/// The new state of one dentry: `None` removes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DentryUpdate {
    pub dir: Ino,
    pub name: String,
    pub linkage: Option<Linkage>,
}

/// Where an inode number of a new inode came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InoSource {
    /// The session's preallocated range (the session map forgets it).
    Prealloc,
    /// The rank's InoTable (the table forgets it).
    Table,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InoAlloc {
    pub ino: Ino,
    pub from: InoSource,
}

/// Data objects of a destroyed inode that the MDS must delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purge {
    pub ino: Ino,
    pub size: u64,
    pub layout: FileLayout,
}

/// A shrinking truncate: data past `new_size` must be cut from the data objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncate {
    pub ino: Ino,
    pub old_size: u64,
    pub new_size: u64,
    pub layout: FileLayout,
}

/// The metadata changes of one operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EMetaBlob {
    /// For humans and the journal tool, e.g. `mkdir 0x1/"a"`.
    pub desc: String,
    /// The request this came from, for dedup of re-sent requests after replay.
    pub reqid: Option<ReqRef>,
    /// Metadata version this change produces (strictly increasing).
    pub version: u64,
    /// Directories created by this change (empty, complete fragments).
    pub new_dirs: Vec<Ino>,
    /// Dentries changed, in order.
    pub dentries: Vec<DentryUpdate>,
    /// New state of base inodes (root, mdsdir), which have no parent dentry.
    pub base_inodes: Vec<Inode>,
    /// Directories destroyed by this change (their fragment objects are deleted).
    pub removed_dirs: Vec<Ino>,
    /// Anchor table changes: `Some((dir, name))` sets, `None` removes.
    pub anchors: Vec<(Ino, Option<(Ino, String)>)>,
    pub ino_alloc: Option<InoAlloc>,
    pub purge: Vec<Purge>,
    pub truncate: Vec<Truncate>,
}

impl EMetaBlob {
    /// Directory fragments that must be in cache before this blob can be applied
    /// (replay loads them first).
    pub fn dirs_touched(&self) -> Vec<Ino> {
        let mut v: Vec<Ino> = self.dentries.iter().map(|d| d.dir).filter(|d| !self.new_dirs.contains(d)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Session changes that must survive failover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionEvent {
    /// A session opened, confined to `root`, with inode numbers preallocated for it
    /// from the InoTable (`start..start+len`). Renewals are not journaled. `addr` is
    /// the client instance, which an eviction blocklists (also after failover).
    Open {
        client: String,
        root: Ino,
        prealloc: Option<(Ino, u64)>,
        #[serde(default)]
        addr: Option<crate::ids::EntityAddr>,
    },
    /// More inode numbers preallocated for a session.
    Prealloc { client: String, start: Ino, len: u64 },
    /// A session closed or was evicted; its unused preallocated inos go back.
    Close { client: String },
}

/// One journal entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogEvent {
    /// Starts a segment: replay may begin at any segment start. `id` is the segment
    /// number; segments are expired (and the journal trimmed) oldest first once
    /// everything they dirtied is flushed.
    Subtrees { segment: u64 },
    Update(EMetaBlob),
    Session(SessionEvent),
    /// Inode numbers taken from the InoTable outside any request (e.g. a refill).
    InoTableAlloc { start: Ino, len: u64 },
    /// Written by the journal tool after a reset: nothing before it is replayed.
    ResetJournal,
    /// Padding or a marker; ignored.
    NoOp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::mds::S_IFREG;

    /// That a session open journaled before instances were recorded (no `addr`
    /// field) still decodes, with no instance.
    #[test]
    fn old_session_open_decodes() {
        #[derive(Serialize)]
        enum OldSession {
            Open { client: String, root: Ino, prealloc: Option<(Ino, u64)> },
        }
        let old = OldSession::Open { client: "client.a".into(), root: 1, prealloc: None };
        let b = rmp_serde::to_vec_named(&old).unwrap();
        let ev: SessionEvent = rmp_serde::from_slice(&b).unwrap();
        assert_eq!(ev, SessionEvent::Open { client: "client.a".into(), root: 1, prealloc: None, addr: None });
    }

    /// That dirs_touched lists each pre-existing directory once.
    #[test]
    fn dirs_touched_skips_new_dirs() {
        let d = |dir, name: &str| DentryUpdate { dir, name: name.into(), linkage: None };
        let b = EMetaBlob { new_dirs: vec![7], dentries: vec![d(3, "a"), d(1, "b"), d(3, "c"), d(7, "x")], ..Default::default() };
        assert_eq!(b.dirs_touched(), vec![1, 3]);
    }

    /// That an event round-trips through MessagePack.
    #[test]
    fn event_round_trip() {
        let i = Inode::new(9, S_IFREG | 0o644, 1, 1, 5, FileLayout::default_for(2));
        let b = EMetaBlob {
            desc: "create".into(),
            reqid: Some(ReqRef { client: "client.4".into(), tid: 3 }),
            version: 4,
            dentries: vec![DentryUpdate { dir: 1, name: "f".into(), linkage: Some(Linkage::Primary(i)) }],
            ino_alloc: Some(InoAlloc { ino: 9, from: InoSource::Table }),
            ..Default::default()
        };
        for e in [LogEvent::Update(b), LogEvent::Subtrees { segment: 2 }, LogEvent::NoOp] {
            let bytes = rmp_serde::to_vec_named(&e).unwrap();
            assert_eq!(rmp_serde::from_slice::<LogEvent>(&bytes).unwrap(), e);
        }
    }
}
