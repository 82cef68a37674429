//! Heartbeat bookkeeping of one OSD, pure: who to ping, who is overdue. The actor
//! feeds it pings and replies with their times and asks which peers to report.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ids::OsdId;
use crate::maps::OsdMap;

#[derive(Debug, Default)]
pub struct Heartbeats {
    /// Peer → when we last heard from it (or first started watching it).
    last_rx: BTreeMap<OsdId, Instant>,
    /// Peers already reported failed (reported again every `grace` while silent).
    reported: BTreeMap<OsdId, Instant>,
    /// When this OSD last checked its peers.
    last_check: Option<Instant>,
}

impl Heartbeats {
    /// Starts watching every up OSD of `map` other than `me`; forgets the rest.
    pub fn update_peers(&mut self, map: &OsdMap, me: OsdId, now: Instant) {
        let peers: Vec<OsdId> = map.osds.values().filter(|o| o.up && o.id != me && o.addr.is_some()).map(|o| o.id).collect();
        self.last_rx.retain(|p, _| peers.contains(p));
        self.reported.retain(|p, _| peers.contains(p));
        for p in peers {
            self.last_rx.entry(p).or_insert(now);
        }
    }

    pub fn peers(&self) -> impl Iterator<Item = OsdId> + '_ {
        self.last_rx.keys().copied()
    }

    /// A ping or reply from `peer` arrived.
    pub fn heard(&mut self, peer: OsdId, now: Instant) {
        if let Some(t) = self.last_rx.get_mut(&peer) {
            *t = now;
        }
        self.reported.remove(&peer);
    }

    /// Peers silent for longer than `grace` that are due a (re)report, with how long
    /// they have been silent; checked every `interval`.
    ///
    /// A check that comes late by more than half the grace means this OSD itself did
    /// not run meanwhile (descheduled on a loaded machine, stopped, or busy): the
    /// peers' pings wait unread in its queue, so their silence is its own. It then
    /// reports nobody and measures every peer afresh from now; a peer that is really
    /// gone is reported one grace later. Otherwise one stalled OSD reported all its
    /// peers at once (with one reporter enough, as in the fast profile, the monitors
    /// marked them all down: new intervals, peering, stalled I/O).
    pub fn overdue(&mut self, grace: Duration, interval: Duration, now: Instant) -> Vec<(OsdId, Duration)> {
        let late = self.last_check.is_some_and(|l| now.saturating_duration_since(l) > interval + grace / 2);
        self.last_check = Some(now);
        if late {
            for t in self.last_rx.values_mut() {
                *t = now;
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        for (p, t) in &self.last_rx {
            let silent = now.saturating_duration_since(*t);
            let due = self.reported.get(p).is_none_or(|r| now.saturating_duration_since(*r) >= grace);
            if silent > grace && due {
                out.push((*p, silent));
            }
        }
        for (p, _) in &out {
            self.reported.insert(*p, now);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EntityAddr;
    use crate::maps::OsdInfo;

    fn map(up: &[OsdId]) -> OsdMap {
        let mut m = OsdMap::default();
        for id in 0..4 {
            m.osds.insert(
                id,
                OsdInfo {
                    addr: Some(EntityAddr { addr: "127.0.0.1:1".parse().unwrap(), nonce: id as u64 + 1 }),
                    up: up.contains(&id),
                    up_from: 1,
                    ..OsdInfo::new(id, &format!("h{id}"))
                },
            );
        }
        m
    }

    /// The check interval of these tests.
    const IV: Duration = Duration::from_millis(300);

    /// That only up peers are watched, a silent one is reported once per grace, and
    /// hearing from it clears the report.
    #[test]
    fn silent_peer_reported_once_per_grace() {
        let t0 = Instant::now();
        let g = Duration::from_secs(1);
        let mut h = Heartbeats::default();
        h.update_peers(&map(&[0, 1, 2]), 0, t0);
        assert_eq!(h.peers().collect::<Vec<_>>(), vec![1, 2]);
        h.heard(1, t0 + Duration::from_millis(900));
        let due = h.overdue(g, IV, t0 + Duration::from_millis(1100));
        assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), vec![2]);
        assert!(h.overdue(g, IV, t0 + Duration::from_millis(1500)).is_empty(), "not re-reported within grace");
        assert_eq!(h.overdue(g, IV, t0 + Duration::from_millis(2200)).iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 2]);
        h.heard(2, t0 + Duration::from_millis(2300));
        h.update_peers(&map(&[0, 2]), 0, t0 + Duration::from_millis(2300));
        assert_eq!(h.peers().collect::<Vec<_>>(), vec![2], "down peers are forgotten");
        assert!(h.overdue(g, IV, t0 + Duration::from_millis(2400)).is_empty());
    }

    /// That a check coming late (this OSD did not run for longer than half the grace
    /// beyond its interval) reports nobody and measures the peers afresh, and that a
    /// peer silent for a whole grace after that is reported.
    #[test]
    fn a_stalled_checker_reports_nobody() {
        let t0 = Instant::now();
        let g = Duration::from_millis(800);
        let ms = |m| t0 + Duration::from_millis(m);
        let mut h = Heartbeats::default();
        h.update_peers(&map(&[0, 1, 2]), 0, t0);
        assert!(h.overdue(g, IV, ms(200)).is_empty());
        h.heard(1, ms(200));
        h.heard(2, ms(200));
        // Stalled from 200 to 1,300 ms: both peers look 1.1 s silent, but were not.
        assert!(h.overdue(g, IV, ms(1300)).is_empty(), "a late check reports nobody");
        h.heard(1, ms(1310));
        assert!(h.overdue(g, IV, ms(1500)).is_empty());
        assert!(h.overdue(g, IV, ms(1800)).is_empty());
        // On time from here: osd.2, silent since the stall ended, is reported a grace on.
        let due = h.overdue(g, IV, ms(2101));
        assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), vec![2], "{due:?}");
    }
}
