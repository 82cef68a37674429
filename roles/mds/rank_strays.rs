//! The stray manager (as Ceph's `StrayManager`): an inode whose last name goes is not
//! destroyed at once but moves, journaled, to the rank's stray directory (`~mdsN`,
//! the mdsdir; `server_ns.rs`), so a client that still has it open keeps reading,
//! writing and stat'ing it. The rank purges a stray (journaled removal, then its data
//! objects, its inode number back to the InoTable) once no client uses it: evaluated
//! when the unlink is journaled, when a client's caps on it change (a close drops its
//! wanted caps), when a session goes, and for every stray when the rank becomes
//! active (after reconnect, so strays survive failover while a client claims them).
use actix::prelude::*;

use super::cache::MdCache;
use super::events::{EMetaBlob, LogEvent};
use super::rank::MdsRank;
use super::rank_client::{after_durable, purge_data};
use super::server;
use super::types::{stray_name, Ino, Linkage};
use crate::maps::MdsState;

/// Inodes a blob left unlinked in the stray directory (`mdsdir`).
pub fn new_strays(blob: &EMetaBlob, mdsdir: Ino) -> Vec<Ino> {
    blob.dentries
        .iter()
        .filter(|u| u.dir == mdsdir)
        .filter_map(|u| match &u.linkage {
            Some(Linkage::Primary(i)) if i.nlink == 0 => Some(i.ino),
            _ => None,
        })
        .collect()
}

/// Whether `ino` sits in the stray directory with no name left.
pub fn is_unlinked_stray(cache: &MdCache, ino: Ino) -> bool {
    let md = cache.mdsdir();
    cache.parent_of(ino).is_some_and(|(d, n)| d == md && n == stray_name(ino))
        && cache.inode(ino).is_some_and(|i| i.nlink == 0)
}

/// Every unlinked stray in the (loaded) stray directory.
pub fn unlinked_strays(cache: &MdCache) -> Vec<Ino> {
    let Some(d) = cache.dir(cache.mdsdir()) else { return Vec::new() };
    d.dentries
        .values()
        .filter_map(|l| match l {
            Linkage::Primary(i) if i.nlink == 0 => Some(i.ino),
            _ => None,
        })
        .collect()
}

impl MdsRank {
    /// Purges `ino` if it is an unlinked stray nobody uses. Only while serving: during
    /// replay and reconnect the clients' claims are not known yet.
    pub(super) fn eval_stray(&mut self, ino: Ino, ctx: &mut Context<Self>) {
        if !matches!(self.state, MdsState::Active | MdsState::ClientReplay) {
            return;
        }
        let Some(rs) = self.rs.as_ref() else { return };
        if !is_unlinked_stray(&rs.cache, ino) || self.caps.locker.in_use(ino) {
            return;
        }
        let cmds = self.locker().drop_idle_caps(ino);
        self.exec_caps(cmds, ctx);
        self.maybe_segment();
        let Some(rs) = self.rs.as_mut() else { return };
        match server::purge_stray(&mut rs.cache, &rs.inotable, ino, crate::now_ns()) {
            Ok(Some(blob)) => {
                tracing::debug!(ino = format!("{ino:#x}"), "purging stray");
                let purge = blob.purge.clone();
                let rx = self.journal(LogEvent::Update(blob), false);
                if !purge.is_empty() {
                    let (obj, pools) = (self.obj.clone(), self.monc.current().osdmap);
                    after_durable(rx, move || {
                        actix::spawn(purge_data(obj, pools, purge));
                    });
                }
            }
            Ok(None) => {}
            Err(need) => tracing::warn!(ino = format!("{ino:#x}"), ?need, "stray not purged: not in cache"),
        }
    }

    /// Evaluates every unlinked stray (a session went, the rank became active).
    pub(super) fn eval_strays(&mut self, ctx: &mut Context<Self>) {
        let strays = self.rs.as_ref().map(|rs| unlinked_strays(&rs.cache)).unwrap_or_default();
        for ino in strays {
            self.eval_stray(ino, ctx);
        }
    }

    /// Loads the stray directory if needed, then evaluates every stray in it.
    pub(super) fn scan_strays(&mut self, ctx: &mut Context<Self>) {
        let (Some(rs), Some(store)) = (self.rs.as_ref(), self.store.clone()) else { return };
        let md = rs.cache.mdsdir();
        if rs.cache.dir(md).is_some_and(|d| d.complete) {
            return self.eval_strays(ctx);
        }
        let fut = async move { store.fetch_dir(md).await };
        ctx.spawn(fut.into_actor(self).map(move |r, act, ctx| {
            let Some(rs) = act.rs.as_mut() else { return };
            match r.map_err(|e| e.to_string()).and_then(|m| rs.cache.load_dir(md, &m).map_err(|e| e.to_string())) {
                Ok(()) => act.eval_strays(ctx),
                Err(e) => tracing::warn!("stray directory {md:#x} not loaded, strays not purged: {e}"),
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::mds::MdsOp;
    use crate::roles::mds::server::tests::Fs;
    use crate::roles::mds::types::ROOT_INO;

    /// That the blob of an unlink names the new stray, that a hard-link stray (still
    /// linked) is not an unlinked one, and that the scan lists exactly the unlinked.
    #[test]
    fn strays_found_in_blobs_and_cache() {
        let mut fs = Fs::new();
        let f = fs.create(ROOT_INO, "f");
        let g = fs.create(ROOT_INO, "g");
        fs.run(MdsOp::Link { ino: g, new_parent: ROOT_INO, new_name: "g2".into() }).unwrap();
        fs.run(MdsOp::Unlink { parent: ROOT_INO, name: "g".into() }).unwrap();
        let md = fs.cache.mdsdir();
        assert!(new_strays(fs.blobs.last().unwrap(), md).is_empty(), "g still has a name");
        assert!(!is_unlinked_stray(&fs.cache, g));
        fs.run(MdsOp::Unlink { parent: ROOT_INO, name: "f".into() }).unwrap();
        assert_eq!(new_strays(fs.blobs.last().unwrap(), md), vec![f]);
        assert!(is_unlinked_stray(&fs.cache, f));
        assert_eq!(unlinked_strays(&fs.cache), vec![f]);
        fs.run(MdsOp::Unlink { parent: ROOT_INO, name: "g2".into() }).unwrap();
        assert_eq!(new_strays(fs.blobs.last().unwrap(), md), vec![g]);
        let mut all = unlinked_strays(&fs.cache);
        all.sort();
        assert_eq!(all, vec![f, g]);
        fs.purge(f);
        assert!(!is_unlinked_stray(&fs.cache, f));
        assert_eq!(unlinked_strays(&fs.cache), vec![g]);
    }
}
