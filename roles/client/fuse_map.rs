//! Pure translations between the FUSE kernel protocol and the client library, used by
//! the mount (`fuse.rs`): inode numbers (FUSE's 1 is the mount root), attributes,
//! errnos, times, the caller's credentials (uid/gid from the request, supplementary
//! groups from `/proc/PID/status`, cached briefly per process), the access(2) check, mount options, directory
//! listings served by offset, and the kernel's lookup counts.
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo, TimeOrNow};

use crate::error::{CmdError, Errno};
use crate::msg::mds::{
    Caller, Ino, InodeStat, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFSOCK,
};

/// Maps inode numbers: the kernel calls the mount root 1, the MDS calls it `root`.
#[derive(Clone, Copy, Debug)]
pub struct InoMap {
    pub root: Ino,
}

impl InoMap {
    pub fn to_mds(&self, ino: INodeNo) -> Ino {
        if ino == INodeNo::ROOT {
            self.root
        } else {
            ino.0
        }
    }

    pub fn to_fuse(&self, ino: Ino) -> INodeNo {
        if ino == self.root {
            INodeNo::ROOT
        } else {
            INodeNo(ino)
        }
    }
}

/// The errno the kernel gets for a library error.
pub fn errno(e: &CmdError) -> fuser::Errno {
    match e.errno {
        // ESHUTDOWN means nothing to an application: its I/O failed. So does a
        // message too large for the messenger (the client splits its I/O below it).
        Errno::EBLOCKLISTED | Errno::EMSGSIZE => fuser::Errno::EIO,
        other => fuser::Errno::from_i32(other.code()),
    }
}

/// The FUSE file type of the `S_IFMT` bits of `mode`.
pub fn file_type(mode: u32) -> FileType {
    match mode & S_IFMT {
        S_IFDIR => FileType::Directory,
        S_IFLNK => FileType::Symlink,
        S_IFIFO => FileType::NamedPipe,
        S_IFSOCK => FileType::Socket,
        S_IFCHR => FileType::CharDevice,
        S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

/// Nanoseconds since the epoch as a `SystemTime` (negative: before the epoch).
pub fn time_of(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}

/// A `SystemTime` as nanoseconds since the epoch (saturating at the i64 range).
pub fn ns_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map(|n| -n).unwrap_or(i64::MIN),
    }
}

/// A setattr time: a given one, or `now` for `UTIME_NOW`.
pub fn set_time(t: TimeOrNow, now: i64) -> i64 {
    match t {
        TimeOrNow::SpecificTime(t) => ns_of(t),
        TimeOrNow::Now => now,
    }
}

/// The kernel's view of an inode.
pub fn attr(st: &InodeStat, map: &InoMap) -> FileAttr {
    FileAttr {
        ino: map.to_fuse(st.ino),
        size: st.size,
        blocks: st.blocks,
        atime: time_of(st.atime),
        mtime: time_of(st.mtime),
        ctime: time_of(st.ctime),
        crtime: time_of(st.ctime),
        kind: file_type(st.mode),
        perm: (st.mode & 0o7777) as u16,
        nlink: st.nlink,
        uid: st.uid,
        gid: st.gid,
        rdev: st.rdev as u32,
        blksize: st.layout.stripe_unit.clamp(4096, 4 << 20),
        flags: 0,
    }
}

/// Supplementary groups from the text of `/proc/PID/status` (its `Groups:` line).
pub fn groups_from_status(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default()
}

/// The supplementary groups of process `pid` (none when the process is gone or the
/// kernel sent no pid).
pub fn groups_of_pid(pid: u32) -> Vec<u32> {
    match pid {
        0 => Vec::new(),
        p => std::fs::read_to_string(format!("/proc/{p}/status")).map(|s| groups_from_status(&s)).unwrap_or_default(),
    }
}

/// How long a process's groups are reused for its further requests.
pub const GROUPS_TTL: Duration = Duration::from_secs(1);
/// Processes whose groups are remembered at once.
const GROUPS_MAX: usize = 1024;

/// Supplementary groups of recent callers, so that a process making thousands of
/// requests reads `/proc/PID/status` about once a second, not once per request.
/// Keyed by (pid, uid, gid): a process that drops privileges (setgroups, then
/// setgid/setuid, as su and test tools do) gets a new key and a fresh read.
#[derive(Debug, Default)]
pub struct GroupCache {
    by_caller: HashMap<(u32, u32, u32), (Instant, Vec<u32>)>,
}

