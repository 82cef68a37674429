//! Session liveness rules (pure; no clock, no I/O). Once a second the rank asks `due`
//! what the silence of each session calls for: a session not renewed for
//! `session_timeout` goes stale (its caps become revocable, so other clients can
//! proceed); one silent for `session_autoclose` is evicted (journaled close,
//! blocklisted instance, forgotten). A `Killing` session whose eviction is not in
//! flight (the rank restarted, or the monitors did not answer) is evicted again.
//! Renewal (`SessionMap::renew`) brings a stale session back to open.
use std::collections::BTreeSet;

use super::sessionmap::{SessionMap, SessionState};

/// The file system's session timeouts, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionTimeouts {
    pub timeout_ms: u64,
    pub autoclose_ms: u64,
}

impl SessionTimeouts {
    /// From the MDSMap's `session_timeout` / `session_autoclose` (seconds).
    pub fn from_secs(timeout: u32, autoclose: u32) -> Self {
        let timeout_ms = u64::from(timeout.max(1)) * 1000;
        SessionTimeouts { timeout_ms, autoclose_ms: (u64::from(autoclose) * 1000).max(timeout_ms) }
    }
}

/// What the rank must do about one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionAction {
    /// Silent for `session_timeout`: mark stale and make its caps revocable.
    MarkStale { client: String, silent_ms: u64 },
    /// Silent for `session_autoclose`, or left half-evicted: evict it.
    Evict { client: String, silent_ms: u64 },
}

/// Sessions restored by replay carry renewal time 0. They get `now_ms` instead, so a
/// client has a full `session_timeout` after the rank goes active to come back.
pub fn adopt_replayed(map: &mut SessionMap, now_ms: u64) -> usize {
    let mut n = 0;
    for s in map.sessions.values_mut().filter(|s| s.last_renew_ms == 0) {
        s.last_renew_ms = now_ms;
        n += 1;
    }
    n
}

/// The actions the sessions' silence calls for at `now_ms`. `evicting` names the
/// sessions whose eviction is already in flight (they are left alone).
pub fn due(map: &SessionMap, now_ms: u64, t: SessionTimeouts, evicting: &BTreeSet<String>) -> Vec<SessionAction> {
    let mut out = Vec::new();
    for s in map.sessions.values() {
        let silent_ms = now_ms.saturating_sub(s.last_renew_ms);
        let client = s.client.clone();
        let action = match s.state {
            SessionState::Open | SessionState::Stale if silent_ms > t.autoclose_ms => {
                Some(SessionAction::Evict { client, silent_ms })
            }
            SessionState::Open if silent_ms > t.timeout_ms => Some(SessionAction::MarkStale { client, silent_ms }),
            SessionState::Killing if !evicting.contains(&s.client) => Some(SessionAction::Evict { client, silent_ms }),
            SessionState::Opening | SessionState::Open | SessionState::Closing | SessionState::Stale => None,
            SessionState::Killing => None,
        };
        out.extend(action);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::mds::events::SessionEvent;

    fn map_with(clients: &[(&str, u64)]) -> SessionMap {
        let mut m = SessionMap::default();
        for (c, renewed) in clients {
            m.apply_event(&SessionEvent::Open { client: c.to_string(), root: 1, prealloc: None, addr: None });
            m.renew(c, *renewed);
        }
        m
    }

    const T: SessionTimeouts = SessionTimeouts { timeout_ms: 5_000, autoclose_ms: 10_000 };

    /// That a session goes stale after the timeout, is evicted after autoclose, and
    /// a renewal in between brings it back to open with a fresh clock.
    #[test]
    fn silence_leads_to_stale_then_eviction() {
        let mut m = map_with(&[("client.a", 1_000)]);
        let none = BTreeSet::new();
        assert!(due(&m, 6_000, T, &none).is_empty(), "exactly the timeout is not yet late");
        assert_eq!(due(&m, 6_001, T, &none), vec![SessionAction::MarkStale { client: "client.a".into(), silent_ms: 5_001 }]);
        m.set_state("client.a", SessionState::Stale).unwrap();
        assert!(due(&m, 9_000, T, &none).is_empty(), "stale sessions are not re-marked");
        m.renew("client.a", 9_000);
        assert_eq!(m.get("client.a").unwrap().state, SessionState::Open);
        assert!(due(&m, 14_000, T, &none).is_empty());
        m.set_state("client.a", SessionState::Stale).unwrap();
        assert_eq!(due(&m, 19_001, T, &none), vec![SessionAction::Evict { client: "client.a".into(), silent_ms: 10_001 }]);
    }

    /// That an open session silent past autoclose (the rank was busy) is evicted
    /// straight away, and a killing session is evicted again only when no eviction
    /// of it is in flight.
    #[test]
    fn late_open_and_unfinished_kills() {
        let mut m = map_with(&[("client.a", 0), ("client.b", 0)]);
        m.renew("client.a", 1);
        m.renew("client.b", 1);
        let acts = due(&m, 20_000, T, &BTreeSet::new());
        assert!(acts.iter().all(|a| matches!(a, SessionAction::Evict { .. })) && acts.len() == 2, "{acts:?}");
        m.set_state("client.a", SessionState::Killing).unwrap();
        let mut flying = BTreeSet::new();
        flying.insert("client.a".to_string());
        m.renew("client.b", 19_000);
        assert!(due(&m, 20_000, T, &flying).is_empty());
        assert_eq!(due(&m, 20_000, T, &BTreeSet::new()), vec![SessionAction::Evict { client: "client.a".into(), silent_ms: 19_999 }]);
    }

    /// That sessions restored by replay (renewed at 0) are given the activation time,
    /// and the timeouts never let autoclose undercut the timeout.
    #[test]
    fn replayed_sessions_get_a_fresh_start() {
        let mut m = map_with(&[("client.a", 0), ("client.b", 500)]);
        assert_eq!(adopt_replayed(&mut m, 50_000), 1);
        assert_eq!(m.get("client.a").unwrap().last_renew_ms, 50_000);
        assert_eq!(m.get("client.b").unwrap().last_renew_ms, 500);
        assert!(due(&m, 54_000, T, &BTreeSet::new()).iter().all(|a| !matches!(a, SessionAction::MarkStale { client, .. } if client == "client.a")));
        assert_eq!(SessionTimeouts::from_secs(60, 30), SessionTimeouts { timeout_ms: 60_000, autoclose_ms: 60_000 });
        assert_eq!(SessionTimeouts::from_secs(0, 0).timeout_ms, 1_000);
    }
}
