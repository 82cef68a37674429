//! How long this client may trust its caps: Ceph's `cap_ttl`.
//!
//! The MDS marks a session stale when it has heard no renewal for `session_timeout`,
//! and then takes its caps back without asking (another client may change what they
//! covered). A client that was stopped or cut off cannot learn that in time, so it
//! bounds its own trust: its caps are good until `session_timeout` after it *sent*
//! the newest renewal the MDS acknowledged (the MDS counts from when it received it,
//! later). Past that, the client serves nothing from its caches (attributes, entries,
//! pages, xattrs) and takes no local decision under them (buffered writes, async
//! creates, local setattr); requests go to the MDS until a renewal is acknowledged.
//! If the session did go stale, the MDS sends a revoke to `p` for every cap before
//! that acknowledgement (same ordered connection), so the client has dropped what
//! they covered before it trusts its caps again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::session::lock;

/// Renewals remembered (their send times) while waiting for acknowledgements.
const REMEMBERED: usize = 32;

pub(super) struct CapLease {
    start: Instant,
    /// Caps are good before this (ms since `start`); 0: no renewal acknowledged yet.
    until_ms: AtomicU64,
    /// The file system's session_timeout, from the MDS's session open.
    timeout_ms: AtomicU64,
    next_seq: AtomicU64,
    /// Renewals sent and not yet acknowledged: (seq, ms since `start`).
    sent: Mutex<VecDeque<(u64, u64)>>,
}

impl Default for CapLease {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            until_ms: AtomicU64::new(0),
            timeout_ms: AtomicU64::new(60_000),
            next_seq: AtomicU64::new(1),
            sent: Mutex::new(VecDeque::new()),
        }
    }
}

impl CapLease {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// The session's timeout, as the MDS said when the session opened.
    pub fn set_timeout(&self, timeout: Duration) {
        if !timeout.is_zero() {
            self.timeout_ms.store(timeout.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// A renewal is being sent: its seq.
    pub fn renewing(&self) -> u64 {
        self.renewing_at(self.now_ms())
    }

    fn renewing_at(&self, now_ms: u64) -> u64 {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut sent = lock(&self.sent);
        if sent.len() >= REMEMBERED {
            sent.pop_front();
        }
        sent.push_back((seq, now_ms));
        seq
    }

    /// The MDS acknowledged renewal `seq`: caps are good until `session_timeout`
    /// after it was sent. Whether that made them good again (they had run out).
    pub fn acked(&self, seq: u64) -> bool {
        self.acked_at(seq, self.now_ms())
    }

    fn acked_at(&self, seq: u64, now_ms: u64) -> bool {
        let sent_ms = {
            let mut sent = lock(&self.sent);
            let Some(&(_, at)) = sent.iter().find(|(s, _)| *s == seq) else { return false };
            sent.retain(|(s, _)| *s > seq);
            at
        };
        let until = sent_ms + self.timeout_ms.load(Ordering::Relaxed);
        let before = self.until_ms.fetch_max(until, Ordering::Relaxed);
        before <= now_ms && until > now_ms
    }

    /// Whether caps may be trusted now.
    pub fn valid(&self) -> bool {
        self.remaining() > Duration::ZERO
    }

    /// How much longer caps may be trusted.
    pub fn remaining(&self) -> Duration {
        self.remaining_at(self.now_ms())
    }

    fn remaining_at(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.until_ms.load(Ordering::Relaxed).saturating_sub(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That caps are good only up to session_timeout after the newest acknowledged
    /// renewal was sent, that a late acknowledgement makes them good again (and says
    /// so), and that acknowledgements of unknown or older renewals change nothing.
    #[test]
    fn trust_runs_from_the_acknowledged_renewal() {
        let l = CapLease::default();
        l.set_timeout(Duration::from_secs(5));
        assert_eq!(l.remaining_at(0), Duration::ZERO, "nothing acknowledged yet");
        let a = l.renewing_at(1_000);
        let b = l.renewing_at(2_000);
        assert!(l.acked_at(a, 1_100), "the first ack makes caps good");
        assert_eq!(l.remaining_at(1_100), Duration::from_millis(4_900));
        assert!(!l.acked_at(b, 2_050), "still good: not a renewal after running out");
        assert_eq!(l.remaining_at(6_999), Duration::from_millis(1));
        assert_eq!(l.remaining_at(7_000), Duration::ZERO);
        assert!(!l.acked_at(a, 7_100), "a's ack came already: forgotten");
        assert!(!l.acked_at(999, 7_100), "never sent");
        assert_eq!(l.remaining_at(7_100), Duration::ZERO);
        // Stopped past the timeout, then a renewal acknowledged.
        let c = l.renewing_at(20_000);
        assert_eq!(l.remaining_at(20_001), Duration::ZERO);
        assert!(l.acked_at(c, 20_010));
        assert_eq!(l.remaining_at(20_010), Duration::from_millis(4_990));
        // An ack after its own lease ran out does not make caps good.
        let d = l.renewing_at(30_000);
        assert!(!l.acked_at(d, 36_000));
        assert_eq!(l.remaining_at(36_000), Duration::ZERO);
    }
}
