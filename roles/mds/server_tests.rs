use super::*;
use crate::msg::mds::*;
use crate::roles::mds::cache::FlushPayload;
use crate::roles::mds::types::{mdsdir_ino, stray_name, FileLayout, FIRST_CLIENT_INO};
use serde_bytes::ByteBuf;

/// A file system in memory, driven through `handle` as the actor would.
pub(crate) struct Fs {
    pub cache: MdCache,
    pub it: InoTable,
    pub sess: SessionInfo,
    pub tid: u64,
    pub now: i64,
    pub blobs: Vec<EMetaBlob>,
}

pub(crate) fn user(uid: u32) -> Caller {
    Caller { uid, gid: uid, gids: vec![] }
}

impl Fs {
    pub fn new() -> Self {
        Fs {
            cache: MdCache::create_fs(0, 1000, FileLayout::default_for(2)),
            it: InoTable::new(0),
            sess: SessionInfo { client: "client.1".into(), root: ROOT_INO, ..Default::default() },
            tid: 0,
            now: 1000,
            blobs: Vec::new(),
        }
    }

    /// Runs one op; on error checks that nothing changed.
    pub fn try_as(&mut self, caller: &Caller, op: MdsOp) -> Result<Result<ReplyBody, Errno>, Need> {
        self.tid += 1;
        self.now += 10;
        let before = self.cache.view();
        let req = ClientRequest { tid: self.tid, op, caller: caller.clone(), oldest_tid: 0 };
        let out = handle(&mut self.cache, &mut self.it, &self.sess, &req, self.now)?;
        match &out.blob {
            Some(b) => self.blobs.push(b.clone()),
            None => assert_eq!(self.cache.view(), before, "a failed or read op changed the cache"),
        }
        if out.result.is_err() {
            assert!(out.blob.is_none());
        }
        Ok(out.result)
    }
    pub fn run_as(&mut self, caller: &Caller, op: MdsOp) -> Result<ReplyBody, Errno> {
        self.try_as(caller, op).expect("everything is in cache")
    }
    pub fn run(&mut self, op: MdsOp) -> Result<ReplyBody, Errno> {
        self.run_as(&Caller::root(), op)
    }
    pub fn stat_of(r: Result<ReplyBody, Errno>) -> InodeStat {
        match r {
            Ok(ReplyBody::Inode(s)) => s,
            other => panic!("expected an inode, got {other:?}"),
        }
    }
    pub fn mkdir(&mut self, parent: Ino, name: &str) -> Ino {
        Self::stat_of(self.run(MdsOp::Mkdir { parent, name: name.into(), mode: 0o755 })).ino
    }
    pub fn create(&mut self, parent: Ino, name: &str) -> Ino {
        Self::stat_of(self.run(MdsOp::Create { parent, name: name.into(), mode: 0o644, excl: true })).ino
    }
    pub fn lookup(&mut self, parent: Ino, name: &str) -> Result<InodeStat, Errno> {
        self.run(MdsOp::Lookup { parent, name: name.into() }).map(|r| Self::stat_of(Ok(r)))
    }
    pub fn stat(&mut self, ino: Ino) -> InodeStat {
        Self::stat_of(self.run(MdsOp::Getattr { ino }))
    }
    /// Purges the stray `ino` as the rank does once nobody holds it open.
    pub fn purge(&mut self, ino: Ino) -> Option<EMetaBlob> {
        self.now += 10;
        let b = purge_stray(&mut self.cache, &self.it, ino, self.now).expect("everything is in cache")?;
        self.blobs.push(b.clone());
        Some(b)
    }
    fn err(&mut self, op: MdsOp) -> Errno {
        self.run(op).unwrap_err()
    }
    fn err_as(&mut self, c: &Caller, op: MdsOp) -> Errno {
        self.run_as(c, op).unwrap_err()
    }
}

fn n(s: &str) -> String {
    s.to_string()
}

/// That create makes a file found by lookup, and create's errors follow Linux.
#[test]
fn create_and_lookup() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT_INO, "f");
    assert_eq!(f, FIRST_CLIENT_INO);
    let s = fs.lookup(ROOT_INO, "f").unwrap();
    assert_eq!((s.ino, s.mode, s.nlink, s.uid), (f, S_IFREG | 0o644, 1, 0));
    let t = fs.now - 10; // the create ran before the lookup
    assert_eq!(fs.stat(ROOT_INO).mtime, t);
    assert!(!fs.it.is_free(f));
    assert_eq!(fs.err(MdsOp::Create { parent: ROOT_INO, name: n("f"), mode: 0o644, excl: true }), Errno::EEXIST);
    let again = Fs::stat_of(fs.run(MdsOp::Create { parent: ROOT_INO, name: n("f"), mode: 0o600, excl: false }));
    assert_eq!(again.ino, f);
    fs.mkdir(ROOT_INO, "d");
    assert_eq!(fs.err(MdsOp::Create { parent: ROOT_INO, name: n("d"), mode: 0, excl: false }), Errno::EISDIR);
    assert_eq!(fs.err(MdsOp::Create { parent: ROOT_INO, name: n("."), mode: 0, excl: false }), Errno::EISDIR);
    assert_eq!(fs.err(MdsOp::Create { parent: ROOT_INO, name: n(".."), mode: 0, excl: true }), Errno::EEXIST);
    assert_eq!(fs.err(MdsOp::Create { parent: f, name: n("x"), mode: 0, excl: true }), Errno::ENOTDIR);
    assert_eq!(fs.err(MdsOp::Create { parent: ROOT_INO, name: "x".repeat(256), mode: 0, excl: true }), Errno::ENAMETOOLONG);
    assert_eq!(fs.err(MdsOp::Create { parent: ROOT_INO, name: n("a/b"), mode: 0, excl: true }), Errno::EINVAL);
    assert_eq!(fs.lookup(ROOT_INO, "nope"), Err(Errno::ENOENT));
    assert_eq!(fs.lookup(f, "x"), Err(Errno::ENOTDIR));
    assert_eq!(fs.lookup(ROOT_INO, ".").unwrap().ino, ROOT_INO);
    assert_eq!(fs.lookup(ROOT_INO, "..").unwrap().ino, ROOT_INO);
    assert_eq!(fs.try_as(&Caller::root(), MdsOp::Getattr { ino: 0xdead }), Err(Need::Inode(0xdead)));
}

