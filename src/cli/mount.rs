//! `cephr mount MOUNTPOINT` and `cephr umount MOUNTPOINT`: a FUSE mount of the file
//! system through the client library (`roles/client/fuse*.rs`).
//!
//! Without `-f` the command daemonizes: it re-runs itself with `-f` in a new session
//! (setsid), its output going to a log file, and waits on a pipe until the child says
//! the mount is ready (or why it failed, or dies), then exits accordingly. The child
//! writes the pid file once mounted and removes it when the mount ends.
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{load_config, Cli};
use cephr::error::{CmdError, Errno};
use cephr::ids::EntityName;
use cephr::roles::client::fuse_map::parse_options;
use cephr::roles::client::fuse_session::{serve, unmount_path};
use cephr::roles::client::Client;

/// The environment variable naming the pipe a daemonized mount reports readiness on.
const READY_FD: &str = "CEPHR_MOUNT_READY_FD";
/// How long the parent waits for the daemon to mount.
const READY_WAIT: Duration = Duration::from_secs(90);

#[derive(clap::Args, Debug)]
pub struct MountArgs {
    /// Directory to mount on.
    pub mountpoint: PathBuf,
    /// File system name (default: the only one).
    #[arg(long = "fs")]
    pub fs: Option<String>,
    /// Mount this sub-directory as the root.
    #[arg(long = "root")]
    pub root: Option<String>,
    /// Client identity: `client.x` or `x` (default: --name).
    #[arg(long = "id")]
    pub id: Option<String>,
    /// Stay in the foreground.
    #[arg(short = 'f', long = "foreground")]
    pub foreground: bool,
    /// Write the mount process's pid here (removed when it exits).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Where a daemonized mount logs (default: $TMPDIR/cephr-mount-PID.log).
    #[arg(long = "log-file")]
    pub log_file: Option<PathBuf>,
    /// Mount options: allow_other, allow_root, default_permissions, attr_timeout=S,
    /// entry_timeout=S, fsname=NAME, ro, noatime, nosuid, nodev, noexec, sync, dirsync.
    #[arg(short = 'o', value_name = "OPT[,OPT...]")]
    pub options: Vec<String>,
}

fn entity(cli: &Cli, id: Option<&str>) -> Result<EntityName, CmdError> {
    let name = match id {
        Some(i) if i.contains('.') => i.to_string(),
        Some(i) => format!("client.{i}"),
        None => cli.name.clone(),
    };
    name.parse().map_err(|e: cephr::error::ParseError| CmdError::einval(e.to_string()))
}

fn check_mountpoint(mp: &Path) -> Result<(), CmdError> {
    match std::fs::metadata(mp) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(CmdError::new(Errno::ENOTDIR, format!("mount point {} is not a directory", mp.display()))),
        Err(e) => Err(CmdError::new(Errno::ENOENT, format!("mount point {}: {e}", mp.display()))),
    }
}

pub fn run(cli: &Cli, a: &MountArgs) -> anyhow::Result<()> {
    parse_options(&a.options)?;
    entity(cli, a.id.as_deref())?;
    check_mountpoint(&a.mountpoint)?;
    if a.foreground {
        foreground(cli, a)
    } else {
        daemonize(a)
    }
}

/// `cephr umount [-l] MOUNTPOINT`.
pub fn umount(mountpoint: &Path, lazy: bool) -> anyhow::Result<()> {
    unmount_path(mountpoint, lazy)?;
    Ok(())
}

/// The readiness pipe handed down by a daemonizing parent, if any.
fn ready_pipe() -> Option<std::fs::File> {
    let fd: i32 = std::env::var(READY_FD).ok()?.parse().ok()?;
    std::env::remove_var(READY_FD);
    // SAFETY: the parent created this descriptor for us and nothing else uses it.
    (fd > 2).then(|| unsafe { std::fs::File::from_raw_fd(fd) })
}

