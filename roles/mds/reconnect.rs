//! Client reconnect after failover (pure; time is passed in). Seed 000: a new active
//! MDS goes replay -> reconnect -> rejoin -> (clientreplay) -> active. In
//! `up:reconnect` it waits, up to `mds_reconnect_timeout` or until every session of the
//! replayed session map is back, for each client's `MClientReconnect` carrying its
//! caps; sessions whose instance the OSDMap blocklists are not waited for. A client
//! that reconnects keeps its session and caps (`Locker::reconnect_cap`); the others
//! are evicted when the phase ends. In `up:rejoin` the rank loads what the reclaimed
//! caps point at (path hints) and settles the lock states; requests queued by
//! reconnected clients (their unsafe ones, re-sent) run in `up:clientreplay` before
//! anything else.
use std::collections::{BTreeMap, BTreeSet};

use super::locker::{InodeInfo, Reclaimed};
use super::sessionmap::{SessionMap, SessionState};
use super::types::Ino;
use crate::ids::EntityAddr;
use crate::msg::caps::ClientReconnect;

/// What became of one client's reconnect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its session survives; its caps are to be imported.
    Accepted,
    /// Refused (no such session, blocklisted, or the phase is over): it must open a
    /// new session, its caps are gone.
    Refused(String),
}

/// The reconnect phase of one rank.
#[derive(Clone, Debug)]
pub struct ReconnectPhase {
    expected: BTreeSet<String>,
    back: BTreeSet<String>,
    /// Sessions not waited for (blocklisted instances): evicted at the end.
    dropped: BTreeSet<String>,
    deadline_ms: u64,
    /// Parent directories the reclaimed caps were last seen in (to load in rejoin).
    hints: BTreeMap<Ino, BTreeSet<Ino>>,
}

impl ReconnectPhase {
    /// Starts waiting for the sessions of `sessions` (open or stale ones; killing ones
    /// are being evicted already), except those `blocklisted` says are.
    pub fn start(sessions: &SessionMap, blocklisted: impl Fn(&EntityAddr) -> bool, now_ms: u64, timeout_ms: u64) -> Self {
        let mut expected = BTreeSet::new();
        let mut dropped = BTreeSet::new();
        for s in sessions.sessions.values().filter(|s| s.state != SessionState::Killing) {
            if s.addr.as_ref().is_some_and(&blocklisted) {
                dropped.insert(s.client.clone());
            } else {
                expected.insert(s.client.clone());
            }
        }
        ReconnectPhase { expected, back: BTreeSet::new(), dropped, deadline_ms: now_ms.saturating_add(timeout_ms), hints: BTreeMap::new() }
    }

    /// A client's reconnect arrived.
    pub fn reconnect(&mut self, client: &str, m: &ClientReconnect) -> Verdict {
        if !self.expected.contains(client) {
            let why = if self.dropped.contains(client) { "its instance is blocklisted" } else { "no session to reconnect" };
            return Verdict::Refused(why.to_string());
        }
        self.back.insert(client.to_string());
        for c in &m.caps {
            if let Some((parent, _)) = &c.path {
                self.hints.entry(*parent).or_default().insert(c.ino);
            }
        }
        Verdict::Accepted
    }

    /// Whether the phase is over: everyone is back or the time is up.
    pub fn done(&self, now_ms: u64) -> bool {
        self.back.len() == self.expected.len() || now_ms >= self.deadline_ms
    }

    /// Sessions to evict when the phase ends: those that did not come back, and the
    /// blocklisted ones.
    pub fn to_evict(&self) -> Vec<String> {
        self.expected.difference(&self.back).chain(self.dropped.iter()).cloned().collect()
    }

    pub fn reconnected(&self) -> &BTreeSet<String> {
        &self.back
    }

    /// Directories to load so the reclaimed inodes are in cache (`inos` not yet are).
    pub fn dirs_to_load(&self, missing: impl Fn(Ino) -> bool) -> Vec<Ino> {
        self.hints.iter().filter(|(_, inos)| inos.iter().any(|i| missing(*i))).map(|(d, _)| *d).collect()
    }
}

/// The Locker's view of a reconnect's caps.
pub fn reclaimed(m: &ClientReconnect) -> Vec<Reclaimed> {
    m.caps
        .iter()
        .map(|c| Reclaimed {
            ino: c.ino,
            info: InodeInfo { is_dir: c.is_dir, size: c.size },
            issued: c.issued,
            wanted: c.wanted,
            seq: c.seq,
            max_size: c.max_size,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::caps::{CapReconnect, Caps};
    use crate::roles::mds::events::SessionEvent;

    fn addr(n: u64) -> EntityAddr {
        EntityAddr { addr: "127.0.0.1:1".parse().unwrap(), nonce: n }
    }

    fn map() -> SessionMap {
        let mut m = SessionMap::default();
        for (c, n) in [("client.a/1", 1), ("client.b/2", 2), ("client.c/3", 3)] {
            m.apply_event(&SessionEvent::Open { client: c.into(), root: 1, prealloc: None, addr: Some(addr(n)) });
        }
        m
    }

    fn cap(ino: Ino, parent: Ino) -> CapReconnect {
        CapReconnect {
            ino,
            issued: Caps::parse("pFscr").unwrap(),
            wanted: Caps::parse("Fscr").unwrap(),
            seq: 4,
            is_dir: false,
            size: 7,
            max_size: 0,
            open: true,
            path: Some((parent, "f".into())),
        }
    }

    /// That the phase waits for every non-blocklisted session, ends early once all
    /// are back, and refuses unknown or blocklisted clients.
    #[test]
    fn waits_for_everyone_or_the_timeout() {
        let mut p = ReconnectPhase::start(&map(), |a| *a == addr(3), 1_000, 3_000);
        assert!(!p.done(1_000));
        let m = ClientReconnect { caps: vec![cap(10, 1)] };
        assert_eq!(p.reconnect("client.a/1", &m), Verdict::Accepted);
        assert!(matches!(p.reconnect("client.c/3", &m), Verdict::Refused(w) if w.contains("blocklisted")));
        assert!(matches!(p.reconnect("client.z/9", &m), Verdict::Refused(_)));
        assert!(!p.done(3_999));
        assert!(p.done(4_000), "the timeout ends it");
        assert_eq!(p.to_evict(), vec!["client.b/2".to_string(), "client.c/3".to_string()]);
        assert_eq!(p.reconnect("client.b/2", &ClientReconnect::default()), Verdict::Accepted);
        assert!(p.done(1_001), "everyone expected is back");
        assert_eq!(p.to_evict(), vec!["client.c/3".to_string()]);
    }

    /// That path hints name the directories holding reclaimed inodes not in cache,
    /// and that the Locker gets each cap as the client reported it.
    #[test]
    fn hints_and_reclaimed_caps() {
        let mut p = ReconnectPhase::start(&map(), |_| false, 0, 10);
        let m = ClientReconnect { caps: vec![cap(10, 1), cap(11, 5), cap(12, 5)] };
        assert_eq!(p.reconnect("client.a/1", &m), Verdict::Accepted);
        assert_eq!(p.dirs_to_load(|i| i == 12), vec![5]);
        assert_eq!(p.dirs_to_load(|_| false), Vec::<Ino>::new());
        let r = reclaimed(&m);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].ino, r[0].seq, r[0].info.size, r[0].issued), (10, 4, 7, Caps::parse("pFscr").unwrap()));
    }
}