/// That mkdir and rmdir keep directory link counts (2 + subdirectories) and fail
/// like Linux on existing, non-empty, non-directory and dot names.
#[test]
fn mkdir_rmdir() {
    let mut fs = Fs::new();
    let a = fs.mkdir(ROOT_INO, "a");
    let b = fs.mkdir(a, "b");
    assert_eq!((fs.stat(ROOT_INO).nlink, fs.stat(a).nlink, fs.stat(b).nlink), (3, 3, 2));
    assert_eq!(fs.stat(b).mode, S_IFDIR | 0o755);
    assert_eq!(fs.err(MdsOp::Mkdir { parent: ROOT_INO, name: n("a"), mode: 0o755 }), Errno::EEXIST);
    assert_eq!(fs.err(MdsOp::Mkdir { parent: a, name: n("."), mode: 0o755 }), Errno::EEXIST);
    assert_eq!(fs.err(MdsOp::Rmdir { parent: ROOT_INO, name: n("a") }), Errno::ENOTEMPTY);
    fs.create(a, "f");
    assert_eq!(fs.err(MdsOp::Rmdir { parent: a, name: n("f") }), Errno::ENOTDIR);
    assert_eq!(fs.err(MdsOp::Rmdir { parent: a, name: n("zz") }), Errno::ENOENT);
    assert_eq!(fs.err(MdsOp::Rmdir { parent: a, name: n(".") }), Errno::EINVAL);
    assert_eq!(fs.err(MdsOp::Rmdir { parent: a, name: n("..") }), Errno::ENOTEMPTY);
    fs.run(MdsOp::Rmdir { parent: a, name: n("b") }).unwrap();
    assert_eq!(fs.stat(a).nlink, 2);
    assert!(fs.cache.dir(b).is_none());
    assert_eq!(fs.blobs.last().unwrap().removed_dirs, vec![b]);
    assert_eq!(fs.lookup(a, "b"), Err(Errno::ENOENT));
}

/// That unlink removes a file's name, moving the inode to the stray dir (nlink 0,
/// still readable by number) until it is purged, and refuses dirs.
#[test]
fn unlink_purges() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT_INO, "f");
    fs.run(MdsOp::SetSize { ino: f, size: 9 << 20, mtime: 5 }).unwrap();
    fs.mkdir(ROOT_INO, "d");
    assert_eq!(fs.err(MdsOp::Unlink { parent: ROOT_INO, name: n("d") }), Errno::EISDIR);
    assert_eq!(fs.err(MdsOp::Unlink { parent: ROOT_INO, name: n(".") }), Errno::EISDIR);
    assert_eq!(fs.err(MdsOp::Unlink { parent: ROOT_INO, name: n("g") }), Errno::ENOENT);
    fs.run(MdsOp::Unlink { parent: ROOT_INO, name: n("f") }).unwrap();
    assert!(fs.blobs.last().unwrap().purge.is_empty(), "nothing is purged while the stray may be open");
    assert_eq!(fs.lookup(ROOT_INO, "f"), Err(Errno::ENOENT));
    let st = fs.stat(f);
    assert_eq!((st.nlink, st.size), (0, 9 << 20));
    let b = fs.purge(f).expect("an unlinked stray");
    assert_eq!(b.purge.len(), 1);
    assert_eq!((b.purge[0].ino, b.purge[0].size), (f, 9 << 20));
    assert!(fs.cache.inode(f).is_none());
    assert!(!fs.it.is_free(f), "the inode number is not handed out again");
    assert!(fs.purge(f).is_none(), "purged once");
}

