//! The real MDS daemon: two `cephr --role mds` processes join a cluster, `fs new`
//! makes one create rank 0 and go active, a library client opens a session and makes
//! a directory and a file (unsafe then safe replies), then every daemon is killed with
//! kill -9 and restarted, and the namespace is found intact after replay.
mod harness;

use harness::Cluster;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cephr::ids::EntityName;
use cephr::msg::mds::{Caller, ClientRequest, MdsOp, MdsReply, ReplyBody, SessionOp, SessionReply, S_IFDIR, S_IFREG};
use cephr::msg::{Message, MonSubscribe};
use tokio::sync::mpsc;

/// A minimal metadata client: a messenger bound as client.admin, an FSMap
/// subscription, and a connection to rank 0's holder.
struct MdsClient {
    rt: tokio::runtime::Runtime,
    conn: cephr::net::ConnHandle,
    replies: mpsc::UnboundedReceiver<MdsReply>,
    tid: u64,
    root: u64,
}

impl MdsClient {
    fn connect(c: &Cluster) -> MdsClient {
        let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).expect("config");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
        let (conn, replies, root) = rt.block_on(async {
            let id = cephr::auth::Identity::load(&cfg.key_dir, &EntityName::client("admin")).expect("identity");
            let opts = cephr::net::MsgrOptions::from_options(&cfg.global);
            let bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let (msgr, mut rx) =
                cephr::net::Messenger::bind(&id, bind, false, opts, cephr::net::FaultRules::default()).expect("bind");
            let monc = cephr::monc::MonClient::new(msgr.clone(), &cfg);
            let (tx, replies) = mpsc::unbounded_channel();
            let feed = monc.clone();
            tokio::spawn(async move {
                while let Some(inc) = rx.recv().await {
                    if let Message::MClientReply(r) = inc.msg {
                        let _ = tx.send(r);
                    } else {
                        feed.handle_map(&inc.msg);
                    }
                }
            });
            monc.start_subscription(MonSubscribe { fsmap: Some(0), ..Default::default() });
            let mut w = monc.watch();
            let active = |m: &cephr::monc::MapSet| {
                let mm = &m.fsmap.as_ref()?.by_name("cephfs")?.mdsmap;
                let i = mm.rank_holder(0)?;
                let addr = i.addr?;
                (i.state == cephr::maps::MdsState::Active).then(|| (i.name.clone(), addr))
            };
            let got = tokio::time::timeout(Duration::from_secs(30), w.wait_for(|m| active(m).is_some())).await;
            let (name, addr) = active(&got.expect("rank 0 active").expect("watch")).expect("holder");
            let conn = msgr.connect(&EntityName::mds(&name), addr.addr, false).await.expect("connect to mds");
            let open = Message::MClientSession(SessionOp::Open { root: "/".into(), metadata: BTreeMap::new() });
            let root = match conn.request(open, Duration::from_secs(10)).await.expect("session reply") {
                Message::MClientSessionReply(SessionReply::Opened { root_ino, .. }) => root_ino,
                other => panic!("session open: {other:?}"),
            };
            (conn, replies, root)
        });
        MdsClient { rt, conn, replies, tid: 0, root }
    }

    /// Sends one request and returns its safe reply (checking an unsafe one came first
    /// for changes).
    fn call(&mut self, op: MdsOp) -> Result<ReplyBody, cephr::error::Errno> {
        self.tid += 1;
        let tid = self.tid;
        let write = op.is_write();
        // Every earlier request had its safe reply (see below).
        let req = ClientRequest { tid, op, caller: Caller::root(), oldest_tid: tid };
        self.conn.send(Message::MClientRequest(req)).expect("send");
        let t = Instant::now();
        let mut saw_unsafe = false;
        loop {
            let r = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(15), self.replies.recv()).await })
                .expect("reply in time")
                .expect("reply channel");
            assert!(t.elapsed() < Duration::from_secs(20));
            if r.tid != tid {
                continue;
            }
            if !r.safe {
                saw_unsafe = true;
                continue;
            }
            if write && r.result.is_ok() {
                assert!(saw_unsafe, "a change gets an unsafe reply before the safe one");
            }
            return r.result;
        }
    }

    fn lookup(&mut self, parent: u64, name: &str) -> Result<u64, cephr::error::Errno> {
        match self.call(MdsOp::Lookup { parent, name: name.into() })? {
            ReplyBody::Inode(s) => Ok(s.ino),
            other => panic!("lookup reply {other:?}"),
        }
    }
}

/// The gid holding rank 0 and its state.
fn rank0(c: &Cluster) -> Option<(u64, String)> {
    let d = c.json(&["fs", "dump"]);
    let mm = &d["filesystems"]["1"]["mdsmap"];
    let gid = mm["up"]["0"].as_u64()?;
    let st = mm["mds_info"][gid.to_string()]["state"].as_str()?.to_string();
    Some((gid, st))
}

