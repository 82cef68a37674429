//! The store thread: durable commits run here, off the actor's thread, and every
//! transaction that queued up while the previous fsync ran goes into the next commit
//! (group commit), so many writes share one fsync. A small transaction that finds the
//! store thread idle may instead commit on the caller's thread ([`StoreWorker::commit_now`]):
//! with one write in flight the hand-off to the store thread and back is two thread
//! wake-ups on the write's path, each worth more than the commit's own CPU. Bulk reads
//! run on a few reader threads ([`ReadPool`]), so disk reads overlap each other and the
//! actor's network work.
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::store::{ObjectStore, StoreError, Transaction, TxOp};
use crate::maps::PgId;

type Done = oneshot::Sender<Result<(), StoreError>>;
/// Resolves with a transaction's result.
pub type Outcome = oneshot::Receiver<Result<(), StoreError>>;

struct Job {
    pg: PgId,
    txn: Transaction,
    /// Resolved once the transaction is durable (see [`StoreWorker::submit_durable`]).
    durable: Option<Done>,
    /// Resolved once it is durable and visible to reads.
    done: Done,
}

#[derive(Clone)]
pub struct StoreWorker {
    tx: mpsc::Sender<Job>,
    store: Arc<ObjectStore>,
    /// Jobs queued or being committed by the store thread.
    pending: Arc<AtomicUsize>,
    inject_error: f64,
    /// Largest transaction payload [`commit_now`](Self::commit_now) takes (0: none).
    inline_max: u64,
    /// [`INLINE_QUIET`] after the last [`commit_now`](Self::commit_now) ended, in µs
    /// after `base`: no inline commit before then.
    quiet_from_us: Arc<AtomicU64>,
    base: Instant,
}

/// A transaction offered within this long after an inline commit ended probably
/// waited for it (one write in flight leaves at least a network round trip between two
/// commits at an OSD): it goes to the store thread, so a backlog is group-committed.
const INLINE_QUIET: Duration = Duration::from_micros(30);

const MAX_BATCH: usize = 64;

/// Commits `batch` as one group (see [`ObjectStore::apply_batch_notify`]), failing it
/// on purpose for a fraction `inject_error` of calls.
fn commit(
    store: &ObjectStore,
    inject_error: f64,
    batch: &[(PgId, Transaction)],
    on_durable: &mut super::store::OnDurable<'_>,
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    if inject_error > 0.0 && rand::random::<f64>() < inject_error {
        return Err(StoreError::Db("injected commit failure (osd_debug_inject_commit_error)".into()));
    }
    store.apply_batch_notify(batch, on_durable)
}

/// After a poisoned commit every later one would fail too, and a batch that was
/// durable, perhaps acknowledged, before it failed to apply is in the log only: exits
/// like a crash, so that the monitors mark this OSD down and its PGs go on without it;
/// a restart recovers the store from its journals.
fn exit_if_poisoned(e: &StoreError) {
    if matches!(e, StoreError::Poisoned(_)) {
        tracing::error!("the object store refuses all writes now: exiting (restart the OSD to recover)");
        std::process::exit(70);
    }
}

/// Bytes a transaction carries, or `None` if one of its ops may touch many keys or
/// chunks (truncate, remove, clearing an omap or a PG): those never commit inline.
fn small_payload(txn: &Transaction) -> Option<u64> {
    let mut n = 0u64;
    for op in &txn.ops {
        n += match op {
            TxOp::WriteFull { data, .. } | TxOp::Write { data, .. } | TxOp::Append { data, .. } => data.len() as u64,
            TxOp::SetXattr { value, .. } | TxOp::PgMetaSet { value, .. } => value.len() as u64,
            TxOp::OmapSet { entries, .. } => entries.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum(),
            TxOp::OmapRm { keys, .. } => keys.iter().map(|k| k.len() as u64).sum(),
            TxOp::Create { .. } | TxOp::RmXattr { .. } | TxOp::SetMtime { .. } | TxOp::PgMetaRm { .. } => 0,
            TxOp::Truncate { .. } | TxOp::Remove { .. } | TxOp::OmapClear { .. } | TxOp::RemovePg => return None,
        };
    }
    Some(n)
}