/// That an unlinked inode stays usable through its number (getattr, setattr, size
/// flush) while in the stray dir, that a rename over a file makes the old target a
/// stray too, that only unlinked strays are purged, and that replaying the blobs
/// gives the live state.
#[test]
fn open_unlinked_stays_until_purged() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT_INO, "f");
    let g = fs.create(ROOT_INO, "g");
    fs.run(MdsOp::Unlink { parent: ROOT_INO, name: n("f") }).unwrap();
    fs.run(MdsOp::SetSize { ino: f, size: 100, mtime: 7 }).unwrap();
    let set = SetAttr { mode: Some(0o600), ..Default::default() };
    fs.run(MdsOp::Setattr { ino: f, set }).unwrap();
    let st = fs.stat(f);
    assert_eq!((st.nlink, st.size, st.mode & 0o777), (0, 100, 0o600));
    let md = mdsdir_ino(0);
    assert_eq!(fs.cache.parent_of(f), Some((md, stray_name(f).as_str())));
    let h = fs.create(ROOT_INO, "h");
    fs.run(MdsOp::Rename { src_parent: ROOT_INO, src_name: n("h"), dst_parent: ROOT_INO, dst_name: n("g") }).unwrap();
    assert_eq!(fs.stat(g).nlink, 0, "the replaced target is a stray");
    assert_eq!(fs.lookup(ROOT_INO, "g").unwrap().ino, h);
    assert!(fs.purge(h).is_none(), "a linked inode is not purged");
    let mut strays: Vec<Ino> = fs.cache.dir(md).unwrap().dentries.values().map(|l| l.ino()).collect();
    strays.sort();
    assert_eq!(strays, vec![f, g]);
    assert!(fs.purge(f).is_some() && fs.purge(g).is_some());
    assert!(fs.cache.dir(md).unwrap().dentries.is_empty());
    let mut replayed = MdCache::create_fs(0, 1000, FileLayout::default_for(2));
    for b in &fs.blobs {
        replayed.apply(b);
    }
    assert_eq!(replayed.view(), fs.cache.view());
}

/// That symlinks keep their target and readlink refuses other types.
#[test]
fn symlink_readlink() {
    let mut fs = Fs::new();
    let s = Fs::stat_of(fs.run(MdsOp::Symlink { parent: ROOT_INO, name: n("l"), target: n("a/b") }));
    assert_eq!((s.mode, s.size, s.symlink.as_deref()), (S_IFLNK | 0o777, 3, Some("a/b")));
    assert_eq!(fs.run(MdsOp::Readlink { ino: s.ino }), Ok(ReplyBody::Readlink(n("a/b"))));
    let f = fs.create(ROOT_INO, "f");
    assert_eq!(fs.err(MdsOp::Readlink { ino: f }), Errno::EINVAL);
    assert_eq!(fs.err(MdsOp::Symlink { parent: ROOT_INO, name: n("e"), target: n("") }), Errno::ENOENT);
    assert_eq!(fs.err(MdsOp::Symlink { parent: ROOT_INO, name: n("l"), target: n("x") }), Errno::EEXIST);
}

/// That mknod makes fifos for all, devices for root only, and no directories.
#[test]
fn mknod_types() {
    let mut fs = Fs::new();
    fs.run(MdsOp::Setattr { ino: ROOT_INO, set: SetAttr { mode: Some(0o777), ..Default::default() } }).unwrap();
    let u = user(1000);
    let p = Fs::stat_of(fs.run_as(&u, MdsOp::Mknod { parent: ROOT_INO, name: n("p"), mode: S_IFIFO | 0o600, rdev: 0 }));
    assert_eq!(p.mode, S_IFIFO | 0o600);
    assert_eq!(fs.err_as(&u, MdsOp::Mknod { parent: ROOT_INO, name: n("c"), mode: S_IFCHR | 0o600, rdev: 5 }), Errno::EPERM);
    let c = Fs::stat_of(fs.run(MdsOp::Mknod { parent: ROOT_INO, name: n("c"), mode: S_IFCHR | 0o600, rdev: 5 }));
    assert_eq!(c.rdev, 5);
    assert_eq!(fs.err(MdsOp::Mknod { parent: ROOT_INO, name: n("d"), mode: S_IFDIR | 0o700, rdev: 0 }), Errno::EINVAL);
    let r = Fs::stat_of(fs.run(MdsOp::Mknod { parent: ROOT_INO, name: n("r"), mode: 0o600, rdev: 0 }));
    assert_eq!(r.mode, S_IFREG | 0o600);
}

/// That a hard link shares the inode, survives removal of the first name (the inode
/// moves to the stray dir, anchored), and the last unlink destroys and purges it.
#[test]
fn hard_links_and_strays() {
    let mut fs = Fs::new();
    let d = fs.mkdir(ROOT_INO, "d");
    let f = fs.create(ROOT_INO, "f");
    let s = Fs::stat_of(fs.run(MdsOp::Link { ino: f, new_parent: d, new_name: n("g") }));
    assert_eq!(s.nlink, 2);
    assert_eq!(fs.cache.anchor(f), Some((ROOT_INO, "f")));
    assert_eq!(fs.lookup(d, "g").unwrap().ino, f);
    assert_eq!(fs.err(MdsOp::Link { ino: f, new_parent: d, new_name: n("g") }), Errno::EEXIST);
    assert_eq!(fs.err(MdsOp::Link { ino: d, new_parent: ROOT_INO, new_name: n("d2") }), Errno::EPERM);
    fs.run(MdsOp::Unlink { parent: ROOT_INO, name: n("f") }).unwrap();
    let md = mdsdir_ino(0);
    assert_eq!(fs.cache.anchor(f), Some((md, stray_name(f).as_str())));
    assert_eq!(fs.cache.parent_of(f), Some((md, stray_name(f).as_str())));
    assert!(fs.blobs.last().unwrap().purge.is_empty());
    let g = fs.lookup(d, "g").unwrap();
    assert_eq!((g.ino, g.nlink), (f, 1));
    assert_eq!(fs.stat(f).nlink, 1);
    // A second link to a stray inode, then both go.
    fs.run(MdsOp::Link { ino: f, new_parent: ROOT_INO, new_name: n("h") }).unwrap();
    fs.run(MdsOp::Unlink { parent: d, name: n("g") }).unwrap();
    assert_eq!(fs.stat(f).nlink, 1);
    fs.run(MdsOp::Unlink { parent: ROOT_INO, name: n("h") }).unwrap();
    assert!(fs.cache.anchor(f).is_none());
    assert_eq!(fs.stat(f).nlink, 0, "unlinked: a stray until purged");
    assert_eq!(fs.purge(f).map(|b| b.purge.len()), Some(1));
    assert!(fs.cache.dir(md).unwrap().dentries.is_empty());
    assert!(fs.cache.inode(f).is_none());
}

