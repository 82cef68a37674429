//! The objecter: the object client every RADOS user (CLI, MDS, file clients) goes
//! through. It maps an object to its PG and the PG's acting primary from the newest
//! OSDMap, sends the ops there, and re-sends when the primary says the map moved on,
//! when the connection fails, or after a map change, until a deadline. Re-sent
//! writes carry the same request id, so the primary applies each write once.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Errno;
use crate::ids::EntityName;
use crate::maps::{OsdMap, PgId};
use crate::monc::MonClient;
use crate::msg::osd::{OpOut, OsdOp, OsdOpRequest, OsdOpResult, OsdPeerMsg, ReqId};
use crate::msg::payload::Payload;
use crate::msg::Message;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ObjError {
    #[error("pool '{0}' does not exist")]
    NoPool(String),
    #[error("{message}")]
    Osd { errno: Errno, message: String },
    #[error("timed out after {secs:.0} s: {last}")]
    Timeout { secs: f64, last: String },
    /// The request cannot be sent at all (larger than a message may be).
    #[error("{0}")]
    TooLarge(String),
}

impl ObjError {
    pub fn errno(&self) -> Errno {
        match self {
            ObjError::NoPool(_) => Errno::ENOENT,
            ObjError::Osd { errno, .. } => *errno,
            ObjError::Timeout { .. } => Errno::ETIMEDOUT,
            ObjError::TooLarge(_) => Errno::EMSGSIZE,
        }
    }
}

pub struct Objecter {
    monc: Arc<MonClient>,
    next_tid: AtomicU64,
    timeout: Duration,
}

impl Objecter {
    /// `monc` must have an OSDMap subscription running.
    pub fn new(monc: Arc<MonClient>, timeout: Duration) -> Arc<Objecter> {
        Arc::new(Objecter { monc, next_tid: AtomicU64::new(1), timeout })
    }

    /// This client instance as blocklists name it.
    pub fn instance(&self) -> crate::ids::EntityAddr {
        self.monc.messenger().entity_addr()
    }

    /// Waits (up to the op timeout) until this client holds OSDMap `epoch` or newer, so
    /// its next ops carry that epoch and every OSD applies that map before serving them
    /// (Ceph's epoch barrier: what a map change such as a blocklist entry forbids, no
    /// OSD still allows to this client's later ops). Whether the epoch arrived.
    pub async fn wait_for_epoch(&self, epoch: u64) -> bool {
        self.osdmap(epoch.saturating_sub(1), self.timeout).await.is_some_and(|m| m.epoch >= epoch)
    }

    async fn osdmap(&self, newer_than: u64, wait: Duration) -> Option<Arc<OsdMap>> {
        let mut w = self.monc.watch();
        let got = match tokio::time::timeout(wait, w.wait_for(|m| m.osdmap.as_ref().is_some_and(|o| o.epoch > newer_than))).await {
            Ok(Ok(m)) => m.osdmap.clone(),
            _ => None,
        };
        got.or_else(|| self.monc.current().osdmap)
    }

    /// Runs `ops` on object `oid` of `pool` and returns one output per op.
    pub async fn op(&self, pool: &str, oid: &str, ops: Vec<OsdOp>) -> Result<Vec<OpOut>, ObjError> {
        self.run(pool, oid, ops, false).await
    }

    /// Like `op`, but never gives up waiting for the answer (Ceph's objecter, whose
    /// ops have no timeout unless `rados_osd_op_timeout` is set), logging each time
    /// the op timeout passes. For writes whose caller must know they are done before
    /// it lets go of them (file data under caps): a write given up on may still wait
    /// in an OSD's queue and land later, after what should have followed it (another
    /// client's writes under the caps this one gave back, or the removal of the file's
    /// objects by its purge, which it would bring back as leaked objects).
    pub async fn op_patient(&self, pool: &str, oid: &str, ops: Vec<OsdOp>) -> Result<Vec<OpOut>, ObjError> {
        self.run(pool, oid, ops, true).await
    }

