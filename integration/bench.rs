//! `cephr bench meta|data --fs` end to end with real daemons: every phase runs through
//! the client library, the figures come out as a JSON line, the data read back is
//! checked, and the work directories are gone afterwards.
mod harness;

use harness::Cluster;

const FS: &str = "cephfs";


fn start_fs() -> Cluster {
    let mut c = Cluster::start_with(&["a"], 3);
    c.start_fs(FS, [("cephfs_metadata", 16), ("cephfs_data", 32)], &["mds.a"]);
    c
}

/// The JSON line a bench command printed.
fn json_line(out: &str) -> serde_json::Value {
    let line = out.lines().find_map(|l| l.strip_prefix("JSON ")).unwrap_or_else(|| panic!("no JSON line in:\n{out}"));
    serde_json::from_str(line).expect("JSON line parses")
}

fn root_entries(c: &Cluster) -> String {
    let r = c.cli(&["fs", "ls", "/", "--fs", FS]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

/// That `bench meta --fs` runs every bench-meta.py phase through the library with the
/// requested counts, reports a median per phase, and removes its work directory.
#[test]
fn t10_meta_through_the_library() {
    let c = start_fs();
    eprintln!("--- bench meta, 2 runs of 150 files and 40 directories");
    let r = c.cli(&["bench", "meta", "--fs", FS, "--files", "150", "--dirs", "40", "--repeat", "2"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, c.logs_tail());
    let j = json_line(&r.stdout);
    let runs = j["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 2);
    for run in runs {
        let got: Vec<(String, u64)> = run
            .as_array()
            .expect("phases")
            .iter()
            .map(|p| (p["phase"].as_str().unwrap_or("").to_string(), p["ops"].as_u64().unwrap_or(0)))
            .collect();
        let want = [("create", 150), ("stat", 150), ("readdir", 150), ("unlink", 150), ("mkdir", 40), ("rmdir", 40)];
        assert_eq!(got, want.map(|(p, n)| (p.to_string(), n)));
    }
    for p in ["create", "stat", "readdir", "unlink", "mkdir", "rmdir"] {
        assert!(j["median_ops_per_s"][p].as_f64().is_some_and(|v| v > 0.0), "{p}: {}", j["median_ops_per_s"]);
    }
    assert!(!root_entries(&c).contains("bench-meta"), "work directory left behind");
}

/// That `bench data --fs` writes with fsync, reads the file back cold (a fresh client)
/// and warm with its content checked, and removes it.
#[test]
fn t20_data_through_the_library() {
    let c = start_fs();
    eprintln!("--- bench data, 9 MiB");
    let r = c.cli(&["bench", "data", "--fs", FS, "--size-mib", "9"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, c.logs_tail());
    let j = json_line(&r.stdout);
    let phases = j["phases"].as_array().expect("phases");
    let names: Vec<&str> = phases.iter().filter_map(|p| p["phase"].as_str()).collect();
    assert_eq!(names, ["write+fsync", "cold_read", "warm_read"]);
    assert!(phases.iter().all(|p| p["ops"] == 3 && p["mb_per_s"].as_f64().is_some_and(|m| m > 0.0)), "{phases:?}");
    assert!(!root_entries(&c).contains("bench-data"), "work directory left behind");
}

/// That a bench without a target, or with a missing file system, fails with a
/// clear error and its errno.
#[test]
fn t30_bad_targets() {
    let c = Cluster::create(&["a"]);
    let r = c.cli(&["bench", "meta"]);
    assert_eq!(r.code, 22, "{}", r.stderr);
    assert!(r.stderr.contains("give a mountpoint or --fs NAME"), "{}", r.stderr);
    let r = c.cli(&["bench", "data", "/nonexistent-dir-for-bench"]);
    assert_eq!(r.code, 20, "{}", r.stderr);
    let r = c.cli(&["bench", "meta", "--fs", FS, "--files", "0"]);
    assert_eq!(r.code, 22, "{}", r.stderr);
}
