//! The store thread: durable commits run here, off the actor's thread, and every
//! transaction that queued up while the previous fsync ran goes into the next commit
//! (group commit), so many writes share one fsync. Bulk reads run on a few reader
//! threads ([`ReadPool`]), so disk reads overlap each other and the actor's network work.
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::store::{ObjectStore, StoreError, Transaction};
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
}

const MAX_BATCH: usize = 64;

impl StoreWorker {
    /// `inject_error`: the fraction of batches failed on purpose (`osd_debug_inject_commit_error`).
    pub fn start(store: Arc<ObjectStore>, name: &str, inject_error: f64) -> std::io::Result<StoreWorker> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name(format!("{name}-store")).spawn(move || {
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
                let result = if inject_error > 0.0 && rand::random::<f64>() < inject_error {
                    Err(StoreError::Db("injected commit failure (osd_debug_inject_commit_error)".into()))
                } else {
                    store.apply_batch_notify(&batch, &mut |results| {
                        for (d, r) in durables.iter_mut().zip(results) {
                            if let Some(d) = d.take() {
                                let _ = d.send(r.clone());
                            }
                        }
                    })
                };
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
                        let poisoned = matches!(e, StoreError::Poisoned(_));
                        for (durable, done) in durables.into_iter().zip(dones) {
                            if let Some(d) = durable {
                                let _ = d.send(Err(e.clone()));
                            }
                            let _ = done.send(Err(e.clone()));
                        }
                        if poisoned {
                            // Every later commit would fail too (and a batch that was
                            // durable, perhaps acknowledged, before it failed to apply is
                            // in the log only): exit like a crash, so that the monitors
                            // mark this OSD down and its PGs go on without it; a restart
                            // recovers the store from its journals.
                            tracing::error!("the object store refuses all writes now: exiting (restart the OSD to recover)");
                            std::process::exit(70);
                        }
                    }
                }
            }
        })?;
        Ok(StoreWorker { tx })
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
        if let Err(mpsc::SendError(job)) = self.tx.send(job) {
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
        let w = StoreWorker::start(store.clone(), "t", 0.0).expect("start");
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
}
