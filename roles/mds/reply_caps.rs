//! Caps inside replies (pure): which of the Locker's commands after a request ride in the
//! reply itself, as Ceph issues caps in `MClientReply`, instead of as separate grants.
//!
//! A request's reply gives the client an inode (and for a lookup its parent); the Locker
//! answers `issue` with grants and, for a writer, a `JournalRanges` of the writable ranges
//! that must be durable before the grant leaves. When the request itself journals a blob
//! that holds the inode (a create), the ranges go into that blob (`client_ranges` of the
//! new inode), so the grant can ride in the unsafe reply: one journal entry and no
//! separate grant message. Everything else stays a command for `exec_caps`.
use super::events::{DentryUpdate, EMetaBlob};
use super::locker::Command;
use super::types::{Ino, Linkage};
use crate::msg::caps::Caps;

/// One grant to put into the reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyGrant {
    pub ino: Ino,
    pub caps: Caps,
    pub wanted: Caps,
    pub seq: u64,
    pub max_size: u64,
}

/// How a request's cap commands are carried out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Grants to `client` that go inside the reply.
    pub grants: Vec<ReplyGrant>,
    /// Ranges journaled inside the request's blob: `(ino, locked)` to hand back to the
    /// Locker (`range_journaled`) once the blob is durable.
    pub folded: Vec<(Ino, bool)>,
    /// The blob's dentries that changed by folding (the cache must get them too).
    pub changed: Vec<DentryUpdate>,
    /// Commands left for `exec_caps`, in their order.
    pub rest: Vec<Command>,
}

/// Splits `cmds` (the Locker's answer to issuing caps for a reply to `client` about
/// `reply_inos`) into what rides in the reply, what is folded into `blob`, and the rest.
pub fn split_for_reply(client: &str, reply_inos: &[Ino], mut blob: Option<&mut EMetaBlob>, cmds: Vec<Command>) -> Split {
    let mut out = Split::default();
    let mut pending = Vec::new();
    for cmd in cmds {
        match cmd {
            Command::JournalRanges { ino, ranges, locked } => {
                let slot = blob.as_deref_mut().and_then(|b| new_inode_dentry(b, ino));
                match slot {
                    Some(d) => {
                        if let Some(Linkage::Primary(i)) = d.linkage.as_mut() {
                            i.client_ranges = ranges;
                        }
                        out.changed.push(d.clone());
                        out.folded.push((ino, locked));
                    }
                    None => pending.push(Command::JournalRanges { ino, ranges, locked }),
                }
            }
            other => pending.push(other),
        }
    }
    let unfolded: Vec<Ino> = pending
        .iter()
        .filter_map(|c| match c {
            Command::JournalRanges { ino, .. } => Some(*ino),
            _ => None,
        })
        .collect();
    for cmd in pending {
        match cmd {
            Command::Caps { client: c, ino, revoke: false, caps, wanted, seq, max_size }
                if c == client && reply_inos.contains(&ino) && !unfolded.contains(&ino) =>
            {
                out.grants.push(ReplyGrant { ino, caps, wanted, seq, max_size });
            }
            other => out.rest.push(other),
        }
    }
    out
}

/// The blob's primary dentry holding inode `ino`, if the blob writes one.
fn new_inode_dentry(blob: &mut EMetaBlob, ino: Ino) -> Option<&mut DentryUpdate> {
    blob.dentries.iter_mut().rev().find(|d| matches!(&d.linkage, Some(Linkage::Primary(i)) if i.ino == ino))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::mds::{FileLayout, S_IFREG};
    use crate::roles::mds::types::Inode;
    use std::collections::BTreeMap;

    fn blob_with(ino: Ino) -> EMetaBlob {
        let i = Inode::new(ino, S_IFREG | 0o644, 0, 0, 1, FileLayout::default_for(1));
        EMetaBlob {
            version: 3,
            dentries: vec![DentryUpdate { dir: 1, name: "f".into(), linkage: Some(Linkage::Primary(i)) }],
            ..Default::default()
        }
    }

    fn grant(client: &str, ino: Ino, max_size: u64) -> Command {
        let caps = Caps::parse("pAsxLsXsxFsxcrwb").unwrap();
        Command::Caps { client: client.into(), ino, revoke: false, caps, wanted: caps, seq: 1, max_size }
    }

    /// That a create's writable range goes into the create's own blob and its grant
    /// into the reply, leaving nothing to journal or send separately.
    #[test]
    fn create_range_folds_into_blob() {
        let mut blob = blob_with(0x100);
        let ranges: BTreeMap<String, u64> = [("c1".to_string(), 64 << 20)].into();
        let cmds = vec![Command::JournalRanges { ino: 0x100, ranges: ranges.clone(), locked: true }, grant("c1", 0x100, 64 << 20)];
        let s = split_for_reply("c1", &[0x100], Some(&mut blob), cmds);
        assert_eq!(s.folded, vec![(0x100, true)]);
        assert!(s.rest.is_empty(), "{:?}", s.rest);
        assert_eq!(s.grants.len(), 1);
        assert_eq!(s.grants[0].max_size, 64 << 20);
        let Some(Linkage::Primary(i)) = &blob.dentries[0].linkage else { panic!("primary") };
        assert_eq!(i.client_ranges, ranges);
        assert_eq!(s.changed, blob.dentries);
    }

    /// That without a blob holding the inode the range stays a journal command and the
    /// grant waits for it (it is not put in the reply); grants to other clients, revokes
    /// and grants on other inodes stay commands too.
    #[test]
    fn unfoldable_commands_stay() {
        let ranges: BTreeMap<String, u64> = [("c1".to_string(), 1)].into();
        let jr = Command::JournalRanges { ino: 0x200, ranges, locked: true };
        let revoke = Command::Caps { client: "c2".into(), ino: 0x300, revoke: true, caps: Caps::PIN, wanted: Caps::NONE, seq: 4, max_size: 0 };
        let cmds = vec![jr.clone(), grant("c1", 0x200, 1), grant("c2", 0x300, 0), revoke.clone(), grant("c1", 0x300, 0)];
        let mut other = blob_with(0x999);
        let s = split_for_reply("c1", &[0x200, 0x300], Some(&mut other), cmds);
        assert!(s.folded.is_empty() && s.changed.is_empty());
        assert_eq!(s.rest, vec![jr, grant("c1", 0x200, 1), grant("c2", 0x300, 0), revoke]);
        assert_eq!(s.grants.iter().map(|g| g.ino).collect::<Vec<_>>(), vec![0x300]);
        let s = split_for_reply("c1", &[], None, vec![grant("c1", 0x300, 0)]);
        assert!(s.grants.is_empty() && s.rest.len() == 1, "only inodes the reply returns");
    }
}
