//! MDS failover with clients holding caps (seed 000): the active MDS is killed with
//! -9, the standby replays, waits in `up:reconnect` for the clients' reconnects
//! (caps, open files), evicts a client process killed meanwhile after
//! `mds_reconnect_timeout`, and goes active. The surviving clients keep their
//! sessions and caps: a write by one after failover revokes the other's cached pages
//! (it reads the new size), and nothing acknowledged before the kill is lost. Also a
//! file unlinked while open stays usable through the open handle across the
//! failover (a stray in the journal) and is purged once closed.
mod harness;

use cephr::msg::caps::Caps;
use cephr::msg::mds::{O_RDWR, S_IFREG};
use cephr::roles::client::Client;
use harness::{until, Cluster, BIN};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a condition may take to come true.
const LIMIT: Duration = Duration::from_secs(15);
const FS: &str = "cephfs";

fn ok(c: &Cluster, args: &[&str]) -> String {
    let r = c.cli(args);
    assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stderr, c.logs_tail());
    r.stdout
}

/// A client process (`cephr fs put - PATH`) holding a session; killed by PID on drop.
struct Doomed(Child);

impl Drop for Doomed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sessions(c: &Cluster) -> Vec<serde_json::Value> {
    let r = c.cli(&["client", "ls", FS, "--format", "json"]);
    serde_json::from_str::<Vec<serde_json::Value>>(&r.stdout).unwrap_or_default()
}

fn active_gid(c: &Cluster) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&c.cli(&["fs", "status", FS, "--format", "json"]).stdout).ok()?;
    let d = v["filesystems"][0]["daemons"].as_array()?;
    d.iter().find(|i| i["rank"] == 0 && i["state"] == "up:active").and_then(|i| i["name"].as_str()).map(String::from)
}

