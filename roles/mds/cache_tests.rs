use super::*;
use crate::msg::mds::{MdsOp, SetAttr};
use crate::roles::mds::server::tests::Fs;
use serde_bytes::ByteBuf;

/// A small tree with files, a hard link, a stray and xattrs.
fn sample() -> Fs {
    let mut fs = Fs::new();
    let d = fs.mkdir(ROOT_INO, "d");
    let e = fs.mkdir(d, "e");
    let f = fs.create(d, "f");
    fs.create(e, "g");
    let h = fs.create(ROOT_INO, "h");
    fs.run(MdsOp::Link { ino: f, new_parent: e, new_name: "f2".into() }).unwrap();
    fs.run(MdsOp::Link { ino: h, new_parent: e, new_name: "h2".into() }).unwrap();
    fs.run(MdsOp::Unlink { parent: ROOT_INO, name: "h".into() }).unwrap();
    fs.run(MdsOp::Setxattr { ino: f, name: "user.x".into(), value: ByteBuf::from(vec![1, 2, 3]), flags: 0 }).unwrap();
    fs.run(MdsOp::Setattr { ino: d, set: SetAttr { mode: Some(0o1777), ..Default::default() } }).unwrap();
    fs
}

/// Writes every dirty target as the rank would, into a map standing in for RADOS.
pub(crate) fn flush_all(c: &mut MdCache, store: &mut BTreeMap<FlushTarget, FlushPayload>) {
    let segs: Vec<u64> = (0..=c.segment()).collect();
    for seg in segs {
        for t in c.dirty_for_segment(seg) {
            let (p, v) = c.flush_payload(&t);
            write_payload(store, &t, p);
            c.mark_flushed(&t, v);
        }
    }
}

/// Writes one payload into the map standing in for RADOS (a fragment object holds its
/// whole omap: removals, then the changed entries, as the OSD applies them).
fn write_payload(store: &mut BTreeMap<FlushTarget, FlushPayload>, t: &FlushTarget, p: FlushPayload) {
    match p {
        FlushPayload::DeleteDir => drop(store.remove(t)),
        FlushPayload::Dir { set, rm } => {
            let obj = store.entry(t.clone()).or_insert(FlushPayload::Dir { set: BTreeMap::new(), rm: vec![] });
            if let FlushPayload::Dir { set: whole, .. } = obj {
                for k in rm {
                    whole.remove(&k);
                }
                whole.extend(set);
            }
        }
        p => drop(store.insert(t.clone(), p)),
    }
}

/// Rebuilds a cache from the stored objects (base inodes, anchors, every fragment).
pub(crate) fn load_all(rank: Rank, store: &BTreeMap<FlushTarget, FlushPayload>) -> MdCache {
    let mut c = MdCache::new(rank);
    for p in store.values() {
        match p {
            FlushPayload::BaseInode(b) => drop(c.load_base(b).unwrap()),
            FlushPayload::Anchors(b) => c.load_anchors(b).unwrap(),
            _ => {}
        }
    }
    for (t, p) in store {
        if let (FlushTarget::Dir(d), FlushPayload::Dir { set: m, .. }) = (t, p) {
            c.load_dir(*d, m).unwrap();
        }
    }
    c
}

/// That storing every fragment in omap form and loading it back gives the same cache.
#[test]
fn omap_round_trip() {
    let mut fs = sample();
    let mut store = BTreeMap::new();
    flush_all(&mut fs.cache, &mut store);
    assert_eq!(fs.cache.oldest_dirty_segment(), None);
    let back = load_all(0, &store);
    assert_eq!(back.view(), fs.cache.view());
    let d = fs.lookup(ROOT_INO, "d").unwrap().ino;
    let e = fs.lookup(d, "e").unwrap().ino;
    let f = fs.lookup(d, "f").unwrap().ino;
    assert_eq!(back.parent_of(f), Some((d, "f")));
    assert_eq!(back.parent_of(e), Some((d, "e")));
    let om = fs.cache.dir_object_omap(e).unwrap();
    assert!(om.contains_key(FNODE_KEY) && om.contains_key("f2") && om.contains_key("g"));
    let mut bad = om.clone();
    bad.insert("g".into(), vec![0xc1]);
    assert!(MdCache::new(0).load_dir(e, &bad).is_err());
}

/// That trim evicts only clean, unpinned leaf fragments, never base or dirty ones.
#[test]
fn lru_keeps_dirty_pinned_and_parents() {
    let mut fs = sample();
    let d = fs.lookup(ROOT_INO, "d").unwrap().ino;
    let e = fs.lookup(d, "e").unwrap().ino;
    fs.cache.set_budget(0);
    assert!(fs.cache.trim().is_empty(), "everything is dirty");
    let mut store = BTreeMap::new();
    flush_all(&mut fs.cache, &mut store);
    fs.cache.pin(e);
    assert!(fs.cache.trim().is_empty(), "e is pinned and d is its parent");
    fs.cache.unpin(e);
    fs.mkdir(e, "new"); // e is dirty again
    let new = fs.lookup(e, "new").unwrap().ino;
    flush_all(&mut fs.cache, &mut store);
    fs.run(MdsOp::Create { parent: ROOT_INO, name: "r".into(), mode: 0o644, excl: true }).unwrap();
    assert_eq!(fs.cache.trim(), vec![new, e, d], "leaves first, oldest first; root stays");
    assert!(fs.cache.dir(ROOT_INO).is_some() && fs.cache.dir(fs.cache.mdsdir()).is_some());
    fs.cache.set_budget(DEFAULT_BUDGET);
}

