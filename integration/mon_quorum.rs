//! Monitor quorum scenarios with real `cephr` processes on 127.0.0.1: commands and
//! their errors, leader loss and rejoin, map subscriptions, and MDS rank assignment
//! driven by beacons.
mod harness;

use harness::Cluster;
use std::time::Duration;

/// That three monitors form a quorum, commit pool and file system changes, and
/// answer bad requests with a one-line errno error and a non-zero exit.
#[test]
fn t10_quorum_commands_and_errors() {
    let c = Cluster::start(&["a", "b", "c"]);
    eprintln!("--- quorum");
    c.wait_for(Duration::from_secs(10), "quorum a,b,c", |c| c.quorum() == ["a", "b", "c"]);
    let st = c.cli(&["status"]);
    assert!(st.stdout.contains("quorum a,b,c"), "{}", st.stdout);

    eprintln!("--- pools and fs new");
    assert_eq!(c.cli(&["osd", "pool", "create", "meta", "--pg-num", "16"]).code, 0);
    assert_eq!(c.cli(&["osd", "pool", "create", "data"]).code, 0);
    let r = c.cli(&["fs", "new", "cephfs", "meta", "data"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ls = c.json(&["fs", "ls"]);
    assert_eq!(ls[0]["name"], "cephfs");
    assert_eq!(ls[0]["metadata_pool"], "meta");

    eprintln!("--- errors");
    let r = c.cli(&["fs", "new", "other", "nope", "data"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stderr.trim(), "Error ENOENT: pool 'nope' does not exist");
    for (args, want) in [
        (vec!["fs", "new", "x", "meta", "data"], "Error EINVAL: pool 'meta' is already used by file system 'cephfs'"),
        (vec!["fs", "get", "nofs"], "Error ENOENT: file system 'nofs' does not exist"),
        (vec!["fs", "set", "cephfs", "max_mds", "zero"], "Error EINVAL: max_mds must be a whole number in 1..=256 (got 'zero')"),
        (vec!["fs", "set", "cephfs", "colour", "blue"], "Error EINVAL: unknown variable 'colour'"),
        (vec!["osd", "down", "7"], "Error ENOENT: osd.7 does not exist"),
        (vec!["osd", "pool", "create", "bad", "--size", "2", "--min-size", "3"], "Error EINVAL"),
        (vec!["fs", "rm", "cephfs"], "Error EPERM: this is a DESTRUCTIVE operation"),
        (vec!["mds", "fail", "nobody"], "Error ENOENT"),
        (vec!["osd", "blocklist", "add", "not-an-addr"], "Error EINVAL: invalid address"),
    ] {
        let r = c.cli(&args);
        assert_ne!(r.code, 0, "{args:?} should fail");
        assert!(r.stderr.starts_with(want), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
    }
    let r = c.cli_env(&["status"], &[("CEPHR_MDS_BEACON_GRACE", "0.1")]);
    assert!(r.stderr.contains("mds_beacon_grace"), "bad config names the option: {}", r.stderr);

    eprintln!("--- fs set, fail, rm");
    assert_eq!(c.cli(&["fs", "set", "cephfs", "max_mds", "2"]).code, 0);
    assert_eq!(c.cli(&["fs", "set", "cephfs", "allow_standby_replay", "true"]).code, 0);
    let fs = c.json(&["fs", "get", "cephfs"]);
    assert_eq!(fs["mdsmap"]["max_mds"], 2);
    assert_eq!(fs["mdsmap"]["allow_standby_replay"], true);
    assert_eq!(c.cli(&["fs", "fail", "cephfs"]).code, 0);
    assert_eq!(c.cli(&["fs", "rm", "cephfs", "--yes-i-really-mean-it"]).code, 0);
    assert_eq!(c.json(&["fs", "ls"]).as_array().map(|a| a.len()), Some(0));

    eprintln!("--- blocklist");
    assert_eq!(c.cli(&["osd", "blocklist", "add", "127.0.0.1:7000/42", "600"]).code, 0);
    let bl = c.json(&["osd", "blocklist", "ls"]);
    assert_eq!(bl[0]["addr"], "127.0.0.1:7000/42");
    assert_eq!(c.cli(&["osd", "blocklist", "rm", "127.0.0.1:7000/42"]).code, 0);
    assert_eq!(c.json(&["osd", "blocklist", "ls"]).as_array().map(|a| a.len()), Some(0));
}

/// That after `kill -9` of the leading monitor the other two keep a quorum and
/// commit, and the killed monitor, restarted, rejoins with the same epochs.
#[test]
fn t20_leader_kill_and_rejoin() {
    let mut c = Cluster::start(&["a", "b", "c"]);
    c.wait_for(Duration::from_secs(10), "quorum a,b,c", |c| c.quorum().len() == 3);
    assert_eq!(c.cli(&["osd", "pool", "create", "before"]).code, 0);
    let leader = c.leader();
    eprintln!("--- kill -9 the leader mon.{leader}");
    c.kill9(&format!("mon.{leader}"));
    let took = c.wait_for(Duration::from_secs(10), "a quorum of two", |c| {
        let r = c.cli(&["mon", "stat", "--format", "json"]);
        r.code == 0 && serde_json::from_str::<serde_json::Value>(&r.stdout).is_ok_and(|v| {
            v["quorum"].as_array().is_some_and(|q| q.len() == 2) && v["leader"] != leader.as_str()
        })
    });
    eprintln!("--- new quorum answered after {took:?}");
    let r = c.cli(&["osd", "pool", "create", "after"]);
    assert_eq!(r.code, 0, "pool create commits with two monitors: {}", r.stderr);
    let st = c.cli(&["status"]);
    assert!(st.stdout.contains("1/3 mons down"), "{}", st.stdout);

    eprintln!("--- restart mon.{leader}");
    c.start_mon(&leader);
    let other = c.mons.iter().find(|m| **m != leader).cloned().unwrap_or_default();
    c.wait_for(Duration::from_secs(15), "the restarted monitor to catch up", |c| {
        let mine = c.json(&["tell", &format!("mon.{leader}"), "status"]);
        let theirs = c.json(&["tell", &format!("mon.{other}"), "status"]);
        mine["role"] == "peon"
            && ["osdmap_epoch", "fsmap_epoch", "monmap_epoch"].iter().all(|k| mine[k] == theirs[k])
    });
    c.wait_for(Duration::from_secs(10), "quorum of three again", |c| c.quorum().len() == 3);
    let pools = c.cli(&["osd", "pool", "ls"]).stdout;
    assert!(pools.contains("before") && pools.contains("after"), "{pools}");
}

/// That a subscriber gets the current maps at once and every new epoch after, and
/// keeps getting them when its monitor dies (it hunts for another).
#[test]
fn t30_subscription_follows_epochs_across_monitor_loss() {
    let mut c = Cluster::start(&["a", "b", "c"]);
    let cfg = cephr::config::ClusterConfig::load(&c.conf(), &[]).expect("config");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    // A client asking for the auth database must not get it (daemons only).
    let want = cephr::msg::MonSubscribe { monmap: Some(0), osdmap: Some(0), fsmap: Some(0), auth: Some(0) };
    let monc = rt
        .block_on(async { cephr::monc::MonClient::start_client(&cfg, &cfg.key_dir, &"client.admin".parse().expect("n"), want) })
        .expect("client");
    let mut watch = monc.watch();
    let epoch = |w: &tokio::sync::watch::Receiver<cephr::monc::MapSet>| w.borrow().osdmap.as_ref().map_or(0, |m| m.epoch);
    let wait_epoch = |w: &mut tokio::sync::watch::Receiver<cephr::monc::MapSet>, min: u64| {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(15), w.wait_for(|m| m.osdmap.as_ref().is_some_and(|o| o.epoch >= min)))
                .await
                .map(|_| ())
        })
    };
    wait_epoch(&mut watch, 1).expect("initial osdmap");
    let e0 = epoch(&watch);
    assert_eq!(c.cli(&["osd", "pool", "create", "p1"]).code, 0);
    wait_epoch(&mut watch, e0 + 1).expect("pushed new epoch");
    for m in ["a", "b"] {
        eprintln!("--- kill -9 mon.{m}");
        c.kill9(&format!("mon.{m}"));
        if m == "a" {
            let e = epoch(&watch);
            let r = c.cli(&["osd", "pool", "create", &format!("after-{m}")]);
            assert_eq!(r.code, 0, "{}", r.stderr);
            wait_epoch(&mut watch, e + 1).expect("epoch after monitor loss");
        }
    }
    eprintln!("--- restart mon.a: quorum a,c");
    c.start_mon("a");
    let e = epoch(&watch);
    c.wait_for(Duration::from_secs(15), "pool create with a,c", |c| c.cli(&["osd", "pool", "create", "late"]).code == 0);
    wait_epoch(&mut watch, e + 1).expect("epoch after second monitor loss");
    assert!(watch.borrow().auth.is_none(), "clients are never sent the auth database");
    drop(monc);
}