/// That after kill -9 of the active MDS two clients with cached caps reconnect to the
/// standby and keep working coherently (a write by one revokes the other's cache, it
/// sees the new size), that acknowledged writes and metadata ops survive, that a
/// file unlinked while open is still readable through its handle after failover and
/// purged after close, and that a client killed during failover is evicted after the
/// reconnect timeout while the others proceed.
#[test]
fn t10_failover_reconnects_clients_and_evicts_the_dead() {
    let mut c = Cluster::start_with(&["a"], 3);
    c.start_fs(FS, [("meta", 8), ("data", 8)], &["mds.a", "mds.b"]);
    for who in ["client.one", "client.two", "client.doomed"] {
        ok(&c, &["auth", "add", who, "--caps", "mon=allow r", "--caps", "osd=allow rw", "--caps", "mds=allow rw"]);
    }
    let first = active_gid(&c).expect("an active MDS");
    let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).expect("config");
    let rt = harness::runtime();
    let (one, two) = rt.block_on(async {
        let one = Client::mount(&cfg, &"client.one".parse().unwrap(), Some(FS), None).await.expect("mount one");
        let two = Client::mount(&cfg, &"client.two".parse().unwrap(), Some(FS), None).await.expect("mount two");
        (one, two)
    });
    let root = one.root_ino();
    let (f, fa, fb, gone, fg) = rt.block_on(async {
        eprintln!("--- before: data, metadata, two readers caching one file, an open unlinked file");
        let (st, fw) = one.create_open(root, "shared", S_IFREG | 0o644, O_RDWR, true).await.expect("create");
        one.fh_write(fw, 0, &harness::bytes(1, 5000)).await.expect("write");
        one.fh_release(fw).await.expect("close");
        one.mkdir(root, "dir", 0o755).await.expect("mkdir");
        two.create(root, "meta-two", S_IFREG | 0o600, true).await.expect("create two");
        let (_, fa) = one.open(st.ino, 0).await.expect("open one");
        let (_, fb) = two.open(st.ino, 0).await.expect("open two");
        assert_eq!(one.fh_read(fa, 0, 5000).await.expect("read one").len(), 5000);
        assert_eq!(two.fh_read(fb, 0, 5000).await.expect("read two").len(), 5000);
        until(LIMIT, "both cache the file", || {
            one.held_caps(st.ino).contains(Caps::FILE_CACHE) && two.held_caps(st.ino).contains(Caps::FILE_CACHE)
        })
        .await;
        let (gst, fg) = one.create_open(root, "gone", S_IFREG | 0o644, O_RDWR, true).await.expect("create gone");
        one.fh_write(fg, 0, b"still here").await.expect("write gone");
        one.fh_flush(fg).await.expect("flush gone");
        one.unlink(root, "gone").await.expect("unlink while open");
        one.sync().await.expect("sync one");
        two.sync().await.expect("sync two");
        (st.ino, fa, fb, gst.ino, fg)
    });

    eprintln!("--- a third client process holds a session");
    let doomed = Doomed(
        Command::new(BIN)
            .arg("-c")
            .arg(c.conf())
            .args(["-n", "client.doomed", "fs", "put", "-", "/doomed.bin", "--fs", FS])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn client"),
    );
    // `client ls` shows a session `opening` until its open is journaled: `open` means
    // the session survives a failover.
    c.wait_for(Duration::from_secs(30), "client.doomed's session open", |c| {
        sessions(c).iter().any(|s| s["entity"] == "client.doomed" && s["state"] == "open")
    });

    eprintln!("--- kill -9 the active MDS and the third client");
    let t0 = Instant::now();
    c.kill9(&format!("mds.{first}"));
    drop(doomed);
    let (took, st_after) = rt.block_on(async {
        // A namespace change has to reach the (new) MDS: nothing serves it from a cache.
        one.mkdir(root, "after", 0o755).await.expect("first op after failover");
        (t0.elapsed(), one.getattr(f).await.expect("stat after failover"))
    });
    eprintln!("--- failover: first op answered {:.2} s after kill -9", took.as_secs_f64());
    assert_eq!(st_after.size, 5000);
    c.wait_for(Duration::from_secs(30), "the new MDS active", |c| active_gid(c).is_some());
    let second = active_gid(&c).expect("an active MDS");
    assert_ne!(first, second, "the standby took over");

    rt.block_on(async {
        eprintln!("--- the open unlinked file is still readable through its handle");
        assert_eq!(one.fh_read(fg, 0, 100).await.expect("read unlinked"), b"still here");
        assert_eq!(one.getattr(gone).await.expect("fstat unlinked").nlink, 0);

        eprintln!("--- a write by two revokes one's cached pages; one sees the new size");
        let (_, fw) = two.open(f, O_RDWR).await.expect("two opens for write");
        if let Err(e) = two.fh_write(fw, 5000, b"after failover").await {
            panic!("write after failover: {e}\n{}", c.logs_tail());
        }
        two.fh_release(fw).await.expect("close two's writer");
        let seen = one.fh_read(fa, 0, 10_000).await.expect("read one after");
        assert_eq!(seen.len(), 5014, "one sees two's new size");
        assert_eq!(&seen[5000..], b"after failover");
        assert_eq!(&seen[..5000], &harness::bytes(1, 5000)[..]);
        for name in ["dir", "meta-two"] {
            one.lookup(root, name).await.unwrap_or_else(|e| panic!("{name} lost: {e}"));
        }
        one.fh_release(fg).await.expect("close unlinked");
        one.fh_release(fa).await.expect("close one");
        two.fh_release(fb).await.expect("close two");
    });

    eprintln!("--- the killed client is evicted and blocklisted");
    c.wait_for(Duration::from_secs(30), "client.doomed evicted", |c| {
        !sessions(c).iter().any(|s| s["entity"] == "client.doomed")
    });
    let log = std::fs::read_to_string(c.log(&format!("mds.{second}"))).unwrap_or_default();
    assert_eq!(log.matches("client reconnected").count(), 2, "one and two reconnected:\n{}", c.logs_tail());
    assert!(log.contains("did not reconnect within mds_reconnect_timeout"), "{}", c.logs_tail());

    eprintln!("--- the unlinked file is purged once closed");
    rt.block_on(async {
        let mut purged = false;
        for _ in 0..100 {
            if one.getattr(gone).await.is_err() {
                purged = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(purged, "the stray {gone:#x} was not purged after close");

        eprintln!("--- 200 more namespace ops; then one more once all are safe");
        for i in 0..200 {
            one.mkdir(root, &format!("m{i}"), 0o755).await.expect("mkdir");
        }
        one.sync().await.expect("sync one");
        one.mkdir(root, "last", 0o755).await.expect("mkdir last");
        one.sync().await.expect("sync one");
    });
    // Each request names the client's oldest unfinished one; the rank forgets the
    // completed requests below it (before, it kept every one for good).
    let kept = sessions(&c)
        .iter()
        .find(|s| s["entity"] == "client.one")
        .and_then(|s| s["completed_requests"].as_u64())
        .expect("client.one's session lists its completed requests");
    assert!(kept <= 5, "the rank still remembers {kept} completed requests of client.one");
    rt.block_on(async {
        let _ = one.unmount().await;
        let _ = two.unmount().await;
    });
}
