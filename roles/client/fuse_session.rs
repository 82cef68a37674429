//! Running a FUSE mount to its end: mount the kernel side (`fuser::Session`, via
//! mount(2) as root or `fusermount3`), apply the library's invalidations through the
//! session's notifier, raise the mount's kernel read-ahead, unmount on SIGTERM/SIGINT, serve until the kernel ends the
//! session (`cephr umount`, `fusermount3 -u`), then close the MDS session.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};
use tokio::runtime::Handle;

use super::fuse::{apply_invalidation, CephFuse};
use super::fuse_map::MountOpts;
use super::Client;
use crate::error::{CmdError, Errno};

/// The fuser configuration for `opts`.
pub fn fuse_config(opts: &MountOpts, fs_name: &str) -> Config {
    let mut c = Config::default();
    let fsname = opts.fsname.clone().unwrap_or_else(|| format!("cephr:{fs_name}"));
    c.mount_options = vec![MountOption::FSName(fsname), MountOption::Subtype("cephr".into())];
    if opts.default_permissions {
        c.mount_options.push(MountOption::DefaultPermissions);
    }
    c.mount_options.extend(opts.flags.iter().cloned());
    c.acl = match (opts.allow_other, opts.allow_root) {
        (true, _) => SessionACL::All,
        (false, true) => SessionACL::RootAndOwner,
        (false, false) => SessionACL::Owner,
    };
    c
}

/// Mounts `client` on `mountpoint` and serves it until unmounted; `ready` runs once
/// the kernel has accepted the mount. Blocks the calling thread, which must not be a
/// runtime worker of `rt`. Returns the result of closing the MDS session.
pub fn serve(
    client: Client,
    rt: &Handle,
    mountpoint: &Path,
    opts: MountOpts,
    ready: impl FnOnce(),
) -> Result<(), CmdError> {
    let config = fuse_config(&opts, client.fs_name());
    let fs = CephFuse::new(client.clone(), rt.clone(), opts);
    let sh = fs.shared();
    let session = fuser::Session::new(fs, mountpoint, &config)
        .map_err(|e| CmdError::new(io_errno(&e), format!("cannot mount on {}: {e}", mountpoint.display())))?;
    let notifier = session.notifier();
    let mut invalidations = client.invalidations();
    let inval_task = rt.spawn(async move {
        while let Some(inv) = invalidations.recv().await {
            let (sh, n) = (sh.clone(), notifier.clone());
            // Notifications write to /dev/fuse and may wait on the kernel: off the runtime.
            let done = tokio::task::spawn_blocking(move || apply_invalidation(&sh, &n, &inv)).await;
            if let Ok(Err(e)) = done {
                tracing::debug!("invalidation not applied: {e}");
            }
        }
    });
    let mp = Arc::new(mountpoint.to_path_buf());
    let signal_task = rt.spawn(unmount_on_signal(mp.clone()));
    let ra_mp = mp.clone();
    // The mount root's stat is served by the session: only once it runs.
    rt.spawn_blocking(move || raise_readahead(&ra_mp));
    tracing::info!(mountpoint = %mp.display(), fs = client.fs_name(), "mounted");
    ready();
    let served = session.run();
    inval_task.abort();
    signal_task.abort();
    match &served {
        Ok(()) => tracing::info!(mountpoint = %mp.display(), "unmounted; closing the MDS session"),
        Err(e) => tracing::error!(mountpoint = %mp.display(), "FUSE session ended: {e}"),
    }
    let closed = rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), client.unmount()).await });
    match closed {
        Ok(r) => r,
        Err(_) => Err(CmdError::new(Errno::ETIMEDOUT, "closing the MDS session took over 30 s")),
    }
}

/// Kernel read-ahead of the mount, in KiB (its default is 128): sequential readers
/// then have several 1 MiB read requests in flight.
const READ_AHEAD_KB: u32 = 16 << 10;

/// The sysfs file holding the read-ahead of the device `dev` (a FUSE mount's
/// backing device info is named `MAJOR:MINOR`).
pub fn read_ahead_file(dev: u64) -> String {
    format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev))
}

/// Raises the kernel's read-ahead on the mount at `mp` to `READ_AHEAD_KB` (needs
/// root; otherwise the kernel's default stays, which is only slower).
fn raise_readahead(mp: &Path) {
    use std::os::unix::fs::MetadataExt;
    let file = match std::fs::metadata(mp) {
        Ok(m) => read_ahead_file(m.dev()),
        Err(e) => return tracing::debug!("read-ahead left as is: stat {}: {e}", mp.display()),
    };
    match std::fs::write(&file, format!("{READ_AHEAD_KB}\n")) {
        Ok(()) => tracing::debug!("read-ahead {READ_AHEAD_KB} KiB ({file})"),
        Err(e) => tracing::debug!("read-ahead left as is: {file}: {e}"),
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    match e.raw_os_error() {
        Some(libc::ENOENT) => Errno::ENOENT,
        Some(libc::EACCES) => Errno::EACCES,
        Some(libc::EPERM) => Errno::EPERM,
        Some(libc::EBUSY) => Errno::EBUSY,
        Some(libc::ENOTDIR) => Errno::ENOTDIR,
        _ if e.kind() == std::io::ErrorKind::InvalidInput => Errno::EINVAL,
        _ => Errno::EIO,
    }
}

/// Waits for SIGTERM or SIGINT, then unmounts (lazily if the mount is busy), which
/// ends the FUSE session.
async fn unmount_on_signal(mp: Arc<std::path::PathBuf>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot catch SIGTERM/SIGINT: unmount with `cephr umount`");
        return;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::info!(mountpoint = %mp.display(), "signal received: unmounting");
    let r = tokio::task::spawn_blocking(move || match unmount_path(&mp, false) {
        Err(e) if e.errno == Errno::EBUSY => unmount_path(&mp, true),
        other => other,
    })
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("unmount after signal: {e}"),
        Err(e) => tracing::error!("unmount after signal: {e}"),
    }
}

/// Unmounts the FUSE file system at `mp` (`lazy`: detach now, finish when unused):
/// umount2(2) as root, `fusermount3 -u` otherwise.
pub fn unmount_path(mp: &Path, lazy: bool) -> Result<(), CmdError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let c = std::ffi::CString::new(mp.as_os_str().as_encoded_bytes())
            .map_err(|_| CmdError::einval(format!("{}: path contains a NUL byte", mp.display())))?;
        let flags = if lazy { libc::MNT_DETACH } else { 0 };
        // SAFETY: `c` is a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        let why = match e.raw_os_error() {
            Some(libc::EINVAL) => "not a mount point".to_string(),
            Some(libc::EBUSY) => "target is busy (files open or a process inside; try -l)".to_string(),
            _ => e.to_string(),
        };
        return Err(CmdError::new(io_errno(&e), format!("umount {}: {why}", mp.display())));
    }
    let mut cmd = std::process::Command::new("fusermount3");
    cmd.arg(if lazy { "-uz" } else { "-u" }).arg(mp);
    let out = cmd
        .output()
        .map_err(|e| CmdError::new(Errno::ENOENT, format!("cannot run fusermount3 (install fuse3): {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let errno = if msg.contains("busy") { Errno::EBUSY } else { Errno::EINVAL };
    Err(CmdError::new(errno, format!("umount {}: {msg}", mp.display())))
}