/// That removing the remote name first leaves the primary and drops the anchor.
#[test]
fn unlink_remote_first() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT_INO, "f");
    fs.run(MdsOp::Link { ino: f, new_parent: ROOT_INO, new_name: n("g") }).unwrap();
    fs.run(MdsOp::Unlink { parent: ROOT_INO, name: n("g") }).unwrap();
    assert_eq!(fs.stat(f).nlink, 1);
    assert!(fs.cache.anchor(f).is_none());
    assert_eq!(fs.lookup(ROOT_INO, "f").unwrap().ino, f);
}

/// That rename moves, replaces and refuses like Linux.
#[test]
fn rename_rules() {
    let mut fs = Fs::new();
    let a = fs.mkdir(ROOT_INO, "a");
    let b = fs.mkdir(ROOT_INO, "b");
    let sub = fs.mkdir(a, "sub");
    let f = fs.create(ROOT_INO, "f");
    let g = fs.create(ROOT_INO, "g");
    let rn = |sp, sn: &str, dp, dn: &str| MdsOp::Rename { src_parent: sp, src_name: n(sn), dst_parent: dp, dst_name: n(dn) };
    assert_eq!(fs.err(rn(ROOT_INO, "zz", ROOT_INO, "y")), Errno::ENOENT);
    assert_eq!(fs.err(rn(ROOT_INO, "f", ROOT_INO, "a")), Errno::EISDIR);
    assert_eq!(fs.err(rn(ROOT_INO, "a", ROOT_INO, "f")), Errno::ENOTDIR);
    assert_eq!(fs.err(rn(ROOT_INO, "a", sub, "x")), Errno::EINVAL);
    assert_eq!(fs.err(rn(ROOT_INO, "a", a, "x")), Errno::EINVAL);
    assert_eq!(fs.err(rn(ROOT_INO, "b", ROOT_INO, "a")), Errno::ENOTEMPTY);
    assert_eq!(fs.err(rn(ROOT_INO, ".", ROOT_INO, "y")), Errno::EINVAL);
    // file over file: the old target becomes a stray, then is purged.
    fs.run(rn(ROOT_INO, "f", ROOT_INO, "g")).unwrap();
    assert_eq!(fs.purge(g).map(|b| b.purge.iter().map(|p| p.ino).collect::<Vec<_>>()), Some(vec![g]));
    assert_eq!(fs.lookup(ROOT_INO, "g").unwrap().ino, f);
    assert_eq!(fs.lookup(ROOT_INO, "f"), Err(Errno::ENOENT));
    // directory across parents: link counts move.
    fs.run(rn(a, "sub", b, "sub2")).unwrap();
    assert_eq!((fs.stat(a).nlink, fs.stat(b).nlink), (2, 3));
    assert_eq!(fs.cache.parent_of(sub), Some((b, "sub2")));
    // empty dir over empty dir in the same parent.
    fs.run(rn(ROOT_INO, "a", ROOT_INO, "b")).unwrap_err();
    fs.run(rn(b, "sub2", ROOT_INO, "a")).unwrap();
    assert!(fs.cache.dir(a).is_none());
    assert_eq!(fs.stat(ROOT_INO).nlink, 4);
    assert_eq!(fs.lookup(ROOT_INO, "a").unwrap().ino, sub);
    // two names of one inode: nothing happens.
    fs.run(MdsOp::Link { ino: f, new_parent: b, new_name: n("h") }).unwrap();
    let v = fs.cache.version();
    assert_eq!(fs.run(rn(ROOT_INO, "g", b, "h")), Ok(ReplyBody::Empty));
    assert_eq!(fs.cache.version(), v);
    // moving a hard-linked primary moves its anchor.
    fs.run(rn(ROOT_INO, "g", b, "k")).unwrap();
    assert_eq!(fs.cache.anchor(f), Some((b, "k")));
    assert_eq!(fs.lookup(b, "h").unwrap().ino, f);
}