fn fs_status(c: &Cluster) -> (Vec<String>, usize) {
    let st = c.json(&["fs", "status"]);
    let fs = &st["filesystems"][0];
    let states = fs["daemons"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["state"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    (states, st["standbys"].as_array().map_or(0, |a| a.len()))
}

/// That rank 0 is created and served by a real daemon, and that a namespace made
/// through it survives kill -9 of every daemon (replayed from the journal and the
/// directory objects it was flushed to).
#[test]
fn t20_create_serve_kill_all_and_replay() {
    // Tiny segments so that segments expire and are flushed while the test runs.
    std::env::set_var("CEPHR_MDS_LOG_EVENTS_PER_SEGMENT", "3");
    std::env::set_var("CEPHR_MDS_LOG_MAX_SEGMENTS", "2");
    let mut c = Cluster::start_with(&["a"], 3);
    assert_eq!(c.cli(&["osd", "pool", "create", "meta"]).code, 0);
    assert_eq!(c.cli(&["osd", "pool", "create", "data"]).code, 0);
    c.start_daemon("mds.a");
    c.start_daemon("mds.b");
    c.wait_for(Duration::from_secs(15), "two standbys", |c| {
        c.json(&["fs", "dump"])["standbys"].as_object().is_some_and(|s| s.len() == 2)
    });
    assert_eq!(c.cli(&["fs", "new", "cephfs", "meta", "data"]).code, 0);
    c.wait_for(Duration::from_secs(20), "rank 0 active and one standby", |c| {
        fs_status(c) == (vec!["up:active".to_string()], 1)
    });

    eprintln!("--- a client makes /d, /d/f0..f5 and /e");
    let mut cl = MdsClient::connect(&c);
    assert_eq!(cl.root, 1);
    let d = match cl.call(MdsOp::Mkdir { parent: 1, name: "d".into(), mode: S_IFDIR | 0o755 }).expect("mkdir") {
        ReplyBody::Inode(s) => s.ino,
        other => panic!("{other:?}"),
    };
    let mut files = Vec::new();
    for i in 0..6 {
        let op = MdsOp::Create { parent: d, name: format!("f{i}"), mode: S_IFREG | 0o644, excl: true };
        match cl.call(op).expect("create") {
            ReplyBody::Inode(s) => files.push(s.ino),
            other => panic!("{other:?}"),
        }
    }
    cl.call(MdsOp::Mkdir { parent: 1, name: "e".into(), mode: S_IFDIR | 0o700 }).expect("mkdir e");
    assert_eq!(cl.lookup(d, "f3"), Ok(files[3]));
    assert_eq!(cl.lookup(1, "nope"), Err(cephr::error::Errno::ENOENT));
    let again = MdsOp::Mkdir { parent: 1, name: "d".into(), mode: S_IFDIR | 0o755 };
    assert_eq!(cl.call(again), Err(cephr::error::Errno::EEXIST));
    cl.call(MdsOp::Unlink { parent: d, name: "f5".into() }).expect("unlink");
    std::thread::sleep(Duration::from_millis(2500)); // let a flush/expire tick run
    let j = c.cli(&["journal", "--fs", "cephfs", "--rank", "0", "inspect"]);
    assert!(j.stdout.contains("Overall journal integrity: OK"), "{}{}", j.stdout, j.stderr);
    drop(cl);
    let old = rank0(&c).expect("rank 0 holder").0;

    eprintln!("--- kill -9 every daemon, then start them all again");
    let names: Vec<String> = ["mds.a", "mds.b", "mon.a", "osd.0", "osd.1", "osd.2"].iter().map(|s| s.to_string()).collect();
    for n in &names {
        c.kill9(n);
    }
    for n in names.iter().rev() {
        c.start_daemon(n);
    }
    c.wait_for(Duration::from_secs(40), "rank 0 active again on a new instance", |c| {
        c.cli(&["status"]).code == 0 && rank0(c).is_some_and(|(g, s)| g != old && s == "Active")
    });
    let mut cl = MdsClient::connect(&c);
    assert_eq!(cl.lookup(1, "d"), Ok(d));
    for (i, f) in files.iter().enumerate().take(5) {
        assert_eq!(cl.lookup(d, &format!("f{i}")), Ok(*f), "f{i} after replay");
    }
    assert_eq!(cl.lookup(d, "f5"), Err(cephr::error::Errno::ENOENT), "the unlink survived");
    assert!(cl.lookup(1, "e").is_ok());
    // The namespace keeps working: a new file gets a fresh inode number.
    let op = MdsOp::Create { parent: d, name: "g".into(), mode: S_IFREG | 0o644, excl: true };
    match cl.call(op).expect("create after replay") {
        ReplyBody::Inode(s) => assert!(!files.contains(&s.ino), "fresh ino"),
        other => panic!("{other:?}"),
    }
}
