//! Client ops that cannot run yet. An op waits either for its PG (no map yet, a map
//! older than the client's, the PG not active) in `Osd::waiting`, retried on every
//! new map and when an op of the PG completes, or for its object, busy with an earlier
//! op, in `Osd::obj_waiting`: that queue moves only when the object is released, one
//! op at a time in arrival order.
//!
//! Before session 16 both kinds waited in the PG's queue and every completion in the
//! PG re-ran all of it: under a stream of small writes to a few objects (glibc's
//! `posix_fallocate` writes one byte per 4 KiB block when the file system has no
//! `fallocate`), each completion re-checked thousands of waiting ops, the OSD's
//! thread spent itself on that, stopped answering heartbeats and replicas, and
//! writes timed out (docs/design.md, "Waiting client ops").
use std::collections::VecDeque;

use actix::Context;

use super::osd::{ClientOp, Osd};
use crate::maps::PgId;

impl Osd {
    /// Waits for the PG (or the map).
    pub(super) fn park(&mut self, op: ClientOp) {
        self.waiting.entry(op.req.pg).or_default().push_back(op);
    }

    /// Waits behind the ops queued for the same object.
    pub(super) fn park_obj(&mut self, op: ClientOp) {
        self.obj_waiting.entry((op.req.pg, op.req.oid.clone())).or_default().push_back(op);
    }

    /// Whether `oid` of `id` has ops waiting for it.
    pub(super) fn obj_queued(&self, id: PgId, oid: &str) -> bool {
        // The key is only built while some op waits for an object.
        !self.obj_waiting.is_empty() && self.obj_waiting.contains_key(&(id, oid.to_string()))
    }

    /// Retries every waiting op (a new map arrived).
    pub(super) fn drive_all(&mut self, ctx: &mut Context<Self>) {
        let pgs: Vec<PgId> = self.waiting.keys().copied().collect();
        for pg in pgs {
            self.drive(pg, ctx);
        }
        let objs: Vec<(PgId, String)> = self.obj_waiting.keys().cloned().collect();
        for (pg, oid) in objs {
            self.drive_obj(pg, &oid, ctx);
        }
    }

    /// Retries the ops waiting for PGs that became active without a new map (their
    /// peering finished on a peer's answer or a pull): nothing else would until the
    /// client resends.
    pub(super) fn drive_activated(&mut self, ctx: &mut Context<Self>) {
        let ready: Vec<PgId> =
            self.waiting.keys().copied().filter(|id| self.pgs.get(id).is_some_and(|p| p.phase == super::pg::Phase::Active)).collect();
        for id in ready {
            self.drive(id, ctx);
        }
    }

    /// Retries the ops waiting for PG `id`.
    pub(super) fn drive(&mut self, id: PgId, ctx: &mut Context<Self>) {
        let queued: VecDeque<ClientOp> = self.waiting.remove(&id).unwrap_or_default();
        for op in queued {
            self.client_op(op, ctx);
        }
    }

    /// The op on `oid` of `id` is done: the ops waiting for the object go on, and so do
    /// those waiting for the PG (it may have become active without a new map; while it
    /// is active that queue is empty, so this costs nothing then).
    pub(super) fn release(&mut self, id: PgId, oid: &str, ctx: &mut Context<Self>) {
        if let Some(pg) = self.pgs.get_mut(&id) {
            pg.busy.remove(oid);
        }
        self.drive_obj(id, oid, ctx);
        if self.waiting.contains_key(&id) {
            self.drive(id, ctx);
        }
    }

    /// Store-thread work on `oid` of `id` begins (`Pg::in_store`).
    pub(super) fn store_started(&mut self, id: PgId, oid: &str) {
        if let Some(pg) = self.pgs.get_mut(&id) {
            *pg.in_store.entry(oid.to_string()).or_default() += 1;
        }
    }

    /// Store-thread work on `oid` of `id` is done; the ops waiting for the object go
    /// on once none is left (and it is not busy).
    pub(super) fn store_done(&mut self, id: PgId, oid: &str, ctx: &mut Context<Self>) {
        self.store_finished(id, oid);
        self.drive_obj(id, oid, ctx);
    }

