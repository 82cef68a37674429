//! Client sessions of one rank: state, confinement root, last renewal, preallocated
//! inode numbers, and the ids of completed requests (so a request re-sent after failover
//! gets its old result instead of running twice). Stored as `mds<rank>_sessionmap`;
//! changes that matter after failover are journaled as `SessionEvent`s and applied by
//! the same idempotent functions in replay.
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use super::events::{EMetaBlob, InoSource, SessionEvent};
use super::types::{decode, encode, DecodeError, Ino};
use crate::error::Errno;
use crate::ids::EntityAddr;
use crate::msg::mds::MdsOp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionState {
    /// Open requested, journaling it.
    Opening,
    Open,
    /// Close requested, journaling it.
    Closing,
    /// No renewal within the session timeout; caps are revoked but the session stays.
    Stale,
    /// Being evicted.
    Killing,
}

impl SessionState {
    /// Whether `self -> to` is a legal move. Exhaustive on the source state.
    pub fn can_transition(self, to: SessionState) -> bool {
        use SessionState::*;
        match self {
            Opening => matches!(to, Open | Closing | Killing),
            Open => matches!(to, Closing | Stale | Killing),
            Closing => matches!(to, Killing),
            Stale => matches!(to, Open | Closing | Killing),
            Killing => false,
        }
    }
}

/// One client's session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub client: String,
    pub state: SessionState,
    /// The session may only see this directory and below.
    pub root: Ino,
    pub last_renew_ms: u64,
    /// Inode numbers reserved for this session's creates, lowest first.
    pub prealloc: BTreeSet<Ino>,
    /// Completed request tids not yet acknowledged as seen by the client.
    pub completed: BTreeSet<u64>,
    /// The client instance that opened the session (what an eviction blocklists).
    #[serde(default)]
    pub addr: Option<EntityAddr>,
    /// Inode numbers delegated to the client for async creates (it picks them).
    #[serde(default)]
    pub delegated: BTreeSet<Ino>,
}

/// What a request handler needs to know about the session it runs in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionInfo {
    pub client: String,
    pub root: Ino,
    /// The ino the next create in this session would use, if any is preallocated.
    pub next_prealloc: Option<Ino>,
    /// The inode number an async create chose, once checked to be delegated to the
    /// session (`for_request`); a create then uses it.
    pub delegated: Option<Ino>,
}

