use super::*;
use crate::msg::mds::{Caller, MdsOp, ReplyBody, SetAttr, S_IFIFO, XATTR_CREATE, XATTR_REPLACE};
use crate::roles::mds::server::tests::{user, Fs};
use crate::roles::mds::types::{FileLayout, ROOT_INO};
use serde_bytes::ByteBuf;

fn rstat(fs: &Fs, ino: Ino) -> RStat {
    fs.cache.inode(ino).expect("cached").rstat
}

fn rs(rbytes: u64, rfiles: u64, rsubdirs: u64) -> RStat {
    RStat { rbytes, rfiles, rsubdirs }
}

fn consistent(fs: &Fs) {
    let bad = rstat_mismatches(&fs.cache);
    assert!(bad.is_empty(), "rstat invariant broken: {bad:?}");
}

fn setx(fs: &mut Fs, c: &Caller, ino: Ino, name: &str, v: &str, flags: u32) -> Result<ReplyBody, Errno> {
    fs.run_as(c, MdsOp::Setxattr { ino, name: name.into(), value: ByteBuf::from(v.as_bytes().to_vec()), flags })
}

fn getx(fs: &mut Fs, ino: Ino, name: &str) -> Result<String, Errno> {
    match fs.run(MdsOp::Getxattr { ino, name: name.into() })? {
        ReplyBody::Xattr(v) => Ok(String::from_utf8(v.into_vec()).expect("utf8")),
        other => panic!("getxattr answered {other:?}"),
    }
}

fn quota(fs: &mut Fs, ino: Ino, name: &str, v: u64) {
    setx(fs, &Caller::root(), ino, name, &v.to_string(), 0).expect("set quota");
}

fn set_size(fs: &mut Fs, ino: Ino, size: u64) -> Result<ReplyBody, Errno> {
    let now = fs.now;
    fs.run(MdsOp::SetSize { ino, size, mtime: now })
}

fn truncate(fs: &mut Fs, ino: Ino, size: u64) -> Result<ReplyBody, Errno> {
    fs.run(MdsOp::Setattr { ino, set: SetAttr { size: Some(size), ..Default::default() } })
}

/// That rstats follow creates, sizes, hard links, strays, renames and removals up to
/// the root, and always equal the sum over each directory's dentries.
#[test]
fn rstats_follow_the_namespace() {
    let mut fs = Fs::new();
    let a = fs.mkdir(ROOT_INO, "a");
    let b = fs.mkdir(a, "b");
    let f = fs.create(b, "f");
    set_size(&mut fs, f, 1000).unwrap();
    fs.run(MdsOp::Symlink { parent: a, name: "s".into(), target: "b/f".into() }).unwrap();
    assert_eq!(rstat(&fs, b), rs(1000, 1, 0));
    assert_eq!(rstat(&fs, a), rs(1000, 2, 1), "symlinks count as files, not bytes");
    assert_eq!(rstat(&fs, ROOT_INO), rs(1000, 2, 2));
    consistent(&fs);
    // A hard link adds a name but no bytes; unlinking the primary moves the bytes to
    // the stray directory.
    fs.run(MdsOp::Link { ino: f, new_parent: ROOT_INO, new_name: "h".into() }).unwrap();
    assert_eq!(rstat(&fs, ROOT_INO), rs(1000, 3, 2));
    fs.run(MdsOp::Unlink { parent: b, name: "f".into() }).unwrap();
    assert_eq!(rstat(&fs, b), rs(0, 0, 0));
    assert_eq!(rstat(&fs, ROOT_INO), rs(0, 2, 2));
    assert_eq!(rstat(&fs, fs.cache.mdsdir()), rs(1000, 1, 0));
    consistent(&fs);
    // Moving a subtree moves its whole rstat; a truncate gives bytes back.
    let g = fs.create(b, "g");
    set_size(&mut fs, g, 300).unwrap();
    let c = fs.mkdir(ROOT_INO, "c");
    fs.run(MdsOp::Rename { src_parent: a, src_name: "b".into(), dst_parent: c, dst_name: "b".into() }).unwrap();
    assert_eq!(rstat(&fs, a), rs(0, 1, 0));
    assert_eq!(rstat(&fs, c), rs(300, 1, 1));
    truncate(&mut fs, g, 100).unwrap();
    assert_eq!(rstat(&fs, c), rs(100, 1, 1));
    assert_eq!(rstat(&fs, ROOT_INO), rs(100, 3, 3));
    consistent(&fs);
    fs.run(MdsOp::Unlink { parent: b, name: "g".into() }).unwrap();
    fs.run(MdsOp::Rmdir { parent: c, name: "b".into() }).unwrap();
    assert_eq!(rstat(&fs, c), rs(0, 0, 0));
    assert_eq!(rstat(&fs, ROOT_INO), rs(0, 2, 2));
    consistent(&fs);
}

