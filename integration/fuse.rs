//! `cephr mount` end to end: a cluster with a file system, two FUSE mounts of it in
//! temp directories (one daemonized with a pid file, one in the foreground), files,
//! appends, attributes and renames seen across them, everyday tools (tar, git, make,
//! sqlite3) on one, and both mounts ending cleanly (`cephr umount`, SIGTERM).
//! Skipped with a message where /dev/fuse (or, not as root, fusermount3) is missing.
mod harness;

use harness::{bytes, Cluster, BIN};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FS: &str = "cephfs";

fn fuse_usable() -> Result<(), String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing".into());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let helper = Command::new("fusermount3").arg("-V").output().is_ok_and(|o| o.status.success());
    if !root && !helper {
        return Err("not root and fusermount3 is missing (apt-get install fuse3)".into());
    }
    Ok(())
}


fn start_fs() -> Cluster {
    let mut c = Cluster::start_with(&["a"], 3);
    c.start_fs(FS, [("cephfs_metadata", 16), ("cephfs_data", 32)], &["mds.a"]);
    // Two identities, so each mount's session is easy to tell apart in `client ls`.
    for id in ["client.fa", "client.fb"] {
        let r = c.cli(&["auth", "add", id, "--caps", "mon=allow r", "--caps", "osd=allow rw", "--caps", "mds=allow rw"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    c
}

/// `start_fs` with sessions that go stale after 3 s of silence (and are not evicted).
fn start_fs_short_sessions() -> Cluster {
    let c = start_fs();
    for (k, v) in [("session_autoclose", "300"), ("session_timeout", "3")] {
        let r = c.cli(&["fs", "set", FS, k, v]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    c
}

/// A temp dir with two empty mount points in it, `a` and `b`.
fn mount_points() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dirs = tempfile::Builder::new().prefix("cephr-fuse-").tempdir().expect("tempdir");
    let (mpa, mpb) = (dirs.path().join("a"), dirs.path().join("b"));
    std::fs::create_dir(&mpa).expect("mkdir a");
    std::fs::create_dir(&mpb).expect("mkdir b");
    (dirs, mpa, mpb)
}

/// Whether `mp` is a mount point now (listed in /proc/self/mountinfo).
fn mounted(mp: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mp.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&want))
}

/// Running and not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rsplit(')').next().and_then(|r| r.split_whitespace().next()).is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// One `cephr mount` process; dropping it unmounts and kills it by PID if needed.
struct Mount {
    mp: PathBuf,
    pid: u32,
    child: Option<Child>,
    log: PathBuf,
}

impl Mount {
    /// `cephr mount` daemonized: returns once the parent says the mount is ready.
    fn daemon(c: &Cluster, mp: &Path, name: &str) -> Mount {
        let (pid_file, log) = (c.path().join(format!("{name}.pid")), c.log(name));
        let out = Command::new(BIN)
            .arg("-c")
            .arg(c.conf())
            .args(["mount", "--fs", FS, "--id", "client.fa", "-o", "allow_other"])
            .arg(mp)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--log-file")
            .arg(&log)
            .output()
            .expect("run cephr mount");
        let pid = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok());
        let m = Mount { mp: mp.to_path_buf(), pid: pid.unwrap_or(0), child: None, log };
        assert!(out.status.success(), "cephr mount: {}\n{}", String::from_utf8_lossy(&out.stderr), m.log_tail());
        assert!(m.pid != 0 && alive(m.pid), "no live pid in {}", pid_file.display());
        assert!(mounted(mp), "{} is not mounted", mp.display());
        eprintln!("--- mounted {} (daemon pid {})", mp.display(), m.pid);
        m
    }

    /// `cephr mount -f` as our child: ready when the mount point shows up.
    fn foreground(c: &Cluster, mp: &Path, name: &str) -> Mount {
        let log = c.log(name);
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new(BIN)
            .arg("-c")
            .arg(c.conf())
            .args(["mount", "-f", "--id", "fb"])
            .arg(mp)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawn cephr mount -f");
        let mut m = Mount { mp: mp.to_path_buf(), pid: child.id(), child: Some(child), log };
        let up = wait_until(Duration::from_secs(30), || mounted(mp) || !m.running());
        assert!(up && mounted(mp), "foreground mount did not come up\n{}", m.log_tail());
        eprintln!("--- mounted {} (foreground pid {})", mp.display(), m.pid);
        m
    }

    fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => alive(self.pid),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.mp.join(rel)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if mounted(&self.mp) {
            let _ = Command::new(BIN).arg("umount").arg("-l").arg(&self.mp).output();
        }
        if !wait_until(Duration::from_secs(10), || !self.running()) {
            eprintln!("--- kill -9 mount pid {}", self.pid);
            // SAFETY: signalling a process this test started, by its pid.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn append_line(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path).expect("open for append");
    f.write_all(format!("{line}\n").as_bytes()).expect("append");
}

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

/// Runs `sh -c script` in `dir`, asserting success; returns stdout.
fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().expect("run sh");
    assert!(out.status.success(), "{script}: {}\n{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// That data, appends, attributes, renames and unlinks made through one mount are
/// seen through the other once the file is closed.
fn across_mounts(a: &Mount, b: &Mount) {
    eprintln!("--- a file written in A reads back byte-identical in B");
    let data = bytes(7, 9 << 20 | 12345);
    std::fs::write(a.path("big"), &data).expect("write big");
    assert!(std::fs::read(b.path("big")).expect("read big") == data, "B reads other bytes");

    eprintln!("--- appends from both mounts interleave without loss");
    let log = "appends.log";
    for i in 0..25 {
        append_line(&a.path(log), &format!("A {i:03} {}", "a".repeat(40)));
        append_line(&b.path(log), &format!("B {i:03} {}", "b".repeat(40)));
    }
    for m in [a, b] {
        let text = std::fs::read_to_string(m.path(log)).expect("read appends");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50, "{text}");
        for (i, l) in lines.iter().enumerate() {
            let who = if i % 2 == 0 { "A" } else { "B" };
            let fill = if i % 2 == 0 { "a" } else { "b" };
            assert_eq!(*l, format!("{who} {:03} {}", i / 2, fill.repeat(40)));
        }
    }

    eprintln!("--- stat in B sees size and mtime from A after close");
    std::fs::write(a.path("stamp"), b"12345678").expect("write stamp");
    let (ma, mb) = (std::fs::metadata(a.path("stamp")).unwrap(), std::fs::metadata(b.path("stamp")).unwrap());
    assert_eq!((mb.size(), mb.mtime(), mb.mtime_nsec()), (8, ma.mtime(), ma.mtime_nsec()));
    std::fs::OpenOptions::new().append(true).open(a.path("stamp")).unwrap().write_all(b"9").unwrap();
    let (ma, mb) = (std::fs::metadata(a.path("stamp")).unwrap(), std::fs::metadata(b.path("stamp")).unwrap());
    assert_eq!((mb.size(), mb.mtime(), mb.mtime_nsec()), (9, ma.mtime(), ma.mtime_nsec()));

    eprintln!("--- attributes A changes under its exclusive caps are what B sees");
    {
        use std::os::unix::fs::PermissionsExt;
        let f = std::fs::File::create(a.path("owned")).expect("create owned");
        (&f).write_all(b"abc").unwrap();
        f.set_permissions(std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::fchown(&f, Some(1234), Some(5678)).unwrap();
        let past = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        f.set_times(std::fs::FileTimes::new().set_modified(past).set_accessed(past)).unwrap();
        let ma = std::fs::metadata(a.path("owned")).unwrap();
        assert_eq!((ma.mode() & 0o7777, ma.uid(), ma.gid(), ma.mtime(), ma.len()), (0o640, 1234, 5678, 1_000_000_000, 3));
        // B asks while A still has the file open: the MDS takes A's caps back, and
        // A's changes reach it first.
        let mb = std::fs::metadata(b.path("owned")).unwrap();
        assert_eq!((mb.mode() & 0o7777, mb.uid(), mb.gid(), mb.mtime(), mb.len()), (0o640, 1234, 5678, 1_000_000_000, 3));
        // A write after a set mtime moves it on.
        (&f).write_all(b"d").unwrap();
        f.set_permissions(std::fs::Permissions::from_mode(0o604)).unwrap();
        drop(f);
        let mb = std::fs::metadata(b.path("owned")).unwrap();
        assert_eq!((mb.mode() & 0o7777, mb.len()), (0o604, 4));
        assert!(mb.mtime() > 1_000_000_000, "mtime {}", mb.mtime());
    }

    eprintln!("--- rename and unlink in A are visible in B");
    std::fs::create_dir(a.path("d")).unwrap();
    std::fs::rename(a.path("stamp"), a.path("d/renamed")).unwrap();
    assert!(!b.path("stamp").exists());
    assert_eq!(std::fs::read(b.path("d/renamed")).unwrap(), b"123456789");
    std::fs::remove_file(a.path("d/renamed")).unwrap();
    assert!(!b.path("d/renamed").exists());
    assert_eq!(std::fs::read_dir(b.path("d")).unwrap().count(), 0);
}

/// That tar, git, make and sqlite3 work on a mount.
fn everyday_tools(m: &Mount, scratch: &Path) {
    let src = scratch.join("src");
    std::fs::create_dir_all(src.join("lib/sub")).unwrap();
    for i in 0..30 {
        std::fs::write(src.join(format!("lib/f{i}.txt")), bytes(i, 1000 + 997 * i as usize)).unwrap();
    }
    std::fs::write(src.join("lib/sub/deep.txt"), b"deep\n").unwrap();
    std::os::unix::fs::symlink("lib/sub/deep.txt", src.join("link")).unwrap();
    if have("tar") {
        eprintln!("--- tar x of a small tree");
        sh(scratch, "tar cf tree.tar -C src .");
        std::fs::create_dir(m.path("untar")).unwrap();
        sh(&m.path("untar"), &format!("tar xf {}", scratch.join("tree.tar").display()));
        sh(scratch, &format!("diff -r src {}", m.path("untar").display()));
    } else {
        eprintln!("--- tar is not installed: skipped");
    }
    if have("git") {
        eprintln!("--- git init/add/commit/fsck");
        let g = m.path("repo");
        std::fs::create_dir(&g).unwrap();
        sh(&g, "git init -q . && git config user.name t && git config user.email t@example.com");
        sh(&g, &format!("cp -r {}/lib . && git add . && git commit -qm first", src.display()));
        sh(&g, "echo more >> lib/f1.txt && git commit -qam second && git fsck --strict");
        assert_eq!(sh(&g, "git log --oneline | wc -l").trim(), "2");
    } else {
        eprintln!("--- git is not installed: skipped");
    }
    if have("make") && have("gcc") {
        eprintln!("--- make of a small C program that then runs");
        let d = m.path("cprog");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("main.c"), "#include <stdio.h>\nint twice(int);\nint main(void){printf(\"%d\\n\", twice(21));return 0;}\n").unwrap();
        std::fs::write(d.join("twice.c"), "int twice(int x){return 2*x;}\n").unwrap();
        std::fs::write(d.join("Makefile"), "prog: main.o twice.o\n\tgcc -o prog main.o twice.o\n%.o: %.c\n\tgcc -c $<\n").unwrap();
        sh(&d, "make -s");
        assert_eq!(sh(&d, "./prog").trim(), "42");
    } else {
        eprintln!("--- make or gcc is not installed: skipped");
    }
    if have("sqlite3") {
        eprintln!("--- sqlite3 table, rows, integrity check");
        let sql = "create table t(k integer primary key, v text); \
                   with recursive n(i) as (select 1 union all select i+1 from n where i < 2000) \
                   insert into t(v) select hex(randomblob(50)) from n; \
                   select count(*) from t; pragma integrity_check;";
        let out = sh(&m.mp, &format!("sqlite3 db.sqlite \"{sql}\""));
        assert_eq!(out.lines().collect::<Vec<_>>(), vec!["2000", "ok"], "{out}");
    } else {
        eprintln!("--- sqlite3 is not installed: skipped");
    }
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = std::ffi::CString::new(name).expect("name");
    // SAFETY: valid NUL-terminated strings and a buffer of `value.len()` bytes.
    let r = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(r, 0, "setxattr {name} on {}: {}", path.display(), std::io::Error::last_os_error());
}

/// Writes `len` bytes to `path` in 64 KiB writes, then fsyncs; the bytes written
/// before the first error, and the error.
fn write_until_error(path: &Path, len: usize) -> (usize, Option<std::io::Error>) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("create");
    let mut done = 0;
    while done < len {
        match f.write(&vec![5u8; (len - done).min(64 << 10)]) {
            Ok(n) => done += n,
            Err(e) => return (done, Some(e)),
        }
    }
    (done, f.sync_all().err())
}

/// fallocate(2) through the mount (Ceph's FUSE client's modes), and that a write
/// past `ceph.quota.max_bytes` fails with EDQUOT at write time while everything
/// acknowledged before it is kept (before, the size flush was refused silently and
/// the acknowledged bytes vanished).
fn fallocate_and_quota(m: &Mount) {
    use std::os::unix::io::AsRawFd;
    eprintln!("--- fallocate: allocate grows the size, KEEP_SIZE keeps it, PUNCH_HOLE zeroes");
    let f = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(m.path("falloc")).expect("open");
    std::fs::write(m.path("falloc"), vec![9u8; 10_000]).expect("write");
    let fd = f.as_raw_fd();
    // SAFETY: fallocate on a descriptor this test owns.
    let falloc = |mode: i32, off: i64, len: i64| unsafe { libc::fallocate(fd, mode, off, len) };
    assert_eq!(falloc(0, 0, 1 << 20), 0, "allocate: {}", std::io::Error::last_os_error());
    assert_eq!(std::fs::metadata(m.path("falloc")).unwrap().len(), 1 << 20);
    assert_eq!(falloc(libc::FALLOC_FL_KEEP_SIZE, 0, 4 << 20), 0);
    assert_eq!(std::fs::metadata(m.path("falloc")).unwrap().len(), 1 << 20);
    assert_eq!(falloc(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 5, 10), 0);
    let back = std::fs::read(m.path("falloc")).expect("read");
    let mut want = vec![9u8; 10_000];
    want[5..15].fill(0);
    want.resize(1 << 20, 0);
    assert!(back == want, "fallocate changed the wrong bytes");
    assert_eq!(falloc(libc::FALLOC_FL_ZERO_RANGE, 0, 10), -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EOPNOTSUPP));
    drop(f);

    eprintln!("--- writing past ceph.quota.max_bytes fails with EDQUOT; acknowledged bytes stay");
    std::fs::create_dir(m.path("q")).expect("mkdir q");
    set_xattr(&m.path("q"), "ceph.quota.max_bytes", b"1000000");
    assert_eq!(write_until_error(&m.path("q/a"), 600_000).1.map(|e| e.to_string()), None);
    let (done, err) = write_until_error(&m.path("q/b"), 600_000);
    assert_eq!(err.and_then(|e| e.raw_os_error()), Some(libc::EDQUOT), "the write past the quota");
    assert!(done <= 400_000, "{done} bytes went in past the 400,000 left");
    assert_eq!(std::fs::metadata(m.path("q/b")).unwrap().len(), done as u64, "what was acknowledged is kept");
    assert!(std::fs::read(m.path("q/b")).unwrap().iter().all(|b| *b == 5));
    // SAFETY: fallocate on a descriptor this test owns.
    let g = std::fs::File::create(m.path("q/c")).expect("create");
    assert_eq!(unsafe { libc::fallocate(g.as_raw_fd(), 0, 0, 10 << 20) }, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EDQUOT), "fallocate past the quota");

    eprintln!("--- two files written at once under one quota: each keeps every acknowledged byte");
    std::fs::create_dir(m.path("q2")).expect("mkdir q2");
    set_xattr(&m.path("q2"), "ceph.quota.max_bytes", b"1000000");
    let mut files: Vec<(std::fs::File, usize, bool)> =
        ["q2/x", "q2/y"].iter().map(|p| (std::fs::File::create(m.path(p)).expect("create"), 0, false)).collect();
    for _ in 0..10 {
        for (f, done, failed) in files.iter_mut().filter(|(_, _, failed)| !*failed) {
            use std::io::Write;
            match f.write(&[6u8; 64 << 10]) {
                Ok(n) => *done += n,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EDQUOT), "{e}");
                    *failed = true;
                }
            }
        }
    }
    let written: Vec<usize> = files.into_iter().map(|(f, done, _)| {
        f.sync_all().expect("fsync");
        done
    }).collect();
    assert!(written.iter().sum::<usize>() >= 1_000_000 - (128 << 10), "the quota's room was usable: {written:?}");
    for (p, done) in ["q2/x", "q2/y"].iter().zip(&written) {
        assert_eq!(std::fs::metadata(m.path(p)).unwrap().len(), *done as u64, "{p}: every acknowledged byte is kept");
    }
    set_xattr(&m.path("q"), "ceph.quota.max_bytes", b"100000000");
    assert_eq!(write_until_error(&m.path("q/b"), 600_000).1.map(|e| e.to_string()), None, "a raised quota lets it through");
    assert_eq!(std::fs::metadata(m.path("q/b")).unwrap().len(), 600_000);
}