impl GroupCache {
    /// The credentials of a request by `uid`/`gid` from process `pid` at `now`;
    /// `read` gives a process's groups when they are not known or too old.
    pub fn caller(&mut self, uid: u32, gid: u32, pid: u32, now: Instant, read: impl FnOnce(u32) -> Vec<u32>) -> Caller {
        let key = (pid, uid, gid);
        if let Some((at, gids)) = self.by_caller.get(&key) {
            if now.saturating_duration_since(*at) < GROUPS_TTL {
                return Caller { uid, gid, gids: gids.clone() };
            }
        }
        if self.by_caller.len() >= GROUPS_MAX {
            self.by_caller.retain(|_, (at, _)| now.saturating_duration_since(*at) < GROUPS_TTL);
            if self.by_caller.len() >= GROUPS_MAX {
                self.by_caller.clear();
            }
        }
        let gids = if pid == 0 { Vec::new() } else { read(pid) };
        if pid != 0 {
            self.by_caller.insert(key, (now, gids.clone()));
        }
        Caller { uid, gid, gids }
    }

    pub fn len(&self) -> usize {
        self.by_caller.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_caller.is_empty()
    }
}

/// access(2) on attributes the MDS just returned, as Linux decides it: root may do
/// anything but execute a file without any execute bit; others get the owner, group
/// or other bits, whichever class they fall in. `mask` holds R_OK/W_OK/X_OK bits.
pub fn access_ok(st: &InodeStat, c: &Caller, mask: u32) -> Result<(), Errno> {
    if c.may(st.mode, st.uid, st.gid, mask) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// What a getxattr/listxattr reply must be for a value of `len` bytes when the
/// caller's buffer holds `size` (0: it asks for the size).
#[derive(Debug, PartialEq, Eq)]
pub enum XattrReply {
    Size(u32),
    Data,
    TooSmall,
}

pub fn xattr_reply(len: usize, size: u32) -> XattrReply {
    match u32::try_from(len) {
        Err(_) => XattrReply::TooSmall,
        Ok(n) if size == 0 => XattrReply::Size(n),
        Ok(n) if n <= size => XattrReply::Data,
        Ok(_) => XattrReply::TooSmall,
    }
}

/// The listxattr wire form: every name followed by a NUL.
pub fn xattr_names(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
    }
    out
}

/// Options of `cephr mount -o a,b=c`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountOpts {
    /// Let users other than the mounting one in (`allow_other`).
    pub allow_other: bool,
    /// Let root in besides the mounting user (`allow_root`).
    pub allow_root: bool,
    /// Let the kernel check permissions from the mode bits instead of the MDS.
    pub default_permissions: bool,
    /// How long the kernel may trust attributes and entries (0: ask every time).
    pub attr_timeout: Duration,
    pub entry_timeout: Duration,
    /// Mount flags passed through (ro, noatime, nosuid, nodev, noexec, sync, dirsync).
    pub flags: Vec<fuser::MountOption>,
    pub fsname: Option<String>,
    /// Runtime worker threads serving requests (`workers=N`).
    pub workers: usize,
}

impl Default for MountOpts {
    fn default() -> Self {
        MountOpts {
            allow_other: false,
            allow_root: false,
            default_permissions: false,
            attr_timeout: Duration::ZERO,
            entry_timeout: Duration::ZERO,
            flags: Vec::new(),
            fsname: None,
            workers: DEFAULT_WORKERS,
        }
    }
}

fn seconds(key: &str, v: &str) -> Result<Duration, CmdError> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| CmdError::einval(format!("mount option {key}={v}: want seconds between 0 and 86400")))
}

/// Runtime worker threads of a mount by default: every hop between threads costs a
/// wake-up, and one FUSE request is a few microseconds of work.
pub const DEFAULT_WORKERS: usize = 2;

fn workers(v: &str) -> Result<usize, CmdError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| CmdError::einval(format!("mount option workers={v}: want a number of threads from 1 to 64")))
}

/// Parses `-o` lists (each comma-separated); unknown options are an error.
pub fn parse_options(lists: &[String]) -> Result<MountOpts, CmdError> {
    use fuser::MountOption as M;
    let mut o = MountOpts::default();
    for item in lists.iter().flat_map(|l| l.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        let (key, val) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        match (key, val) {
            ("allow_other", None) => o.allow_other = true,
            ("allow_root", None) => o.allow_root = true,
            ("default_permissions", None) => o.default_permissions = true,
            ("attr_timeout", Some(v)) => o.attr_timeout = seconds(key, v)?,
            ("entry_timeout", Some(v)) => o.entry_timeout = seconds(key, v)?,
            ("fsname", Some(v)) if !v.is_empty() => o.fsname = Some(v.to_string()),
            ("workers", Some(v)) => o.workers = workers(v)?,
            ("ro", None) => o.flags.push(M::RO),
            ("rw", None) => o.flags.push(M::RW),
            ("noatime", None) => o.flags.push(M::NoAtime),
            ("nosuid", None) => o.flags.push(M::NoSuid),
            ("nodev", None) => o.flags.push(M::NoDev),
            ("noexec", None) => o.flags.push(M::NoExec),
            ("sync", None) => o.flags.push(M::Sync),
            ("dirsync", None) => o.flags.push(M::DirSync),
            _ => {
                return Err(CmdError::einval(format!(
                    "unknown mount option '{item}' (allow_other, allow_root, default_permissions, \
                     attr_timeout=S, entry_timeout=S, fsname=NAME, workers=N, ro, rw, noatime, nosuid, nodev, noexec, sync, dirsync)"
                )))
            }
        }
    }
    if o.allow_other && o.allow_root {
        return Err(CmdError::einval("mount options allow_other and allow_root exclude each other"));
    }
    Ok(o)
}