/// That replaying the blobs the live path journaled rebuilds the same rstats.
#[test]
fn rstats_replay_from_blobs() {
    let mut fs = Fs::new();
    let a = fs.mkdir(ROOT_INO, "a");
    let f = fs.create(a, "f");
    set_size(&mut fs, f, 77).unwrap();
    quota(&mut fs, a, MAX_FILES, 5);
    fs.mkdir(a, "d");
    fs.run(MdsOp::Rename { src_parent: a, src_name: "f".into(), dst_parent: ROOT_INO, dst_name: "f".into() }).unwrap();
    let mut r = MdCache::create_fs(0, 1000, FileLayout::default_for(2));
    for b in &fs.blobs {
        r.apply(b);
    }
    assert_eq!(r.view(), fs.cache.view());
    assert_eq!(r.inode(ROOT_INO).unwrap().rstat, rs(77, 1, 2));
    assert!(rstat_mismatches(&r).is_empty());
}

/// That every way of adding an entry under a directory at its max_files fails with
/// EDQUOT, also from a nested directory, and succeeds again once there is room.
#[test]
fn max_files_refuses_new_entries() {
    let mut fs = Fs::new();
    let q = fs.mkdir(ROOT_INO, "q");
    let sub = fs.mkdir(q, "sub");
    let out = fs.create(ROOT_INO, "out");
    quota(&mut fs, q, MAX_FILES, 3);
    fs.create(sub, "f1");
    fs.run(MdsOp::Symlink { parent: q, name: "l".into(), target: "x".into() }).unwrap();
    assert_eq!(rstat(&fs, q).rentries(), 3);
    let tries = [
        MdsOp::Create { parent: sub, name: "c".into(), mode: 0o644, excl: true },
        MdsOp::Mknod { parent: q, name: "p".into(), mode: S_IFIFO | 0o644, rdev: 0 },
        MdsOp::Mkdir { parent: sub, name: "d".into(), mode: 0o755 },
        MdsOp::Symlink { parent: q, name: "s".into(), target: "t".into() },
        MdsOp::Link { ino: out, new_parent: sub, new_name: "h".into() },
        MdsOp::Rename { src_parent: ROOT_INO, src_name: "out".into(), dst_parent: q, dst_name: "o".into() },
    ];
    for op in tries {
        assert_eq!(fs.run(op.clone()), Err(Errno::EDQUOT), "{op:?}");
    }
    // Moving within the quota directory, or out of it, is fine.
    fs.run(MdsOp::Rename { src_parent: sub, src_name: "f1".into(), dst_parent: q, dst_name: "f1".into() }).unwrap();
    fs.run(MdsOp::Rename { src_parent: q, src_name: "f1".into(), dst_parent: ROOT_INO, dst_name: "f1".into() }).unwrap();
    fs.create(sub, "c");
    assert_eq!(fs.run(MdsOp::Mkdir { parent: q, name: "d".into(), mode: 0o755 }), Err(Errno::EDQUOT));
    consistent(&fs);
}

