//! File client end to end: real monitors, OSDs and an MDS daemon; `cephr fs put/get`
//! of a multi-object file must round-trip byte-identical, and `put -r`/`get -r` of a
//! small tree must keep names, contents, modes, mtimes, symlinks, hard links and
//! xattrs. Also ls/stat/mkdir -p/mv/rm through the CLI.
mod harness;

use harness::Cluster;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn ok(c: &Cluster, args: &[&str]) -> String {
    let r = c.cli(args);
    assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stderr, c.logs_tail());
    r.stdout
}

fn start_fs() -> Cluster {
    let mut c = Cluster::start_with(&["a"], 3);
    c.start_fs("cephfs", [("meta", 8), ("data", 8)], &["mds.a"]);
    c
}

/// Every entry under `root`: relative path → (kind, size, mode, mtime, link target,
/// content digest, xattrs); and the groups of paths that share an inode.
fn describe(root: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut out = Vec::new();
    let mut inodes: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for p in names {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let target = std::fs::read_link(&p).ok().map(|t| t.display().to_string());
            let digest = if m.is_file() {
                let b = std::fs::read(&p).unwrap();
                b.iter().fold(0xcbf29ce484222325u64, |h, x| (h ^ *x as u64).wrapping_mul(0x100000001b3))
            } else {
                0
            };
            let xattr = if m.is_file() { xattr_get(&p, "user.tag") } else { None };
            let mtime = if m.file_type().is_symlink() { 0 } else { m.mtime() * 1_000_000_000 + m.mtime_nsec() };
            out.push(format!("{rel} {:o} {} {mtime} {target:?} {digest:x} {xattr:?}", m.mode(), if m.is_dir() { 0 } else { m.len() }));
            if m.is_file() && m.nlink() > 1 {
                inodes.entry(m.ino()).or_default().push(rel.clone());
            }
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    let mut groups: Vec<Vec<String>> = inodes.into_values().collect();
    groups.sort();
    (out, groups)
}

fn xattr_get(p: &Path, name: &str) -> Option<String> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid NUL-terminated strings and a writable buffer.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    (r >= 0).then(|| String::from_utf8_lossy(&buf[..r as usize]).into_owned())
}

fn xattr_set(p: &Path, name: &str, v: &str) -> bool {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a readable buffer.
    unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), v.as_ptr() as *const libc::c_void, v.len(), 0) == 0 }
}

#[test]
fn put_get_file_and_tree() {
    let c = start_fs();
    let work = tempfile::tempdir().unwrap();

    // A file spanning several 4 MiB objects, not a multiple of the object size.
    let src = work.path().join("big.bin");
    let data: Vec<u8> = (0..(9u64 << 20) + 12345).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    ok(&c, &["fs", "mkdir", "-p", "/x/y"]);
    ok(&c, &["fs", "mkdir", "-p", "/x/y"]);
    ok(&c, &["fs", "put", src.to_str().unwrap(), "/x/y/big.bin"]);
    let back = work.path().join("back.bin");
    ok(&c, &["fs", "get", "/x/y/big.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "round trip differs");
    let stat = ok(&c, &["fs", "stat", "/x/y/big.bin"]);
    assert!(stat.contains(&format!("Size: {}", data.len())), "{stat}");
    let ls = ok(&c, &["fs", "ls", "/x/y"]);
    assert!(ls.contains("big.bin") && ls.starts_with("-rw"), "{ls}");
    // Overwrite with a smaller file: the old tail must not come back.
    std::fs::write(&src, b"short").unwrap();
    ok(&c, &["fs", "put", src.to_str().unwrap(), "/x/y/big.bin"]);
    ok(&c, &["fs", "get", "/x/y/big.bin", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), b"short");
    ok(&c, &["fs", "mv", "/x/y/big.bin", "/x/small"]);
    let r = c.cli(&["fs", "stat", "/x/y/big.bin"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("ENOENT"), "{}", r.stderr);
    let r = c.cli(&["fs", "rm", "/x"]);
    assert!(r.stderr.contains("EISDIR"), "{}", r.stderr);
    ok(&c, &["fs", "rm", "-r", "/x"]);
    assert_eq!(ok(&c, &["fs", "ls", "/"]).trim(), "");

    // A small tree with every kind of entry.
    let t = work.path().join("tree");
    std::fs::create_dir_all(t.join("sub/deeper")).unwrap();
    std::fs::write(t.join("a.txt"), b"hello").unwrap();
    std::fs::write(t.join("sub/b.bin"), vec![7u8; 5 << 20]).unwrap();
    std::fs::write(t.join("sub/deeper/empty"), b"").unwrap();
    std::fs::hard_link(t.join("a.txt"), t.join("sub/a-link")).unwrap();
    std::os::unix::fs::symlink("../a.txt", t.join("sub/sym")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(t.join("sub/b.bin"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let have_xattrs = xattr_set(&t.join("a.txt"), "user.tag", "v1");
    ok(&c, &["fs", "put", "-r", t.to_str().unwrap(), "/copy"]);
    let out = work.path().join("out");
    ok(&c, &["fs", "get", "-r", "/copy", out.to_str().unwrap()]);
    let (want, want_links) = describe(&t);
    let (got, got_links) = describe(&out);
    assert_eq!(got, want);
    assert_eq!(got_links, want_links);
    assert_eq!(want_links.len(), 1);
    if have_xattrs {
        assert_eq!(xattr_get(&out.join("a.txt"), "user.tag").as_deref(), Some("v1"));
    }
    // A sub-directory mount sees the copy's contents at its root.
    let ls = ok(&c, &["fs", "ls", "/", "--root", "/copy"]);
    assert!(ls.contains("a.txt") && ls.contains("sub"), "{ls}");
}
