//! Cache-pressure recall (pure; time is passed in). While the rank's cache is over
//! `mds_cache_memory_limit`, every client session is asked, once per period, to keep
//! at most a target number of caps and cached dentries (`SessionReply::Recall`); the
//! client trims, releases what it can and answers with what it still holds. A recall
//! not complied with within `mds_recall_state_timeout` makes the client "failing to
//! respond to cache pressure", which the rank reports in its beacon (health code
//! MDS_CLIENT_RECALL). Compliance, the session going away, or the pressure ending
//! clears it. Unanswered recalls are re-sent each period (the message may be lost
//! when the client's connection dropped).
use std::collections::BTreeMap;

use crate::msg::command::{HealthCheck, HealthStatus};

/// Caps a client may always keep (Ceph's `mds_min_caps_per_client`).
pub const MIN_CAPS_PER_CLIENT: u64 = 100;

/// Health code of a client failing to answer recalls.
pub const MDS_CLIENT_RECALL: &str = "MDS_CLIENT_RECALL";

/// How far over its limit the cache is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pressure {
    pub used: u64,
    pub limit: u64,
}

impl Pressure {
    /// `Some` when `used` exceeds `limit`.
    pub fn over(used: u64, limit: u64) -> Option<Pressure> {
        (used > limit).then_some(Pressure { used, limit })
    }
}

/// What a client holding `held` should keep: its share scaled by limit/used, never
/// below the per-client minimum.
pub fn target(held: u64, p: Pressure) -> u64 {
    let scaled = u128::from(held) * u128::from(p.limit) / u128::from(p.used.max(1));
    u64::try_from(scaled).unwrap_or(u64::MAX).max(MIN_CAPS_PER_CLIENT)
}

/// One recall to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecallMsg {
    pub client: String,
    pub seq: u64,
    pub max_caps: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ClientRecall {
    /// Asked at `first_ms` (re-sent at `last_ms`), not yet complied with.
    Pending { seq: u64, target: u64, first_ms: u64, last_ms: u64 },
    /// Complied with at `at_ms`.
    Complied { at_ms: u64 },
}

/// What became of a client's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    Complied,
    /// It answered but still holds more than asked: the recall stays pending.
    StillOver { held: u64, target: u64 },
    /// No recall with that seq is pending (late, duplicate or forged answer).
    Unknown,
}

/// Recall state of every client of the rank.
#[derive(Clone, Debug, Default)]
pub struct RecallTracker {
    next_seq: u64,
    clients: BTreeMap<String, ClientRecall>,
}

impl RecallTracker {
    /// One tick. `sessions` lists each live session with the caps the rank knows it
    /// holds. Under pressure, a session gets a recall when none was sent this period
    /// (a pending one is re-sent); without pressure every recall is settled.
    pub fn tick(&mut self, pressure: Option<Pressure>, sessions: &[(String, u64)], now_ms: u64, period_ms: u64) -> Vec<RecallMsg> {
        self.clients.retain(|c, _| sessions.iter().any(|(s, _)| s == c));
        let Some(p) = pressure else {
            self.clients.clear();
            return Vec::new();
        };
        let mut out = Vec::new();
        for (client, held) in sessions {
            let msg = match self.clients.get_mut(client) {
                Some(ClientRecall::Pending { seq, target, last_ms, .. }) => {
                    if now_ms.saturating_sub(*last_ms) < period_ms {
                        continue;
                    }
                    *last_ms = now_ms;
                    RecallMsg { client: client.clone(), seq: *seq, max_caps: *target }
                }
                Some(ClientRecall::Complied { at_ms }) if now_ms.saturating_sub(*at_ms) < period_ms => continue,
                _ => self.start(client, target(*held, p), now_ms),
            };
            out.push(msg);
        }
        out
    }

    fn start(&mut self, client: &str, target: u64, now_ms: u64) -> RecallMsg {
        self.next_seq += 1;
        let seq = self.next_seq;
        let st = ClientRecall::Pending { seq, target, first_ms: now_ms, last_ms: now_ms };
        self.clients.insert(client.to_string(), st);
        RecallMsg { client: client.to_string(), seq, max_caps: target }
    }

    /// A client answered recall `seq` holding `held` (the larger of what it says and
    /// what the rank counts).
    pub fn ack(&mut self, client: &str, seq: u64, held: u64, now_ms: u64) -> AckOutcome {
        match self.clients.get(client) {
            Some(ClientRecall::Pending { seq: s, target, .. }) if *s == seq => {
                if held > *target {
                    return AckOutcome::StillOver { held, target: *target };
                }
                self.clients.insert(client.to_string(), ClientRecall::Complied { at_ms: now_ms });
                AckOutcome::Complied
            }
            _ => AckOutcome::Unknown,
        }
    }