/// That mode bits, groups, search permission and the sticky bit are enforced.
#[test]
fn permissions() {
    let mut fs = Fs::new();
    let (u, v) = (user(1000), user(1001));
    assert_eq!(fs.err_as(&u, MdsOp::Create { parent: ROOT_INO, name: n("x"), mode: 0o644, excl: true }), Errno::EACCES);
    let tmp = fs.mkdir(ROOT_INO, "tmp");
    fs.run(MdsOp::Setattr { ino: tmp, set: SetAttr { mode: Some(0o1777), ..Default::default() } }).unwrap();
    let uf = Fs::stat_of(fs.run_as(&u, MdsOp::Create { parent: tmp, name: n("uf"), mode: 0o600, excl: true }));
    assert_eq!((uf.uid, uf.gid), (1000, 1000));
    assert_eq!(fs.err_as(&v, MdsOp::Unlink { parent: tmp, name: n("uf") }), Errno::EPERM);
    assert_eq!(fs.err_as(&v, MdsOp::Rename { src_parent: tmp, src_name: n("uf"), dst_parent: tmp, dst_name: n("z") }), Errno::EPERM);
    assert_eq!(fs.err_as(&v, MdsOp::Open { ino: uf.ino, flags: 0 }), Errno::EACCES);
    fs.run_as(&u, MdsOp::Unlink { parent: tmp, name: n("uf") }).unwrap();
    // search permission on every directory above.
    let priv_ = fs.mkdir(ROOT_INO, "priv");
    let inner = fs.mkdir(priv_, "inner");
    fs.run(MdsOp::Setattr { ino: inner, set: SetAttr { mode: Some(0o777), ..Default::default() } }).unwrap();
    fs.run(MdsOp::Setattr { ino: priv_, set: SetAttr { mode: Some(0o700), ..Default::default() } }).unwrap();
    assert_eq!(fs.err_as(&u, MdsOp::Lookup { parent: inner, name: n("x") }), Errno::EACCES);
    assert_eq!(fs.err_as(&u, MdsOp::Mkdir { parent: inner, name: n("x"), mode: 0o755 }), Errno::EACCES);
    // group access through a supplementary group.
    fs.run(MdsOp::Setattr { ino: priv_, set: SetAttr { mode: Some(0o770), gid: Some(50), ..Default::default() } }).unwrap();
    let ug = Caller { uid: 1000, gid: 1000, gids: vec![50] };
    fs.run_as(&ug, MdsOp::Mkdir { parent: inner, name: n("x"), mode: 0o755 }).unwrap();
    // EEXIST comes before EACCES, as in Linux.
    assert_eq!(fs.err_as(&v, MdsOp::Mkdir { parent: ROOT_INO, name: n("tmp"), mode: 0o755 }), Errno::EEXIST);
}

/// That setattr enforces ownership rules, truncates, and moves ctime.
#[test]
fn setattr_rules() {
    let mut fs = Fs::new();
    fs.run(MdsOp::Setattr { ino: ROOT_INO, set: SetAttr { mode: Some(0o777), ..Default::default() } }).unwrap();
    let u = Caller { uid: 1000, gid: 1000, gids: vec![7] };
    let f = Fs::stat_of(fs.run_as(&u, MdsOp::Create { parent: ROOT_INO, name: n("f"), mode: 0o644, excl: true })).ino;
    let set = |s: SetAttr| MdsOp::Setattr { ino: f, set: s };
    assert_eq!(fs.err_as(&user(2), set(SetAttr { mode: Some(0o600), ..Default::default() })), Errno::EPERM);
    assert_eq!(fs.err_as(&u, set(SetAttr { uid: Some(5), ..Default::default() })), Errno::EPERM);
    assert_eq!(fs.err_as(&u, set(SetAttr { gid: Some(8), ..Default::default() })), Errno::EPERM);
    assert_eq!(fs.err_as(&user(2), set(SetAttr { mtime: Some(1), ..Default::default() })), Errno::EPERM);
    assert_eq!(fs.err_as(&user(2), set(SetAttr { size: Some(1), ..Default::default() })), Errno::EACCES);
    let s = Fs::stat_of(fs.run_as(&u, set(SetAttr { gid: Some(7), mode: Some(0o2755), ..Default::default() })));
    assert_eq!((s.gid, s.mode, s.ctime), (7, S_IFREG | 0o2755, fs.now));
    let s = Fs::stat_of(fs.run(set(SetAttr { uid: Some(3), ..Default::default() })));
    assert_eq!((s.uid, s.mode), (3, S_IFREG | 0o755), "chown clears set-id bits");
    fs.run(set(SetAttr { size: Some(100), ..Default::default() })).unwrap();
    assert!(fs.blobs.last().unwrap().truncate.is_empty());
    let s = Fs::stat_of(fs.run(set(SetAttr { size: Some(10), atime: Some(3), mtime: Some(4), ..Default::default() })));
    assert_eq!((s.size, s.atime, s.mtime), (10, 3, 4));
    let t = fs.blobs.last().unwrap().truncate[0];
    assert_eq!((t.old_size, t.new_size), (100, 10));
    assert_eq!(fs.err(MdsOp::Setattr { ino: ROOT_INO, set: SetAttr { size: Some(0), ..Default::default() } }), Errno::EISDIR);
}

