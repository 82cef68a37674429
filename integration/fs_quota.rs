//! Quotas end to end with real daemons, through the CLI only: `cephr fs setfattr`
//! sets `ceph.quota.max_files`/`max_bytes` on a directory, `cephr fs getfattr` reads
//! them and the recursive statistics back, writing past max_bytes and creating past
//! max_files fail with EDQUOT (exit code 122), also for a client mounted below the
//! quota directory, and the statistics and limits survive a `kill -9` of the MDS.
mod harness;

use harness::Cluster;
use std::time::Duration;

/// Exit code of a command that failed with EDQUOT (its errno).
const EDQUOT: i32 = 122;
const EINVAL: i32 = 22;
const ENODATA: i32 = 61;
const EFBIG: i32 = 27;

fn ok(c: &Cluster, args: &[&str]) -> String {
    let r = c.cli(args);
    assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stderr, c.logs_tail());
    r.stdout
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(c: &Cluster, code: i32, args: &[&str]) -> String {
    let r = c.cli(args);
    assert_eq!(r.code, code, "{args:?} exited {}: {}{}", r.code, r.stdout, r.stderr);
    r.stderr
}

fn getfattr(c: &Cluster, path: &str, name: &str) -> String {
    ok(c, &["fs", "getfattr", path, name]).trim().to_string()
}

fn start_fs() -> Cluster {
    let mut c = Cluster::start_with(&["a"], 3);
    c.start_fs("cephfs", [("meta", 8), ("data", 8)], &["mds.a"]);
    c
}

/// That max_bytes and max_files set with `fs setfattr` make writes and creates past
/// them fail with EDQUOT, for a client mounted at the root and one mounted below the
/// quota directory alike, and that limits and recursive stats survive an MDS restart.
#[test]
fn quotas_through_the_cli() {
    let mut c = start_fs();
    let work = tempfile::tempdir().unwrap();
    let small = work.path().join("small");
    std::fs::write(&small, vec![1u8; 400 << 10]).unwrap();
    let (small, big) = (small.to_str().unwrap().to_string(), work.path().join("big"));
    std::fs::write(&big, vec![2u8; 700 << 10]).unwrap();
    let big = big.to_str().unwrap().to_string();

    eprintln!("--- set quotas on /q");
    ok(&c, &["fs", "mkdir", "-p", "/q/sub"]);
    fails(&c, ENODATA, &["fs", "getfattr", "/q", "ceph.quota.max_bytes"]);
    fails(&c, EINVAL, &["fs", "setfattr", "/q", "ceph.quota.max_bytes", "lots"]);
    ok(&c, &["fs", "setfattr", "/q", "ceph.quota.max_bytes", "1048576"]);
    ok(&c, &["fs", "setfattr", "/q", "ceph.quota.max_files", "4"]);
    assert_eq!(getfattr(&c, "/q", "ceph.quota.max_bytes"), "1048576");
    assert_eq!(getfattr(&c, "/q", "ceph.quota.max_files"), "4");

    eprintln!("--- writing past max_bytes");
    ok(&c, &["fs", "put", &small, "/q/sub/a"]);
    assert_eq!(getfattr(&c, "/q", "ceph.dir.rbytes"), (400 << 10).to_string());
    let err = fails(&c, EDQUOT, &["fs", "put", &big, "/q/sub/b"]);
    assert!(err.contains("EDQUOT"), "{err}");
    assert_eq!(getfattr(&c, "/q", "ceph.dir.rbytes"), (400 << 10).to_string(), "the refused size is not kept");
    ok(&c, &["fs", "put", &small, "/outside"]);

    eprintln!("--- creating past max_files (sub, a, b are 3 of 4)");
    ok(&c, &["fs", "mkdir", "/q/d"]);
    assert_eq!(getfattr(&c, "/q", "ceph.dir.rentries"), "4");
    fails(&c, EDQUOT, &["fs", "mkdir", "/q/sub/e"]);
    fails(&c, EDQUOT, &["fs", "put", &small, "/q/c"]);
    fails(&c, EDQUOT, &["fs", "mv", "/outside", "/q/sub/outside"]);

    eprintln!("--- a client mounted at /q/sub is bound too");
    let below = ["--root", "/q/sub"];
    ok(&c, &["fs", "rm", "-r", "/q/d"]);
    fails(&c, EDQUOT, &[&["fs", "put", &big, "/b2"][..], &below].concat());
    fails(&c, EDQUOT, &[&["fs", "mkdir", "/x"][..], &below].concat());
    ok(&c, &[&["fs", "rm", "/b2"][..], &below].concat());
    ok(&c, &[&["fs", "put", &small, "/b3"][..], &below].concat());
    assert_eq!(getfattr(&c, "/q/sub", "ceph.dir.rbytes"), (800 << 10).to_string());
    assert_eq!(getfattr(&c, "/q/sub", "ceph.dir.rfiles"), "3");

    eprintln!("--- kill -9 the MDS: stats and limits come back from the journal");
    c.kill9("mds.a");
    c.start_daemon("mds.a");
    c.wait_for(Duration::from_secs(60), "the file system answering after restart", |c| {
        c.cli(&["fs", "getfattr", "/q", "ceph.dir.rbytes"]).code == 0
    });
    let log = std::fs::read_to_string(c.log("mds.a")).unwrap_or_default();
    assert!(log.contains("-> up:replay"), "the new mds.a replayed the journal:\n{log}");
    assert_eq!(getfattr(&c, "/q", "ceph.dir.rbytes"), (800 << 10).to_string());
    assert_eq!(getfattr(&c, "/q", "ceph.dir.rentries"), "4");
    fails(&c, EDQUOT, &["fs", "mkdir", "/q/f"]);

    eprintln!("--- removing the limit lifts it");
    ok(&c, &["fs", "setfattr", "/q", "ceph.quota.max_files", "-x"]);
    ok(&c, &["fs", "mkdir", "/q/f"]);
    let all = ok(&c, &["fs", "getfattr", "/q"]);
    assert!(!all.contains("ceph."), "virtual xattrs are not listed: {all}");

    eprintln!("--- max_file_size: a file may not grow past it");
    fails(&c, EINVAL, &["fs", "set", "cephfs", "max_file_size", "lots"]);
    fails(&c, EINVAL, &["fs", "set", "cephfs", "max_file_size", "100"]);
    ok(&c, &["fs", "set", "cephfs", "max_file_size", "524288"]);
    let err = fails(&c, EFBIG, &["fs", "put", &big, "/toobig"]);
    assert!(err.contains("EFBIG"), "{err}");
    ok(&c, &["fs", "put", &small, "/fits"]);
}
