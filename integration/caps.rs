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

/// A cluster with the file system and the two client identities, and its config.
fn start_fs() -> (Cluster, cephr::config::ClusterConfig) {
    let mut c = Cluster::start_with(&["a"], 3);
    c.start_fs(FS, [("meta", 8), ("data", 8)], &["mds.a"]);
    for who in ["client.one", "client.two"] {
        ok(&c, &["auth", "add", who, "--caps", "mon=allow r", "--caps", "osd=allow rw", "--caps", "mds=allow rw"]);
    }
    let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).expect("config");
    (c, cfg)
}

/// Mounts the file system through the library as `who`.
async fn mount(cfg: &cephr::config::ClusterConfig, who: &str) -> Client {
    Client::mount(cfg, &who.parse().expect("entity"), Some(FS), None).await.unwrap_or_else(|e| panic!("mount {who}: {e}"))
}

fn c(s: &str) -> Caps {
    Caps::parse(s).expect("caps")
}

/// Creates `name` in `root` and opens it read-write in `who`, alone: it becomes the
/// loner (writes go to its `Fb` buffer). The inode and the handle.
async fn loner_file(who: &Client, root: cephr::msg::mds::Ino, name: &str) -> (cephr::msg::mds::Ino, cephr::roles::client::file::Fh) {
    let (st, fh) = who.create_open(root, name, S_IFREG | 0o644, O_RDWR, true).await.expect("create");
    until(LIMIT, "the creator's loner caps", || who.held_caps(st.ino).contains(c("AxFxwb"))).await;
    (st.ino, fh)
}

