//! A micro-benchmark of durable object writes: `ops` whole-object writes of random content,
//! grouped `batch` transactions per durable commit, spread over a few PGs.
use std::path::Path;
use std::time::{Duration, Instant};

use super::{ObjectStore, Payload, StoreError, Transaction, TxOp};
use crate::maps::PgId;

/// Results of [`bench()`]. Latencies are per durable commit (one batch).
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    pub ops_per_s: f64,
    pub mb_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Number of PGs the benchmark objects are spread over.
const BENCH_PGS: u32 = 8;

/// xorshift64*: deterministic pseudo-random bytes without extra dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            c.copy_from_slice(&r[..c.len()]);
        }
    }
}

/// Times `ops` durable `WriteFull`s of `object_size` random bytes in commits of `batch`
/// transactions each, on a store opened in `dir`. Only the commits are timed.
pub fn bench(dir: &Path, object_size: usize, ops: usize, batch: usize) -> Result<BenchReport, StoreError> {
    if ops == 0 || batch == 0 {
        return Err(StoreError::Invalid("bench needs ops > 0 and batch > 0".into()));
    }
    let store = ObjectStore::open(dir)?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut data = vec![0u8; object_size];
    rng.fill(&mut data);
    let mut latencies = Vec::with_capacity(ops.div_ceil(batch));
    let mut total = Duration::ZERO;
    let mut done = 0usize;
    while done < ops {
        let n = batch.min(ops - done);
        let txns = make_batch(&mut rng, &mut data, done, n);
        let start = Instant::now();
        for slot in store.apply_batch(&txns)? {
            slot?;
        }
        let took = start.elapsed();
        total += took;
        latencies.push(took);
        done += n;
    }
    Ok(report(ops, object_size, total, latencies))
}

fn make_batch(rng: &mut Rng, data: &mut [u8], first: usize, n: usize) -> Vec<(PgId, Transaction)> {
    (first..first + n)
        .map(|i| {
            let head = data.len().min(8);
            rng.fill(&mut data[..head]);
            let pg = PgId { pool: 1, seed: (i as u32) % BENCH_PGS };
            let op = TxOp::WriteFull { oid: format!("bench.{i:08}"), data: Payload::from(data.to_vec()) };
            (pg, Transaction { ops: vec![op], mtime_ms: i as u64 })
        })
        .collect()
}

fn report(ops: usize, object_size: usize, total: Duration, mut lat: Vec<Duration>) -> BenchReport {
    lat.sort();
    let pct = |p: f64| {
        let idx = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat.get(idx).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let secs = total.as_secs_f64().max(1e-9);
    BenchReport {
        ops_per_s: ops as f64 / secs,
        mb_per_s: (ops * object_size) as f64 / secs / 1e6,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}
