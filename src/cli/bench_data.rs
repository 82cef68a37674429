//! `cephr bench data <MOUNTPOINT | --fs NAME> [--size-mib N]`: sequential 4 MiB writes
//! of one file ending with fsync, then a cold read (on a mount: after dropping the
//! page cache, when root; through the library: by a freshly mounted client) and a warm
//! read of it, each checked against what was written; MB/s and per-block latency.
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bench_meta::{io_err, work_name, Target};
use super::bench_stats::{print_table, summarize, PhaseResult};
use super::{load_config, Cli};
use cephr::config::ClusterConfig;
use cephr::error::{CmdError, Errno};
use cephr::ids::EntityName;
use cephr::msg::mds::{Ino, O_WRONLY};
use cephr::roles::client::Client;

/// Bytes per write and per read call.
pub const BLOCK: usize = 4 << 20;

/// Mounts clients of one cluster as the CLI's entity.
pub struct Mounter {
    cfg: ClusterConfig,
    key_dir: PathBuf,
    name: EntityName,
}

impl Mounter {
    pub fn new(cli: &Cli) -> anyhow::Result<Mounter> {
        let cfg = load_config(cli)?;
        let name: EntityName =
            cli.name.parse().map_err(|e: cephr::error::ParseError| CmdError::einval(e.to_string()))?;
        let key_dir = cli.key_dir.clone().unwrap_or_else(|| cfg.key_dir.clone());
        Ok(Mounter { cfg, key_dir, name })
    }

    pub async fn mount(&self, fs: &str) -> Result<Client, CmdError> {
        Client::mount_with_keys(&self.cfg, &self.key_dir, &self.name, Some(fs), None).await
    }
}

/// Runs `f` with a mounter on a fresh runtime and returns what it made. `threads`
/// worker threads (0: a current-thread runtime, everything on this thread). `f` runs as
/// a task on the runtime, as a mount's request handlers would, rather than on a blocked
/// main thread: replies then wake it on the thread that received them instead of
/// through a futex hand-off.
pub fn with_mounter<F, Fut, T>(cli: &Cli, threads: usize, f: F) -> anyhow::Result<T>
where
    F: FnOnce(Arc<Mounter>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, CmdError>> + Send + 'static,
    T: Send + 'static,
{
    if threads > 64 {
        return Err(CmdError::einval("--client-threads must be 0..=64").into());
    }
    let m = Arc::new(Mounter::new(cli)?);
    let rt = match threads {
        0 => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build()?,
    };
    let task = rt.spawn(f(m));
    rt.block_on(task).map_err(|e| CmdError::new(Errno::EIO, format!("benchmark task failed: {e}")))?.map_err(Into::into)
}

/// The content of block `i`: a fixed pseudo-random pattern stamped with `i`.
pub struct Pattern(Vec<u8>);

impl Pattern {
    pub fn new() -> Pattern {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut v = Vec::with_capacity(BLOCK);
        while v.len() < BLOCK {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        Pattern(v)
    }

    /// Block `i`, `len` bytes long.
    pub fn block(&mut self, i: u64, len: usize) -> &[u8] {
        self.0[..8].copy_from_slice(&i.to_le_bytes());
        &self.0[..len]
    }

    /// Whether `got` is block `i` of length `len`.
    pub fn check(&mut self, i: u64, len: usize, got: &[u8]) -> Result<(), CmdError> {
        if got.len() != len || got != self.block(i, len) {
            return Err(CmdError::new(Errno::EIO, format!("block {i} read back differs from what was written ({} bytes, want {len})", got.len())));
        }
        Ok(())
    }
}

/// `(index, offset, length)` of each block of a file of `total` bytes.
pub fn blocks(total: u64) -> Vec<(u64, u64, usize)> {
    (0..total.div_ceil(BLOCK as u64))
        .map(|i| {
            let off = i * BLOCK as u64;
            (i, off, (total - off).min(BLOCK as u64) as usize)
        })
        .collect()
}

fn with_rate(mut r: PhaseResult, bytes: u64, elapsed: Duration) -> PhaseResult {
    r.mb_per_s = Some((bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9) * 10.0).round() / 10.0);
    r
}

// --- on a mountpoint ---

/// Drops the page cache (root only); false when that is not possible here.
fn drop_caches() -> bool {
    // SAFETY: geteuid takes no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", b"3").is_ok()
}

fn read_file(path: &Path, total: u64, pat: &mut Pattern, phase: &str) -> Result<PhaseResult, CmdError> {
    let mut f = std::fs::File::open(path).map_err(|e| io_err(path.display(), e))?;
    let mut buf = vec![0u8; BLOCK];
    let (mut lat, t0) = (Vec::new(), Instant::now());
    for (i, _, len) in blocks(total) {
        let a = Instant::now();
        f.read_exact(&mut buf[..len]).map_err(|e| io_err(path.display(), e))?;
        lat.push(a.elapsed());
        pat.check(i, len, &buf[..len])?;
    }
    let el = t0.elapsed();
    Ok(with_rate(summarize(phase, lat, el), total, el))
}

/// `drop_cache`: try to drop the page cache before the first read.
fn data_file_phases(path: &Path, total: u64, drop_cache: bool) -> Result<Vec<PhaseResult>, CmdError> {
    let mut pat = Pattern::new();
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o644).open(path).map_err(|e| io_err(path.display(), e))?;
    let (mut lat, t0) = (Vec::new(), Instant::now());
    for (i, _, len) in blocks(total) {
        let a = Instant::now();
        f.write_all(pat.block(i, len)).map_err(|e| io_err(path.display(), e))?;
        lat.push(a.elapsed());
    }
    f.sync_all().map_err(|e| io_err(path.display(), e))?;
    let el = t0.elapsed();
    drop(f);
    let mut res = vec![with_rate(summarize("write+fsync", lat, el), total, el)];
    let cold = if drop_cache && drop_caches() {
        "cold_read"
    } else {
        if drop_cache {
            eprintln!("note: page cache not dropped (needs root): the first read may be served from it");
        }
        "first_read"
    };
    res.push(read_file(path, total, &mut pat, cold)?);
    res.push(read_file(path, total, &mut pat, "warm_read")?);
    Ok(res)
}

