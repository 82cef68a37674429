//! OSD life cycle with real daemons: boot into the OSDMap, failure detection by
//! peer heartbeats (kill -9 and SIGSTOP), down → out after the interval, and the
//! way back up and in after a restart.
mod harness;

use harness::Cluster;
use std::time::Duration;

/// That a killed OSD is reported by its peers and marked down, goes out after
/// `mon_osd_down_out_interval`, and comes back up and in when restarted; and that a
/// SIGSTOPped OSD is marked down within its heartbeat grace and boots again on SIGCONT.
#[test]
fn t10_kill_stop_out_and_back() {
    let mut c = Cluster::start_with(&["a"], 3);
    let tree = c.cli(&["osd", "tree"]).stdout;
    assert!(tree.contains("host host-0") && tree.contains("osd.2"), "{tree}");

    eprintln!("--- kill -9 osd.1");
    c.kill9("osd.1");
    let took = c.wait_for(Duration::from_secs(10), "osd.1 down", |c| !c.osds_up().contains(&1));
    eprintln!("--- osd.1 marked down {took:?} after the kill");
    assert!(c.osd_in(1), "still in right after going down");
    assert!(c.cli(&["status"]).stdout.contains("1 osds down"));
    let took = c.wait_for(Duration::from_secs(20), "osd.1 out", |c| !c.osd_in(1));
    eprintln!("--- osd.1 marked out {took:?} later");

    eprintln!("--- restart osd.1");
    c.start_daemon("osd.1");
    c.wait_for(Duration::from_secs(10), "osd.1 up and in", |c| c.osds_up().contains(&1) && c.osd_in(1));

    eprintln!("--- SIGSTOP osd.2");
    c.signal("osd.2", "STOP");
    let took = c.wait_for(Duration::from_secs(10), "osd.2 down", |c| !c.osds_up().contains(&2));
    eprintln!("--- stopped osd.2 marked down {took:?} after SIGSTOP");
    c.signal("osd.2", "CONT");
    c.wait_for(Duration::from_secs(10), "osd.2 up again", |c| c.osds_up().contains(&2));
    assert!(c.alive("osd.2"));
}

/// That an admin's `osd out`/`in`/`down` change the map, and a wrongly marked-down
/// OSD that is alive boots itself up again.
#[test]
fn t20_admin_marks() {
    let c = Cluster::start_with(&["a"], 2);
    assert_eq!(c.cli(&["osd", "out", "0"]).code, 0);
    assert!(!c.osd_in(0));
    assert_eq!(c.cli(&["osd", "in", "osd.0"]).code, 0);
    assert!(c.osd_in(0));
    assert_eq!(c.cli(&["osd", "down", "1"]).code, 0);
    c.wait_for(Duration::from_secs(10), "osd.1 to boot itself up again", |c| c.osds_up().contains(&1));
}
