//! Async creates, mkdirs and unlinks end to end (library clients, real daemons): a client that
//! holds `Fsx` on a directory it listed or made creates and unlinks there without
//! waiting for the MDS; another client that lists the directory sees every entry the
//! first one acknowledged; conflicting creates get EEXIST; an error that comes back
//! late is reported by the next sync; and a kill -9 of the active MDS during async
//! creates loses none that were acknowledged (the standby replays, the client re-sends).
//! An fsync waits only for its own inode's requests, and what it waited for survives
//! a kill -9 of the MDS right after it with the client gone too.
mod harness;

use cephr::error::Errno;
use cephr::msg::caps::Caps;
use cephr::msg::mds::{Ino, O_RDWR, S_IFREG};
use cephr::roles::client::Client;
use harness::{runtime, Cluster};
use std::collections::BTreeSet;

const FS: &str = "cephfs";

fn ok(c: &Cluster, args: &[&str]) {
    let r = c.cli(args);
    assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stderr, c.logs_tail());
}

fn start_fs(mds: &[&str]) -> Cluster {
    let mut c = Cluster::start_with(&["a"], 3);
    c.start_fs(FS, [("meta", 8), ("data", 8)], mds);
    for who in ["client.one", "client.two"] {
        ok(&c, &["auth", "add", who, "--caps", "mon=allow r", "--caps", "osd=allow rw", "--caps", "mds=allow rw"]);
    }
    c
}

async fn mount(c: &Cluster, who: &str) -> Client {
    let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).expect("config");
    Client::mount(&cfg, &who.parse().unwrap(), Some(FS), None).await.expect("mount")
}

/// Makes `name` under the root, and one synchronous create in it whose safe reply
/// delegates inode numbers: afterwards the client creates there asynchronously.
async fn async_ready_dir(cl: &Client, name: &str) -> Ino {
    let d = cl.mkdir(cl.root_ino(), name, 0o755).await.expect("mkdir").ino;
    assert!(cl.held_caps(d).contains(Caps::FILE_SHARED | Caps::FILE_EXCL), "the mkdir reply carries Fsx: {}", cl.held_caps(d));
    cl.create(d, "first", S_IFREG | 0o644, true).await.expect("first create");
    cl.sync().await.expect("sync");
    assert!(cl.async_state().1 > 0, "the safe reply delegated inode numbers");
    d
}

fn names(entries: &[cephr::msg::mds::DirEntry]) -> BTreeSet<String> {
    entries.iter().map(|e| e.name.clone()).collect()
}

/// That creates in a directory the client holds `Fsx` on are async (delegated numbers
/// used, nothing waited for), that another client listing it sees every acknowledged
/// entry, that conflicting creates get EEXIST both ways, and that an async create the
/// MDS refuses later (quota) is reported by the next sync and leaves no entry.
#[test]
fn t10_async_creates_seen_by_another_client() {
    let cl = start_fs(&["mds.a"]);
    runtime().block_on(async {
        let one = mount(&cl, "client.one").await;
        let two = mount(&cl, "client.two").await;
        let d = async_ready_dir(&one, "d").await;

        eprintln!("--- client one creates 200 files asynchronously");
        let before = one.async_state().1;
        let mut made: BTreeSet<String> = ["first".to_string()].into();
        for i in 0..200 {
            let name = format!("f{i:03}");
            one.create(d, &name, S_IFREG | 0o644, true).await.expect("async create");
            made.insert(name);
        }
        assert_eq!(before - one.async_state().1, 200, "each create took a delegated number");
        let e = one.create(d, "f007", S_IFREG | 0o644, true).await.expect_err("a name the client knows exists");
        assert_eq!(e.errno, Errno::EEXIST);
        one.unlink(d, "f199").await.expect("async unlink");
        made.remove("f199");
        let left = one.async_state().1;
        let sub = one.mkdir(d, "sub", 0o750).await.expect("async mkdir");
        assert_eq!(left - one.async_state().1, 1, "the mkdir took a delegated number");
        made.insert("sub".to_string());

        eprintln!("--- client two lists the directory: every acknowledged entry is there");
        let dd = two.lookup(two.root_ino(), "d").await.expect("two looks up d").ino;
        let listed = two.readdir(dd).await.expect("two lists");
        assert_eq!(names(&listed), made);
        let s = listed.iter().find(|e| e.name == "sub").expect("sub listed");
        assert_eq!((s.ino, s.d_type), (sub.ino, cephr::msg::mds::S_IFDIR), "the directory the client made, with its number");

        eprintln!("--- conflicting creates: the second creator gets EEXIST either way");
        two.create(d, "x", S_IFREG | 0o644, true).await.expect("two creates x");
        let e = one.create(d, "x", S_IFREG | 0o644, true).await.expect_err("one creates x too");
        assert_eq!(e.errno, Errno::EEXIST);
        let d2 = async_ready_dir(&one, "d2").await;
        one.create(d2, "y", S_IFREG | 0o644, true).await.expect("one creates y (async)");
        let e = two.create(d2, "y", S_IFREG | 0o644, true).await.expect_err("two creates y too");
        assert_eq!(e.errno, Errno::EEXIST);

        eprintln!("--- an async create refused later (quota) is reported by the next sync");
        let d3 = async_ready_dir(&one, "d3").await;
        one.setxattr(d3, "ceph.quota.max_files", b"3", 0).await.expect("quota");
        let mut reported = 0;
        for i in 0..6 {
            // A create after the first refusal came back reports it instead.
            if let Err(e) = one.create(d3, &format!("q{i}"), S_IFREG | 0o644, true).await {
                assert_eq!(e.errno, Errno::EDQUOT, "{e}");
                reported += 1;
            }
        }
        loop {
            match one.sync().await {
                Ok(()) => break,
                Err(e) if e.errno == Errno::EDQUOT => reported += 1,
                Err(e) if e.errno == Errno::ETIMEDOUT => {}
                Err(e) => panic!("sync after refused async creates: {e}"),
            }
        }
        assert!(reported >= 1, "the refusal was reported");
        let listed = names(&two.readdir(d3).await.expect("two lists d3"));
        assert_eq!(listed.len(), 3, "the quota held: {listed:?}");
        for i in 0..6 {
            let found = one.lookup(d3, &format!("q{i}")).await.is_ok();
            assert_eq!(found, listed.contains(&format!("q{i}")), "client one agrees with the MDS about q{i}");
        }
        let _ = one.unmount().await;
        let _ = two.unmount().await;
    });
}

