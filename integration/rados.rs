//! RADOS with real daemons: replicated writes under an OSD kill, recovery after the
//! OSD returns (replicas compared by digest), writes waiting below min_size, and
//! error answers.
mod harness;

use harness::Cluster;
use std::sync::{Arc, Mutex};
use std::io::Write;
use std::time::Duration;

fn content(i: u32, round: u32) -> Vec<u8> {
    (0..4096u32).map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7) ^ round) as u8).collect()
}

/// Stops the three OSDs and checks that their stores hold `objects` objects and are
/// identical (per-PG digests of every object).
fn stop_and_compare(c: &mut Cluster, objects: usize) {
    for i in 0..3 {
        c.kill9(&format!("osd.{i}"));
    }
    let d0 = c.osd_digests(0);
    assert_eq!(d0.iter().map(|(_, d)| d.len()).sum::<usize>(), objects);
    for i in 1..3 {
        assert_eq!(c.osd_digests(i), d0, "osd.{i} equals osd.0");
    }
}

/// That with size 3 / min_size 2 a writer keeps going through `kill -9` of an OSD,
/// every acknowledged object reads back intact, the PGs serve again after `osd out`,
/// and once the OSD is back and in, every replica is identical.
#[test]
fn t10_writer_survives_osd_kill_and_replicas_converge() {
    let mut c = Cluster::start_with(&["a"], 3);
    assert_eq!(c.cli(&["osd", "pool", "create", "data", "--pg-num", "16", "--size", "3", "--min-size", "2"]).code, 0);
    let cl = c.rados(Duration::from_secs(30));
    eprintln!("--- 700 objects");
    cl.rt.block_on(async {
        for i in 0..700 {
            cl.obj.write_full("data", &format!("o{i}"), content(i, 0)).await.expect("write");
        }
    });
    eprintln!("--- writer running; kill -9 osd.1");
    let acked: Arc<Mutex<Vec<u32>>> = Arc::default();
    let (obj, a2) = (cl.obj.clone(), acked.clone());
    let writer = cl.rt.spawn(async move {
        for i in 700..1000u32 {
            obj.write_full("data", &format!("o{i}"), content(i, 0)).await.expect("write acknowledged eventually");
            a2.lock().expect("lock").push(i);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    c.kill9("osd.1");
    cl.rt.block_on(writer).expect("writer");
    assert_eq!(acked.lock().expect("lock").len(), 300, "the writer went on");
    eprintln!("--- every acknowledged object reads back");
    cl.rt.block_on(async {
        for i in 0..1000 {
            assert_eq!(cl.obj.read("data", &format!("o{i}"), 0, None).await.expect("read"), content(i, 0), "o{i}");
        }
    });
    eprintln!("--- osd out 1, then overwrite half while it is out");
    assert_eq!(c.cli(&["osd", "out", "1"]).code, 0);
    cl.rt.block_on(async {
        for i in (0..1000).step_by(2) {
            cl.obj.write_full("data", &format!("o{i}"), content(i, 1)).await.expect("write while out");
        }
    });
    eprintln!("--- restart osd.1, osd in 1");
    c.start_daemon("osd.1");
    c.wait_for(Duration::from_secs(15), "osd.1 up", |c| c.osds_up().contains(&1));
    assert_eq!(c.cli(&["osd", "in", "1"]).code, 0);
    cl.rt.block_on(async {
        for i in 0..1000 {
            let want = content(i, if i % 2 == 0 { 1 } else { 0 });
            let got = cl.obj.read("data", &format!("o{i}"), 0, None).await.expect("read after recovery");
            assert_eq!(got, want, "o{i}");
        }
    });
    eprintln!("--- stop the OSDs and compare every replica");
    c.wait_for(Duration::from_secs(30), "all PGs active+clean", |c| c.cli(&["pg", "stat"]).stdout.contains("16 active+clean"));
    stop_and_compare(&mut c, 1000);
}

/// That with two of three OSDs down (size 3, min_size 2) writes wait and none is
/// acknowledged, and they complete once an OSD returns.
#[test]
fn t20_writes_wait_below_min_size() {
    let mut c = Cluster::start_with(&["a"], 3);
    assert_eq!(c.cli(&["osd", "pool", "create", "data", "--pg-num", "8"]).code, 0);
    let quick = c.rados(Duration::from_secs(3));
    quick.rt.block_on(async { quick.obj.write_full("data", "before", vec![1; 10]).await.expect("write") });
    eprintln!("--- kill -9 osd.1 and osd.2");
    c.kill9("osd.1");
    c.kill9("osd.2");
    c.wait_for(Duration::from_secs(10), "both down", |c| c.osds_up() == vec![0]);
    let r = quick.rt.block_on(async { quick.obj.write_full("data", "blocked", vec![2; 10]).await });
    assert!(matches!(r, Err(cephr::objecter::ObjError::Timeout { .. })), "not acknowledged: {r:?}");
    eprintln!("--- a write waits while osd.1 comes back");
    let slow = c.rados(Duration::from_secs(30));
    let obj = slow.obj.clone();
    let pending = slow.rt.spawn(async move { obj.write_full("data", "waits", vec![3; 10]).await });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!pending.is_finished(), "still waiting below min_size");
    c.start_daemon("osd.1");
    slow.rt.block_on(pending).expect("join").expect("completes once an OSD returns");
    let got = slow.rt.block_on(async { slow.obj.read("data", "waits", 0, None).await }).expect("read");
    assert_eq!(got, vec![3; 10]);
}

/// That `bench rados` writes then reads back with its client on one thread, printing
/// both phases with their op counts, and refuses bad arguments and unknown pools.
#[test]
fn t35_bench_rados() {
    let c = Cluster::start_with(&["a"], 1);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--size", "1", "--min-size", "1", "--pg-num", "4"]).code, 0);
    let r = c.cli(&["bench", "rados", "-p", "p", "--size", "4K", "--threads", "2", "--seconds", "0.5", "--client-threads", "0"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, c.logs_tail());
    let ops = |phase: &str| -> u64 {
        let line = r.stdout.lines().find(|l| l.starts_with(phase)).unwrap_or_else(|| panic!("no {phase} line in:\n{}", r.stdout));
        line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no op count in {line}"))
    };
    assert!(ops("write") > 0 && ops("read") > 0, "{}", r.stdout);
    let r = c.cli(&["bench", "rados", "-p", "p", "--client-threads", "99"]);
    assert_eq!(r.code, 22, "{}", r.stderr);
    assert!(r.stderr.contains("--client-threads"), "{}", r.stderr);
    let r = c.cli(&["bench", "rados", "-p", "p", "--size", "0"]);
    assert_eq!(r.code, 22, "{}", r.stderr);
    let r = c.cli(&["bench", "rados", "-p", "nope", "--seconds", "0.3"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    // Its reader going away (`| head -1`) ends it quietly by SIGPIPE, not by a panic.
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(harness::BIN)
        .arg("-c")
        .arg(c.conf())
        .args(["bench", "rados", "-p", "p", "--size", "4K", "--seconds", "0.5"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("first line");
    assert!(first.starts_with("bench:"), "{first}");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?} {stderr}", out.status);
}

/// That an OSD whose disk is past `osd_failsafe_full_ratio` refuses writes that take
/// space with ENOSPC and a message naming it, while removals still run.
#[test]
fn t36_full_osd_refuses_writes() {
    let mut c = Cluster::create_with(&["a"], 1);
    let mut f = std::fs::OpenOptions::new().append(true).open(c.conf()).expect("conf");
    // [global] is the file's last section; any disk in use is past this ratio.
    writeln!(f, "osd_failsafe_full_ratio = 0.000001").expect("conf");
    drop(f);
    c.start_mon("a");
    c.start_daemon("osd.0");
    c.wait_for(Duration::from_secs(20), "the OSD up", |c| c.osds_up() == vec![0]);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--size", "1", "--min-size", "1", "--pg-num", "4"]).code, 0);
    let src = c.path().join("obj");
    std::fs::write(&src, b"data").expect("write");
    let r = c.cli(&["rados", "-p", "p", "put", "o", src.to_str().expect("utf-8")]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("ENOSPC") && r.stderr.contains("osd.0 is full"), "{}", r.stderr);
    let r = c.cli(&["rados", "-p", "p", "setomapval", "o", "k", "v"]);
    assert!(r.stderr.contains("ENOSPC"), "{}", r.stderr);
    // A removal is not refused: it reaches the store, which finds no object.
    let r = c.cli(&["rados", "-p", "p", "rm", "o"]);
    assert!(r.stderr.contains("ENOENT"), "{}", r.stderr);
    let log = std::fs::read_to_string(c.log("osd.0")).unwrap_or_default();
    assert!(log.contains("refusing writes"), "{log}");
}

/// That an OSD whose store fails a replicated write leaves the cluster (exits with
/// status 70, as a Ceph OSD aborts when its object store fails a transaction) instead
/// of answering that the write failed while the other copies have committed it: every
/// write is acknowledged and reads back, and once the OSD restarts with a healthy
/// store, peering repairs its copy and all three are identical.
#[test]
fn t37_failed_replica_commit_stops_the_osd() {
    let mut c = Cluster::create_with(&["a"], 3);
    c.start_mon("a");
    c.start_daemon("osd.0");
    c.start_daemon("osd.1");
    c.start_daemon_env("osd.2", &[("CEPHR_OSD_DEBUG_INJECT_COMMIT_ERROR", "1")]);
    c.wait_for(Duration::from_secs(20), "every OSD up", |c| c.osds_up().len() == 3);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--pg-num", "8", "--size", "3", "--min-size", "2"]).code, 0);
    c.wait_for(Duration::from_secs(20), "all PGs active+clean", |c| c.cli(&["pg", "stat"]).stdout.contains("8 active+clean"));
    let cl = c.rados(Duration::from_secs(30));
    eprintln!("--- 60 writes; osd.2 fails every commit");
    cl.rt.block_on(async {
        for i in 0..60 {
            cl.obj.write_full("p", &format!("o{i}"), content(i, 0)).await.expect("write acknowledged");
        }
    });
    c.wait_for(Duration::from_secs(10), "osd.2 to exit", |c| !c.osds_up().contains(&2));
    let mut code = None;
    for _ in 0..100 {
        code = c.exit_code("osd.2");
        if code.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(code, Some(70), "osd.2 exits with status 70");
    let log = std::fs::read_to_string(c.log("osd.2")).unwrap_or_default();
    assert!(log.contains("injected commit failure") && log.contains("failed a replicated write"), "{log}");
    cl.rt.block_on(async {
        for i in 0..60 {
            assert_eq!(cl.obj.read("p", &format!("o{i}"), 0, None).await.expect("read"), content(i, 0), "o{i}");
        }
    });
    eprintln!("--- osd.2 restarts healthy; peering repairs its copy");
    c.start_daemon("osd.2");
    c.wait_for(Duration::from_secs(20), "osd.2 up", |c| c.osds_up().contains(&2));
    c.wait_for(Duration::from_secs(20), "all PGs active+clean", |c| c.cli(&["pg", "stat"]).stdout.contains("8 active+clean"));
    cl.rt.block_on(async {
        for i in 0..60 {
            cl.obj.write_full("p", &format!("o{i}"), content(i, 1)).await.expect("overwrite");
        }
    });
    stop_and_compare(&mut c, 60);
}

/// That an OSD whose disk is full is marked full in the OSDMap (`osd dump`, health
/// OSD_FULL), so the primaries of the PGs it serves refuse writes that take space
/// with ENOSPC naming it (not only the full OSD itself, when it is the primary) while
/// removals still run; and that the flag clears when the OSD comes back not full.
#[test]
fn t38_full_replica_refuses_writes_on_its_pgs() {
    let mut c = Cluster::create_with(&["a"], 3);
    c.start_mon("a");
    c.start_daemon("osd.0");
    c.start_daemon("osd.1");
    // Any disk in use is past this ratio: osd.2 alone sees its disk full.
    c.start_daemon_env("osd.2", &[("CEPHR_OSD_FAILSAFE_FULL_RATIO", "0.000001")]);
    c.wait_for(Duration::from_secs(20), "every OSD up", |c| c.osds_up().len() == 3);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--pg-num", "8", "--size", "3", "--min-size", "2"]).code, 0);
    c.wait_for(Duration::from_secs(20), "all PGs active+clean", |c| c.cli(&["pg", "stat"]).stdout.contains("8 active+clean"));
    c.wait_for(Duration::from_secs(10), "osd.2 full in the map", |c| c.cli(&["osd", "dump"]).stdout.contains("osd.2 up in full"));
    let status = c.cli(&["status"]).stdout;
    assert!(status.contains("HEALTH_ERR") && status.contains("1 full osd(s): osd.2"), "{status}");
    // An object whose primary is another OSD: that primary refuses for osd.2.
    let name = (0..100)
        .map(|i| format!("o{i}"))
        .find(|n| c.json(&["osd", "map", "p", n])["acting_primary"] != 2)
        .expect("an object with another primary");
    let src = c.path().join("obj");
    std::fs::write(&src, b"data").expect("write");
    let r = c.cli(&["rados", "-p", "p", "put", &name, src.to_str().expect("utf-8")]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(r.stderr.contains("ENOSPC") && r.stderr.contains("osd.2 is full"), "{}", r.stderr);
    let r = c.cli(&["rados", "-p", "p", "rm", &name]);
    assert!(r.stderr.contains("ENOENT"), "a removal is not refused: {}", r.stderr);
    eprintln!("--- osd.2 back with room on its disk");
    c.kill9("osd.2");
    c.start_daemon("osd.2");
    c.wait_for(Duration::from_secs(20), "osd.2 up, not full", |c| {
        c.osds_up().contains(&2) && c.cli(&["osd", "dump"]).stdout.contains("osd.2 up in ")
            && !c.cli(&["osd", "dump"]).stdout.contains("full")
    });
    c.wait_for(Duration::from_secs(20), "the write goes through", |c| {
        c.cli(&["rados", "-p", "p", "put", &name, src.to_str().expect("utf-8")]).code == 0
    });
    assert!(!c.cli(&["status"]).stdout.contains("full osd"));
}

/// That bad requests get clear errors: unknown pool, missing object, exclusive create.
#[test]
fn t30_errors() {
    let c = Cluster::start_with(&["a"], 1);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--size", "1", "--min-size", "1", "--pg-num", "4"]).code, 0);
    let cl = c.rados(Duration::from_secs(10));
    cl.rt.block_on(async {
        use cephr::error::Errno;
        use cephr::msg::osd::OsdOp;
        let e = cl.obj.read("nope", "x", 0, None).await.unwrap_err();
        assert_eq!(e.errno(), Errno::ENOENT, "{e}");
        assert_eq!(e.to_string(), "pool 'nope' does not exist");
        let e = cl.obj.read("p", "missing", 0, None).await.unwrap_err();
        assert_eq!(e.errno(), Errno::ENOENT, "{e}");
        assert_eq!(cl.obj.op("p", "missing", vec![OsdOp::Remove]).await.unwrap_err().errno(), Errno::ENOENT);
        cl.obj.op("p", "x", vec![OsdOp::Create { exclusive: true }]).await.expect("create");
        assert_eq!(cl.obj.op("p", "x", vec![OsdOp::Create { exclusive: true }]).await.unwrap_err().errno(), Errno::EEXIST);
    });
    let r = c.cli(&["rados", "-p", "p", "get", "missing", "-"]);
    assert_eq!(r.stderr.trim(), "Error ENOENT: object missing does not exist");
    eprintln!("--- malformed requests straight to the OSD");
    cl.rt.block_on(async {
        use cephr::msg::osd::{OsdOp, OsdOpRequest, OsdOpResult, ReqId};
        use cephr::msg::Message;
        let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).expect("config");
        let want = cephr::msg::MonSubscribe::default();
        let monc = cephr::monc::MonClient::start_client(&cfg, &cfg.key_dir, &"client.admin".parse().expect("n"), want).expect("client");
        let osd = cfg.osd["0"].addr;
        let pool = c.json(&["osd", "dump"])["pools"].as_object().and_then(|p| p.keys().next().cloned()).unwrap_or_default();
        let pool: u64 = pool.parse().expect("pool id");
        let bad = [
            (cephr::maps::PgId { pool: 999, seed: 0 }, "x", vec![OsdOp::Stat], "pool 999 does not exist"),
            (cephr::maps::PgId { pool, seed: 77 }, "x", vec![OsdOp::Stat], "does not exist"),
            (cephr::maps::PgId { pool, seed: 0 }, "", vec![OsdOp::Stat], "object"),
        ];
        for (tid, (pg, oid, ops, want)) in bad.into_iter().enumerate() {
            let req = OsdOpRequest {
                reqid: ReqId { client: "client.admin".parse().expect("n"), nonce: 1, tid: tid as u64 },
                pg,
                oid: oid.into(),
                ops,
                epoch: 0,
            };
            let r = monc.messenger().request(&"osd.0".parse().expect("n"), osd, Message::MOsdOp(req), Duration::from_secs(5)).await;
            match r {
                Ok(Message::MOsdOpReply(OsdOpResult::Err(e))) => assert!(e.message.contains(want), "{}", e.message),
                other => panic!("expected an error for {pg}/{oid:?}, got {other:?}"),
            }
        }
    });
}

/// Seed 002 with real daemons (pool size 2, min_size 1): A goes down, B alone
/// accepts a write, B goes down, A returns alone. A must not serve its older copy
/// (B's interval was recorded read-write through `up_thru`): reads wait instead. When
/// B returns, the acknowledged write is there.
#[test]
fn t40_seed002_no_stale_read_no_lost_write() {
    let mut c = Cluster::start_with(&["a"], 2);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--size", "2", "--min-size", "1", "--pg-num", "4"]).code, 0);
    let cl = c.rados(Duration::from_secs(20));
    cl.rt.block_on(async { cl.obj.write_full("p", "x", b"v1".to_vec()).await.expect("v1") });
    eprintln!("--- A (osd.0) down; B alone takes v2");
    c.kill9("osd.0");
    c.wait_for(Duration::from_secs(10), "osd.0 down", |c| c.osds_up() == vec![1]);
    cl.rt.block_on(async { cl.obj.write_full("p", "x", b"v2".to_vec()).await.expect("v2 acknowledged") });
    eprintln!("--- B (osd.1) down; A back alone");
    c.kill9("osd.1");
    c.wait_for(Duration::from_secs(10), "osd.1 down", |c| c.osds_up().is_empty());
    c.start_daemon("osd.0");
    c.wait_for(Duration::from_secs(10), "osd.0 up", |c| c.osds_up() == vec![0]);
    let quick = c.rados(Duration::from_secs(3));
    let r = quick.rt.block_on(async { quick.obj.read("p", "x", 0, None).await });
    match r {
        Ok(v) => panic!("served {:?} while B's newer copy is away", String::from_utf8_lossy(&v)),
        Err(e) => assert!(matches!(e, cephr::objecter::ObjError::Timeout { .. }), "{e}"),
    }
    eprintln!("--- B back: v2 is read");
    c.start_daemon("osd.1");
    let v = cl.rt.block_on(async { cl.obj.read("p", "x", 0, None).await }).expect("read");
    assert_eq!(v, b"v2".to_vec());
}

/// That an OSD marked down while it was stopped (SIGSTOP past the heartbeat grace)
/// does not serve its old copy when it comes back as primary with the same acting set
/// as before: the other OSD took a write alone meanwhile, in maps the stopped one never
/// saw. Its return (a new `up_from`) starts a new interval, it peers, and the read
/// returns the newer write.
#[test]
fn t42_primary_back_from_a_stop_serves_no_stale_copy() {
    let c = Cluster::start_with(&["a"], 2);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--size", "2", "--min-size", "1", "--pg-num", "4"]).code, 0);
    let name = (0..200)
        .map(|i| format!("obj{i}"))
        .find(|n| c.json(&["osd", "map", "p", n])["acting_primary"] == 1)
        .expect("an object whose primary is osd.1");
    let cl = c.rados(Duration::from_secs(20));
    cl.rt.block_on(async { cl.obj.write_full("p", &name, b"v1".to_vec()).await.expect("v1") });
    eprintln!("--- SIGSTOP osd.1 (primary of {name}) until it is marked down; osd.0 alone takes v2");
    c.signal("osd.1", "STOP");
    c.wait_for(Duration::from_secs(20), "osd.1 marked down", |c| c.osds_up() == vec![0]);
    cl.rt.block_on(async { cl.obj.write_full("p", &name, b"v2".to_vec()).await.expect("v2 acknowledged") });
    eprintln!("--- SIGCONT osd.1: it boots again, primary with the same acting set");
    c.signal("osd.1", "CONT");
    c.wait_for(Duration::from_secs(20), "osd.1 up again", |c| c.osds_up() == vec![0, 1]);
    assert_eq!(c.json(&["osd", "map", "p", &name])["acting_primary"], 1, "osd.1 is primary again");
    let v = cl.rt.block_on(async { cl.obj.read("p", &name, 0, None).await }).expect("read");
    assert_eq!(String::from_utf8_lossy(&v), "v2", "osd.1 served its old copy");
    cl.rt.block_on(async { cl.obj.write_full("p", &name, b"v3".to_vec()).await.expect("v3") });
    let v = cl.rt.block_on(async { cl.obj.read("p", &name, 0, None).await }).expect("read v3");
    assert_eq!(v, b"v3".to_vec());
}

/// That a write a primary ordered after its replica had left the interval (divergent:
/// never acknowledged) is rolled back when that primary returns, instead of staying on
/// it alone. osd.1, primary of `x`'s PG, is stopped with a client's write of `x` in its
/// socket; the client freezes (no resend); osd.0 is marked as the new primary and
/// writes more in that PG; osd.1 resumes, commits `x` on its old map (osd.0, in a newer
/// interval under another primary, ignores the replication), then boots again and peers. It must recover `x` from
/// osd.0 (which has none): both copies end identical, and removing `x` later stops no
/// OSD (a replica's failed remove of an object it never had used to stop it).
#[test]
fn t43_divergent_write_is_rolled_back_when_its_primary_returns() {
    let mut c = Cluster::start_with(&["a"], 2);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--size", "2", "--min-size", "1", "--pg-num", "4"]).code, 0);
    let (mut x, mut same_pg) = (None::<(String, String)>, Vec::new());
    for n in (0..400).map(|i| format!("obj{i}")) {
        let m = c.json(&["osd", "map", "p", &n]);
        let pg = m["pgid"].as_str().unwrap_or_default().to_string();
        match &x {
            None if m["acting_primary"] == 1 => x = Some((n, pg)),
            Some((_, xpg)) if *xpg == pg => same_pg.push(n),
            _ => {}
        }
        if same_pg.len() == 4 {
            break;
        }
    }
    let (x, _) = x.expect("an object whose primary is osd.1");
    assert_eq!(same_pg.len(), 4, "objects in x's PG");
    let cl = c.rados(Duration::from_secs(30));
    cl.rt.block_on(async { cl.obj.write_full("p", &same_pg[0], b"base".to_vec()).await.expect("base") });
    let frozen = c.rados_frozen_between_calls(Duration::from_secs(60));
    frozen.rt.block_on(async { frozen.obj.read("p", &same_pg[0], 0, None).await.expect("connected to osd.1") });
    eprintln!("--- SIGSTOP osd.1; a write of {x} waits in its socket; that client freezes");
    c.signal("osd.1", "STOP");
    let obj = frozen.obj.clone();
    let xs = x.clone();
    let _pending = frozen.rt.spawn(async move { obj.write_full("p", &xs, b"never acknowledged".to_vec()).await });
    frozen.rt.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
    c.wait_for(Duration::from_secs(20), "osd.1 marked down", |c| c.osds_up() == vec![0]);
    cl.rt.block_on(async {
        for n in &same_pg[1..] {
            cl.obj.write_full("p", n, b"while osd.1 was down".to_vec()).await.expect("osd.0 alone");
        }
    });
    eprintln!("--- SIGCONT osd.1: it commits {x} on its old map, then boots again and peers");
    c.signal("osd.1", "CONT");
    c.wait_for(Duration::from_secs(20), "osd.1 up again", |c| c.osds_up() == vec![0, 1]);
    c.wait_for(Duration::from_secs(30), "all PGs active+clean", |c| c.cli(&["pg", "stat"]).stdout.contains("4 active+clean"));
    let r = cl.rt.block_on(async { cl.obj.read("p", &x, 0, None).await });
    assert!(r.is_err(), "the unacknowledged write of {x} was rolled back: {r:?}");
    eprintln!("--- removing {x} and writing again stops no OSD");
    let _ = cl.rt.block_on(async { cl.obj.op("p", &x, vec![cephr::msg::osd::OsdOp::Remove]).await });
    cl.rt.block_on(async { cl.obj.write_full("p", &same_pg[1], b"after".to_vec()).await.expect("write after") });
    assert_eq!((c.exit_code("osd.0"), c.exit_code("osd.1")), (None, None), "both OSDs run");
    for i in 0..2 {
        c.kill9(&format!("osd.{i}"));
    }
    let objects = |i| c.osd_digests(i).into_iter().filter(|(_, d)| !d.is_empty()).collect::<Vec<_>>();
    assert_eq!(objects(1), objects(0), "osd.1's copy equals osd.0's");
}

/// That OSDs enforce a client's `osd` caps: a client allowed to read one pool can
/// read it, but cannot write to it or read any other pool.
#[test]
fn t50_osd_caps_enforced() {
    let c = Cluster::start_with(&["a"], 1);
    for p in ["p", "q"] {
        assert_eq!(c.cli(&["osd", "pool", "create", p, "--size", "1", "--min-size", "1", "--pg-num", "4"]).code, 0);
    }
    let r = c.cli(&["auth", "add", "client.ro", "--caps", "mon=allow r", "--caps", "osd=allow r pool=p"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let input = c.path().join("in");
    std::fs::write(&input, b"data").expect("write");
    let f = input.to_str().unwrap_or_default();
    for p in ["p", "q"] {
        assert_eq!(c.cli(&["rados", "-p", p, "put", "x", f]).code, 0, "admin writes {p}");
    }
    let ro = |args: &[&str]| {
        let mut a = vec!["-n", "client.ro"];
        a.extend_from_slice(args);
        c.cli(&a)
    };
    let r = ro(&["rados", "-p", "p", "get", "x", "-"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "data"), "{}", r.stderr);
    let r = ro(&["rados", "-p", "p", "put", "y", f]);
    assert_eq!(r.stderr.trim(), "Error EACCES: client.ro may not write to pool 'p'");
    let r = ro(&["rados", "-p", "q", "get", "x", "-"]);
    assert_eq!(r.stderr.trim(), "Error EACCES: client.ro may not read from pool 'q'");
    eprintln!("--- a blocklisted instance is refused");
    let cl = c.rados(Duration::from_secs(5));
    cl.rt.block_on(async { cl.obj.read("p", "x", 0, None).await }).expect("read before");
    let me = cl.rt.block_on(async { cl.obj.instance() });
    assert_eq!(c.cli(&["osd", "blocklist", "add", &me.to_string(), "600"]).code, 0);
    // The OSDs learn the map asynchronously: with the client at the blocklist's epoch,
    // its write carries it, and an OSD applies that map before serving the write.
    let epoch = c.json(&["osd", "dump"])["epoch"].as_u64().expect("epoch");
    assert!(cl.rt.block_on(cl.obj.wait_for_epoch(epoch)), "client never saw epoch {epoch}");
    let e = cl.rt.block_on(async { cl.obj.write_full("p", "x", b"late".to_vec()).await }).unwrap_err();
    assert_eq!(e.errno(), cephr::error::Errno::EBLOCKLISTED, "{e}");
    let r = c.cli(&["rados", "-p", "p", "get", "x", "-"]);
    assert_eq!(r.stdout, "data", "the blocklisted write did not land");
}

/// That a returning primary too far behind for log recovery asks for `pg_temp` (the
/// up-to-date OSD serves while it is backfilled), the override is cleared once the
/// backfill is done, and both copies end identical.
#[test]
fn t60_backfill_through_pg_temp() {
    let mut c = Cluster::start_with(&["a"], 2);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--size", "2", "--min-size", "1", "--pg-num", "1"]).code, 0);
    let m = c.json(&["osd", "map", "p", "anything"]);
    let primary = m["acting_primary"].as_u64().expect("primary") as u32;
    let other = 1 - primary;
    let cl = c.rados(Duration::from_secs(20));
    eprintln!("--- kill the primary osd.{primary}; 1100 writes go to osd.{other} alone");
    c.kill9(&format!("osd.{primary}"));
    c.wait_for(Duration::from_secs(10), "primary down", |c| c.osds_up() == vec![other]);
    cl.rt.block_on(async {
        for i in 0..1100u32 {
            cl.obj.write_full("p", &format!("o{i}"), i.to_le_bytes().to_vec()).await.expect("write");
        }
    });
    eprintln!("--- restart osd.{primary}: pg_temp, backfill, pg_temp cleared");
    c.start_daemon(&format!("osd.{primary}"));
    c.wait_for(Duration::from_secs(20), "backfill done and pg_temp cleared", |c| {
        let log = std::fs::read_to_string(c.log(&format!("osd.{other}"))).unwrap_or_default();
        let d = c.json(&["osd", "dump"]);
        log.contains("clearing pg_temp") && d["pg_temp"].as_object().is_some_and(|t| t.is_empty())
    });
    let log = std::fs::read_to_string(c.log(&format!("osd.{primary}"))).unwrap_or_default();
    assert!(log.contains("requesting pg_temp"), "the returning primary asked for pg_temp");
    cl.rt.block_on(async {
        for i in (0..1100u32).step_by(37) {
            assert_eq!(cl.obj.read("p", &format!("o{i}"), 0, None).await.expect("read"), i.to_le_bytes().to_vec());
        }
    });
    c.wait_for(Duration::from_secs(10), "active+clean", |c| c.cli(&["pg", "stat"]).stdout.contains("1 active+clean"));
    c.kill9("osd.0");
    c.kill9("osd.1");
    assert_eq!(c.osd_digests(0), c.osd_digests(1));
}

/// That recovery moves more data than one message may carry (`ms_max_frame_bytes`):
/// log-based recovery of a returning OSD and a whole-PG backfill of a new one, each of
/// one PG holding 80 MiB in 4 MiB objects, one object of 72 MiB data (stored and read
/// back by `rados put`/`get`, which split it into 4 MiB ops) and one of 66 MiB omap,
/// finish active+clean with identical copies.
#[test]
fn t65_recovery_larger_than_a_frame() {
    let mut c = Cluster::start_with(&["a"], 3);
    assert_eq!(c.cli(&["osd", "pool", "create", "p", "--size", "2", "--min-size", "1", "--pg-num", "1"]).code, 0);
    let m = c.json(&["osd", "map", "p", "anything"]);
    let acting: Vec<u32> = m["acting"].as_array().expect("acting").iter().filter_map(|v| v.as_u64()).map(|v| v as u32).collect();
    let primary = m["acting_primary"].as_u64().expect("primary") as u32;
    let replica = *acting.iter().find(|o| **o != primary).expect("replica");
    let spare = (0..3).find(|o| !acting.contains(o)).expect("spare");
    let cl = c.rados(Duration::from_secs(30));
    let obj = |i: u32| harness::bytes(u64::from(i) + 7, 4 << 20);
    eprintln!("--- osd.{replica} down; 20 × 4 MiB written to osd.{primary} alone");
    c.kill9(&format!("osd.{replica}"));
    c.wait_for(Duration::from_secs(10), "replica down", |c| !c.osds_up().contains(&replica));
    cl.rt.block_on(async {
        for i in 0..20u32 {
            cl.obj.write_full("p", &format!("o{i}"), obj(i)).await.expect("write");
        }
        for i in 0..66u32 {
            let entries = (0..1024u32).map(|k| (format!("k{i:03}-{k:04}"), serde_bytes::ByteBuf::from(vec![k as u8; 1000]))).collect();
            cl.obj.op("p", "omap", vec![cephr::msg::osd::OsdOp::OmapSet { entries }]).await.expect("omap set");
        }
    });
    let big = harness::bytes(99, 72 << 20);
    let (big_in, big_out) = (c.path().join("big.in"), c.path().join("big.out"));
    std::fs::write(&big_in, &big).expect("write big.in");
    let put = c.cli(&["rados", "-p", "p", "put", "big", big_in.to_str().expect("path")]);
    assert_eq!(put.code, 0, "rados put of 72 MiB: {}", put.stderr);
    // One op or one reply larger than a message fails with a clear error, not a timeout.
    cl.rt.block_on(async {
        let r = cl.obj.write_full("p", "huge", vec![0u8; 65 << 20]).await;
        assert!(matches!(r, Err(cephr::objecter::ObjError::TooLarge(_))), "a 65 MiB op: {r:?}");
        let r = cl.obj.read("p", "big", 0, None).await;
        assert!(matches!(&r, Err(e) if e.errno() == cephr::error::Errno::EMSGSIZE), "a 72 MiB read: {:?}", r.map(|b| b.len()));
    });
    eprintln!("--- osd.{replica} returns: log-based recovery of 80 + 72 + 66 MiB");
    c.start_daemon(&format!("osd.{replica}"));
    c.wait_for(Duration::from_secs(60), "active+clean after recovery", |c| {
        c.osds_up().contains(&replica) && c.cli(&["pg", "stat"]).stdout.contains("1 active+clean")
    });
    eprintln!("--- osd.{replica} out: osd.{spare} is backfilled with the whole PG");
    assert_eq!(c.cli(&["osd", "out", &replica.to_string()]).code, 0);
    c.wait_for(Duration::from_secs(60), "active+clean after backfill", |c| {
        let m = c.json(&["osd", "map", "p", "anything"]);
        m["acting"].as_array().is_some_and(|a| a.iter().any(|v| v.as_u64() == Some(u64::from(spare))))
            && c.cli(&["pg", "stat"]).stdout.contains("1 active+clean")
    });
    cl.rt.block_on(async {
        for i in 0..20u32 {
            assert!(cl.obj.read("p", &format!("o{i}"), 0, None).await.expect("read") == obj(i), "o{i}");
        }
    });
    let get = c.cli(&["rados", "-p", "p", "get", "big", big_out.to_str().expect("path")]);
    assert_eq!(get.code, 0, "rados get of 72 MiB: {}", get.stderr);
    assert!(std::fs::read(&big_out).expect("big.out") == big, "the 72 MiB object read back differs");
    let keys = c.cli(&["rados", "-p", "p", "listomapkeys", "omap"]);
    assert_eq!(keys.stdout.lines().count(), 66 * 1024, "omap keys after backfill");
    for i in 0..3 {
        c.kill9(&format!("osd.{i}"));
    }
    let d = c.osd_digests(primary);
    assert_eq!(d.iter().map(|(_, d)| d.len()).sum::<usize>(), 22);
    assert_eq!(c.osd_digests(spare), d, "the backfilled copy");
}

/// The `round`-th content of large object `i`: four whole 64 KiB chunks (block-file slots)
/// and a 123-byte inline tail.
fn big_content(i: u32, round: u32) -> Vec<u8> {
    harness::bytes(u64::from(i) << 8 | u64::from(round), 4 * 65_536 + 123)
}

/// That with objects kept mostly in the block file, `kill -9` of an OSD in the middle of
/// a stream of overwrites leaves a store that reopens, catches up, and ends identical to
/// the others (digests read every slot through its checksum), and that every
/// acknowledged overwrite reads back.
#[test]
fn t70_block_file_survives_kill_mid_write() {
    let mut c = Cluster::start_with(&["a"], 3);
    assert_eq!(c.cli(&["osd", "pool", "create", "big", "--pg-num", "8", "--size", "3", "--min-size", "2"]).code, 0);
    let cl = c.rados(Duration::from_secs(30));
    cl.rt.block_on(async {
        for i in 0..24 {
            cl.obj.write_full("big", &format!("b{i}"), big_content(i, 0)).await.expect("write");
        }
    });
    eprintln!("--- overwriting; kill -9 osd.2 mid-stream");
    let obj = cl.obj.clone();
    let writer = cl.rt.spawn(async move {
        for round in 1..4u32 {
            for i in 0..24u32 {
                obj.write_full("big", &format!("b{i}"), big_content(i, round)).await.expect("overwrite acknowledged");
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    c.kill9("osd.2");
    cl.rt.block_on(writer).expect("writer");
    eprintln!("--- restart osd.2: its store reopens and catches up");
    c.start_daemon("osd.2");
    c.wait_for(Duration::from_secs(15), "osd.2 up", |c| c.osds_up().contains(&2));
    c.wait_for(Duration::from_secs(20), "all PGs active+clean", |c| {
        let s = c.cli(&["pg", "stat"]).stdout;
        s.contains("8 active+clean")
    });
    cl.rt.block_on(async {
        for i in 0..24 {
            assert_eq!(cl.obj.read("big", &format!("b{i}"), 0, None).await.expect("read"), big_content(i, 3), "b{i}");
        }
    });
    for i in 0..3 {
        c.kill9(&format!("osd.{i}"));
    }
    let d0 = c.osd_digests(0);
    assert_eq!(d0.iter().map(|(_, d)| d.len()).sum::<usize>(), 24);
    for i in 1..3 {
        assert_eq!(c.osd_digests(i), d0, "osd.{i} equals osd.0");
    }
}

/// That many ops on one object at once all complete, each exactly once: all but one
/// wait in the object's queue at the primary and go on one at a time as the object is
/// released (appends, reads and whole writes of other objects of the same PGs mixed
/// in). Before, waiting ops sat in their PG's queue and every completion in the PG
/// re-ran all of them; a stream of small writes to a few objects then kept an OSD's
/// thread busy until it stopped answering.
#[test]
fn t75_ops_on_one_object_wait_their_turn() {
    let c = Cluster::start_with(&["a"], 3);
    assert_eq!(c.cli(&["osd", "pool", "create", "q", "--size", "3", "--min-size", "2", "--pg-num", "4"]).code, 0);
    let cl = c.rados(Duration::from_secs(30));
    const N: u32 = 300;
    cl.rt.block_on(async {
        use cephr::msg::osd::OsdOp;
        cl.obj.write_full("q", "hot", Vec::new()).await.expect("create");
        let mut tasks = Vec::new();
        for i in 0..N {
            let obj = cl.obj.clone();
            tasks.push(tokio::spawn(async move {
                let record = format!("{i:07}\n").into_bytes();
                obj.op("q", "hot", vec![OsdOp::Append { data: record.into() }]).await.map(|_| ())?;
                if i % 3 == 0 {
                    obj.stat("q", "hot").await.map(|_| ())?;
                }
                if i % 10 == 0 {
                    obj.write_full("q", &format!("cold{i}"), vec![i as u8; 5000]).await?;
                }
                Ok::<(), cephr::objecter::ObjError>(())
            }));
        }
        for t in tasks {
            t.await.expect("join").expect("every op completes");
        }
        let data = cl.obj.read("q", "hot", 0, None).await.expect("read");
        let mut got: Vec<String> = String::from_utf8(data.to_vec()).expect("utf8").lines().map(String::from).collect();
        got.sort();
        let want: Vec<String> = (0..N).map(|i| format!("{i:07}")).collect();
        assert_eq!(got, want, "every append exactly once");
        for i in (0..N).step_by(10) {
            let v = cl.obj.read("q", &format!("cold{i}"), 0, None).await.expect("cold");
            assert_eq!(v.to_vec(), vec![i as u8; 5000]);
        }
    });
}
