//! Caps end to end: two library clients (separate identities) on one cluster with a
//! real MDS. Seed 004 on the real MDS (a lone writer buffers under Fb; a second writer
//! opening the file makes the MDS revoke, the first client's buffered data reaches
//! the OSDs, and both end with Frw and see each other's writes), a stat in one client
//! sees the size the other's writes made once it closes, and an unlink by one is seen
//! by the other at once (its cached entry is dropped when the MDS revokes Fs).
mod harness;

use cephr::msg::caps::Caps;
use cephr::msg::mds::{O_RDWR, S_IFREG};
use cephr::roles::client::file::Invalidate;
use cephr::roles::client::Client;
use harness::{until, Cluster};
use std::time::Duration;

/// How long a condition may take to come true.
const LIMIT: Duration = Duration::from_secs(10);
const FS: &str = "cephfs";

fn ok(c: &Cluster, args: &[&str]) {
    let r = c.cli(args);
    assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stderr, c.logs_tail());
}

fn start_fs() -> Cluster {
    let mut c = Cluster::start_with(&["a"], 3);
    c.start_fs(FS, [("meta", 8), ("data", 8)], &["mds.a"]);
    for who in ["client.one", "client.two"] {
        ok(&c, &["auth", "add", who, "--caps", "mon=allow r", "--caps", "osd=allow rw", "--caps", "mds=allow rw"]);
    }
    c
}

fn c(s: &str) -> Caps {
    Caps::parse(s).expect("caps")
}

/// That two clients stay coherent under caps: seed 004's second writer (the loner's
/// buffered data is flushed and both end with Frw, each seeing the other's bytes), a
/// stat seeing the other client's size after its close, and an unlink seen at once.
#[test]
fn t10_two_clients_are_coherent() {
    let cl = start_fs();
    let cfg = cephr::config::ClusterConfig::load(&cl.conf(), &[]).expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let one = Client::mount(&cfg, &"client.one".parse().unwrap(), Some(FS), None).await.expect("mount one");
        let two = Client::mount(&cfg, &"client.two".parse().unwrap(), Some(FS), None).await.expect("mount two");
        let root = one.root_ino();
        let mut inval_two = two.invalidations();

        eprintln!("--- client one opens alone for write: loner, writes go to the Fb buffer");
        let (st, fa) = one.create_open(root, "shared", S_IFREG | 0o644, O_RDWR, true).await.expect("create");
        let ino = st.ino;
        until(LIMIT, "client one's loner caps", || one.held_caps(ino).contains(c("AxFxwb"))).await;
        let a_data = vec![b'A'; 5000];
        assert_eq!(one.fh_write(fa, 0, &a_data).await.expect("write one"), 5000);

        eprintln!("--- client two opens for write: one is revoked, flushes, both get Frw");
        let (_, fb) = two.open(ino, O_RDWR).await.expect("open two");
        assert_eq!(two.fh_write(fb, 5000, b"BBBB").await.expect("write two"), 4);
        for (name, cl) in [("one", &one), ("two", &two)] {
            let held = cl.held_caps(ino);
            assert!(held.contains(c("Frw")), "client {name} holds {held}");
            assert!(!held.intersects(c("Fcbx")), "client {name} may not cache or buffer in mix: {held}");
        }
        let seen_by_two = two.fh_read(fb, 0, 5004).await.expect("read two");
        assert_eq!(seen_by_two.len(), 5004, "client two sees client one's flushed size");
        assert!(seen_by_two[..5000].iter().all(|b| *b == b'A') && &seen_by_two[5000..] == b"BBBB");
        let seen_by_one = one.fh_read(fa, 4998, 100).await.expect("read one");
        assert_eq!(seen_by_one, b"AABBBB", "client one sees client two's bytes");
        one.fh_release(fa).await.expect("close one");
        two.fh_release(fb).await.expect("close two");

        eprintln!("--- a stat in client two sees client one's size after close");
        let (st2, f2) = one.create_open(root, "grows", S_IFREG | 0o644, O_RDWR, true).await.expect("create grows");
        assert_eq!(two.lookup(root, "grows").await.expect("two looks").size, 0);
        one.fh_write(f2, 0, &vec![7u8; 12345]).await.expect("write grows");
        one.fh_release(f2).await.expect("close grows");
        assert_eq!(two.getattr(st2.ino).await.expect("two stats").size, 12345);
        assert_eq!(two.lookup_path("/grows").await.expect("two walks").size, 12345);

        eprintln!("--- an unlink by one is seen by two at once");
        one.create(root, "gone", S_IFREG | 0o644, true).await.expect("create gone");
        assert!(two.lookup(root, "gone").await.is_ok());
        until(LIMIT, "client two may cache the root's entries", || two.held_caps(root).contains(Caps::FILE_SHARED)).await;
        assert!(two.kernel_ttl(root) > Duration::ZERO);
        one.unlink(root, "gone").await.expect("unlink");
        let e = two.lookup(root, "gone").await.expect_err("two must not find the unlinked entry");
        assert_eq!(e.errno, cephr::error::Errno::ENOENT);
        let mut dropped = false;
        while let Ok(inv) = inval_two.try_recv() {
            dropped |= inv == Invalidate::Entry { parent: root, name: "gone".into() };
        }
        assert!(dropped, "client two told its mount to drop the entry");

        let _ = one.unmount().await;
        let _ = two.unmount().await;
    });
}
