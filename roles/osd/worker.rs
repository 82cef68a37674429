//! The store thread: durable commits run here, off the actor's thread, and every
//! transaction that queued up while the previous fsync ran goes into the next commit
//! (group commit), so many writes share one fsync. Bulk reads run on a few reader
//! threads ([`ReadPool`]), so disk reads overlap each other and the actor's network work.
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::store::{ObjectStore, StoreError, Transaction};
use crate::maps::PgId;

struct Job {
    pg: PgId,
    txn: Transaction,
    done: oneshot::Sender<Result<(), StoreError>>,
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
                let (dones, batch): (Vec<_>, Vec<(PgId, Transaction)>) =
                    jobs.into_iter().map(|j| (j.done, (j.pg, j.txn))).unzip();
                let result = if inject_error > 0.0 && rand::random::<f64>() < inject_error {
                    Err(StoreError::Db("injected commit failure (osd_debug_inject_commit_error)".into()))
                } else {
                    store.apply_batch(&batch)
                };
                match result {
                    Ok(results) => {
                        for (done, r) in dones.into_iter().zip(results) {
                            let _ = done.send(r);
                        }
                    }
                    Err(e) => {
                        tracing::error!("store commit failed: {e}");
                        let poisoned = matches!(e, StoreError::Poisoned(_));
                        for done in dones {
                            let _ = done.send(Err(e.clone()));
                        }
                        if poisoned {
                            // Nothing of this batch was acknowledged, and every later commit
                            // would fail too: exit like a crash, so that the monitors mark
                            // this OSD down and its PGs go on without it; a restart recovers
                            // the store from its journals.
                            tracing::error!("the object store refuses all writes now: exiting (restart the OSD to recover)");
                            std::process::exit(70);
                        }
                    }
                }
            }
        })?;
        Ok(StoreWorker { tx })
    }

    /// Queues a transaction; the receiver resolves once it is durable (or failed).
    pub fn submit(&self, pg: PgId, txn: Transaction) -> oneshot::Receiver<Result<(), StoreError>> {
        let (done, rx) = oneshot::channel();
        if let Err(mpsc::SendError(job)) = self.tx.send(Job { pg, txn, done }) {
            let _ = job.done.send(Err(StoreError::Db("store thread gone".into())));
        }
        rx
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