impl StoreWorker {
    /// `inject_error`: the fraction of batches failed on purpose (`osd_debug_inject_commit_error`);
    /// `inline_max`: the largest payload [`commit_now`](Self::commit_now) takes
    /// (`osd_inline_commit_max_bytes`, 0: every commit on the store thread).
    pub fn start(store: Arc<ObjectStore>, name: &str, inject_error: f64, inline_max: u64) -> std::io::Result<StoreWorker> {
        let (tx, rx) = mpsc::channel::<Job>();
        let pending = Arc::new(AtomicUsize::new(0));
        let (thread_store, thread_pending) = (store.clone(), pending.clone());
        std::thread::Builder::new().name(format!("{name}-store")).spawn(move || {
            let store = thread_store;
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                // The transactions move into the batch (a 4 MiB write is not copied again).
                let mut durables = Vec::with_capacity(jobs.len());
                let mut dones = Vec::with_capacity(jobs.len());
                let mut batch = Vec::with_capacity(jobs.len());
                for j in jobs {
                    durables.push(j.durable);
                    dones.push(j.done);
                    batch.push((j.pg, j.txn));
                }
                let result = commit(&store, inject_error, &batch, &mut |results| {
                    for (d, r) in durables.iter_mut().zip(results) {
                        if let Some(d) = d.take() {
                            let _ = d.send(r.clone());
                        }
                    }
                });
                // Applied (or failed): a commit on another thread cannot overtake these now.
                thread_pending.fetch_sub(batch.len(), Ordering::AcqRel);
                match result {
                    Ok(results) => {
                        for ((durable, done), r) in durables.into_iter().zip(dones).zip(results) {
                            if let Some(d) = durable {
                                let _ = d.send(r.clone());
                            }
                            let _ = done.send(r);
                        }
                    }
                    Err(e) => {
                        tracing::error!("store commit failed: {e}");
                        for (durable, done) in durables.into_iter().zip(dones) {
                            if let Some(d) = durable {
                                let _ = d.send(Err(e.clone()));
                            }
                            let _ = done.send(Err(e.clone()));
                        }
                        exit_if_poisoned(&e);
                    }
                }
            }
        })?;
        let quiet_from_us = Arc::new(AtomicU64::new(0));
        Ok(StoreWorker { tx, store, pending, inject_error, inline_max, quiet_from_us, base: Instant::now() })
    }

    /// Whether [`commit_now`](Self::commit_now) may take `txn`: it is small (at most
    /// `osd_inline_commit_max_bytes`, no op that may touch many keys) and the store
    /// thread has nothing queued or running, so committing on this thread cannot
    /// overtake an earlier transaction, and no inline commit ended just now (see
    /// [`INLINE_QUIET`]). The caller decides whether it is alone (one write in flight):
    /// a thread that commits inline under load would take every write one by one,
    /// without group commit.
    pub fn can_commit_now(&self, txn: &Transaction) -> bool {
        let quiet = self.base.elapsed().as_micros() as u64 >= self.quiet_from_us.load(Ordering::Relaxed);
        self.inline_max > 0
            && quiet
            && self.pending.load(Ordering::Acquire) == 0
            && small_payload(txn).is_some_and(|n| n <= self.inline_max)
    }

    /// Commits `txn` on the calling thread (check [`can_commit_now`](Self::can_commit_now)
    /// first), calling `on_durable` with its result as soon as it is durable, before it
    /// is visible to reads; returns once it is visible (or failed). A poisoned store
    /// exits the process, as on the store thread.
    pub fn commit_now(&self, pg: PgId, txn: Transaction, on_durable: impl FnOnce(&Result<(), StoreError>)) -> Result<(), StoreError> {
        let mut on_durable = Some(on_durable);
        let batch = [(pg, txn)];
        let r = commit(&self.store, self.inject_error, &batch, &mut |results| {
            if let (Some(f), Some(r)) = (on_durable.take(), results.first()) {
                f(r);
            }
        });
        self.quiet_from_us.store((self.base.elapsed() + INLINE_QUIET).as_micros() as u64, Ordering::Relaxed);
        match r {
            Ok(mut results) => results.pop().unwrap_or(Ok(())),
            Err(e) => {
                tracing::error!("store commit failed: {e}");
                exit_if_poisoned(&e);
                Err(e)
            }
        }
    }

    /// Queues a transaction; the receiver resolves once it is durable and visible to
    /// reads (or failed).
    pub fn submit(&self, pg: PgId, txn: Transaction) -> Outcome {
        let (done, rx) = oneshot::channel();
        self.send(Job { pg, txn, durable: None, done });
        rx
    }

    /// Queues a transaction; the first receiver resolves once it is durable, which can
    /// be before its changes are visible to reads (a replica acknowledges a replicated
    /// write then: Ceph's "commit" before "apply"); the second once it is visible too.
    /// A transaction durable but then not applied fails the second with
    /// [`StoreError::Poisoned`], and the store thread exits the process.
    pub fn submit_durable(&self, pg: PgId, txn: Transaction) -> (Outcome, Outcome) {
        let (durable, durable_rx) = oneshot::channel();
        let (done, rx) = oneshot::channel();
        self.send(Job { pg, txn, durable: Some(durable), done });
        (durable_rx, rx)
    }

    fn send(&self, job: Job) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            let gone = || Err(StoreError::Db("store thread gone".into()));
            if let Some(d) = job.durable {
                let _ = d.send(gone());
            }
            let _ = job.done.send(gone());
        }
    }
}

