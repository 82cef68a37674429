//! The file system end to end with real daemons: MDS daemons, `fs new` → rank 0 active
//! with a standby, file data and a tree through `cephr fs put/get`, everything kept across
//! a `kill -9` of every daemon, and a client confined to a sub-directory.
mod harness;

use harness::{bytes, Cluster};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

const FS: &str = "cephfs";

fn all_daemons(c: &Cluster) -> Vec<String> {
    let mut v: Vec<String> = c.mons.iter().map(|m| format!("mon.{m}")).collect();
    v.extend((0..c.osds).map(|i| format!("osd.{i}")));
    v.extend(["mds.a".to_string(), "mds.b".to_string()]);
    v
}


fn start_fs() -> Cluster {
    let mut c = Cluster::start_with(&["a"], 3);
    c.start_fs(FS, [("cephfs_metadata", 16), ("cephfs_data", 32)], &["mds.a", "mds.b"]);
    c
}

fn fs(c: &Cluster, args: &[&str]) -> String {
    let mut a = vec!["fs"];
    a.extend(args);
    a.extend(["--fs", FS]);
    let r = c.cli(&a);
    assert_eq!(r.code, 0, "cephr {a:?}: {}\n{}", r.stderr, c.logs_tail());
    r.stdout
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a live buffer.
    let r = unsafe { libc::lsetxattr(path.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    assert_eq!(r, 0, "setxattr {}: {}", p.display(), std::io::Error::last_os_error());
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: valid path and buffer of the given size.
    let n = unsafe { libc::llistxattr(path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let mut out = BTreeMap::new();
    for name in names[..n.max(0) as usize].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cname = std::ffi::CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        // SAFETY: as above.
        let m = unsafe { libc::lgetxattr(path.as_ptr(), cname.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
        if m >= 0 {
            v.truncate(m as usize);
            out.insert(String::from_utf8_lossy(name).into_owned(), v);
        }
    }
    out
}

/// A small tree with nested directories, modes, mtimes, a symlink, a hard link, xattrs.
fn make_tree(root: &Path, files: usize) {
    for i in 0..files {
        let d = root.join(format!("d{}", i % 7)).join(format!("e{}", i % 3));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join(format!("f{i}"));
        std::fs::write(&f, bytes(i as u64, (i * 97) % 5000)).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600 + (i as u32 % 0o100))).unwrap();
        let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + i as u64 * 11);
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(t).unwrap();
        if i % 10 == 0 {
            set_xattr(&f, "user.n", format!("v{i}").as_bytes());
        }
    }
    std::os::unix::fs::symlink("d0/e0/f0", root.join("link")).unwrap();
    std::fs::hard_link(root.join("d1/e1/f1"), root.join("hard")).unwrap();
}

/// What must survive a round trip: per relative path, kind, size, mode, mtime, symlink
/// target, xattrs, content hash, and which paths share an inode.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(&rel)).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let r = rel.join(e.file_name());
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let key = r.display().to_string();
            let desc = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(e.path()).unwrap().display())
            } else if m.is_dir() {
                stack.push(r.clone());
                format!("dir {:o}", m.mode() & 0o7777)
            } else {
                let data = std::fs::read(e.path()).unwrap();
                let h = data.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3));
                let first = inodes.entry(m.ino()).or_insert_with(|| key.clone()).clone();
                format!("file {:o} {} {} {h:x} x{:?} same-as {first}", m.mode() & 0o7777, m.len(), m.mtime(), xattrs(&e.path()))
            };
            out.insert(key, desc);
        }
    }
    out
}