impl Session {
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            client: self.client.clone(),
            root: self.root,
            next_prealloc: self.prealloc.iter().next().copied(),
            delegated: None,
        }
    }

    /// `info` for one request: an async create's inode number must be delegated to
    /// this session (`Err` otherwise).
    pub fn info_for(&self, op: &MdsOp) -> Result<SessionInfo, Errno> {
        let mut i = self.info();
        if let MdsOp::CreateIno { ino, .. } | MdsOp::MkdirIno { ino, .. } = op {
            if !self.delegated.contains(ino) {
                return Err(Errno::EINVAL);
            }
            i.delegated = Some(*ino);
        }
        Ok(i)
    }

    /// The delegated inode numbers as `(start, len)` ranges, lowest first.
    pub fn delegated_ranges(&self) -> Vec<(Ino, u64)> {
        let mut out: Vec<(Ino, u64)> = Vec::new();
        for &i in &self.delegated {
            match out.last_mut() {
                Some((s, l)) if *s + *l == i => *l += 1,
                _ => out.push((i, 1)),
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session {client}: illegal state change {from:?} -> {to:?}")]
pub struct BadTransition {
    pub client: String,
    pub from: SessionState,
    pub to: SessionState,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMap {
    pub sessions: BTreeMap<String, Session>,
    pub version: u64,
}

impl SessionMap {
    pub fn get(&self, client: &str) -> Option<&Session> {
        self.sessions.get(client)
    }

    /// Moves a session to `to` if legal (live path only; not journaled by itself).
    pub fn set_state(&mut self, client: &str, to: SessionState) -> Result<(), BadTransition> {
        let s = self.sessions.get_mut(client).ok_or(BadTransition { client: client.into(), from: SessionState::Killing, to })?;
        if !s.state.can_transition(to) {
            return Err(BadTransition { client: client.into(), from: s.state, to });
        }
        s.state = to;
        Ok(())
    }

    pub fn renew(&mut self, client: &str, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(client) {
            s.last_renew_ms = now_ms;
            if s.state == SessionState::Stale {
                s.state = SessionState::Open;
            }
        }
    }

    /// Sessions not renewed since `now_ms - timeout_ms` that are open: to mark stale.
    pub fn to_mark_stale(&self, now_ms: u64, timeout_ms: u64) -> Vec<String> {
        self.sessions
            .values()
            .filter(|s| s.state == SessionState::Open && s.last_renew_ms.saturating_add(timeout_ms) < now_ms)
            .map(|s| s.client.clone())
            .collect()
    }

    pub fn is_completed(&self, client: &str, tid: u64) -> bool {
        self.sessions.get(client).is_some_and(|s| s.completed.contains(&tid))
    }

    /// The client says it has seen every reply below `oldest_tid`: forget those.
    pub fn trim_completed(&mut self, client: &str, oldest_tid: u64) {
        if let Some(s) = self.sessions.get_mut(client) {
            if s.completed.first().is_some_and(|&t| t < oldest_tid) {
                s.completed = s.completed.split_off(&oldest_tid);
            }
        }
    }

    /// Applies a journaled session event (live and replay). Returns the prealloc range
    /// freed by a close, which the InoTable takes back. Sessions opened in replay start
    /// `Open` with renewal time 0: reconnect decides whether they survive.
    pub fn apply_event(&mut self, ev: &SessionEvent) -> Vec<Ino> {
        self.version += 1;
        match ev {
            SessionEvent::Open { client, root, prealloc, addr } => {
                let s = self.sessions.entry(client.clone()).or_insert_with(|| Session {
                    client: client.clone(),
                    state: SessionState::Open,
                    root: *root,
                    last_renew_ms: 0,
                    prealloc: BTreeSet::new(),
                    completed: BTreeSet::new(),
                    addr: None,
                    delegated: BTreeSet::new(),
                });
                s.state = SessionState::Open;
                s.root = *root;
                if addr.is_some() {
                    s.addr = *addr;
                }
                if let Some((start, len)) = prealloc {
                    s.prealloc.extend(*start..start + len);
                }
                Vec::new()
            }
            SessionEvent::Prealloc { client, start, len } => {
                if let Some(s) = self.sessions.get_mut(client) {
                    s.prealloc.extend(*start..start + len);
                }
                Vec::new()
            }
            SessionEvent::Close { client } => self
                .sessions
                .remove(client)
                .map(|s| s.prealloc.into_iter().chain(s.delegated).collect())
                .unwrap_or_default(),
            SessionEvent::Delegate { client, start, len } => {
                if let Some(s) = self.sessions.get_mut(client) {
                    s.delegated.extend(*start..start + len);
                }
                Vec::new()
            }
        }
    }

    /// Applies what a metadata blob changed about sessions: a preallocated ino used and
    /// the request recorded as completed.
    pub fn apply_blob(&mut self, blob: &EMetaBlob) {
        let Some(r) = &blob.reqid else { return };
        let Some(s) = self.sessions.get_mut(&r.client) else { return };
        match blob.ino_alloc {
            Some(a) if a.from == InoSource::Prealloc => {
                s.prealloc.remove(&a.ino);
            }
            Some(a) if a.from == InoSource::Delegated => {
                s.delegated.remove(&a.ino);
            }
            _ => {}
        }
        s.completed.insert(r.tid);
        self.version += 1;
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        decode("sessionmap", b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::mds::events::{InoAlloc, ReqRef};
    use SessionState::*;

    /// That the transition table is exactly the intended one, pair by pair.
    #[test]
    fn transition_table() {
        let all = [Opening, Open, Closing, Stale, Killing];
        let legal = [
            (Opening, Open), (Opening, Closing), (Opening, Killing),
            (Open, Closing), (Open, Stale), (Open, Killing),
            (Closing, Killing),
            (Stale, Open), (Stale, Closing), (Stale, Killing),
        ];
        for a in all {
            for b in all {
                assert_eq!(a.can_transition(b), legal.contains(&(a, b)), "{a:?} -> {b:?}");
            }
        }
    }

    /// That open, prealloc use, completion and close apply idempotently enough for replay.
    #[test]
    fn events_and_blobs() {
        let mut m = SessionMap::default();
        let open = SessionEvent::Open { client: "client.1".into(), root: 1, prealloc: Some((100, 3)), addr: None };
        m.apply_event(&open);
        m.apply_event(&open);
        assert_eq!(m.get("client.1").unwrap().info().next_prealloc, Some(100));
        let blob = EMetaBlob {
            reqid: Some(ReqRef { client: "client.1".into(), tid: 5 }),
            ino_alloc: Some(InoAlloc { ino: 100, from: InoSource::Prealloc }),
            ..Default::default()
        };
        m.apply_blob(&blob);
        assert!(m.is_completed("client.1", 5));
        assert_eq!(m.get("client.1").unwrap().info().next_prealloc, Some(101));
        m.trim_completed("client.1", 6);
        assert!(!m.is_completed("client.1", 5));
        assert_eq!(SessionMap::decode(&m.encode()).unwrap(), m);
        assert_eq!(m.apply_event(&SessionEvent::Close { client: "client.1".into() }), vec![101, 102]);
        assert!(m.get("client.1").is_none());
    }

    /// That stale detection and renewal follow the session timeout.
    #[test]
    fn staleness() {
        let mut m = SessionMap::default();
        m.apply_event(&SessionEvent::Open { client: "c".into(), root: 1, prealloc: None, addr: None });
        m.renew("c", 1000);
        assert!(m.to_mark_stale(1500, 600).is_empty());
        assert_eq!(m.to_mark_stale(2000, 600), vec!["c".to_string()]);
        m.set_state("c", Stale).unwrap();
        assert!(m.set_state("c", Opening).is_err());
        m.renew("c", 2100);
        assert_eq!(m.get("c").unwrap().state, Open);
    }
}
