//! Figures of the file system benchmarks (`bench meta`, `bench data`): one phase's
//! per-op latencies become ops/s and p50/p99/max (percentiles picked like
//! `shared/bench/bench-meta.py`, so the two tools compare), a printed table, and the
//! median over repeated runs for the JSON line.
use std::time::Duration;

use serde::Serialize;

/// What one phase measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseResult {
    pub phase: String,
    pub ops: usize,
    pub secs: f64,
    pub ops_per_s: f64,
    /// Per-op latency percentiles in µs; `None` for phases timed as a whole (readdir).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_us_p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_us_p99: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lat_us_max: Option<f64>,
    /// Bytes moved per second (data phases only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_per_s: Option<f64>,
}

/// The `p`-th percentile of sorted latencies, as bench-meta.py picks it.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let k = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

fn us(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e7).round() / 10.0
}

fn rate(n: f64, elapsed: Duration) -> f64 {
    (n / elapsed.as_secs_f64().max(1e-9) * 10.0).round() / 10.0
}

/// A phase of `lat.len()` ops that took `elapsed` in all.
pub fn summarize(phase: &str, mut lat: Vec<Duration>, elapsed: Duration) -> PhaseResult {
    lat.sort_unstable();
    PhaseResult {
        phase: phase.to_string(),
        ops: lat.len(),
        secs: (elapsed.as_secs_f64() * 1e4).round() / 1e4,
        ops_per_s: rate(lat.len() as f64, elapsed),
        lat_us_p50: Some(us(percentile(&lat, 50.0))),
        lat_us_p99: Some(us(percentile(&lat, 99.0))),
        lat_us_max: Some(us(lat.last().copied().unwrap_or_default())),
        mb_per_s: None,
    }
}

/// A phase timed as a whole: `ops` items (entries, blocks) and `bytes` in `elapsed`.
pub fn whole(phase: &str, ops: usize, bytes: u64, elapsed: Duration) -> PhaseResult {
    PhaseResult {
        phase: phase.to_string(),
        ops,
        secs: (elapsed.as_secs_f64() * 1e4).round() / 1e4,
        ops_per_s: rate(ops as f64, elapsed),
        lat_us_p50: None,
        lat_us_p99: None,
        lat_us_max: None,
        mb_per_s: (bytes > 0).then(|| rate(bytes as f64 / 1e6, elapsed)),
    }
}

/// Prints one run's phases as a table.
pub fn print_table(title: &str, res: &[PhaseResult]) {
    println!("{title}");
    println!("  {:<10} {:>7} {:>9} {:>10} {:>9} {:>10} {:>10} {:>10}", "phase", "ops", "secs", "ops/s", "MB/s", "p50_us", "p99_us", "max_us");
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1}"));
    for r in res {
        println!(
            "  {:<10} {:>7} {:>9.3} {:>10.1} {:>9} {:>10} {:>10} {:>10}",
            r.phase,
            r.ops,
            r.secs,
            r.ops_per_s,
            opt(r.mb_per_s),
            opt(r.lat_us_p50),
            opt(r.lat_us_p99),
            opt(r.lat_us_max)
        );
    }
}

/// Per phase name (in the first run's order), the median of `ops_per_s` over runs.
pub fn medians(runs: &[Vec<PhaseResult>]) -> Vec<(String, f64)> {
    let Some(first) = runs.first() else { return Vec::new() };
    first
        .iter()
        .map(|p| {
            let mut v: Vec<f64> =
                runs.iter().filter_map(|r| r.iter().find(|x| x.phase == p.phase)).map(|x| x.ops_per_s).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let m = match v.len() {
                0 => 0.0,
                n if n % 2 == 1 => v[n / 2],
                n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
            };
            (p.phase.clone(), (m * 10.0).round() / 10.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|x| Duration::from_millis(*x)).collect()
    }

    /// That percentiles are picked by rounding p·(n−1), like bench-meta.py.
    #[test]
    fn percentiles_like_bench_meta() {
        let lat = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&lat, 50.0), Duration::from_millis(51)); // round(49.5) = 50 → 51 ms
        assert_eq!(percentile(&lat, 99.0), Duration::from_millis(99)); // round(98.01) = 98
        assert_eq!(percentile(&lat, 100.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(percentile(&ms(&[7]), 99.0), Duration::from_millis(7));
    }

    /// That a phase's summary sorts its latencies and derives ops/s from the elapsed time.
    #[test]
    fn summary_of_a_phase() {
        let r = summarize("create", ms(&[3, 1, 2, 4]), Duration::from_secs(2));
        assert_eq!((r.ops, r.ops_per_s, r.secs), (4, 2.0, 2.0));
        assert_eq!((r.lat_us_p50, r.lat_us_max), (Some(3000.0), Some(4000.0)));
        let w = whole("write", 4, 8_000_000, Duration::from_millis(500));
        assert_eq!((w.mb_per_s, w.ops_per_s, w.lat_us_p50), (Some(16.0), 8.0, None));
    }

    /// That the median over runs is taken per phase, averaging the middle pair.
    #[test]
    fn medians_per_phase() {
        let run = |a: u64, b: u64| vec![whole("create", 10, 0, Duration::from_millis(a)), whole("stat", 10, 0, Duration::from_millis(b))];
        let m = medians(&[run(1000, 100), run(500, 1000), run(250, 500)]);
        assert_eq!(m, vec![("create".to_string(), 20.0), ("stat".to_string(), 20.0)]);
        let m2 = medians(&[run(1000, 100), run(500, 100)]);
        assert_eq!(m2[0], ("create".to_string(), 15.0));
        assert!(medians(&[]).is_empty());
    }
}