type ReadJob = Box<dyn FnOnce() + Send>;

/// Threads that run bulk reads (and send their replies) off the actor's thread.
#[derive(Clone)]
pub struct ReadPool {
    tx: mpsc::Sender<ReadJob>,
}

/// Reader threads per OSD: enough to keep a few disk reads in flight.
pub const READ_THREADS: usize = 3;

impl ReadPool {
    pub fn start(name: &str) -> std::io::Result<ReadPool> {
        let (tx, rx) = mpsc::channel::<ReadJob>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..READ_THREADS {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("{name}-read{i}")).spawn(move || loop {
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            })?;
        }
        Ok(ReadPool { tx })
    }

    /// Runs `f` on a reader thread; the receiver resolves with its result (or is
    /// dropped unresolved if the pool is gone).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> oneshot::Receiver<T> {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Box::new(move || {
            let _ = done.send(f());
        }));
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::super::store::TxOp;

    /// That `submit_durable` resolves its first receiver (durable) and then its second
    /// (visible), with the transaction's own result in both, and `submit` the same
    /// once visible.
    #[tokio::test]
    async fn durable_then_applied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(ObjectStore::open(dir.path()).expect("open"));
        let w = StoreWorker::start(store.clone(), "t", 0.0, 0).expect("start");
        let pg = PgId { pool: 1, seed: 0 };
        let put = |data: &[u8]| Transaction { ops: vec![TxOp::WriteFull { oid: "o".into(), data: data.to_vec().into() }], mtime_ms: 1 };
        let (durable, applied) = w.submit_durable(pg, put(b"one"));
        assert!(matches!(durable.await, Ok(Ok(()))));
        assert!(matches!(applied.await, Ok(Ok(()))));
        assert_eq!(store.read(pg, "o", 0, None).expect("read"), b"one");
        let create = Transaction { ops: vec![TxOp::Create { oid: "o".into(), exclusive: true }], mtime_ms: 1 };
        let (durable, applied) = w.submit_durable(pg, create);
        assert!(matches!(durable.await, Ok(Err(StoreError::Exists(_)))));
        assert!(matches!(applied.await, Ok(Err(StoreError::Exists(_)))));
        assert!(matches!(w.submit(pg, put(b"two")).await, Ok(Ok(()))));
        assert_eq!(store.read(pg, "o", 0, None).expect("read"), b"two");
    }

    /// That `commit_now` reports a transaction durable before it is visible and
    /// returns once it is, reports nothing for one that fails its checks, and that
    /// `can_commit_now` takes only small transactions of ops that touch few keys.
    #[test]
    fn commit_now_is_durable_then_visible_and_only_for_small_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(ObjectStore::open(dir.path()).expect("open"));
        let w = StoreWorker::start(store.clone(), "t", 0.0, 8192).expect("start");
        let pg = PgId { pool: 1, seed: 0 };
        let put = |len: usize| Transaction { ops: vec![TxOp::WriteFull { oid: "o".into(), data: vec![7u8; len].into() }], mtime_ms: 1 };
        assert!(w.can_commit_now(&put(8192)));
        assert!(!w.can_commit_now(&put(8193)));
        assert!(!w.can_commit_now(&Transaction { ops: vec![TxOp::Remove { oid: "o".into() }], mtime_ms: 1 }));
        assert!(!w.can_commit_now(&Transaction { ops: vec![TxOp::RemovePg], mtime_ms: 1 }));
        let mut seen = None;
        let r = w.commit_now(pg, put(4096), |r| {
            // Durable, not applied yet: a read does not see it.
            seen = Some((r.is_ok(), store.stat(pg, "o").is_err()));
        });
        assert!(r.is_ok());
        assert_eq!(seen, Some((true, true)));
        assert_eq!(store.read(pg, "o", 0, None).expect("read"), vec![7u8; 4096]);
        let create = Transaction { ops: vec![TxOp::Create { oid: "o".into(), exclusive: true }], mtime_ms: 1 };
        let mut called = false;
        assert!(matches!(w.commit_now(pg, create, |_| called = true), Err(StoreError::Exists(_))));
        assert!(!called, "nothing was made durable");
        let off = StoreWorker::start(store, "t", 0.0, 0).expect("start");
        assert!(!off.can_commit_now(&put(1)), "osd_inline_commit_max_bytes = 0 turns it off");
    }
}