fn foreground(cli: &Cli, a: &MountArgs) -> anyhow::Result<()> {
    let mut pipe = ready_pipe();
    let r = mount_and_serve(cli, a, &mut pipe);
    if let (Err(e), Some(p)) = (&r, pipe.as_mut()) {
        let (errno, msg) = match e.downcast_ref::<CmdError>() {
            Some(c) => (c.errno, c.message.clone()),
            None => (Errno::EIO, format!("{e:#}")),
        };
        let _ = writeln!(p, "err {errno:?} {msg}");
    }
    r
}

fn mount_and_serve(cli: &Cli, a: &MountArgs, pipe: &mut Option<std::fs::File>) -> anyhow::Result<()> {
    let cfg = load_config(cli)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CEPHR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.global.log_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
    let opts = parse_options(&a.options)?;
    let name = entity(cli, a.id.as_deref())?;
    let key_dir = cli.key_dir.clone().unwrap_or_else(|| cfg.key_dir.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(opts.workers).enable_all().build()?;
    let client = rt.block_on(Client::mount_with_keys(&cfg, &key_dir, &name, a.fs.as_deref(), a.root.as_deref()))?;
    let pid_file = a.pid_file.clone();
    let ready = || {
        if let Some(p) = &pid_file {
            if let Err(e) = std::fs::write(p, format!("{}\n", std::process::id())) {
                tracing::error!("cannot write pid file {}: {e}", p.display());
            }
        }
        if let Some(mut p) = pipe.take() {
            let _ = writeln!(p, "ok");
        }
    };
    let r = serve(client, rt.handle(), &a.mountpoint, opts, ready);
    if let Some(p) = &a.pid_file {
        let _ = std::fs::remove_file(p);
    }
    r?;
    Ok(())
}

/// A pipe whose write end the child inherits (the read end is close-on-exec).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: valid descriptor, standard fcntl flag.
    unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok((r, w))
}

fn daemonize(a: &MountArgs) -> anyhow::Result<()> {
    let log = a
        .log_file
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cephr-mount-{}.log", std::process::id())));
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| CmdError::new(Errno::EIO, format!("cannot open log file {}: {e}", log.display())))?;
    let (rd, wr) = pipe()?;
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1)).arg("-f").env(READY_FD, wr.as_raw_fd().to_string());
    cmd.stdin(std::process::Stdio::null()).stdout(out.try_clone()?).stderr(out);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(wr);
    let answer = wait_ready(rd, &mut child);
    match answer {
        Ok(()) => Ok(()),
        Err(e) => {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(CmdError::new(e.errno, format!("{} (log {}: {})", e.message, log.display(), tail.join(" | "))).into())
        }
    }
}

/// Reads the child's verdict: `ok`, `err MESSAGE`, or end of file if it died.
fn wait_ready(rd: OwnedFd, child: &mut std::process::Child) -> Result<(), CmdError> {
    let deadline = Instant::now() + READY_WAIT;
    let mut pfd = libc::pollfd { fd: rd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // SAFETY: signalling our own child by pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            return Err(CmdError::new(Errno::ETIMEDOUT, format!("no mount after {} s", READY_WAIT.as_secs())));
        }
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n > 0 {
            break;
        }
    }
    let mut text = String::new();
    let _ = std::fs::File::from(rd).read_to_string(&mut text);
    match text.lines().next() {
        Some("ok") => Ok(()),
        Some(line) => {
            let rest = line.strip_prefix("err ").unwrap_or(line);
            let (name, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            Err(CmdError::new(errno_named(name).unwrap_or(Errno::EIO), msg.to_string()))
        }
        None => {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            Err(CmdError::new(Errno::EIO, format!("the mount process exited before mounting ({status})")))
        }
    }
}

/// An errno from its `Debug` name (`ENOENT`).
fn errno_named(s: &str) -> Option<Errno> {
    [
        Errno::EPERM,
        Errno::ENOENT,
        Errno::EACCES,
        Errno::EBUSY,
        Errno::ENOTDIR,
        Errno::EINVAL,
        Errno::ETIMEDOUT,
        Errno::ENOTCONN,
        Errno::EAGAIN,
    ]
    .into_iter()
    .find(|e| format!("{e:?}") == s)
}
