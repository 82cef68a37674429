//! `cephr bench meta <MOUNTPOINT | --fs NAME>`: a single-threaded metadata benchmark
//! with the phases of `shared/bench/bench-meta.py` (create = open O_CREAT|O_EXCL +
//! close, stat, readdir of the N-entry directory, unlink, mkdir, rmdir), in a fresh
//! work directory it removes afterwards. On a mountpoint the ops are plain syscalls
//! (std::fs); with `--fs` the client library mounts the file system and does the same
//! ops through it (create_open + fh_release, getattr, readdir, unlink, mkdir, rmdir).
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bench_stats::{medians, print_table, summarize, whole, PhaseResult};
use super::Cli;
use cephr::error::{CmdError, Errno};
use cephr::msg::mds::{Ino, O_WRONLY};
use cephr::roles::client::Client;

/// Where the benchmark runs.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A mounted file system: plain syscalls.
    Mount(&'a Path),
    /// A cephr file system through the client library.
    Fs(&'a str),
}

impl<'a> Target<'a> {
    /// Exactly one of a mountpoint and `--fs NAME`.
    pub fn pick(mountpoint: Option<&'a Path>, fs: Option<&'a str>) -> Result<Target<'a>, CmdError> {
        match (mountpoint, fs) {
            (Some(m), None) if m.is_dir() => Ok(Target::Mount(m)),
            (Some(m), None) => Err(CmdError::new(Errno::ENOTDIR, format!("{}: not a directory", m.display()))),
            (None, Some(f)) => Ok(Target::Fs(f)),
            (Some(_), Some(_)) => Err(CmdError::einval("give a mountpoint or --fs NAME, not both")),
            (None, None) => Err(CmdError::einval("give a mountpoint or --fs NAME")),
        }
    }

    fn describe(&self) -> String {
        match self {
            Target::Mount(p) => p.display().to_string(),
            Target::Fs(f) => format!("fs:{f}"),
        }
    }
}

/// Sizes of one `bench meta` run.
#[derive(Clone, Copy, Debug)]
pub struct MetaArgs {
    pub files: usize,
    pub dirs: usize,
    pub repeat: usize,
    /// Runtime worker threads of the library client (0: current-thread runtime).
    pub client_threads: usize,
}

/// A local I/O error as a command error with the matching errno.
pub fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> CmdError {
    let errno = match e.raw_os_error() {
        Some(libc::ENOENT) => Errno::ENOENT,
        Some(libc::EEXIST) => Errno::EEXIST,
        Some(libc::EACCES) => Errno::EACCES,
        Some(libc::EPERM) => Errno::EPERM,
        Some(libc::ENOTDIR) => Errno::ENOTDIR,
        Some(libc::EISDIR) => Errno::EISDIR,
        Some(libc::ENOTEMPTY) => Errno::ENOTEMPTY,
        Some(libc::ENOSPC) => Errno::ENOSPC,
        Some(libc::EDQUOT) => Errno::EDQUOT,
        Some(libc::ENOTCONN) => Errno::ENOTCONN,
        Some(libc::ETIMEDOUT) => Errno::ETIMEDOUT,
        Some(libc::EROFS) => Errno::EACCES,
        _ => Errno::EIO,
    };
    CmdError::new(errno, format!("{what}: {e}"))
}

/// A work directory name no other run uses.
pub fn work_name(kind: &str) -> String {
    format!("bench-{kind}.{}.{}", std::process::id(), cephr::now_ns())
}

fn file_name(i: usize) -> String {
    format!("f{i:06}")
}

fn dir_name(i: usize) -> String {
    format!("d{i:06}")
}

/// Times `op` on every item (sync).
fn phase_sync<T>(name: &str, items: &[T], mut op: impl FnMut(&T) -> Result<(), CmdError>) -> Result<PhaseResult, CmdError> {
    let mut lat = Vec::with_capacity(items.len());
    let t0 = Instant::now();
    for it in items {
        let a = Instant::now();
        op(it)?;
        lat.push(a.elapsed());
    }
    Ok(summarize(name, lat, t0.elapsed()))
}

fn readdir_result(seen: usize, want: usize, elapsed: Duration) -> Result<PhaseResult, CmdError> {
    if seen != want {
        return Err(CmdError::new(Errno::EIO, format!("readdir saw {seen} entries, expected {want}")));
    }
    Ok(whole("readdir", seen, 0, elapsed))
}

/// One run on a mountpoint, through syscalls.
fn run_mount(mount: &Path, a: MetaArgs) -> Result<Vec<PhaseResult>, CmdError> {
    run_mount_at(&mount.join(work_name("meta")), a)
}