    async fn run(&self, pool: &str, oid: &str, ops: Vec<OsdOp>, patient: bool) -> Result<Vec<OpOut>, ObjError> {
        let msgr = self.monc.messenger();
        let reqid = ReqId {
            client: msgr.me().clone(),
            nonce: msgr.entity_addr().nonce,
            tid: self.next_tid.fetch_add(1, Ordering::Relaxed),
        };
        let started = tokio::time::Instant::now();
        let mut deadline = started + self.timeout;
        let mut last = String::from("no OSDMap yet");
        loop {
            let mut left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                if !patient {
                    return Err(ObjError::Timeout { secs: self.timeout.as_secs_f64(), last });
                }
                tracing::warn!("{pool}/{oid}: no answer for {:.0} s ({last}); still waiting", started.elapsed().as_secs_f64());
                deadline = tokio::time::Instant::now() + self.timeout;
                left = self.timeout;
            }
            let Some(map) = self.osdmap(0, left).await else { continue };
            let retry_wait = left.min(Duration::from_millis(200));
            let Some(p) = map.pool_by_name(pool) else { return Err(ObjError::NoPool(pool.to_string())) };
            let pg = crate::crush::object_to_pg(p, oid);
            let m = crate::crush::pg_mapping(&map, pg);
            let target = m.acting_primary.and_then(|o| map.osds.get(&o)).and_then(|o| o.addr.map(|a| (o.id, a)));
            let Some((osd, addr)) = target else {
                last = format!("pg {pg} has no primary at epoch {}", map.epoch);
                self.osdmap(map.epoch, retry_wait).await;
                continue;
            };
            let req = OsdOpRequest { reqid: reqid.clone(), pg, oid: oid.to_string(), ops: ops.clone(), epoch: map.epoch };
            let per_try = left.min(Duration::from_secs(5));
            let peer = EntityName::osd(osd);
            let sent = msgr.request(&peer, addr.addr, Message::MOsdOp(req), per_try);
            let reply = tokio::select! {
                r = sent => r,
                _ = self.primary_moves(pg, osd) => {
                    last = format!("pg {pg} moved away from osd.{osd}");
                    continue;
                }
            };
            match reply {
                Ok(Message::MOsdOpReply(OsdOpResult::Ok { outs, .. })) => return Ok(outs),
                Ok(Message::MOsdOpReply(OsdOpResult::Err(e))) => {
                    return Err(ObjError::Osd { errno: e.errno, message: e.message })
                }
                Ok(Message::MOsdOpReply(OsdOpResult::Retry { epoch, why })) => {
                    last = format!("osd.{osd}: {why}");
                    self.osdmap(epoch.max(map.epoch), retry_wait).await;
                }
                Ok(other) => last = format!("osd.{osd} answered {}", other.name()),
                Err(crate::net::NetError::Encode(why)) => {
                    return Err(ObjError::TooLarge(format!("{why}: split the op into smaller ones")))
                }
                Err(e) => {
                    last = e.to_string();
                    self.osdmap(map.epoch, retry_wait).await;
                }
            }
        }
    }

    /// Resolves when a new map gives `pg` another acting primary than `osd`: the op
    /// is then re-sent at once rather than after its per-try timeout.
    async fn primary_moves(&self, pg: PgId, osd: crate::ids::OsdId) {
        let mut w = self.monc.watch();
        loop {
            if w.changed().await.is_err() {
                return std::future::pending().await;
            }
            let map = w.borrow_and_update().osdmap.clone();
            if map.is_some_and(|m| crate::crush::pg_mapping(&m, pg).acting_primary != Some(osd)) {
                return;
            }
        }
    }

    /// Every object name of a pool, asking each PG's primary in turn.
    pub async fn list(&self, pool: &str) -> Result<Vec<String>, ObjError> {
        let map = self.osdmap(0, self.timeout).await.ok_or_else(|| ObjError::Timeout {
            secs: self.timeout.as_secs_f64(),
            last: "no OSDMap".into(),
        })?;
        let p = map.pool_by_name(pool).ok_or_else(|| ObjError::NoPool(pool.to_string()))?.clone();
        let mut out = Vec::new();
        for pg in crate::crush::pool_pgs(&p) {
            out.extend(self.list_pg(pg).await?);
        }
        out.sort();
        Ok(out)
    }

    async fn list_pg(&self, pg: PgId) -> Result<Vec<String>, ObjError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        let mut last = String::new();
        loop {
            if tokio::time::Instant::now() >= deadline {
                return Err(ObjError::Timeout { secs: self.timeout.as_secs_f64(), last });
            }
            let Some(map) = self.osdmap(0, Duration::from_millis(100)).await else { continue };
            let m = crate::crush::pg_mapping(&map, pg);
            let Some(addr) = m.acting_primary.and_then(|o| map.osds.get(&o)).and_then(|o| o.addr) else {
                last = format!("pg {pg} has no primary");
                self.osdmap(map.epoch, Duration::from_millis(200)).await;
                continue;
            };
            let peer = EntityName::osd(m.acting_primary.unwrap_or_default());
            let q = Message::MOsdPeer(OsdPeerMsg::List { pg, after: after.clone(), max: 1000 });
            match self.monc.messenger().request(&peer, addr.addr, q, Duration::from_secs(5)).await {
                Ok(Message::MOsdPeer(OsdPeerMsg::ListReply { objects, done })) => {
                    after = objects.last().cloned().or(after);
                    out.extend(objects);
                    if done {
                        return Ok(out);
                    }
                }
                Ok(other) => last = format!("{peer} answered {}", other.name()),
                Err(e) => {
                    last = e.to_string();
                    self.osdmap(map.epoch, Duration::from_millis(200)).await;
                }
            }
        }
    }

    // Convenience wrappers used by the CLI and, later, the MDS and file clients.

    pub async fn write_full(&self, pool: &str, oid: &str, data: impl Into<Payload>) -> Result<(), ObjError> {
        self.op(pool, oid, vec![OsdOp::WriteFull { data: data.into() }]).await.map(|_| ())
    }

    /// The bytes read share the reply's buffer.
    pub async fn read(&self, pool: &str, oid: &str, off: u64, len: Option<u64>) -> Result<Bytes, ObjError> {
        match self.op(pool, oid, vec![OsdOp::Read { off, len }]).await?.pop() {
            Some(OpOut::Data(d)) => Ok(d.into_bytes()),
            _ => Ok(Bytes::new()),
        }
    }

    pub async fn stat(&self, pool: &str, oid: &str) -> Result<(u64, u64), ObjError> {
        match self.op(pool, oid, vec![OsdOp::Stat]).await?.pop() {
            Some(OpOut::Stat { size, mtime_ms }) => Ok((size, mtime_ms)),
            _ => Err(ObjError::Osd { errno: Errno::EIO, message: "stat returned nothing".into() }),
        }
    }
}