/// One entry of a directory listing as the kernel gets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedEntry {
    pub ino: INodeNo,
    pub kind: FileType,
    pub name: String,
}

/// A directory's entries as of its first readdir (`.` and `..` first). The kernel
/// asks by offset: entry `i` carries offset `i + 1`, the offset to continue from.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<ListedEntry>,
}

impl Listing {
    /// Entries from `offset` on, each with the offset of the next one.
    pub fn from_offset(&self, offset: u64) -> impl Iterator<Item = (u64, &ListedEntry)> {
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        self.entries.iter().enumerate().skip(skip).map(|(i, e)| (i as u64 + 1, e))
    }
}

/// How many times the kernel holds each inode (lookups minus forgets); the mount
/// only tells the kernel to drop inodes it holds.
#[derive(Debug, Default)]
pub struct LookupCounts {
    counts: HashMap<Ino, u64>,
}

impl LookupCounts {
    pub fn add(&mut self, ino: Ino) {
        *self.counts.entry(ino).or_default() += 1;
    }

    /// Drops `n` references; returns how many remain.
    pub fn forget(&mut self, ino: Ino, n: u64) -> u64 {
        let left = match self.counts.get_mut(&ino) {
            Some(c) => {
                *c = c.saturating_sub(n);
                *c
            }
            None => 0,
        };
        if left == 0 {
            self.counts.remove(&ino);
        }
        left
    }

    pub fn held(&self, ino: Ino) -> bool {
        self.counts.contains_key(&ino)
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Which kernel page caches may be kept at open (`FOPEN_KEEP_CACHE`): those filled
/// while the client held `Fc` without a break (the same cache epoch). An open under
/// another epoch, or without `Fc`, makes the kernel drop the file's pages.
#[derive(Debug, Default)]
pub struct KernelPages {
    epochs: HashMap<Ino, u64>,
}

impl KernelPages {
    /// An open of `ino` while the client's cache epoch is `epoch` (`None`: no `Fc`):
    /// whether the kernel may keep the pages it has.
    pub fn open(&mut self, ino: Ino, epoch: Option<u64>) -> bool {
        match epoch {
            Some(e) => self.epochs.insert(ino, e) == Some(e),
            None => {
                self.epochs.remove(&ino);
                false
            }
        }
    }

    /// The kernel forgot `ino` (and its pages).
    pub fn forget(&mut self, ino: Ino) {
        self.epochs.remove(&ino);
    }

    pub fn len(&self) -> usize {
        self.epochs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }
}

/// The mount's open files: which inode each handle is of and whose credentials
/// opened it (flushes and closes are the opener's, whoever triggers them).
#[derive(Debug, Default)]
pub struct OpenFiles {
    by_fh: HashMap<u64, (Ino, Caller, bool)>,
    by_ino: HashMap<Ino, Vec<u64>>,
}

impl OpenFiles {
    /// Records handle `fh` of `ino`, opened by `opener` (for writing if `writable`).
    pub fn insert(&mut self, fh: u64, ino: Ino, opener: Caller, writable: bool) {
        self.by_fh.insert(fh, (ino, opener, writable));
        self.by_ino.entry(ino).or_default().push(fh);
    }

    pub fn remove(&mut self, fh: u64) {
        let Some((ino, ..)) = self.by_fh.remove(&fh) else { return };
        if let Some(v) = self.by_ino.get_mut(&ino) {
            v.retain(|f| *f != fh);
            if v.is_empty() {
                self.by_ino.remove(&ino);
            }
        }
    }

    /// Who opened handle `fh`.
    pub fn opener(&self, fh: u64) -> Option<Caller> {
        self.by_fh.get(&fh).map(|(_, c, _)| c.clone())
    }

    /// Whether `fh` is open for writing (permission to write was checked at open).
    pub fn writable(&self, fh: u64) -> bool {
        self.by_fh.get(&fh).is_some_and(|(.., w)| *w)
    }

    /// Whether any handle is open on `ino`.
    pub fn has_ino(&self, ino: Ino) -> bool {
        self.by_ino.contains_key(&ino)
    }

    /// The handles open on `ino`, each with its opener.
    pub fn of_ino(&self, ino: Ino) -> Vec<(u64, Caller)> {
        let fhs = self.by_ino.get(&ino).map(Vec::as_slice).unwrap_or_default();
        fhs.iter().filter_map(|fh| self.by_fh.get(fh).map(|(_, c, _)| (*fh, c.clone()))).collect()
    }

    pub fn len(&self) -> usize {
        self.by_fh.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_fh.is_empty()
    }
}

#[cfg(test)]
#[path = "fuse_map_tests.rs"]
mod tests;