/// Creates `work` (which must not exist), runs the phases in it, and removes it; after
/// a failure, removes what the run made there.
fn run_mount_at(work: &Path, a: MetaArgs) -> Result<Vec<PhaseResult>, CmdError> {
    std::fs::create_dir(work).map_err(|e| io_err(work.display(), e))?;
    let r = phases_mount(work, a);
    if r.is_err() {
        let _ = std::fs::remove_dir_all(work);
    }
    r
}

fn phases_mount(work: &Path, a: MetaArgs) -> Result<Vec<PhaseResult>, CmdError> {
    let (fdir, ddir) = (work.join("files"), work.join("dirs"));
    for d in [&fdir, &ddir] {
        std::fs::create_dir(d).map_err(|e| io_err(d.display(), e))?;
    }
    let files: Vec<PathBuf> = (0..a.files).map(|i| fdir.join(file_name(i))).collect();
    let dirs: Vec<PathBuf> = (0..a.dirs).map(|i| ddir.join(dir_name(i))).collect();
    let err = |p: &PathBuf| {
        let p = p.display().to_string();
        move |e| io_err(p, e)
    };
    let mut res = Vec::new();
    res.push(phase_sync("create", &files, |p| {
        OpenOptions::new().write(true).create_new(true).mode(0o644).open(p).map(drop).map_err(err(p))
    })?);
    res.push(phase_sync("stat", &files, |p| std::fs::metadata(p).map(drop).map_err(err(p)))?);
    let t0 = Instant::now();
    let seen = std::fs::read_dir(&fdir).map_err(err(&fdir))?.count();
    res.push(readdir_result(seen, a.files, t0.elapsed())?);
    res.push(phase_sync("unlink", &files, |p| std::fs::remove_file(p).map_err(err(p)))?);
    res.push(phase_sync("mkdir", &dirs, |p| std::fs::create_dir(p).map_err(err(p)))?);
    res.push(phase_sync("rmdir", &dirs, |p| std::fs::remove_dir(p).map_err(err(p)))?);
    for d in [&fdir, &ddir, &work.to_path_buf()] {
        std::fs::remove_dir(d).map_err(err(d))?;
    }
    Ok(res)
}

/// Times `op` on every item (through the client library).
macro_rules! phase_async {
    ($name:expr, $items:expr, |$it:ident| $body:expr) => {{
        let mut lat = Vec::with_capacity($items.len());
        let t0 = Instant::now();
        for $it in $items.iter() {
            let a = Instant::now();
            $body;
            lat.push(a.elapsed());
        }
        summarize($name, lat, t0.elapsed())
    }};
}

/// One run through the client library, in a work directory under the mount root.
pub async fn run_client(c: &Client, a: MetaArgs) -> Result<Vec<PhaseResult>, CmdError> {
    let root = c.root_ino();
    let name = work_name("meta");
    let work = c.mkdir(root, &name, 0o755).await?;
    let r = phases_client(c, work.ino, a).await;
    match r {
        Ok(res) => {
            c.rmdir(root, &name).await?;
            Ok(res)
        }
        Err(e) => {
            let _ = c.remove_tree(root, &name).await;
            Err(e)
        }
    }
}

async fn phases_client(c: &Client, work: Ino, a: MetaArgs) -> Result<Vec<PhaseResult>, CmdError> {
    let fdir = c.mkdir(work, "files", 0o755).await?.ino;
    let ddir = c.mkdir(work, "dirs", 0o755).await?.ino;
    let files: Vec<String> = (0..a.files).map(file_name).collect();
    let dirs: Vec<String> = (0..a.dirs).map(dir_name).collect();
    let mut inos = Vec::with_capacity(a.files);
    let mut res = Vec::new();
    res.push(phase_async!("create", files, |n| {
        let (st, fh) = c.create_open(fdir, n, 0o644, O_WRONLY, true).await?;
        c.fh_release(fh).await?;
        inos.push(st.ino)
    }));
    res.push(phase_async!("stat", inos, |ino| c.getattr(*ino).await?));
    let t0 = Instant::now();
    let seen = c.readdir(fdir).await?.len();
    res.push(readdir_result(seen, a.files, t0.elapsed())?);
    res.push(phase_async!("unlink", files, |n| c.unlink(fdir, n).await?));
    res.push(phase_async!("mkdir", dirs, |n| c.mkdir(ddir, n, 0o755).await?));
    res.push(phase_async!("rmdir", dirs, |n| c.rmdir(ddir, n).await?));
    c.rmdir(work, "files").await?;
    c.rmdir(work, "dirs").await?;
    Ok(res)
}