/// That open checks access, refuses writing directories, and O_TRUNC truncates.
#[test]
fn open_and_setsize() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT_INO, "f");
    assert_eq!(fs.err(MdsOp::Open { ino: ROOT_INO, flags: O_WRONLY }), Errno::EISDIR);
    assert!(fs.run(MdsOp::Open { ino: ROOT_INO, flags: 0 }).is_ok());
    assert_eq!(fs.err_as(&user(5), MdsOp::Open { ino: f, flags: O_RDWR }), Errno::EACCES);
    fs.run(MdsOp::SetSize { ino: f, size: 50, mtime: 7000 }).unwrap();
    fs.run(MdsOp::SetSize { ino: f, size: 20, mtime: 10 }).unwrap();
    let s = fs.stat(f);
    assert_eq!((s.size, s.mtime), (50, 7000), "a flush never shrinks nor goes back in time");
    let s = Fs::stat_of(fs.run(MdsOp::Open { ino: f, flags: O_WRONLY | O_TRUNC }));
    assert_eq!(s.size, 0);
    assert_eq!(fs.blobs.last().unwrap().truncate[0].old_size, 50);
    assert_eq!(fs.err(MdsOp::SetSize { ino: ROOT_INO, size: 1, mtime: 1 }), Errno::EISDIR);
    // Past max_file_size (1 TiB by default, like Ceph's), a size is refused.
    let max = fs.cache.max_file_size;
    assert_eq!(max, 1 << 40);
    assert_eq!(fs.err(MdsOp::SetSize { ino: f, size: max + 1, mtime: 8000 }), Errno::EFBIG);
    assert_eq!(fs.err(MdsOp::Setattr { ino: f, set: SetAttr { size: Some(max + 1), ..Default::default() } }), Errno::EFBIG);
    fs.run(MdsOp::Setattr { ino: f, set: SetAttr { size: Some(max), ..Default::default() } }).unwrap();
    fs.cache.max_file_size = 1 << 20;
    assert_eq!(fs.err(MdsOp::SetSize { ino: f, size: (1 << 20) + 1, mtime: 9000 }), Errno::EFBIG);
}

/// That readdir pages in name order after the cookie and flags the end.
#[test]
fn readdir_pages() {
    let mut fs = Fs::new();
    let d = fs.mkdir(ROOT_INO, "d");
    for name in ["c", "a", "e", "b", "d"] {
        fs.create(d, name);
    }
    let page = |fs: &mut Fs, cookie: Option<&str>| match fs.run(MdsOp::Readdir { ino: d, cookie: cookie.map(n), max: 2 }) {
        Ok(ReplyBody::Dir { entries, end }) => (entries.into_iter().map(|e| e.name).collect::<Vec<_>>(), end),
        other => panic!("{other:?}"),
    };
    assert_eq!(page(&mut fs, None), (vec![n("a"), n("b")], false));
    assert_eq!(page(&mut fs, Some("b")), (vec![n("c"), n("d")], false));
    assert_eq!(page(&mut fs, Some("d")), (vec![n("e")], true));
    assert_eq!(page(&mut fs, Some("bb")), (vec![n("c"), n("d")], false));
    let f = fs.lookup(d, "a").unwrap().ino;
    assert_eq!(fs.err(MdsOp::Readdir { ino: f, cookie: None, max: 0 }), Errno::ENOTDIR);
    fs.run(MdsOp::Setattr { ino: d, set: SetAttr { mode: Some(0o711), ..Default::default() } }).unwrap();
    assert_eq!(fs.err_as(&user(9), MdsOp::Readdir { ino: d, cookie: None, max: 0 }), Errno::EACCES);
}

/// That xattr flags, namespaces and missing names give Linux's errors.
#[test]
fn xattrs() {
    let mut fs = Fs::new();
    let f = fs.create(ROOT_INO, "f");
    let v = |b: &[u8]| ByteBuf::from(b.to_vec());
    let set = |name: &str, val: &[u8], flags| MdsOp::Setxattr { ino: f, name: n(name), value: v(val), flags };
    assert_eq!(fs.err(set("user.a", b"1", XATTR_REPLACE)), Errno::ENODATA);
    fs.run(set("user.a", b"1", XATTR_CREATE)).unwrap();
    assert_eq!(fs.err(set("user.a", b"2", XATTR_CREATE)), Errno::EEXIST);
    fs.run(set("user.a", b"2", XATTR_REPLACE)).unwrap();
    fs.run(set("trusted.t", b"x", 0)).unwrap();
    assert_eq!(fs.err(set("bogus.a", b"1", 0)), Errno::ENOTSUP);
    assert_eq!(fs.err(set("user.a", b"1", 3)), Errno::EINVAL);
    assert_eq!(fs.err(set("user.big", &vec![0; 70000], 0)), Errno::ERANGE);
    assert_eq!(fs.run(MdsOp::Getxattr { ino: f, name: n("user.a") }), Ok(ReplyBody::Xattr(v(b"2"))));
    assert_eq!(fs.err(MdsOp::Getxattr { ino: f, name: n("user.zz") }), Errno::ENODATA);
    assert_eq!(fs.run(MdsOp::Listxattr { ino: f }), Ok(ReplyBody::XattrNames(vec![n("trusted.t"), n("user.a")])));
    assert_eq!(fs.run_as(&user(5), MdsOp::Listxattr { ino: f }), Ok(ReplyBody::XattrNames(vec![n("user.a")])));
    // A client caching under Xs gets them all and applies the rules itself.
    let all: std::collections::BTreeMap<String, ByteBuf> = [(n("trusted.t"), v(b"x")), (n("user.a"), v(b"2"))].into();
    assert_eq!(fs.run_as(&user(5), MdsOp::Getxattrs { ino: f }), Ok(ReplyBody::Xattrs(all)));
    assert_eq!(fs.err_as(&user(5), set("user.b", b"1", 0)), Errno::EACCES);
    assert_eq!(fs.err_as(&user(5), set("trusted.b", b"1", 0)), Errno::EPERM);
    fs.run(MdsOp::Removexattr { ino: f, name: n("user.a") }).unwrap();
    let t = fs.now;
    assert_eq!(fs.stat(f).ctime, t);
    assert_eq!(fs.err(MdsOp::Removexattr { ino: f, name: n("user.a") }), Errno::ENODATA);
    // Names and values together stay within XATTR_PAIRS_MAX (ENOSPC past it); a
    // replacement that does not grow them, and removals, still work past it.
    fs.run(set("user.big", &vec![1; 40000], 0)).unwrap();
    assert_eq!(fs.err(set("user.big2", &vec![2; 30000], 0)), Errno::ENOSPC);
    fs.run(set("user.big2", &vec![2; 20000], 0)).unwrap();
    fs.run(set("user.big", &vec![3; 40000], XATTR_REPLACE)).unwrap();
    fs.run(MdsOp::Removexattr { ino: f, name: n("user.big") }).unwrap();
    fs.run(set("user.big3", &vec![4; 40000], 0)).unwrap();
}