fn data_mount(mount: &Path, total: u64, drop_cache: bool) -> Result<Vec<PhaseResult>, CmdError> {
    let work = mount.join(work_name("data"));
    std::fs::create_dir(&work).map_err(|e| io_err(work.display(), e))?;
    let r = data_file_phases(&work.join("data"), total, drop_cache);
    let cleanup = std::fs::remove_dir_all(&work).map_err(|e| io_err(work.display(), e));
    let res = r?;
    cleanup?;
    Ok(res)
}

// --- through the client library ---

async fn write_client(c: &Client, dir: Ino, total: u64, pat: &mut Pattern) -> Result<(Ino, PhaseResult), CmdError> {
    let (mut lat, t0) = (Vec::new(), Instant::now());
    let (st, fh) = c.create_open(dir, "data", 0o644, O_WRONLY, true).await?;
    for (i, off, len) in blocks(total) {
        let a = Instant::now();
        c.fh_write(fh, off, pat.block(i, len)).await?;
        lat.push(a.elapsed());
    }
    c.fh_fsync(fh, false).await?;
    c.fh_release(fh).await?;
    let el = t0.elapsed();
    Ok((st.ino, with_rate(summarize("write+fsync", lat, el), total, el)))
}

async fn read_client(c: &Client, ino: Ino, total: u64, pat: &mut Pattern, phase: &str) -> Result<PhaseResult, CmdError> {
    let (mut lat, t0) = (Vec::new(), Instant::now());
    let (_, fh) = c.open(ino, 0).await?;
    for (i, off, len) in blocks(total) {
        let a = Instant::now();
        let got = c.fh_read(fh, off, len as u64).await?;
        lat.push(a.elapsed());
        pat.check(i, len, &got)?;
    }
    c.fh_release(fh).await?;
    let el = t0.elapsed();
    Ok(with_rate(summarize(phase, lat, el), total, el))
}

