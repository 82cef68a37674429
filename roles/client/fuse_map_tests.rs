//! Unit tests of the FUSE translations.
use super::*;
use crate::msg::mds::{FileLayout, S_IFREG};

fn st(ino: Ino, mode: u32, uid: u32, gid: u32) -> InodeStat {
    InodeStat {
        ino,
        mode,
        uid,
        gid,
        size: 10,
        nlink: 1,
        atime: 1_500_000_000_123_456_789,
        mtime: -1_500_000_000,
        ctime: 0,
        rdev: 0,
        blocks: 1,
        layout: FileLayout::default_for(1),
        symlink: None,
        version: 1,
    }
}

fn user(uid: u32, gid: u32, gids: &[u32]) -> Caller {
    Caller { uid, gid, gids: gids.to_vec() }
}

/// That the mount root is FUSE inode 1 both ways and other inodes pass unchanged.
#[test]
fn inode_numbers() {
    let m = InoMap { root: 0x1000 };
    assert_eq!(m.to_mds(INodeNo::ROOT), 0x1000);
    assert_eq!(m.to_fuse(0x1000), INodeNo::ROOT);
    assert_eq!(m.to_mds(INodeNo(0x2000)), 0x2000);
    assert_eq!(m.to_fuse(0x2000), INodeNo(0x2000));
    let whole = InoMap { root: 1 };
    assert_eq!(whole.to_fuse(1), INodeNo::ROOT);
    assert_eq!(whole.to_mds(INodeNo::ROOT), 1);
}

/// That library errors become the Linux errno of the same name, and a blocklisted
/// client's ESHUTDOWN becomes EIO.
#[test]
fn errnos() {
    assert_eq!(errno(&CmdError::enoent("x")), fuser::Errno::ENOENT);
    assert_eq!(errno(&CmdError::new(Errno::ENOTEMPTY, "x")), fuser::Errno::ENOTEMPTY);
    assert_eq!(errno(&CmdError::new(Errno::ENODATA, "x")).code(), libc::ENODATA);
    assert_eq!(errno(&CmdError::new(Errno::EMLINK, "x")).code(), libc::EMLINK);
    assert_eq!(errno(&CmdError::new(Errno::ESTALE, "x")).code(), libc::ESTALE);
    assert_eq!(errno(&CmdError::new(Errno::EBLOCKLISTED, "x")), fuser::Errno::EIO);
}

/// That attributes carry type, permission bits, owners and times (before the epoch too).
#[test]
fn attributes() {
    let m = InoMap { root: 1 };
    let a = attr(&st(7, S_IFREG | 0o4755, 1000, 100), &m);
    assert_eq!(a.ino, INodeNo(7));
    assert_eq!(a.kind, FileType::RegularFile);
    assert_eq!(a.perm, 0o4755);
    assert_eq!((a.uid, a.gid, a.size, a.nlink), (1000, 100, 10, 1));
    assert_eq!(ns_of(a.atime), 1_500_000_000_123_456_789);
    assert_eq!(ns_of(a.mtime), -1_500_000_000);
    assert_eq!(ns_of(a.ctime), 0);
    assert_eq!(file_type(S_IFDIR | 0o755), FileType::Directory);
    assert_eq!(file_type(S_IFLNK), FileType::Symlink);
    assert_eq!(file_type(S_IFIFO), FileType::NamedPipe);
    assert_eq!(file_type(S_IFSOCK), FileType::Socket);
    assert_eq!(file_type(S_IFCHR), FileType::CharDevice);
    assert_eq!(file_type(S_IFBLK), FileType::BlockDevice);
    assert_eq!(set_time(TimeOrNow::Now, 42), 42);
    assert_eq!(set_time(TimeOrNow::SpecificTime(time_of(5_000_000_001)), 42), 5_000_000_001);
}