/// That two clients stay coherent under caps: seed 004's second writer (the loner's
/// buffered data is flushed and both end with Frw, each seeing the other's bytes), a
/// stat seeing the other client's size after its close, an unlink seen at once, and
/// xattrs cached under Xs while each client's changes reach the other at once.
#[test]
fn t10_two_clients_are_coherent() {
    let (_cl, cfg) = start_fs();
    let rt = harness::runtime();
    rt.block_on(async {
        let one = mount(&cfg, "client.one").await;
        let two = mount(&cfg, "client.two").await;
        let root = one.root_ino();
        let mut inval_two = two.invalidations();

        eprintln!("--- client one opens alone for write: loner, writes go to the Fb buffer");
        let (ino, fa) = loner_file(&one, root, "shared").await;
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

        eprintln!("--- two lists the root from its cache, and sees one's changes at once");
        let names = |v: Vec<cephr::msg::mds::DirEntry>| v.into_iter().map(|e| e.name).collect::<Vec<_>>();
        let before = names(two.readdir(root).await.expect("list"));
        until(LIMIT, "client two may cache the root's entries", || two.held_caps(root).contains(Caps::FILE_SHARED)).await;
        assert_eq!(names(two.readdir(root).await.expect("list")), before);
        assert!(two.listing_cached(root), "a complete directory under Fs is listed from the cache");
        one.create(root, "newcomer", S_IFREG | 0o644, true).await.expect("create newcomer");
        assert!(names(two.readdir(root).await.expect("list")).contains(&"newcomer".to_string()));
        one.rename(root, "newcomer", root, "renamed").await.expect("rename");
        let after = names(two.readdir(root).await.expect("list"));
        assert!(after.contains(&"renamed".to_string()) && !after.contains(&"newcomer".to_string()), "{after:?}");
        one.unlink(root, "renamed").await.expect("unlink renamed");
        assert_eq!(names(two.readdir(root).await.expect("list")), before);

        eprintln!("--- xattrs are cached under Xs, and another client's change is seen at once");
        let (sx, fx) = one.create_open(root, "attrs", S_IFREG | 0o644, O_RDWR, true).await.expect("create attrs");
        let x = sx.ino;
        one.setxattr(x, "user.k", b"1", 0).await.expect("set one");
        until(LIMIT, "client one holds Xs", || one.held_caps(x).contains(Caps::XATTR_SHARED)).await;
        assert_eq!(one.getxattr(x, "user.k").await.expect("get one"), b"1");
        assert!(one.xattrs_cached(x), "the loner caches the xattrs under Xs");
        let none = one.getxattr(x, "security.capability").await.expect_err("no such xattr");
        assert_eq!(none.errno, cephr::error::Errno::ENODATA);
        // Client two has no Xs while one is the loner (it asks the MDS).
        assert_eq!(two.lookup(root, "attrs").await.expect("two looks").ino, x);
        assert_eq!(two.getxattr(x, "user.k").await.expect("get two"), b"1");
        two.setxattr(x, "user.k", b"2", 0).await.expect("set two");
        assert!(!one.xattrs_cached(x), "the MDS took Xs from client one before the change");
        assert_eq!(one.getxattr(x, "user.k").await.expect("get one"), b"2");
        // Two writers: no loner, the xattr lock is shared and both cache.
        let (_, fy) = two.open(x, O_RDWR).await.expect("open two");
        for (name, cl) in [("one", &one), ("two", &two)] {
            until(LIMIT, &format!("client {name} holds Xs"), || cl.held_caps(x).contains(Caps::XATTR_SHARED)).await;
            assert_eq!(cl.getxattr(x, "user.k").await.expect("get"), b"2", "client {name}");
            assert!(cl.xattrs_cached(x), "client {name} caches the xattrs under Xs");
        }
        for i in 0..20u32 {
            let (setter, other) = if i % 2 == 0 { (&two, &one) } else { (&one, &two) };
            let v = i.to_string().into_bytes();
            setter.setxattr(x, "user.k", &v, 0).await.expect("set");
            assert_eq!(other.getxattr(x, "user.k").await.expect("get other"), v, "round {i}: the other client");
            assert_eq!(setter.getxattr(x, "user.k").await.expect("get setter"), v, "round {i}: the setter");
            one.fh_write(fx, u64::from(i) * 10, b"0123456789").await.expect("write under cached xattrs");
        }
        eprintln!("--- cached xattrs keep the namespace rules");
        one.setxattr(x, "trusted.t", b"t", 0).await.expect("set trusted");
        until(LIMIT, "client one holds As and Xs", || one.held_caps(x).contains(c("AsXs"))).await;
        assert_eq!(one.getxattr(x, "user.k").await.expect("get"), b"19");
        assert!(one.xattrs_cached(x));
        let user = cephr::msg::mds::Caller { uid: 1000, gid: 1000, gids: vec![] };
        let errno = |r: Result<Vec<u8>, cephr::error::CmdError>| r.expect_err("refused").errno;
        let (k, t) = Client::with_caller(user.clone(), async {
            (one.getxattr(x, "user.k").await.expect("0644: others read"), one.listxattr(x).await.expect("list"))
        })
        .await;
        assert_eq!((k, t), (b"19".to_vec(), vec!["user.k".to_string()]), "no trusted. names for a user");
        assert_eq!(errno(Client::with_caller(user.clone(), one.getxattr(x, "trusted.t")).await), cephr::error::Errno::ENODATA);
        assert_eq!(errno(one.getxattr(x, "other.x").await), cephr::error::Errno::ENOTSUP);
        one.setattr(x, cephr::msg::mds::SetAttr { mode: Some(0o600), ..Default::default() }).await.expect("chmod");
        assert!(one.xattrs_cached(x), "a chmod leaves the xattrs cached");
        assert_eq!(errno(Client::with_caller(user, one.getxattr(x, "user.k")).await), cephr::error::Errno::EACCES);
        until(LIMIT, "client one holds As again", || one.held_caps(x).contains(c("AsXs"))).await;
        let absent = one.removexattr(x, "security.capability").await.expect_err("absent");
        assert_eq!(absent.errno, cephr::error::Errno::ENODATA);
        assert!(one.xattrs_cached(x), "refused locally");
        one.removexattr(x, "trusted.t").await.expect("remove trusted");
        two.removexattr(x, "user.k").await.expect("remove");
        assert!(one.listxattr(x).await.expect("list").is_empty(), "client one sees the removal");
        assert_eq!(one.getxattr(x, "user.k").await.expect_err("removed").errno, cephr::error::Errno::ENODATA);
        one.fh_release(fx).await.expect("close attrs one");
        two.fh_release(fy).await.expect("close attrs two");

        let _ = one.unmount().await;
        let _ = two.unmount().await;
    });
}

/// A model file: what the bytes must be after each operation.
struct Model(Vec<u8>);

impl Model {
    fn write(&mut self, off: usize, data: &[u8]) {
        if self.0.len() < off + data.len() {
            self.0.resize(off + data.len(), 0);
        }
        self.0[off..off + data.len()].copy_from_slice(data);
    }
}

