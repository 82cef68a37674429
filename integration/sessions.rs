//! Client sessions under faults, with real monitors, OSDs and an MDS: a client process
//! that stops renewing (SIGSTOP) goes stale, comes back to open when it renews, and is
//! evicted and blocklisted after `session_autoclose` so its data writes are refused;
//! `cephr client evict` evicts a library client at once (metadata and data then fail
//! with EBLOCKLISTED); and a client that does not answer cache-pressure recalls shows
//! in `cephr status` as MDS_CLIENT_RECALL until it answers.
mod harness;

use harness::{Cluster, BIN};
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const FS: &str = "cephfs";

fn ok(c: &Cluster, args: &[&str]) -> String {
    let r = c.cli(args);
    assert_eq!(r.code, 0, "{args:?}: {}\n{}", r.stderr, c.logs_tail());
    r.stdout
}

/// Monitors, three OSDs, the pools and the file system; `extra` goes into [global]
/// before the MDS starts.
fn start_fs(extra: &str) -> Cluster {
    let mut c = Cluster::start_with(&["a"], 3);
    if !extra.is_empty() {
        let mut f = std::fs::OpenOptions::new().append(true).open(c.conf()).expect("conf");
        writeln!(f, "{extra}").expect("conf");
    }
    c.start_fs(FS, [("meta", 8), ("data", 8)], &["mds.a"]);
    c
}

fn add_client(c: &Cluster, entity: &str) {
    ok(c, &["auth", "add", entity, "--caps", "mon=allow r", "--caps", "osd=allow rw", "--caps", "mds=allow rw"]);
}

/// The sessions `cephr client ls` shows (empty when the MDS does not answer).
fn sessions(c: &Cluster) -> Vec<serde_json::Value> {
    let r = c.cli(&["client", "ls", FS, "--format", "json"]);
    serde_json::from_str::<Vec<serde_json::Value>>(&r.stdout).unwrap_or_default()
}

fn session_of(c: &Cluster, entity: &str) -> Option<serde_json::Value> {
    sessions(c).into_iter().find(|s| s["entity"] == entity)
}

fn state_is(c: &Cluster, entity: &str, state: &str) -> bool {
    session_of(c, entity).is_some_and(|s| s["state"] == state)
}

/// A client process holding a session: `cephr fs put - PATH` mounts, creates the file
/// and then waits for its standard input. Killed by PID when dropped.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: std::path::PathBuf,
}

impl Holder {
    fn spawn(c: &Cluster, entity: &str, path: &str) -> Holder {
        let stderr = c.path().join(format!("{entity}.stderr"));
        let child = Command::new(BIN)
            .arg("-c")
            .arg(c.conf())
            .args(["-n", entity, "fs", "put", "-", path, "--fs", FS])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("spawn client");
        eprintln!("--- started {entity} pid {}", child.id());
        let mut h = Holder { child, stdin: None, stderr };
        h.stdin = h.child.stdin.take();
        h
    }