/// t10: a file and a tree round-trip, and are exactly as acknowledged after every daemon
/// is killed with SIGKILL and the cluster restarts.
#[test]
fn t10_data_and_tree_survive_kill_all() {
    let mut c = start_fs();
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big");
    let data = bytes(42, 9 << 20 | 12345);
    std::fs::write(&big, &data).unwrap();
    fs(&c, &["put", big.to_str().unwrap(), "/big"]);
    let back = work.path().join("big.back");
    fs(&c, &["get", "/big", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "big file differs after get");

    let tree = work.path().join("tree");
    make_tree(&tree, 120);
    fs(&c, &["mkdir", "/t"]);
    fs(&c, &["put", "-r", tree.to_str().unwrap(), "/t/tree"]);
    let tree_back = work.path().join("tree.back");
    fs(&c, &["get", "-r", "/t/tree", tree_back.to_str().unwrap()]);
    let want = describe(&tree);
    assert_eq!(describe(&tree_back), want);

    // Every command above exited 0 only after its requests were safe (journaled).
    for d in all_daemons(&c) {
        c.kill9(&d);
    }
    for d in all_daemons(&c) {
        c.start_daemon(&d);
    }
    // The monitors show the killed instance active until its beacon grace passes; the
    // file system is back when a client gets an answer.
    c.wait_for(Duration::from_secs(60), "the file system answering after restart", |c| {
        c.cli(&["fs", "stat", "/big", "--fs", FS]).code == 0
    });
    let back2 = work.path().join("big.back2");
    fs(&c, &["get", "/big", back2.to_str().unwrap()]);
    assert!(std::fs::read(&back2).unwrap() == data, "big file differs after restart");
    let tree_back2 = work.path().join("tree.back2");
    fs(&c, &["get", "-r", "/t/tree", tree_back2.to_str().unwrap()]);
    assert_eq!(describe(&tree_back2), want);
}

/// t20: a client confined by `path=/a` sees /a as its root and can't reach /b.
#[test]
fn t20_path_confinement() {
    let c = start_fs();
    fs(&c, &["mkdir", "/a"]);
    fs(&c, &["mkdir", "/b"]);
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    std::fs::write(&f, b"secret").unwrap();
    fs(&c, &["put", f.to_str().unwrap(), "/b/secret"]);
    let r = c.cli(&["auth", "add", "client.a", "--caps", "mon=allow r", "--caps", "osd=allow rw", "--caps", "mds=allow rw path=/a"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let as_a = |args: &[&str]| {
        let mut a = vec!["-n", "client.a", "fs"];
        a.extend(args);
        a.extend(["--fs", FS]);
        c.cli(&a)
    };
    let r = as_a(&["put", f.to_str().unwrap(), "/mine"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Its "/" is /a: /mine is /a/mine for the admin.
    fs(&c, &["stat", "/a/mine"]);
    for path in ["/b/secret", "/../b/secret", "/../../b"] {
        let r = as_a(&["stat", path]);
        assert_ne!(r.code, 0, "client.a reached {path}: {}", r.stdout);
    }
    let r = as_a(&["get", "/../b/secret", work.path().join("x").to_str().unwrap()]);
    assert_ne!(r.code, 0);

    // A client with a certificate from another cluster's CA can't even connect to the MDS.
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cephr"))
        .args(["cluster", "create", "--mons", "a", "--dir"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).unwrap();
    let mds_addr = cfg.mds["a"].addr;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let refused = rt.block_on(async {
        let id = cephr::auth::Identity::load(&other.path().join("keys"), &"client.admin".parse().unwrap()).unwrap();
        let opts = cephr::net::MsgrOptions::from_options(&cfg.global);
        let (m, _rx) =
            cephr::net::Messenger::bind(&id, "127.0.0.1:0".parse().unwrap(), false, opts, Default::default()).unwrap();
        let session = cephr::msg::Message::MClientSession(cephr::msg::mds::SessionOp::Open {
            root: "/".into(),
            metadata: Default::default(),
        });
        m.request(&cephr::ids::EntityName::mds("a"), mds_addr, session, Duration::from_secs(3)).await.is_err()
    });
    assert!(refused, "a foreign client was answered by the MDS");

    // statfs: file count from the MDS, space from the OSDs' reports via the monitors.
    c.wait_for(Duration::from_secs(10), "OSD space in `cephr df`", |c| {
        let r = c.cli(&["df", "--format", "json"]);
        serde_json::from_str::<serde_json::Value>(&r.stdout).is_ok_and(|v| v["total_bytes"].as_u64() > Some(0))
    });
    let st = rt.block_on(async {
        let client = cephr::roles::client::Client::mount(&cfg, &"client.admin".parse().unwrap(), Some(FS), None).await.unwrap();
        let st = client.statfs().await.unwrap();
        let _ = client.unmount().await;
        st
    });
    assert!(st.files >= 4 && st.blocks > 0 && st.bfree > 0 && st.bfree <= st.blocks, "statfs: {st:?}");
    let log = std::fs::read_to_string(c.log("mds.a")).unwrap_or_default();
    assert!(log.contains("refused connection"), "mds.a logs the refusal:\n{log}");
}

/// t30: a corrupted journal object is reported by `journal inspect`, and the rank is
/// marked damaged on restart instead of serving a namespace missing its tail.
#[test]
fn t30_corrupt_journal_marks_rank_damaged() {
    let mut c = start_fs();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    make_tree(&tree, 60);
    fs(&c, &["put", "-r", tree.to_str().unwrap(), "/tree"]);
    let inspect = c.cli(&["journal", "--fs", FS, "--rank", "0", "inspect"]);
    assert!(inspect.stdout.contains("integrity: OK"), "{}{}", inspect.stdout, inspect.stderr);
    let obj = work.path().join("j");
    let r = c.cli(&["rados", "-p", "cephfs_metadata", "get", "200.00000000", obj.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut j = std::fs::read(&obj).unwrap();
    assert!(j.len() > 10_000, "journal has {} bytes", j.len());
    let mid = j.len() / 2;
    j[mid] ^= 0x5a;
    std::fs::write(&obj, &j).unwrap();
    let r = c.cli(&["rados", "-p", "cephfs_metadata", "put", "200.00000000", obj.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let inspect = c.cli(&["journal", "--fs", FS, "--rank", "0", "inspect"]);
    assert!(inspect.stdout.contains("DAMAGED"), "inspect: {}{}", inspect.stdout, inspect.stderr);
    for d in ["mds.a", "mds.b"] {
        c.kill9(d);
    }
    for d in ["mds.a", "mds.b"] {
        c.start_daemon(d);
    }
    c.wait_for(Duration::from_secs(30), "rank 0 damaged", |c| {
        let r = c.cli(&["fs", "status", FS, "--format", "json"]);
        serde_json::from_str::<serde_json::Value>(&r.stdout)
            .is_ok_and(|v| v["filesystems"][0]["damaged"].as_array().is_some_and(|d| d.iter().any(|x| x == 0)))
    });
    let r = c.cli(&["fs", "stat", "/tree", "--fs", FS]);
    assert_ne!(r.code, 0, "a damaged rank served /tree: {}", r.stdout);
}