/// That supplementary groups come from the `Groups:` line, and a missing process
/// leaves only the request's uid and gid.
#[test]
fn caller_groups() {
    let status = "Name:\tbash\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1000 \nVmPeak:\t1 kB\n";
    assert_eq!(groups_from_status(status), vec![4, 24, 27, 1000]);
    assert_eq!(groups_from_status("Groups:\n"), Vec::<u32>::new());
    assert_eq!(groups_from_status("Name: x\n"), Vec::<u32>::new());
    assert_eq!(groups_of_pid(u32::MAX), Vec::<u32>::new());
    let mine = groups_from_status(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
    assert_eq!(groups_of_pid(std::process::id()), mine);
}

/// That a process's groups are read once per `GROUPS_TTL` for its burst of requests,
/// read again when older or when the process changes its uid or gid, never for pid 0,
/// and that the table stays bounded.
#[test]
fn group_cache() {
    let mut cache = GroupCache::default();
    let t0 = Instant::now();
    let mut reads = 0;
    let mut read = |gids: &'static [u32]| {
        reads += 1;
        move |_pid: u32| gids.to_vec()
    };
    assert_eq!(cache.caller(1000, 100, 42, t0, read(&[4, 24])), user(1000, 100, &[4, 24]));
    assert_eq!(cache.caller(1000, 100, 42, t0 + Duration::from_millis(500), |_| vec![99]), user(1000, 100, &[4, 24]));
    let later = t0 + GROUPS_TTL + Duration::from_millis(1);
    assert_eq!(cache.caller(1000, 100, 42, later, read(&[7])), user(1000, 100, &[7]));
    assert_eq!(cache.caller(65534, 65534, 42, later, read(&[65533])), user(65534, 65534, &[65533]));
    assert_eq!(cache.caller(0, 0, 0, later, |_| vec![1]), user(0, 0, &[]));
    assert_eq!(reads, 3);
    for pid in 1..=3000 {
        cache.caller(1, 1, pid, later, |_| Vec::new());
    }
    assert!(cache.len() <= 1024, "{} entries", cache.len());
}

/// That access(2) follows the owner/group/other classes, and root needs an execute bit
/// to execute a file but nothing else.
#[test]
fn access_checks() {
    let f = st(7, S_IFREG | 0o640, 1000, 100);
    assert!(access_ok(&f, &user(1000, 1000, &[]), 6).is_ok());
    assert!(access_ok(&f, &user(1000, 1000, &[]), 1).is_err());
    assert!(access_ok(&f, &user(2000, 100, &[]), 4).is_ok());
    assert!(access_ok(&f, &user(2000, 200, &[100]), 4).is_ok());
    assert!(access_ok(&f, &user(2000, 200, &[100]), 2).is_err());
    assert!(access_ok(&f, &user(2000, 200, &[]), 4).is_err());
    assert!(access_ok(&f, &user(2000, 200, &[]), 0).is_ok());
    assert!(access_ok(&f, &user(0, 0, &[]), 6).is_ok());
    assert_eq!(access_ok(&f, &user(0, 0, &[]), 1), Err(Errno::EACCES));
    let d = st(8, S_IFDIR | 0o700, 1000, 100);
    assert!(access_ok(&d, &user(0, 0, &[]), 7).is_ok());
    // The owner class decides even when the group class would allow more.
    let g = st(9, S_IFREG | 0o070, 1000, 100);
    assert!(access_ok(&g, &user(1000, 100, &[]), 4).is_err());
}

/// That xattr replies give the size on a size query, the data when it fits, and
/// ERANGE when it does not; names are NUL-terminated.
#[test]
fn xattr_sizes() {
    assert_eq!(xattr_reply(5, 0), XattrReply::Size(5));
    assert_eq!(xattr_reply(5, 5), XattrReply::Data);
    assert_eq!(xattr_reply(5, 4), XattrReply::TooSmall);
    assert_eq!(xattr_reply(0, 0), XattrReply::Size(0));
    assert_eq!(xattr_names(&["user.a".into(), "user.bc".into()]), b"user.a\0user.bc\0".to_vec());
    assert!(xattr_names(&[]).is_empty());
}

