//! Cluster harness for integration tests: makes a cluster directory in a temp dir,
//! starts real `cephr` daemons as child processes on 127.0.0.1, runs CLI commands,
//! injects faults (kill -9, SIGSTOP), and kills every process it started by PID
//! when dropped.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_cephr");

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub mons: Vec<String>,
    pub osds: u32,
    procs: BTreeMap<String, Child>,
}

/// Result of one CLI call.
pub struct Cli {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Cli {
    fn from(o: Output) -> Cli {
        Cli {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift from `seed`).
/// Waits until `cond` holds, polling every 50 ms for at most `limit`; panics naming
/// `what` if it never does (for async tests; `Cluster::wait_for` is the blocking one).
pub async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The runtime a test drives library clients on (two workers, like the machine).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

impl Cluster {
    /// Creates (but does not start) a fast-profile cluster with these monitors.
    pub fn create(mons: &[&str]) -> Cluster {
        Cluster::create_with(mons, 0)
    }

    /// Creates (but does not start) a fast-profile cluster with monitors and OSDs.
    pub fn create_with(mons: &[&str], osds: u32) -> Cluster {
        let dir = tempfile::Builder::new().prefix("cephr-it-").tempdir().expect("tempdir");
        let out = Command::new(BIN)
            .args(["cluster", "create", "--profile", "fast", "--mons", &mons.join(","), "--osds", &osds.to_string(), "--dir"])
            .arg(dir.path())
            .output()
            .expect("run cephr cluster create");
        assert!(out.status.success(), "cluster create: {}", String::from_utf8_lossy(&out.stderr));
        Cluster { dir, mons: mons.iter().map(|s| s.to_string()).collect(), osds, procs: BTreeMap::new() }
    }

    /// Creates and starts monitors and OSDs, waiting until every OSD is up.
    pub fn start_with(mons: &[&str], osds: u32) -> Cluster {
        let mut c = Cluster::create_with(mons, osds);
        for m in mons {
            c.start_mon(m);
        }
        for i in 0..osds {
            c.start_daemon(&format!("osd.{i}"));
        }
        c.wait_for(Duration::from_secs(20), "every OSD up", |c| c.osds_up().len() == osds as usize);
        c
    }

    /// Ids of the OSDs the map shows up.
    pub fn osds_up(&self) -> Vec<u32> {
        let r = self.cli(&["osd", "tree", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
        v["osds"]
            .as_object()
            .map(|o| o.values().filter(|x| x["up"] == true).filter_map(|x| x["id"].as_u64().map(|i| i as u32)).collect())
            .unwrap_or_default()
    }

    pub fn osd_in(&self, id: u32) -> bool {
        let r = self.cli(&["osd", "tree", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
        v["osds"][id.to_string()]["in_"] == true
    }

    /// Creates and starts a cluster, waiting until the monitors answer.
    pub fn start(mons: &[&str]) -> Cluster {
        let mut c = Cluster::create(mons);
        for m in mons {
            c.start_mon(m);
        }
        c.wait_for(Duration::from_secs(20), "monitor quorum", |c| c.cli(&["status"]).code == 0);
        c
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("cephr.toml")
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    pub fn start_mon(&mut self, id: &str) {
        self.start_daemon(&format!("mon.{id}"));
    }

    /// Starts `mon.X` or `osd.N` as its own process, logging to DIR/NAME.log.
    pub fn start_daemon(&mut self, name: &str) {
        self.start_daemon_env(name, &[]);
    }

    /// As [`Cluster::start_daemon`], with extra environment (e.g. `CEPHR_<OPTION>`
    /// overrides for this one daemon).
    pub fn start_daemon_env(&mut self, name: &str, env: &[(&str, &str)]) {
        let (role, id) = name.split_once('.').expect("kind.id");
        let name = name.to_string();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log(&name)).expect("log");
        let child = Command::new(BIN)
            .args(["--role", role, "--id", id, "-c"])
            .arg(self.conf())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn monitor");
        eprintln!("--- started {name} pid {}", child.id());
        self.procs.insert(name, child);
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.get(name).map(|c| c.id())
    }

    /// `kill -9` the daemon and reap it.
    pub fn kill9(&mut self, name: &str) {
        if let Some(mut c) = self.procs.remove(name) {
            eprintln!("--- kill -9 {name} pid {}", c.id());
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, name: &str, sig: &str) {
        if let Some(pid) = self.pid(name) {
            let _ = Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status();
        }
    }

    /// The daemon's exit status once it has exited by itself (None while it runs).
    pub fn exit_code(&mut self, name: &str) -> Option<i32> {
        self.procs.get_mut(name).and_then(|c| c.try_wait().ok().flatten()).and_then(|s| s.code())
    }

    /// True while the daemon's process is running.
    pub fn alive(&mut self, name: &str) -> bool {
        self.procs.get_mut(name).is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn cli(&self, args: &[&str]) -> Cli {
        self.cli_env(args, &[])
    }

    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Cli {
        let mut cmd = Command::new(BIN);
        cmd.arg("-c").arg(self.conf()).args(["--set", "mon_command_timeout=5"]).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run cephr").into()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        let r = self.cli(&a);
        assert_eq!(r.code, 0, "cephr {args:?}: {}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("json of {args:?}: {e}: {}", r.stdout))
    }

    pub fn leader(&self) -> String {
        self.json(&["mon", "stat"])["leader"].as_str().unwrap_or_default().to_string()
    }

    pub fn quorum(&self) -> Vec<String> {
        let v = self.json(&["mon", "stat"]);
        v["quorum"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
    }

    /// Whether rank 0 of file system `fs` is up:active with at least `standbys`
    /// standby daemons, as `fs status --format json` shows it.
    pub fn fs_ready(&self, fs: &str, standbys: usize) -> bool {
        let r = self.cli(&["fs", "status", fs, "--format", "json"]);
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.stdout) else { return false };
        let active = v["filesystems"][0]["daemons"]
            .as_array()
            .is_some_and(|d| d.iter().any(|i| i["rank"] == 0 && i["state"] == "up:active"));
        active && v["standbys"].as_array().map_or(0, |s| s.len()) >= standbys
    }

    /// Creates the pools `(name, pg_num)` (metadata first, then data) and file system
    /// `fs` on them, starts the MDS daemons `mds` and waits until rank 0 is active
    /// and the others are standbys.
    pub fn start_fs(&mut self, fs: &str, pools: [(&str, u32); 2], mds: &[&str]) {
        for (pool, pgs) in pools {
            let r = self.cli(&["osd", "pool", "create", pool, "--pg-num", &pgs.to_string()]);
            assert_eq!(r.code, 0, "pool create {pool}: {}", r.stderr);
        }
        let r = self.cli(&["fs", "new", fs, pools[0].0, pools[1].0]);
        assert_eq!(r.code, 0, "fs new {fs}: {}", r.stderr);
        for d in mds {
            self.start_daemon(d);
        }
        let standbys = mds.len().saturating_sub(1);
        self.wait_for(Duration::from_secs(40), "rank 0 active and the standbys", |c| c.fs_ready(fs, standbys));
    }

    /// Polls `cond` every 100 ms until it holds or `limit` passes (then panics).
    pub fn wait_for(&self, limit: Duration, what: &str, mut cond: impl FnMut(&Cluster) -> bool) -> Duration {
        let t = Instant::now();
        while t.elapsed() < limit {
            if cond(self) {
                return t.elapsed();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out after {limit:?} waiting for {what}\n{}", self.logs_tail());
    }

    pub fn logs_tail(&self) -> String {
        let mut s = String::new();
        let names = self.mons.iter().map(|m| format!("mon.{m}")).chain((0..self.osds).map(|i| format!("osd.{i}")));
        let names = names.chain(["mds.a", "mds.b", "mds.c"].into_iter().map(String::from).filter(|n| self.log(n).exists()));
        for n in names {
            let text = std::fs::read_to_string(self.log(&n)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(15);
            s.push_str(&format!("== {n}\n{}\n", lines[from..].join("\n")));
        }
        s
    }

    pub fn key_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.procs) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An in-process RADOS client (objecter) as `client.admin`, on its own runtime.
pub struct RadosClient {
    pub rt: tokio::runtime::Runtime,
    pub obj: std::sync::Arc<cephr::objecter::Objecter>,
}

impl Cluster {
    pub fn rados(&self, timeout: Duration) -> RadosClient {
        self.rados_on(tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt"), timeout)
    }

    /// A client on a current-thread runtime: it runs only inside `rt.block_on`, so a
    /// test can freeze it (no resends, no answers) between calls.
    #[allow(dead_code)]
    pub fn rados_frozen_between_calls(&self, timeout: Duration) -> RadosClient {
        self.rados_on(tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt"), timeout)
    }

    fn rados_on(&self, rt: tokio::runtime::Runtime, timeout: Duration) -> RadosClient {
        let cfg = cephr::config::ClusterConfig::load(&self.conf(), &[]).expect("config");
        let want = cephr::msg::MonSubscribe { osdmap: Some(0), ..Default::default() };
        let monc = rt
            .block_on(async { cephr::monc::MonClient::start_client(&cfg, &cfg.key_dir, &"client.admin".parse().expect("n"), want) })
            .expect("client");
        let obj = cephr::objecter::Objecter::new(monc, timeout);
        RadosClient { rt, obj }
    }

    /// Per-PG digests of a stopped OSD's store (`objectstore-tool digest`).
    pub fn osd_digests(&self, id: u32) -> Vec<(cephr::maps::PgId, Vec<(String, u64)>)> {
        let store = cephr::roles::osd::store::ObjectStore::open(&self.path().join(format!("osd.{id}"))).expect("open store");
        store.list_pgs().expect("pgs").into_iter().map(|pg| (pg, store.pg_digest(pg).expect("digest"))).collect()
    }
}