/// The daemon name (`mds.a`) holding rank 0.
fn active_mds(c: &Cluster) -> Option<String> {
    let r = c.cli(&["fs", "status", FS, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).ok()?;
    let d = v["filesystems"][0]["daemons"].as_array()?.iter().find(|i| i["rank"] == 0 && i["state"] == "up:active")?.clone();
    let n = d["name"].as_str()?;
    Some(if n.starts_with("mds.") { n.to_string() } else { format!("mds.{n}") })
}

/// That a kill -9 of the active MDS in the middle of async creates loses none that were
/// acknowledged: the standby replays the journal, the client re-sends every op not yet
/// safe (those already journaled are answered from the metadata, not run twice), and a
/// fresh client then lists exactly the acknowledged names.
#[test]
fn t20_failover_keeps_acknowledged_async_creates() {
    let mut cl = start_fs(&["mds.a", "mds.b"]);
    let rt = runtime();
    let one = rt.block_on(mount(&cl, "client.one"));
    let d = rt.block_on(async_ready_dir(&one, "d"));
    let mut made: BTreeSet<String> = ["first".to_string()].into();
    let create_batch = |from: usize, made: &mut BTreeSet<String>| {
        rt.block_on(async {
            for i in from..from + 150 {
                let name = format!("f{i:04}");
                one.create(d, &name, S_IFREG | 0o644, true).await.expect("async create");
                made.insert(name);
            }
        })
    };
    create_batch(0, &mut made);
    eprintln!("--- kill -9 the active MDS with async creates in flight: {:?}", one.async_state());
    let active = active_mds(&cl).expect("an active mds");
    cl.kill9(&active);
    create_batch(150, &mut made);
    eprintln!("--- the standby takes over; the client re-sends what is not safe");
    rt.block_on(async {
        for _ in 0..30 {
            match one.sync().await {
                Ok(()) => return,
                Err(e) if e.errno == Errno::ETIMEDOUT => continue,
                Err(e) => panic!("sync after failover: {e}"),
            }
        }
        panic!("creates still not safe after failover");
    });
    assert_ne!(active_mds(&cl).as_deref(), Some(active.as_str()), "another daemon holds rank 0");
    let listed = rt.block_on(async {
        let fresh = mount(&cl, "client.two").await;
        let dd = fresh.lookup(fresh.root_ino(), "d").await.expect("lookup d").ino;
        let l = names(&fresh.readdir(dd).await.expect("list d"));
        let _ = fresh.unmount().await;
        l
    });
    assert_eq!(listed, made, "every acknowledged create survived the failover");
    let _ = rt.block_on(one.unmount());
}

/// That an fsync of a file waits for that file's own requests (its async create) and
/// cap flush, not for the async creates of other files in flight, and that what it
/// waited for is durable: the active MDS is killed (-9) right after the fsync returns
/// and the client goes away with it (nothing re-sent), yet after the standby took
/// over the file is there with every byte.
#[test]
fn t30_fsync_of_one_file_is_durable_without_waiting_for_others() {
    let mut cl = start_fs(&["mds.a", "mds.b"]);
    let data = harness::bytes(7, 100_000);
    let rt = runtime();
    let target = rt.block_on(async {
        let one = mount(&cl, "client.one").await;
        let d = async_ready_dir(&one, "d").await;
        let (st, fh) = one.create_open(d, "target", S_IFREG | 0o644, O_RDWR, true).await.expect("create target");
        one.fh_write(fh, 0, &data).await.expect("write");
        for i in 0..300 {
            one.create(d, &format!("x{i:03}"), S_IFREG | 0o644, true).await.expect("async create");
        }
        one.fh_fsync(fh, false).await.expect("fsync");
        assert_eq!(one.unsafe_about(st.ino), 0, "the fsync waited for the target's create");
        assert!(one.is_clean(st.ino), "and for its cap flush");
        eprintln!("--- fsync returned with {} other requests not yet safe", one.unsafe_count());
        st.ino
    });
    let active = active_mds(&cl).expect("an active mds");
    cl.kill9(&active);
    // The client goes too: nothing it did not wait for is re-sent.
    rt.shutdown_background();
    eprintln!("--- killed {active} and the client; the standby takes over");
    let rt = runtime();
    rt.block_on(async {
        let two = mount(&cl, "client.two").await;
        let d = two.lookup(two.root_ino(), "d").await.expect("lookup d").ino;
        let st = two.lookup(d, "target").await.expect("the fsynced file survived");
        assert_eq!(st.ino, target);
        assert_eq!(st.size, data.len() as u64, "its size survived");
        let (_, fh) = two.open(st.ino, 0).await.expect("open");
        assert!(two.fh_read(fh, 0, data.len() as u64).await.expect("read") == data, "its bytes survived");
        let _ = two.unmount().await;
    });
    assert_ne!(active_mds(&cl).as_deref(), Some(active.as_str()), "another daemon holds rank 0");
}