/// That mount options parse (timeouts in seconds, flags passed through) and unknown,
/// malformed or contradictory ones are refused with a message.
#[test]
fn mount_options() {
    let o = parse_options(&["allow_other,attr_timeout=1.5".into(), "entry_timeout=2,noatime,ro".into()]).unwrap();
    assert!(o.allow_other && !o.allow_root && !o.default_permissions);
    assert_eq!(o.attr_timeout, Duration::from_millis(1500));
    assert_eq!(o.entry_timeout, Duration::from_secs(2));
    assert_eq!(o.flags, vec![fuser::MountOption::NoAtime, fuser::MountOption::RO]);
    assert_eq!(parse_options(&[]).unwrap(), MountOpts::default());
    assert_eq!(parse_options(&["fsname=x,default_permissions".into()]).unwrap().fsname.as_deref(), Some("x"));
    assert_eq!(parse_options(&["workers=1".into()]).unwrap().workers, 1);
    assert_eq!(MountOpts::default().workers, DEFAULT_WORKERS);
    for bad in ["bogus", "attr_timeout=-1", "attr_timeout=x", "allow_other=1", "allow_other,allow_root", "fsname=", "workers=0", "workers=x"] {
        let e = parse_options(&[bad.to_string()]).unwrap_err();
        assert_eq!(e.errno, Errno::EINVAL, "{bad}");
        assert!(!e.message.is_empty());
    }
}

/// That a listing is served from any offset with each entry's continuation offset,
/// and an offset past the end yields nothing.
#[test]
fn listing_offsets() {
    let e = |i: u64, n: &str| ListedEntry { ino: INodeNo(i), kind: FileType::RegularFile, name: n.into() };
    let l = Listing { entries: vec![e(1, "."), e(1, ".."), e(5, "a"), e(6, "b")] };
    let all: Vec<(u64, String)> = l.from_offset(0).map(|(o, e)| (o, e.name.clone())).collect();
    assert_eq!(all, vec![(1, ".".into()), (2, "..".into()), (3, "a".into()), (4, "b".into())]);
    let rest: Vec<u64> = l.from_offset(3).map(|(o, _)| o).collect();
    assert_eq!(rest, vec![4]);
    assert_eq!(l.from_offset(4).count(), 0);
    assert_eq!(l.from_offset(u64::MAX).count(), 0);
}

/// That lookup counts add up, forgets take them down (never below zero), and an
/// inode is held only while its count is positive.
#[test]
fn lookup_counts() {
    let mut c = LookupCounts::default();
    c.add(7);
    c.add(7);
    c.add(8);
    assert!(c.held(7) && c.held(8));
    assert_eq!(c.forget(7, 1), 1);
    assert!(c.held(7));
    assert_eq!(c.forget(7, 5), 0);
    assert!(!c.held(7));
    assert_eq!(c.forget(99, 1), 0);
    assert_eq!(c.len(), 1);
}

/// That open handles are found by inode with their openers until released.
#[test]
fn open_files() {
    let mut o = OpenFiles::default();
    o.insert(1, 7, user(1000, 100, &[]), true);
    o.insert(2, 7, user(0, 0, &[]), false);
    o.insert(3, 8, user(5, 5, &[]), true);
    assert!(o.writable(1) && !o.writable(2) && !o.writable(42));
    assert_eq!(o.of_ino(7).iter().map(|(f, c)| (*f, c.uid)).collect::<Vec<_>>(), vec![(1, 1000), (2, 0)]);
    assert_eq!(o.opener(3).map(|c| c.uid), Some(5));
    o.remove(1);
    o.remove(42);
    assert_eq!(o.of_ino(7).len(), 1);
    o.remove(2);
    assert!(o.of_ino(7).is_empty());
    assert_eq!(o.opener(1), None);
    assert_eq!(o.len(), 1);
}

/// That the kernel keeps a file's pages at open only when they were cached under the
/// client's current `Fc` epoch: not at the first open, not after `Fc` was lost and
/// regained, not after an open without `Fc`, not after the kernel forgot the inode.
#[test]
fn kernel_pages_follow_cache_epochs() {
    let mut k = KernelPages::default();
    assert!(!k.open(7, Some(1)), "first open: nothing cached yet");
    assert!(k.open(7, Some(1)), "same epoch: keep");
    assert!(!k.open(7, Some(2)), "Fc lost and regained: drop");
    assert!(k.open(7, Some(2)));
    assert!(!k.open(7, None), "no Fc: drop");
    assert!(!k.open(7, Some(2)), "pages read without Fc may be stale");
    assert!(k.open(7, Some(2)));
    k.forget(7);
    assert!(!k.open(7, Some(2)));
    assert!(!k.open(8, Some(2)), "another inode has its own record");
    assert_eq!(k.len(), 2);
}