async fn runs_client(c: &Client, shown: &str, a: MetaArgs) -> Result<Vec<Vec<PhaseResult>>, CmdError> {
    let mut runs = Vec::new();
    for i in 0..a.repeat {
        let res = run_client(c, a).await?;
        print_table(&title(i, shown, &a), &res);
        runs.push(res);
    }
    Ok(runs)
}

fn check(a: &MetaArgs) -> Result<(), CmdError> {
    if a.files == 0 || a.files > 1_000_000 || a.dirs > 1_000_000 || a.repeat == 0 || a.repeat > 100 {
        return Err(CmdError::einval("--files must be 1..=1000000, --dirs 0..=1000000, --repeat 1..=100"));
    }
    Ok(())
}

fn report(target: &Target, a: MetaArgs, runs: &[Vec<PhaseResult>]) -> anyhow::Result<()> {
    let summary: serde_json::Map<String, serde_json::Value> =
        medians(runs).into_iter().map(|(k, v)| (k, serde_json::json!(v))).collect();
    let j = serde_json::json!({
        "target": target.describe(), "n": a.files, "dirs": a.dirs,
        "median_ops_per_s": summary, "runs": runs,
    });
    println!("JSON {j}");
    Ok(())
}

fn title(i: usize, shown: &str, a: &MetaArgs) -> String {
    format!("run {}/{}  target={shown} N={} D={}", i + 1, a.repeat, a.files, a.dirs)
}

pub fn run(cli: &Cli, target: Target, a: MetaArgs) -> anyhow::Result<()> {
    check(&a)?;
    let runs = match target {
        Target::Mount(m) => {
            let mut runs = Vec::new();
            for i in 0..a.repeat {
                let res = run_mount(m, a)?;
                print_table(&title(i, &target.describe(), &a), &res);
                runs.push(res);
            }
            runs
        }
        Target::Fs(f) => {
            let shown = Target::Fs(f).describe();
            let fs = f.to_string();
            super::bench_data::with_mounter(cli, a.client_threads, move |m| async move {
                let c = m.mount(&fs).await?;
                let r = runs_client(&c, &shown, a).await;
                let u = c.unmount().await;
                let runs = r?;
                u?;
                Ok(runs)
            })?
        }
    };
    report(&target, a, &runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That the syscall form runs every phase on a local directory, reports each op,
    /// and leaves nothing behind.
    #[test]
    fn mount_mode_on_a_local_dir() {
        let dir = tempfile::tempdir().unwrap();
        let res = run_mount(dir.path(), MetaArgs { files: 50, dirs: 20, repeat: 1, client_threads: 2 }).unwrap();
        let names: Vec<&str> = res.iter().map(|r| r.phase.as_str()).collect();
        assert_eq!(names, ["create", "stat", "readdir", "unlink", "mkdir", "rmdir"]);
        let ops: Vec<usize> = res.iter().map(|r| r.ops).collect();
        assert_eq!(ops, [50, 50, 50, 50, 20, 20]);
        assert!(res.iter().all(|r| r.ops_per_s > 0.0));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "work dir removed");
    }

    /// That bad targets and sizes are refused with a clear error.
    #[test]
    fn bad_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(Target::pick(Some(&f), None).unwrap_err().errno, Errno::ENOTDIR);
        assert_eq!(Target::pick(None, None).unwrap_err().errno, Errno::EINVAL);
        assert_eq!(Target::pick(Some(dir.path()), Some("x")).unwrap_err().errno, Errno::EINVAL);
        assert!(matches!(Target::pick(None, Some("cephfs")), Ok(Target::Fs("cephfs"))));
        assert!(check(&MetaArgs { files: 0, dirs: 1, repeat: 1, client_threads: 2 }).is_err());
        assert!(check(&MetaArgs { files: 1, dirs: 1, repeat: 0, client_threads: 2 }).is_err());
    }

    /// That a run never uses (nor removes) a work directory that already exists.
    #[test]
    fn existing_work_dir_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("w");
        std::fs::create_dir(&work).unwrap();
        std::fs::write(work.join("keep"), b"x").unwrap();
        let e = run_mount_at(&work, MetaArgs { files: 3, dirs: 0, repeat: 1, client_threads: 2 }).unwrap_err();
        assert_eq!(e.errno, Errno::EEXIST);
        assert!(work.join("keep").exists());
    }
}
