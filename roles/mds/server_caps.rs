//! Inode changes that come from caps rather than requests: a client's cap flush
//! (size, mtime) and the writable ranges the Locker hands out. Like a request they
//! are applied to the cache through an `EMetaBlob`, which the rank journals.
use std::collections::BTreeMap;

use super::{Fail, Need, Tx};
use crate::roles::mds::cache::MdCache;
use crate::roles::mds::events::EMetaBlob;
use crate::roles::mds::types::{Ino, Inode};

/// Applies `change` to inode `ino` and returns the blob to journal, or `None` when
/// nothing changed. `Err` when the inode is not in cache (or, with `enforce_quota`,
/// when the change would pass a quota; without it a quota is only accounted).
pub fn update_inode(
    cache: &mut MdCache,
    desc: String,
    ino: Ino,
    enforce_quota: bool,
    change: impl FnOnce(&mut Inode),
) -> Result<Option<EMetaBlob>, Need> {
    let blob = {
        let c: &MdCache = cache;
        let old = c.inode(ino).ok_or(Need::Inode(ino))?;
        let mut n = old.clone();
        change(&mut n);
        n.version = old.version;
        if n == *old {
            return Ok(None);
        }
        let blob = EMetaBlob { desc, version: c.version() + 1, ..Default::default() };
        let mut tx = Tx { cache: c, blob, staged: BTreeMap::new(), placed: BTreeMap::new() };
        tx.put(n);
        match tx.finish_with(enforce_quota) {
            Ok(b) => b,
            Err(Fail::Need(n)) => return Err(n),
            Err(Fail::Errno(_)) => return Err(Need::Inode(ino)),
        }
    };
    cache.apply(&blob);
    Ok(Some(blob))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::mds::{MdsOp, ReplyBody, S_IFREG};
    use crate::roles::mds::server::tests::Fs;
    use crate::roles::mds::types::ROOT_INO;

    /// That a caps-driven change is applied through a blob that replays to the same
    /// inode, and that an unchanged inode gives no blob.
    #[test]
    fn update_inode_journals_a_replayable_blob() {
        let mut fs = Fs::new();
        let ReplyBody::Inode(st) = fs.run(MdsOp::Create { parent: ROOT_INO, name: "f".into(), mode: S_IFREG | 0o644, excl: true }).unwrap() else {
            panic!("create")
        };
        let before = fs.cache.clone();
        let blob = update_inode(&mut fs.cache, "flush".into(), st.ino, true, |i| {
            i.size = 77;
            i.client_ranges.insert("client.1".into(), 1 << 26);
        })
        .unwrap()
        .expect("a change");
        let now = fs.cache.inode(st.ino).unwrap().clone();
        assert_eq!((now.size, now.client_ranges["client.1"]), (77, 1 << 26));
        let mut replayed = before;
        replayed.apply(&blob);
        assert_eq!(replayed.inode(st.ino), Some(&now));
        assert_eq!(update_inode(&mut fs.cache, "same".into(), st.ino, true, |i| i.size = 77).unwrap(), None);
        assert_eq!(update_inode(&mut fs.cache, "gone".into(), 0xdead, true, |_| {}), Err(Need::Inode(0xdead)));
    }
}