/// That two FUSE mounts of one file system agree on files, appends, attributes and
/// renames, that tar, git, make and sqlite3 work on a mount, fallocate and quotas on
/// writes through it (`fallocate_and_quota`), and that `cephr umount`
/// and SIGTERM each end a mount process cleanly (exit 0, pid file removed).
#[test]
fn t10_two_mounts_and_tools() {
    if let Err(why) = fuse_usable() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = start_fs();
    let (dirs, mpa, mpb) = mount_points();
    let a = Mount::daemon(&c, &mpa, "mount.a");
    let mut b = Mount::foreground(&c, &mpb, "mount.b");
    across_mounts(&a, &b);
    everyday_tools(&a, dirs.path());
    fallocate_and_quota(&a);

    eprintln!("--- cephr umount ends the foreground mount with exit 0");
    let r = c.cli(&["umount", &mpb.to_string_lossy()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let child = b.child.as_mut().expect("child");
    let exited = wait_until(Duration::from_secs(30), || !matches!(child.try_wait(), Ok(None)));
    assert!(exited, "mount process still running after umount\n{}", b.log_tail());
    let status = child.wait().expect("wait");
    assert!(status.success(), "mount exited with {status}\n{}", b.log_tail());
    assert!(!mounted(&mpb));

    eprintln!("--- SIGTERM unmounts the daemon and removes its pid file");
    // SAFETY: signalling the mount process this test started, by its pid.
    unsafe { libc::kill(a.pid as i32, libc::SIGTERM) };
    assert!(wait_until(Duration::from_secs(30), || !alive(a.pid)), "daemon still running\n{}", a.log_tail());
    assert!(!mounted(&mpa));
    assert!(!c.path().join("mount.a.pid").exists());
    assert!(a.log_tail().contains("closing the MDS session"), "{}", a.log_tail());
}

/// The sessions of entity `entity` (from `client ls --format json`).
fn sessions_of(c: &Cluster, entity: &str) -> Vec<serde_json::Value> {
    let r = c.cli(&["client", "ls", FS, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
    let all = v.as_array().cloned().or_else(|| v["sessions"].as_array().cloned()).unwrap_or_default();
    all.into_iter().filter(|s| s["entity"] == entity).collect()
}

/// Mounts B (`client.fb`), writes to `file` through a descriptor it keeps open (so B
/// holds write caps), then kills B's process with SIGKILL; returns the open descriptor.
fn kill_writer(c: &Cluster, mp: &Path, file: &str, line: &str) -> (Mount, std::fs::File) {
    let b = Mount::foreground(c, mp, "mount.b");
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(b.path(file)).expect("open in B");
    f.write_all(line.as_bytes()).expect("write in B");
    eprintln!("--- kill -9 mount B (pid {}) while it holds write caps", b.pid);
    // SAFETY: signalling the mount process this test started, by its pid.
    unsafe { libc::kill(b.pid as i32, libc::SIGKILL) };
    (b, f)
}

/// Appends `line` to `file` through mount A and returns how long the open+write+close took.
fn append_timed(a: &Mount, file: &str, line: &str) -> Duration {
    let t = Instant::now();
    append_line(&a.path(file), line);
    t.elapsed()
}

/// That when a client holding write caps on a file is killed (kill -9), another
/// client can still open the file for writing: once the dead client's session goes
/// stale (its caps are revoked without its answer), or at once after `cephr client
/// evict`, after which the dead client's instance is in the OSD blocklist.
#[test]
fn t20_dead_writer_blocks_nobody() {
    if let Err(why) = fuse_usable() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = start_fs_short_sessions();
    let (_dirs, mpa, mpb) = mount_points();
    let a = Mount::daemon(&c, &mpa, "mount.a");
    append_line(&a.path("shared"), "A 0");

    eprintln!("--- a dead writer: A proceeds once B's session is stale");
    let (b, f) = kill_writer(&c, &mpb, "shared", "B 0\n");
    let took = append_timed(&a, "shared", "A 1");
    eprintln!("--- A appended {:.2} s after B died (session_timeout 3 s)", took.as_secs_f64());
    drop(f);
    drop(b);

    eprintln!("--- evicted: A proceeds at once, B's instance is blocklisted");
    for (k, v) in [("session_timeout", "60")] {
        let r = c.cli(&["fs", "set", FS, k, v]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let (b, f) = kill_writer(&c, &mpb, "shared", "B 1\n");
    let open: Vec<_> = sessions_of(&c, "client.fb").into_iter().filter(|s| s["state"] == "open").collect();
    assert_eq!(open.len(), 1, "one open session of client.fb: {open:?}");
    let (id, addr) = (open[0]["id"].as_str().unwrap().to_string(), open[0]["addr"].as_str().unwrap_or("").to_string());
    let appender = std::thread::scope(|s| {
        let h = s.spawn(|| append_timed(&a, "shared", "A 2"));
        std::thread::sleep(Duration::from_millis(500));
        let t = Instant::now();
        let r = c.cli(&["client", "evict", FS, &id]);
        assert_eq!(r.code, 0, "evict: {} {}", r.stdout, r.stderr);
        let waited = h.join().expect("appender");
        (waited, t.elapsed())
    });
    eprintln!("--- A's append finished {:.2} s after it began; evict took {:.2} s", appender.0.as_secs_f64(), appender.1.as_secs_f64());
    let bl = c.cli(&["osd", "blocklist", "ls"]).stdout;
    assert!(!addr.is_empty() && bl.contains(&addr), "{addr} not blocklisted:\n{bl}");
    drop(f);
    drop(b);

    let text = std::fs::read_to_string(a.path("shared")).expect("read shared");
    for line in ["A 0", "A 1", "A 2"] {
        assert!(text.lines().any(|l| l == line), "{line} lost:\n{text}");
    }
}

fn get_xattr(path: &Path, name: &str) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = std::ffi::CString::new(name).expect("name");
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid NUL-terminated strings and a buffer of `buf.len()` bytes.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(r >= 0, "getxattr {name} on {}: {}", path.display(), std::io::Error::last_os_error());
    buf.truncate(r as usize);
    buf
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).expect("readdir").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// That a mount stopped (SIGSTOP) past session_timeout, while another mount changed
/// what it had cached (a file's bytes and size, an xattr, a directory's entries),
/// sees the changes as soon as it resumes: its caps are trusted only while its
/// renewals are acknowledged in time, so neither it nor its kernel answers from the
/// old caches, and the MDS revokes the caps it took from the stale session before
/// granting new ones. Then both mounts go on working on the same file.
#[test]
fn t30_stopped_mount_sees_changes_made_meanwhile() {
    if let Err(why) = fuse_usable() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = start_fs_short_sessions();
    let (_dirs, mpa, mpb) = mount_points();
    let a = Mount::daemon(&c, &mpa, "mount.a");
    let b = Mount::foreground(&c, &mpb, "mount.b");

    let old = bytes(1, 10_000);
    std::fs::create_dir(a.path("d")).expect("mkdir d");
    std::fs::write(a.path("d/f"), &old).expect("write f in A");
    set_xattr(&a.path("d/f"), "user.k", b"old");
    // A caches the bytes, size, xattr and listing.
    assert_eq!(std::fs::read(a.path("d/f")).expect("read in A"), old);
    assert_eq!(get_xattr(&a.path("d/f"), "user.k"), b"old");
    assert_eq!(listing(&a.path("d")), vec!["f"]);
    assert_eq!(std::fs::metadata(a.path("d/f")).expect("stat in A").len(), old.len() as u64);

    eprintln!("--- SIGSTOP mount A (pid {}); B changes everything A cached", a.pid);
    // SAFETY: signalling the mount process this test started, by its pid.
    unsafe { libc::kill(a.pid as i32, libc::SIGSTOP) };
    let stopped = Instant::now();
    let new = bytes(2, 25_000);
    {
        let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(b.path("d/f")).expect("open f in B");
        f.write_all(&new).expect("write in B");
        f.sync_all().expect("fsync in B");
    }
    set_xattr(&b.path("d/f"), "user.k", b"new");
    std::fs::write(b.path("d/g"), b"g").expect("create g in B");
    let stale = wait_until(Duration::from_secs(30), || sessions_of(&c, "client.fa").iter().any(|s| s["state"] == "stale"));
    assert!(stale, "A's session never went stale: {:?}", sessions_of(&c, "client.fa"));
    eprintln!("--- B's changes done {:.1} s after the stop; A's session is stale", stopped.elapsed().as_secs_f64());

    // SAFETY: as above.
    unsafe { libc::kill(a.pid as i32, libc::SIGCONT) };
    eprintln!("--- SIGCONT: A must see B's changes at once");
    assert_eq!(std::fs::metadata(a.path("d/f")).expect("stat in A").len(), new.len() as u64, "A's size is old");
    assert!(std::fs::read(a.path("d/f")).expect("read in A") == new, "A read old bytes");
    assert_eq!(get_xattr(&a.path("d/f"), "user.k"), b"new", "A's xattr is old");
    assert_eq!(listing(&a.path("d")), vec!["f", "g"], "A's listing is old");

    eprintln!("--- both mounts go on: A appends, B reads it, and back");
    append_line(&a.path("d/f"), "from A");
    let seen = std::fs::read(b.path("d/f")).expect("read in B");
    assert!(seen.starts_with(&new) && seen.ends_with(b"from A\n"), "B misses A's append ({} bytes)", seen.len());
    append_line(&b.path("d/f"), "from B");
    let seen = std::fs::read(a.path("d/f")).expect("read in A");
    assert!(seen.ends_with(b"from A\nfrom B\n"), "A misses B's append ({} bytes)", seen.len());
    let log = std::fs::read_to_string(c.log("mds.a")).unwrap_or_default();
    assert!(log.contains("stale -> open"), "the MDS log lacks A's renewal after staleness");
}