    /// Clients whose recall has been pending for longer than `timeout_ms`.
    pub fn overdue(&self, now_ms: u64, timeout_ms: u64) -> Vec<String> {
        let late = |r: &ClientRecall| matches!(r, ClientRecall::Pending { first_ms, .. } if now_ms.saturating_sub(*first_ms) > timeout_ms);
        self.clients.iter().filter(|(_, r)| late(r)).map(|(c, _)| c.clone()).collect()
    }

    pub fn forget(&mut self, client: &str) {
        self.clients.remove(client);
    }
}

/// The beacon's health warnings for overdue clients (empty when none).
pub fn health(overdue: &[String]) -> Vec<HealthCheck> {
    overdue
        .iter()
        .map(|c| HealthCheck {
            code: MDS_CLIENT_RECALL.into(),
            severity: HealthStatus::Warn,
            summary: match c.split_once('/') {
                // A session key `entity/nonce`: name the entity, then the instance.
                Some((entity, _)) => format!("client {entity} failing to respond to cache pressure (session {c})"),
                None => format!("client {c} failing to respond to cache pressure"),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Option<Pressure> = Some(Pressure { used: 2_000, limit: 1_000 });

    fn sessions(names: &[&str]) -> Vec<(String, u64)> {
        names.iter().map(|n| (n.to_string(), 1_000)).collect()
    }

    /// That targets halve a client's share when the cache is twice its limit, and
    /// never go below the per-client minimum.
    #[test]
    fn targets_scale_with_pressure() {
        let p = Pressure { used: 2_000, limit: 1_000 };
        assert_eq!(target(1_000, p), 500);
        assert_eq!(target(10, p), MIN_CAPS_PER_CLIENT);
        assert_eq!(target(u64::MAX, Pressure { used: 1, limit: u64::MAX }), u64::MAX);
        assert_eq!(Pressure::over(10, 10), None);
        assert_eq!(Pressure::over(11, 10), Some(Pressure { used: 11, limit: 10 }));
    }

    /// That under pressure each client is recalled once per period, a complying
    /// answer settles it, and a client that does not answer becomes overdue (and a
    /// health warning naming it) after the timeout, with the recall re-sent.
    #[test]
    fn recall_comply_and_overdue() {
        let mut t = RecallTracker::default();
        let s = sessions(&["client.a", "client.b"]);
        let sent = t.tick(P, &s, 0, 5_000);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].max_caps, 500);
        assert!(t.tick(P, &s, 1_000, 5_000).is_empty(), "one recall per period");
        assert_eq!(t.ack("client.a", sent[0].seq, 400, 1_000), AckOutcome::Complied);
        assert_eq!(t.ack("client.a", sent[0].seq, 400, 1_000), AckOutcome::Unknown, "duplicate answer");
        assert_eq!(t.ack("client.b", sent[0].seq, 0, 1_000), AckOutcome::Unknown, "another client's seq");
        assert!(t.overdue(5_000, 5_000).is_empty());
        assert_eq!(t.overdue(5_001, 5_000), vec!["client.b".to_string()]);
        assert_eq!(health(&t.overdue(5_001, 5_000))[0].summary, "client client.b failing to respond to cache pressure");
        let again = t.tick(P, &s, 6_000, 5_000);
        assert_eq!(again.len(), 2, "b's recall is re-sent, a is asked anew: {again:?}");
        let b = again.iter().find(|m| m.client == "client.b").unwrap();
        assert_eq!(b.seq, sent[1].seq, "a re-sent recall keeps its seq");
        assert_eq!(t.ack("client.b", b.seq, 900, 6_100), AckOutcome::StillOver { held: 900, target: 500 });
        assert_eq!(t.overdue(6_100, 5_000), vec!["client.b".to_string()]);
        assert_eq!(t.ack("client.b", b.seq, 100, 6_200), AckOutcome::Complied);
        assert!(t.overdue(6_200, 5_000).is_empty());
    }

    /// That the end of pressure or of a session clears what was pending.
    #[test]
    fn pressure_end_and_session_end_clear() {
        let mut t = RecallTracker::default();
        t.tick(P, &sessions(&["client.a", "client.b"]), 0, 1_000);
        t.tick(P, &sessions(&["client.a"]), 10, 1_000);
        assert_eq!(t.overdue(5_000, 1_000), vec!["client.a".to_string()]);
        t.forget("client.a");
        assert!(t.overdue(5_000, 1_000).is_empty());
        t.tick(P, &sessions(&["client.a"]), 5_000, 1_000);
        assert_eq!(t.tick(None, &sessions(&["client.a"]), 5_100, 1_000), vec![]);
        assert!(t.overdue(99_000, 1_000).is_empty());
        assert!(health(&[]).is_empty());
    }
}