/// Sequential reads with background read-ahead while the same client writes (and
/// sometimes flushes or truncates) just ahead of the reader, inside the window being
/// read ahead: every read must show exactly the model's bytes (a read-ahead that raced
/// with a write must not cache what it read).
/// That a revoke taking `Fb` is acked only once the buffered data is on the OSDs.
/// Client one buffers a write as the loner, then its messages to every OSD are
/// dropped; client two opens the file for write, so the MDS revokes one's `Fb`.
/// Once one's links work again, two overwrites the same bytes and closes, then one
/// closes. The file must hold two's bytes. Before, one's flush gave up at the op
/// timeout and one acked the revoke anyway, keeping its data: two wrote under the
/// caps it got, and one's close then wrote its older bytes over two's (and a file
/// unlinked meanwhile got objects back after its purge: leaked objects).
#[test]
fn t30_revoke_waits_until_its_flush_lands() {
    let (_cl, cfg) = start_fs();
    let rt = harness::runtime();
    rt.block_on(async {
        let one = mount(&cfg, "client.one").await;
        let two = mount(&cfg, "client.two").await;
        let root = one.root_ino();
        let (ino, fa) = loner_file(&one, root, "held").await;
        let (a, b) = (vec![b'A'; 100_000], vec![b'B'; 100_000]);
        assert_eq!(one.fh_write(fa, 0, &a).await.expect("write one"), a.len());

        eprintln!("--- one's messages to the OSDs are dropped; two opens the file for write");
        one.inject_faults("drop 1 client.one->osd.*").expect("fault rules");
        let (_, fb) = two.open(ino, O_RDWR).await.expect("open two");
        // Past the op timeout (10 s in the fast profile), at which one's flush used to
        // give up and ack the revoke.
        tokio::time::sleep(Duration::from_secs(12)).await;

        eprintln!("--- the OSDs hear from one again; two overwrites one's bytes, both close");
        one.inject_faults("").expect("clear fault rules");
        let wrote = match two.fh_write(fb, 0, &b).await {
            // Two's wait for its caps may end before one's flush lands.
            Err(e) if e.errno == cephr::error::Errno::ETIMEDOUT => two.fh_write(fb, 0, &b).await,
            r => r,
        };
        assert_eq!(wrote.expect("write two"), b.len());
        two.fh_release(fb).await.expect("close two");
        one.fh_release(fa).await.expect("close one");
        let (_, fr) = two.open(ino, 0).await.expect("open two to read");
        let seen = two.fh_read(fr, 0, 200_000).await.expect("read two");
        assert_eq!(seen.len(), b.len());
        assert!(seen == b, "the file holds two's later bytes, not one's older ones ({} of 'A')", seen.iter().filter(|x| **x == b'A').count());
        two.fh_release(fr).await.expect("close two's reader");
    });
}

#[test]
fn t25_read_ahead_races_with_writes_ahead_of_the_reader() {
    use rand::{Rng, SeedableRng};
    const MIB: usize = 1 << 20;
    let (_cl, cfg) = start_fs();
    let rt = harness::runtime();
    rt.block_on(async {
        let one = mount(&cfg, "client.one").await;
        let (st, fh) = one.create_open(one.root_ino(), "seq", S_IFREG | 0o644, O_RDWR, true).await.expect("create");
        let mut model = Model(Vec::new());
        for i in 0..40 {
            let data: Vec<u8> = (0..MIB).map(|b| ((i * 7 + b / 4096) % 251) as u8 + 1).collect();
            one.fh_write(fh, (i * MIB) as u64, &data).await.expect("write");
            model.write(i * MIB, &data);
        }
        one.fh_flush(fh).await.expect("flush");
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for round in 0..2 {
            let mut off = 0usize;
            while off < model.0.len() {
                let got = one.fh_read(fh, off as u64, MIB as u64).await.expect("read");
                let want = &model.0[off..(off + MIB).min(model.0.len())];
                assert!(got == want, "round {round}: read at {off:#x} differs from the model");
                off += MIB;
                // Give the background fetch a moment, then change bytes it may be reading.
                tokio::task::yield_now().await;
                if rng.gen_bool(0.4) {
                    let at = off + rng.gen_range(0..12 * MIB);
                    let data = vec![rng.gen_range(1..=255u8); rng.gen_range(1..200_000)];
                    one.fh_write(fh, at as u64, &data).await.expect("write ahead");
                    model.write(at, &data);
                    if rng.gen_bool(0.3) {
                        one.fh_flush(fh).await.expect("flush");
                    }
                }
                if rng.gen_bool(0.03) {
                    let size = off + rng.gen_range(0..8 * MIB);
                    one.truncate(st.ino, size as u64).await.expect("truncate");
                    model.0.resize(size, 0);
                }
            }
        }
        one.fh_release(fh).await.expect("close");
        let _ = one.unmount().await;
    });
}