    fn signal(&self, sig: &str) {
        eprintln!("--- kill -{sig} client pid {}", self.child.id());
        let status = Command::new("kill").args([&format!("-{sig}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig}");
    }

    /// Sends `data`, closes stdin and waits (bounded) for the exit code and stderr.
    fn finish(mut self, data: &[u8], limit: Duration) -> (i32, String) {
        if let Some(mut s) = self.stdin.take() {
            // The client may already have quit; a broken pipe is then expected.
            let _ = s.write_all(data);
        }
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                return (st.code().unwrap_or(-1), err);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("client pid {} did not exit within {limit:?}", self.child.id());
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// That a client which stops renewing goes stale after `session_timeout`, back to open
/// when it renews, and after `session_autoclose` is evicted: its session is gone, its
/// instance is in the OSDMap blocklist, and its data writes are refused.
#[test]
fn t10_silent_client_goes_stale_then_is_evicted() {
    let c = start_fs("");
    ok(&c, &["fs", "set", FS, "session_autoclose", "12"]);
    ok(&c, &["fs", "set", FS, "session_timeout", "4"]);
    add_client(&c, "client.held");
    let holder = Holder::spawn(&c, "client.held", "/held.bin");
    c.wait_for(Duration::from_secs(30), "client.held open", |c| state_is(c, "client.held", "open"));
    let addr = session_of(&c, "client.held").and_then(|s| s["addr"].as_str().map(String::from)).expect("session address");
    eprintln!("--- client.held is {addr}");

    eprintln!("--- SIGSTOP: the session must go stale");
    holder.signal("STOP");
    c.wait_for(Duration::from_secs(20), "client.held stale", |c| state_is(c, "client.held", "stale"));
    eprintln!("--- SIGCONT: it renews and is open again");
    holder.signal("CONT");
    c.wait_for(Duration::from_secs(20), "client.held open again", |c| state_is(c, "client.held", "open"));

    eprintln!("--- SIGSTOP past session_autoclose: evicted and blocklisted");
    holder.signal("STOP");
    c.wait_for(Duration::from_secs(40), "client.held evicted", |c| {
        let r = c.cli(&["client", "ls", FS]);
        r.code == 0 && !r.stdout.contains("client.held")
    });
    let bl = ok(&c, &["osd", "blocklist", "ls"]);
    assert!(bl.contains(&addr), "{addr} not in the blocklist:\n{bl}");
    let log = std::fs::read_to_string(c.log("mds.a")).unwrap_or_default();
    assert!(log.contains("open -> stale") && log.contains("stale -> open"), "mds log lacks the state changes");
    assert!(log.contains("evicted"), "mds log lacks the eviction");

    eprintln!("--- SIGCONT: the evicted client's write must be refused");
    holder.signal("CONT");
    let (code, err) = holder.finish(b"data written after eviction", Duration::from_secs(60));
    eprintln!("--- the client said: {}", err.trim());
    assert_eq!(code, 108, "the evicted client's upload must fail with EBLOCKLISTED: {err}");
    assert!(err.contains(&format!("client.held at {addr} is blocklisted")), "the OSD must refuse the write: {err}");
}

/// That `cephr client evict` is for admins only, evicts a library client at once
/// (returning once its instance is blocklisted), after which its metadata requests
/// and its data writes fail with EBLOCKLISTED.
#[test]
fn t20_admin_evicts_a_client_at_once() {
    let c = start_fs("");
    add_client(&c, "client.lib");
    let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).expect("config");
    let rt = harness::runtime();
    let entity = "client.lib".parse().expect("entity");
    let client = rt.block_on(cephr::roles::client::Client::mount(&cfg, &entity, Some(FS), None)).expect("mount");
    let root = client.root_ino();
    let st = rt.block_on(client.create(root, "f", 0o644, true)).expect("create");
    rt.block_on(client.write_data(&st, 0, bytes::Bytes::from_static(b"before"))).expect("write before eviction");
    let addr = session_of(&c, "client.lib").and_then(|s| s["addr"].as_str().map(String::from)).expect("session address");

    eprintln!("--- refused: not an admin, unknown client");
    let r = c.cli(&["-n", "client.lib", "client", "evict", FS, "client.lib"]);
    assert_eq!(r.code, 13, "non-admin evict: {} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("EACCES"), "{}", r.stderr);
    let r = c.cli(&["client", "evict", FS, "nobody"]);
    assert!(r.code != 0 && r.stderr.contains("ENOENT"), "{}", r.stderr);
    let r = c.cli(&["client", "evict", "nofs", "lib"]);
    assert!(r.code != 0 && r.stderr.contains("ENOENT"), "{}", r.stderr);

    eprintln!("--- evict client.lib");
    let out = ok(&c, &["client", "evict", FS, "lib"]);
    assert!(out.contains("evicted client.lib") && out.contains(&addr), "{out}");
    let bl = ok(&c, &["osd", "blocklist", "ls"]);
    assert!(bl.contains(&addr), "{addr} not in the blocklist:\n{bl}");
    assert!(session_of(&c, "client.lib").is_none(), "the evicted session is still listed");

    let e = rt.block_on(client.mkdir(root, "after", 0o755)).expect_err("metadata after eviction");
    assert_eq!(e.errno, cephr::error::Errno::EBLOCKLISTED, "{e}");
    let e = rt.block_on(client.write_data(&st, 0, bytes::Bytes::from_static(b"after"))).expect_err("data after eviction");
    assert_eq!(e.errno, cephr::error::Errno::EBLOCKLISTED, "{e}");
}

fn recall_warning(c: &Cluster, entity: &str) -> bool {
    let r = c.cli(&["status", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
    let want = format!("client {entity} failing to respond to cache pressure");
    v["checks"].as_array().is_some_and(|cs| {
        cs.iter().any(|c| c["code"] == "MDS_CLIENT_RECALL" && c["summary"].as_str().is_some_and(|s| s.contains(&want)))
    })
}

/// That with the MDS cache over its limit a client that does not answer recalls
/// (SIGSTOP) is reported in `cephr status` as failing to respond to cache pressure,
/// and that the warning clears once it answers again; the MDS stays up throughout.
#[test]
fn t30_client_failing_to_respond_to_cache_pressure() {
    let c = start_fs("mds_cache_memory_limit = 1\nmds_recall_state_timeout = 2.0");
    ok(&c, &["fs", "set", FS, "session_autoclose", "300"]);
    ok(&c, &["fs", "set", FS, "session_timeout", "120"]);
    add_client(&c, "client.slow");
    let holder = Holder::spawn(&c, "client.slow", "/slow.bin");
    c.wait_for(Duration::from_secs(30), "client.slow open", |c| state_is(c, "client.slow", "open"));

    eprintln!("--- SIGSTOP: recalls go unanswered");
    holder.signal("STOP");
    c.wait_for(Duration::from_secs(30), "MDS_CLIENT_RECALL for client.slow", |c| recall_warning(c, "client.slow"));
    let plain = ok(&c, &["status"]);
    assert!(plain.contains("client client.slow failing to respond to cache pressure"), "{plain}");
    assert!(session_of(&c, "client.slow").is_some_and(|s| s["recall_overdue"] == true));

    eprintln!("--- SIGCONT: it answers and the warning clears");
    holder.signal("CONT");
    c.wait_for(Duration::from_secs(30), "the recall warning to clear", |c| !recall_warning(c, "client.slow"));
    let (code, err) = holder.finish(b"", Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert!(ok(&c, &["fs", "status", FS]).contains("active"), "the MDS must still be active");
}