/// That size growth past max_bytes (writer flush or truncate up), and moving bytes into
/// the quota directory, fail with EDQUOT, while shrinking always works.
#[test]
fn max_bytes_refuses_growth() {
    let mut fs = Fs::new();
    let q = fs.mkdir(ROOT_INO, "q");
    let d = fs.mkdir(q, "d");
    let f = fs.create(d, "f");
    let big = fs.create(ROOT_INO, "big");
    set_size(&mut fs, big, 600).unwrap();
    quota(&mut fs, q, MAX_BYTES, 1000);
    set_size(&mut fs, f, 1000).unwrap();
    assert_eq!(set_size(&mut fs, f, 1001), Err(Errno::EDQUOT));
    assert_eq!(truncate(&mut fs, f, 4096), Err(Errno::EDQUOT));
    assert_eq!(fs.stat(f).size, 1000);
    truncate(&mut fs, f, 500).unwrap();
    let mv = MdsOp::Rename { src_parent: ROOT_INO, src_name: "big".into(), dst_parent: d, dst_name: "big".into() };
    assert_eq!(fs.run(mv.clone()), Err(Errno::EDQUOT));
    truncate(&mut fs, big, 500).unwrap();
    fs.run(mv).unwrap();
    assert_eq!(rstat(&fs, q).rbytes, 1000);
    // A quota lowered below usage still lets the subtree shrink, never grow.
    quota(&mut fs, q, MAX_BYTES, 100);
    truncate(&mut fs, big, 400).unwrap();
    assert_eq!(set_size(&mut fs, f, 501), Err(Errno::EDQUOT));
    consistent(&fs);
}

/// That a session whose root is below the quota directory is still bound by it.
#[test]
fn quota_binds_sessions_mounted_below() {
    let mut fs = Fs::new();
    let q = fs.mkdir(ROOT_INO, "q");
    let home = fs.mkdir(q, "home");
    quota(&mut fs, q, MAX_FILES, 2);
    quota(&mut fs, q, MAX_BYTES, 10);
    fs.sess.root = home;
    let f = fs.create(home, "f");
    assert_eq!(fs.run(MdsOp::Mkdir { parent: home, name: "d".into(), mode: 0o755 }), Err(Errno::EDQUOT));
    assert_eq!(set_size(&mut fs, f, 11), Err(Errno::EDQUOT));
    set_size(&mut fs, f, 10).unwrap();
    assert_eq!(quota_room(&fs.cache, f), Some(0));
}

/// That the tightest max_bytes above an inode bounds the room, and none means None.
#[test]
fn quota_room_takes_the_tightest() {
    let mut fs = Fs::new();
    let a = fs.mkdir(ROOT_INO, "a");
    let b = fs.mkdir(a, "b");
    let f = fs.create(b, "f");
    assert_eq!(quota_room(&fs.cache, f), None);
    quota(&mut fs, a, MAX_BYTES, 5000);
    quota(&mut fs, b, MAX_BYTES, 8000);
    set_size(&mut fs, f, 1200).unwrap();
    assert_eq!(quota_room(&fs.cache, f), Some(3800));
    assert_eq!(quota_room(&fs.cache, b), Some(3800));
    quota(&mut fs, b, MAX_BYTES, 2000);
    assert_eq!(quota_room(&fs.cache, f), Some(800));
    assert_eq!(quota_room(&fs.cache, ROOT_INO), None);
    assert_eq!(quota_room(&fs.cache, 0xdead_beef), None, "unknown inode");
}