/// That a flush at an older version leaves later changes dirty, per segment.
#[test]
fn segments_and_flush_versions() {
    let mut fs = Fs::new();
    fs.cache.set_segment(1);
    fs.mkdir(ROOT_INO, "a");
    let (_, v1) = fs.cache.flush_payload(&FlushTarget::Dir(ROOT_INO));
    fs.cache.set_segment(2);
    fs.mkdir(ROOT_INO, "b");
    assert!(fs.cache.dirty_dirs_for_segment(1).contains(&ROOT_INO));
    assert!(fs.cache.dirty_dirs_for_segment(2).contains(&ROOT_INO));
    fs.cache.mark_flushed(&FlushTarget::Dir(ROOT_INO), v1);
    assert!(!fs.cache.dirty_dirs_for_segment(1).contains(&ROOT_INO));
    assert!(fs.cache.dirty_dirs_for_segment(2).contains(&ROOT_INO));
    assert_eq!(fs.cache.oldest_dirty_segment(), Some(0), "create_fs dirtied segment 0");
}

/// That applying a blob twice changes nothing the second time.
#[test]
fn apply_is_idempotent() {
    let fs = sample();
    let mut c = fs.cache.clone();
    for b in &fs.blobs {
        c.apply(b);
    }
    assert_eq!(c.view(), fs.cache.view());
}

/// That loading a fragment into one partly rebuilt by replay keeps the newer dentries.
#[test]
fn load_dir_merges_under_replayed_dentries() {
    let fs = sample();
    let d = fs.cache.parent_of(fs.cache.dir(ROOT_INO).unwrap().dentries["d"].ino()).unwrap().0;
    assert_eq!(d, ROOT_INO);
    let dino = fs.cache.dir(ROOT_INO).unwrap().dentries["d"].ino();
    let mut omap = fs.cache.dir_object_omap(dino).unwrap();
    omap.remove("f");
    let mut c = MdCache::new(0);
    let f_linkage = fs.cache.dir(dino).unwrap().dentries["f"].clone();
    c.apply(&EMetaBlob {
        version: 99,
        dentries: vec![crate::roles::mds::events::DentryUpdate { dir: dino, name: "f".into(), linkage: Some(f_linkage.clone()) }],
        ..Default::default()
    });
    assert!(!c.dir(dino).unwrap().complete);
    c.load_dir(dino, &omap).unwrap();
    let frag = c.dir(dino).unwrap();
    assert!(frag.complete);
    assert_eq!(frag.dentries["f"], f_linkage);
    assert_eq!(frag.dentries.len(), fs.cache.dir(dino).unwrap().dentries.len());
}

/// That a directory's write-back carries only the entries changed since the last one
/// (removals as removals), that a change made while a write-back is in flight stays
/// dirty for the next, and that the object built from successive write-backs loads
/// back as the cache.
#[test]
fn dir_writeback_is_incremental() {
    let mut fs = sample();
    let mut store = BTreeMap::new();
    let d = fs.lookup(ROOT_INO, "d").unwrap().ino;
    fs.create(d, "x1");
    flush_all(&mut fs.cache, &mut store);
    assert!(fs.cache.dir(d).unwrap().dentries.len() >= 3);
    fs.create(d, "new");
    let gone = "x1".to_string();
    fs.run(MdsOp::Unlink { parent: d, name: gone.clone() }).unwrap();
    let t = FlushTarget::Dir(d);
    let (p, v) = fs.cache.flush_payload(&t);
    let FlushPayload::Dir { set, rm } = p.clone() else { panic!("a directory payload") };
    assert_eq!(set.keys().filter(|k| k.as_str() != FNODE_KEY).cloned().collect::<Vec<_>>(), vec!["new".to_string()]);
    assert!(set.contains_key(FNODE_KEY));
    assert_eq!(rm, vec![gone.clone()]);
    // A change after the payload was taken stays dirty once that payload is written.
    fs.create(d, "later");
    write_payload(&mut store, &t, p);
    fs.cache.mark_flushed(&t, v);
    let (p2, _) = fs.cache.flush_payload(&t);
    let FlushPayload::Dir { set, rm } = p2 else { panic!("a directory payload") };
    assert!(set.contains_key("later") && !set.contains_key("new") && rm.is_empty());
    flush_all(&mut fs.cache, &mut store);
    assert_eq!(fs.cache.dir(d).unwrap().dirty_names.len(), 0);
    let back = load_all(0, &store);
    assert_eq!(back.view(), fs.cache.view());
}
