//! `cephr bench rados`: N concurrent writers of objects of one size for S seconds,
//! then as many concurrent readers of what was written; prints ops/s, MB/s and
//! latency p50/p99/max for each phase (like `rados bench` write + seq).
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::rados::connect_with;
use super::Cli;
use cephr::error::CmdError;
use cephr::objecter::Objecter;

pub struct BenchArgs<'a> {
    pub pool: &'a str,
    pub size: &'a str,
    pub threads: usize,
    pub seconds: f64,
    /// None: 0 (one thread for all) with one op in flight, else 2.
    pub client_threads: Option<usize>,
}

fn parse_size(s: &str) -> Result<usize, CmdError> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1024),
        Some('M' | 'm') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    match num.parse::<usize>() {
        Ok(n) if n > 0 && n * mult <= 64 << 20 => Ok(n * mult),
        _ => Err(CmdError::einval(format!("size '{s}' is not 1..=64M (e.g. 4K, 4M)"))),
    }
}

struct Phase {
    lat: Vec<Duration>,
    bytes: u64,
    elapsed: Duration,
}

fn report(name: &str, p: &mut Phase) {
    p.lat.sort_unstable();
    let n = p.lat.len();
    let q = |f: f64| p.lat.get(((n as f64 * f) as usize).min(n.saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    let secs = p.elapsed.as_secs_f64().max(1e-9);
    println!(
        "{name:<6} ops {n:>7}  {:>9.1} ops/s  {:>8.1} MB/s  lat ms p50 {:.3}  p99 {:.3}  max {:.3}",
        n as f64 / secs,
        p.bytes as f64 / secs / 1e6,
        q(0.5),
        q(0.99),
        p.lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}

/// Writes (`written` None) or reads back (`written`: objects each writer made).
async fn phase(obj: Arc<Objecter>, pool: String, threads: usize, dur: Duration, size: usize, written: Option<Vec<usize>>) -> anyhow::Result<(Phase, Vec<usize>)> {
    let lat = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..threads {
        let (obj, pool, lat) = (obj.clone(), pool.clone(), lat.clone());
        let mine = written.as_ref().map(|w| w.get(t).copied().unwrap_or(0));
        if mine == Some(0) {
            continue;
        }
        tasks.push(tokio::spawn(async move {
            let data = bytes::Bytes::from(vec![(t as u8).wrapping_mul(31); size]);
            let mut i = 0usize;
            while start.elapsed() < dur {
                let name = format!("bench_{t}_{i}");
                let t0 = Instant::now();
                match mine {
                    None => obj.write_full(&pool, &name, data.clone()).await.map(|_| ())?,
                    Some(_) => obj.read(&pool, &name, 0, None).await.map(|_| ())?,
                }
                lat.lock().map_err(|_| anyhow::anyhow!("lock"))?.push(t0.elapsed());
                i += 1;
                if mine.is_some_and(|w| i >= w) {
                    i = 0;
                }
            }
            Ok::<usize, anyhow::Error>(i)
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await??);
    }
    let elapsed = start.elapsed();
    let lat = std::mem::take(&mut *lat.lock().map_err(|_| anyhow::anyhow!("lock"))?);
    let bytes = (lat.len() * size) as u64;
    Ok((Phase { lat, bytes, elapsed }, counts))
}

pub fn run(cli: &Cli, a: BenchArgs) -> anyhow::Result<()> {
    let size = parse_size(a.size)?;
    if a.threads == 0 || a.threads > 1024 || !(a.seconds > 0.0 && a.seconds <= 3600.0) {
        return Err(CmdError::einval("--threads must be 1..=1024 and --seconds 0..=3600").into());
    }
    let workers = a.client_threads.unwrap_or(if a.threads == 1 { 0 } else { 2 });
    if workers > 64 {
        return Err(CmdError::einval("--client-threads must be 0..=64").into());
    }
    let (rt, obj, msgr) = connect_with(cli, workers)?;
    let pool = a.pool.to_string();
    let dur = Duration::from_secs_f64(a.seconds);
    println!(
        "bench: pool {pool}, {} byte objects, {} in flight, {} s per phase, ms_mode {}",
        size,
        a.threads,
        a.seconds,
        msgr.wire_mode().name()
    );
    let r = rt.block_on(async {
        let (mut w, counts) = phase(obj.clone(), pool.clone(), a.threads, dur, size, None).await?;
        report("write", &mut w);
        let (mut r, _) = phase(obj.clone(), pool.clone(), a.threads, dur, size, Some(counts)).await?;
        report("read", &mut r);
        Ok::<(), anyhow::Error>(())
    });
    msgr.shutdown();
    r
}