    /// Counts down store-thread work on `oid` of `id`, waking nobody.
    pub(super) fn store_finished(&mut self, id: PgId, oid: &str) {
        let Some(pg) = self.pgs.get_mut(&id) else { return };
        if let Some(n) = pg.in_store.get_mut(oid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pg.in_store.remove(oid);
            }
        }
    }

    /// Runs the ops waiting for `oid` of `id`, in order, until one of them makes the
    /// object busy again (or the queue is empty).
    pub(super) fn drive_obj(&mut self, id: PgId, oid: &str, ctx: &mut Context<Self>) {
        let key = (id, oid.to_string());
        loop {
            if self.pgs.get(&id).is_some_and(|p| p.busy.contains(oid) || p.in_store.contains_key(oid)) {
                return;
            }
            let Some(q) = self.obj_waiting.get_mut(&key) else { return };
            let Some(op) = q.pop_front() else {
                self.obj_waiting.remove(&key);
                return;
            };
            if q.is_empty() {
                self.obj_waiting.remove(&key);
            }
            self.run_client_op(op, true, ctx);
        }
    }
}

/// Where a slow op waits, as Ceph's slow-request warnings say it.
fn describe_inflight(local_done: bool, waiting: &std::collections::BTreeSet<crate::ids::OsdId>) -> String {
    let mut parts = Vec::new();
    if !local_done {
        parts.push("waiting for the local commit".to_string());
    }
    if !waiting.is_empty() {
        let osds: Vec<String> = waiting.iter().map(|o| o.to_string()).collect();
        parts.push(format!("waiting for sub ops from osd {}", osds.join(",")));
    }
    parts.join(", ")
}

/// Slow requests logged one by one per check; the rest are summed up in one line
/// (Ceph's `osd_op_log_threshold`).
const SLOW_LOG_MAX: usize = 5;

impl Osd {
    /// Counts the client ops held longer than `complaint` (parked for their PG or
    /// object, or replicating) and logs those that crossed it since the last check
    /// with what they wait for (Ceph's "slow request" lines, up to `SLOW_LOG_MAX`
    /// and a count of the others); the count and the oldest's age go to the monitors
    /// with the PG reports (`SLOW_OPS`).
    pub(super) fn slow_ops(&mut self, complaint: std::time::Duration) -> crate::msg::osd::SlowOps {
        let now = std::time::Instant::now();
        let mut out = crate::msg::osd::SlowOps::default();
        let (mut logged, mut unlogged) = (0usize, 0usize);
        let mut note = |op: &mut ClientOp, what: &dyn Fn() -> String| {
            let age = now.saturating_duration_since(op.since);
            if age < complaint {
                return;
            }
            out.count += 1;
            out.oldest_ms = out.oldest_ms.max(age.as_millis() as u64);
            if op.complained {
                return;
            }
            op.complained = true;
            if logged == SLOW_LOG_MAX {
                unlogged += 1;
                return;
            }
            logged += 1;
            tracing::warn!(
                "slow request {:.1} s old: {} on {}/{} from {}, currently {}",
                age.as_secs_f64(),
                op.req.reqid.tid,
                op.req.pg,
                op.req.oid,
                op.conn.peer(),
                what()
            );
        };
        for (id, q) in self.waiting.iter_mut() {
            let phase = self.pgs.get(id).map_or("unknown", |p| p.phase.name());
            for op in q.iter_mut() {
                note(op, &|| format!("waiting for pg {id} ({phase})"));
            }
        }
        for q in self.obj_waiting.values_mut() {
            for op in q.iter_mut() {
                note(op, &|| "waiting for an earlier op on the object".to_string());
            }
        }
        for f in self.inflight.values_mut() {
            let super::osd::Inflight { op, local_done, waiting, .. } = f;
            note(op, &|| describe_inflight(*local_done, waiting));
        }
        if unlogged > 0 {
            tracing::warn!("{unlogged} more requests became slow (over {:.0} s)", complaint.as_secs_f64());
        }
        out
    }
}