/// That a session confined to a sub-directory cannot climb out of it.
#[test]
fn session_root_confinement() {
    let mut fs = Fs::new();
    let home = fs.mkdir(ROOT_INO, "home");
    let f = fs.create(ROOT_INO, "outside");
    let inner = fs.mkdir(home, "in");
    fs.sess.root = home;
    assert_eq!(fs.lookup(home, "..").unwrap().ino, home);
    assert_eq!(fs.lookup(inner, "..").unwrap().ino, home);
    assert_eq!(fs.err(MdsOp::Getattr { ino: f }), Errno::EPERM);
    assert_eq!(fs.err(MdsOp::Lookup { parent: ROOT_INO, name: n("outside") }), Errno::EPERM);
    assert_eq!(fs.err(MdsOp::Getattr { ino: mdsdir_ino(0) }), Errno::EPERM);
    assert_eq!(fs.err(MdsOp::Rename { src_parent: home, src_name: n("in"), dst_parent: ROOT_INO, dst_name: n("x") }), Errno::EPERM);
    assert_eq!(resolve_path(&fs.cache, ROOT_INO, "/home/in/../in"), Ok(Ok(inner)));
    assert_eq!(resolve_path(&fs.cache, ROOT_INO, "/home/nope"), Ok(Err(Errno::ENOENT)));
    fs.sess.root = inner;
    assert_eq!(fs.err(MdsOp::Rmdir { parent: home, name: n("in") }), Errno::EPERM);
}

/// That missing fragments are asked for with Need, and the op succeeds once loaded.
#[test]
fn need_dir_then_retry() {
    let mut fs = Fs::new();
    let d = fs.mkdir(ROOT_INO, "d");
    let f = fs.create(d, "f");
    let g = fs.create(ROOT_INO, "g");
    fs.run(MdsOp::Link { ino: g, new_parent: d, new_name: n("g2") }).unwrap();
    let saved = fs.cache.dir_object_omap(d).unwrap();
    // Flush everything and shrink the budget to nothing: d's fragment goes.
    for seg in 0..=fs.cache.segment() {
        for t in fs.cache.dirty_for_segment(seg) {
            let (_, v) = fs.cache.flush_payload(&t);
            fs.cache.mark_flushed(&t, v);
        }
    }
    fs.cache.set_budget(0);
    assert_eq!(fs.cache.trim(), vec![d]);
    assert_eq!(fs.try_as(&Caller::root(), MdsOp::Lookup { parent: d, name: n("f") }), Err(Need::Dir(d)));
    assert_eq!(fs.try_as(&Caller::root(), MdsOp::Getattr { ino: f }), Err(Need::Inode(f)));
    fs.cache.load_dir(d, &saved).unwrap();
    assert_eq!(fs.lookup(d, "f").unwrap().ino, f);
    assert_eq!(fs.lookup(d, "g2").unwrap().ino, g);
    assert!(matches!(fs.cache.flush_payload(&crate::roles::mds::cache::FlushTarget::Dir(d)).0, FlushPayload::Dir { .. }));
}

/// That statfs counts handed-out inode numbers.
#[test]
fn statfs_counts() {
    let mut fs = Fs::new();
    fs.create(ROOT_INO, "a");
    fs.mkdir(ROOT_INO, "b");
    match fs.run(MdsOp::Statfs) {
        Ok(ReplyBody::Statfs(s)) => assert_eq!((s.files, s.namemax), (2, 255)),
        other => panic!("{other:?}"),
    }
}

/// That creates use the session's preallocated inode numbers first.
#[test]
fn prealloc_inos_first() {
    let mut fs = Fs::new();
    fs.sess.next_prealloc = Some(FIRST_CLIENT_INO + 500);
    assert_eq!(fs.create(ROOT_INO, "a"), FIRST_CLIENT_INO + 500);
    let a = fs.blobs.last().unwrap().ino_alloc.unwrap();
    assert_eq!(a.from, InoSource::Prealloc);
    assert_eq!(fs.it.allocated, 0);
}