/// fsx through the library with company: one task writes, truncates and reads one
/// file at random and checks every read against a model, while a second task keeps
/// reading the file through another handle (filling the `Fc` page cache while
/// writes sit in the `Fb` buffer) and flushing it (so flushes run concurrently
/// with truncates and reads). Each read must show exactly the model's bytes.
#[test]
fn t20_random_io_with_concurrent_reads_and_flushes() {
    use rand::{Rng, SeedableRng};
    let (_cl, cfg) = start_fs();
    let rt = harness::runtime();
    rt.block_on(async {
        let one = mount(&cfg, "client.one").await;
        let root = one.root_ino();
        let (st, mut fa) = one.create_open(root, "fsx", S_IFREG | 0o644, O_RDWR, true).await.expect("create");
        let ino = st.ino;
        let (_, fb) = one.open(ino, O_RDWR).await.expect("second handle");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let company = {
            let (one, stop) = (one.clone(), stop.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let off = rng.gen_range(0..MAX_LEN as u64);
                    let _ = one.fh_read(fb, off, rng.gen_range(1..200_000)).await;
                    if rng.gen_bool(0.3) {
                        let _ = one.fh_flush(fb).await;
                    }
                    tokio::task::yield_now().await;
                }
            })
        };
        const MAX_LEN: usize = 600_000;
        let seed = std::env::var("FSX_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1u64);
        let ops: usize = std::env::var("FSX_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(1500);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut model = Model(Vec::new());
        let mut log: Vec<String> = Vec::new();
        for n in 0..ops {
            match rng.gen_range(0..10) {
                0..=3 => {
                    let off = rng.gen_range(0..MAX_LEN - 1);
                    let len = rng.gen_range(1..(MAX_LEN - off).min(150_000));
                    let data: Vec<u8> = (0..len).map(|i| ((n * 131 + i) % 251) as u8 + 1).collect();
                    log.push(format!("{n}: write {off:#x}..{:#x}", off + len));
                    assert_eq!(one.fh_write(fa, off as u64, &data).await.expect("write"), len);
                    model.write(off, &data);
                }
                4 => {
                    let size = if rng.gen_bool(0.5) { rng.gen_range(0..model.0.len().max(1)) } else { rng.gen_range(0..MAX_LEN) };
                    log.push(format!("{n}: truncate {:#x} -> {size:#x}", model.0.len()));
                    one.truncate(ino, size as u64).await.expect("truncate");
                    model.0.resize(size, 0);
                }
                5 => {
                    log.push(format!("{n}: close and reopen"));
                    one.fh_release(fa).await.expect("close");
                    (_, fa) = one.open(ino, O_RDWR).await.expect("reopen");
                }
                _ => {
                    let off = rng.gen_range(0..MAX_LEN);
                    let len = rng.gen_range(1..150_000);
                    log.push(format!("{n}: read {off:#x}..{:#x}", off + len));
                    let got = one.fh_read(fa, off as u64, len as u64).await.expect("read");
                    let want = &model.0[off.min(model.0.len())..(off + len).min(model.0.len())];
                    if got != want {
                        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
                        let tail: Vec<&String> = log.iter().rev().take(12).rev().collect();
                        let osd = one.read(ino, off as u64, len as u64).await.expect("direct read");
                        let again = one.fh_read(fa, off as u64, len as u64).await.expect("read again");
                        eprintln!("direct read from the OSDs equal: {}; read again equal: {}", osd == want, again == want);
                        panic!(
                            "seed {seed} op {n}: read {off:#x}+{len:#x} got {} bytes, want {}; first difference at {:#x}\nlast ops: {tail:#?}",
                            got.len(),
                            want.len(),
                            off + first
                        );
                    }
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        company.await.expect("reader task");
        one.fh_release(fa).await.expect("close");
        one.fh_release(fb).await.expect("close second");
        let _ = one.unmount().await;
    });
}