/// That the quota and statistics xattrs read back as decimal strings, and that bad
/// names, values, targets and callers get the documented errors.
#[test]
fn vxattr_rules() {
    let mut fs = Fs::new();
    let q = fs.mkdir(ROOT_INO, "q");
    let f = fs.create(q, "f");
    set_size(&mut fs, f, 42).unwrap();
    fs.mkdir(q, "d");
    assert_eq!(getx(&mut fs, q, "ceph.dir.rbytes").as_deref(), Ok("42"));
    assert_eq!(getx(&mut fs, q, "ceph.dir.rfiles").as_deref(), Ok("1"));
    assert_eq!(getx(&mut fs, q, "ceph.dir.rsubdirs").as_deref(), Ok("1"));
    assert_eq!(getx(&mut fs, q, "ceph.dir.rentries").as_deref(), Ok("2"));
    assert_eq!(getx(&mut fs, q, MAX_BYTES), Err(Errno::ENODATA));
    assert_eq!(getx(&mut fs, f, "ceph.dir.rbytes"), Err(Errno::ENODATA));
    let root = Caller::root();
    for bad in ["", "abc", "-1", "1.5", "+3", "99999999999999999999999"] {
        assert_eq!(setx(&mut fs, &root, q, MAX_BYTES, bad, 0), Err(Errno::EINVAL), "value {bad:?}");
    }
    assert_eq!(setx(&mut fs, &root, f, MAX_FILES, "3", 0), Err(Errno::EINVAL), "not a directory");
    assert_eq!(setx(&mut fs, &root, q, "ceph.quota.max_nothing", "3", 0), Err(Errno::EINVAL));
    assert_eq!(setx(&mut fs, &root, q, "ceph.dir.rbytes", "3", 0), Err(Errno::ENOTSUP));
    assert_eq!(setx(&mut fs, &user(0), q, MAX_FILES, "3", XATTR_REPLACE), Err(Errno::ENODATA));
    assert_eq!(setx(&mut fs, &user(1000), q, MAX_FILES, "3", 0), Err(Errno::EPERM));
    setx(&mut fs, &root, q, MAX_FILES, " 3\n\0", XATTR_CREATE).unwrap();
    assert_eq!(setx(&mut fs, &root, q, MAX_FILES, "4", XATTR_CREATE), Err(Errno::EEXIST));
    assert_eq!(getx(&mut fs, q, MAX_FILES).as_deref(), Ok("3"));
    assert_eq!(getx(&mut fs, q, MAX_BYTES).as_deref(), Ok("0"));
    assert_eq!(getx(&mut fs, q, "ceph.quota").as_deref(), Ok("max_bytes=0 max_files=3"));
    let names = match fs.run(MdsOp::Listxattr { ino: q }).unwrap() {
        ReplyBody::XattrNames(v) => v,
        other => panic!("{other:?}"),
    };
    assert!(names.is_empty(), "virtual xattrs are not listed: {names:?}");
    let rm = |name: &str| MdsOp::Removexattr { ino: q, name: name.into() };
    assert_eq!(fs.run_as(&user(1000), rm(MAX_FILES)), Err(Errno::EPERM));
    assert_eq!(fs.run(rm(MAX_BYTES)), Err(Errno::ENODATA));
    fs.run(rm(MAX_FILES)).unwrap();
    assert_eq!(getx(&mut fs, q, MAX_FILES), Err(Errno::ENODATA));
    // Value 0 means no limit: entries can be added freely.
    quota(&mut fs, q, MAX_FILES, 0);
    for i in 0..5 {
        fs.create(q, &format!("n{i}"));
    }
    consistent(&fs);
}

/// That quota values parse as plain decimal u64 only.
#[test]
fn parse_values() {
    let p = parse_quota_value;
    assert_eq!(p(b"0"), Ok(0));
    assert_eq!(p(b"18446744073709551615"), Ok(u64::MAX));
    assert_eq!(p(b"18446744073709551616"), Err(Errno::EINVAL));
    assert_eq!(p(b"10\0"), Ok(10));
    assert_eq!(p(&[0xff, 0x31]), Err(Errno::EINVAL));
    assert_eq!(p(b"1e3"), Err(Errno::EINVAL));
}

/// That contributions count directories with their subtree, and that deltas clamp.
#[test]
fn delta_arithmetic() {
    let mut d = Inode::new(5, crate::msg::mds::S_IFDIR | 0o755, 0, 0, 0, FileLayout::default_for(1));
    d.rstat = rs(10, 2, 3);
    assert_eq!(Delta::of(Some(&Linkage::Primary(d))), Delta { bytes: 10, files: 2, subdirs: 4 });
    assert_eq!(Delta::of(Some(&Linkage::Remote { ino: 9, d_type: 0 })), Delta { bytes: 0, files: 1, subdirs: 0 });
    assert_eq!(Delta { bytes: -5, files: -1, subdirs: 0 }.apply(rs(3, 4, 0)), rs(0, 3, 0));
}