/// That an async create (and mkdir) uses exactly the inode number the client chose
/// (delegated to its session), is exclusive (EEXIST, nothing consumed), and that a
/// number not delegated is refused; the session map then forgets the used numbers.
#[test]
fn async_create_uses_the_delegated_ino() {
    use crate::roles::mds::events::SessionEvent;
    use crate::roles::mds::sessionmap::SessionMap;
    let mut fs = Fs::new();
    let mut map = SessionMap::default();
    map.apply_event(&SessionEvent::Open { client: "client.1".into(), root: ROOT_INO, prealloc: Some((FIRST_CLIENT_INO + 900, 2)), addr: None });
    let d = FIRST_CLIENT_INO + 100;
    map.apply_event(&SessionEvent::Delegate { client: "client.1".into(), start: d, len: 2 });
    let s = map.get("client.1").unwrap();
    assert_eq!(s.delegated_ranges(), vec![(d, 2)]);
    let op = |name: &str, ino| MdsOp::CreateIno { parent: ROOT_INO, name: n(name), mode: S_IFREG | 0o600, ino, stamp: 5 };
    assert_eq!(s.info_for(&op("x", d + 5)), Err(Errno::EINVAL), "not delegated");
    fs.sess = s.info_for(&op("a", d)).unwrap();
    let st = Fs::stat_of(fs.run(op("a", d)));
    assert_eq!((st.ino, st.mode), (d, S_IFREG | 0o600));
    assert_eq!((st.ctime, st.mtime, st.atime), (5, 5, 5), "the client's times, which it already showed");
    let blob = fs.blobs.last().unwrap().clone();
    assert_eq!(blob.ino_alloc.unwrap().from, InoSource::Delegated);
    map.apply_blob(&blob);
    assert_eq!(map.get("client.1").unwrap().delegated_ranges(), vec![(d + 1, 1)]);
    assert_eq!(map.get("client.1").unwrap().info().next_prealloc, Some(FIRST_CLIENT_INO + 900), "prealloc untouched");
    fs.sess = map.get("client.1").unwrap().info_for(&op("a", d + 1)).unwrap();
    assert_eq!(fs.err(op("a", d + 1)), Errno::EEXIST);
    fs.sess.delegated = None;
    assert_eq!(fs.err(op("b", d + 1)), Errno::EINVAL, "the handler checks too");
    let mk = MdsOp::MkdirIno { parent: ROOT_INO, name: n("sub"), mode: 0o750, ino: d + 1, stamp: 5 };
    fs.sess = map.get("client.1").unwrap().info_for(&mk).unwrap();
    let sd = Fs::stat_of(fs.run(mk));
    assert_eq!((sd.ino, sd.mode, sd.nlink), (d + 1, S_IFDIR | 0o750, 2), "an async mkdir uses its number too");
    map.apply_blob(fs.blobs.last().unwrap());
    assert_eq!(fs.it.allocated, 0, "delegated numbers never come from the table here");
    let back = map.apply_event(&SessionEvent::Close { client: "client.1".into() });
    assert!(!back.contains(&(d + 1)) && back.contains(&(FIRST_CLIENT_INO + 900)), "{back:?}");
}

/// That a re-sent request that already completed is answered from the metadata: a
/// creating op by a lookup of what it made, others by nothing or a getattr.
#[test]
fn completed_requests_answer_from_metadata() {
    let look = |p, n: &str| Some(MdsOp::Lookup { parent: p, name: n.into() });
    assert_eq!(completed_answer(&MdsOp::Create { parent: 1, name: n("f"), mode: 0, excl: true }), look(1, "f"));
    assert_eq!(completed_answer(&MdsOp::CreateIno { parent: 1, name: n("f"), mode: 0, ino: 9, stamp: 0 }), look(1, "f"));
    assert_eq!(completed_answer(&MdsOp::Mkdir { parent: 2, name: n("d"), mode: 0 }), look(2, "d"));
    assert_eq!(completed_answer(&MdsOp::Link { ino: 5, new_parent: 3, new_name: n("l") }), look(3, "l"));
    assert_eq!(completed_answer(&MdsOp::SetSize { ino: 5, size: 1, mtime: 1 }), Some(MdsOp::Getattr { ino: 5 }));
    assert_eq!(completed_answer(&MdsOp::Unlink { parent: 1, name: n("f") }), None);
}

/// That setting times to "now" needs ownership or write permission (EACCES without),
/// while setting given times stays the owner's (EPERM).
#[test]
fn setattr_times_now() {
    let mut fs = Fs::new();
    fs.run(MdsOp::Setattr { ino: ROOT_INO, set: SetAttr { mode: Some(0o777), ..Default::default() } }).unwrap();
    let owner = user(1);
    let f = Fs::stat_of(fs.run_as(&owner, MdsOp::Create { parent: ROOT_INO, name: n("f"), mode: 0o644, excl: true })).ino;
    let now = |t| MdsOp::Setattr { ino: f, set: SetAttr { atime: Some(t), mtime: Some(t), times_now: true, ..Default::default() } };
    assert_eq!(fs.err_as(&user(2), now(5)), Errno::EACCES);
    fs.run_as(&owner, MdsOp::Setattr { ino: f, set: SetAttr { mode: Some(0o666), ..Default::default() } }).unwrap();
    let s = Fs::stat_of(fs.run_as(&user(2), now(6)));
    assert_eq!((s.atime, s.mtime), (6, 6));
    let given = MdsOp::Setattr { ino: f, set: SetAttr { mtime: Some(7), ..Default::default() } };
    assert_eq!(fs.err_as(&user(2), given), Errno::EPERM);
}