/// Makes the work directory `name` and writes the file in it.
async fn write_phase(c: &Client, name: &str, total: u64, pat: &mut Pattern) -> Result<(Ino, PhaseResult), CmdError> {
    let work = c.mkdir(c.root_ino(), name, 0o755).await?;
    write_client(c, work.ino, total, pat).await
}

async fn read_phases(c: &Client, ino: Ino, total: u64, pat: &mut Pattern) -> Result<[PhaseResult; 2], CmdError> {
    let cold = read_client(c, ino, total, pat, "cold_read").await?;
    let warm = read_client(c, ino, total, pat, "warm_read").await?;
    Ok([cold, warm])
}

/// One data run through the library, in a work directory it removes afterwards. The
/// reads are by a client mounted after the writer unmounted, so nothing of the file is
/// cached on the client side; the two never overlap because the MDS keys sessions by
/// entity name, and both are the CLI's entity.
pub async fn data_client(m: &Mounter, fs: &str, total: u64) -> Result<Vec<PhaseResult>, CmdError> {
    let mut pat = Pattern::new();
    let name = work_name("data");
    let w = m.mount(fs).await?;
    let written = write_phase(&w, &name, total, &mut pat).await;
    if written.is_err() {
        let _ = w.remove_tree(w.root_ino(), &name).await;
    }
    let u = w.unmount().await;
    let (ino, write) = written?;
    u?;
    let r = m.mount(fs).await?;
    let reads = read_phases(&r, ino, total, &mut pat).await;
    let cleanup = r.remove_tree(r.root_ino(), &name).await;
    let u = r.unmount().await;
    let [cold, warm] = reads?;
    cleanup?;
    u?;
    Ok(vec![write, cold, warm])
}

pub fn run(cli: &Cli, target: Target, size_mib: u64, client_threads: usize) -> anyhow::Result<()> {
    if size_mib == 0 || size_mib > 1 << 20 {
        return Err(CmdError::einval("--size-mib must be 1..=1048576").into());
    }
    let total = size_mib << 20;
    let title = |t: &str| format!("bench data  target={t} size={size_mib} MiB block={} MiB", BLOCK >> 20);
    let res = match target {
        Target::Mount(m) => {
            let r = data_mount(m, total, true)?;
            print_table(&title(&m.display().to_string()), &r);
            r
        }
        Target::Fs(f) => {
            let fs = f.to_string();
            let out = with_mounter(cli, client_threads, move |m| async move { data_client(&m, &fs, total).await })?;
            print_table(&title(&format!("fs:{f}")), &out);
            out
        }
    };
    println!("JSON {}", serde_json::json!({ "size_mib": size_mib, "block_mib": BLOCK >> 20, "phases": res }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That a file is cut into 4 MiB blocks with a short last one.
    #[test]
    fn block_plan() {
        let b = blocks(9 << 20);
        assert_eq!(b, vec![(0, 0, BLOCK), (1, 4 << 20, BLOCK), (2, 8 << 20, 1 << 20)]);
        assert!(blocks(0).is_empty());
    }

    /// That the pattern tells blocks apart and catches a flipped byte.
    #[test]
    fn pattern_checks_content() {
        let mut p = Pattern::new();
        let b3 = p.block(3, 1000).to_vec();
        assert!(p.check(3, 1000, &b3).is_ok());
        assert_eq!(p.check(4, 1000, &b3).unwrap_err().errno, Errno::EIO);
        let mut bad = b3.clone();
        bad[500] ^= 1;
        assert!(p.check(3, 1000, &bad).is_err());
        assert!(p.check(3, 999, &b3).is_err());
    }

    /// That the syscall form writes, reads back twice, checks the data and cleans up.
    #[test]
    fn mount_mode_on_a_local_dir() {
        let dir = tempfile::tempdir().unwrap();
        let r = data_mount(dir.path(), 9 << 20, false).unwrap();
        let names: Vec<&str> = r.iter().map(|x| x.phase.as_str()).collect();
        assert_eq!(names[0], "write+fsync");
        assert_eq!(names[1..], ["first_read", "warm_read"]);
        assert!(r.iter().all(|x| x.ops == 3 && x.mb_per_s.is_some_and(|m| m > 0.0)));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
