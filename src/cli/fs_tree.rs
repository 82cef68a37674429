//! `cephr fs put -r LOCALDIR PATH` / `get -r PATH LOCALDIR`: tree copies that keep
//! names, sizes, contents, modes, owners (when permitted), mtimes, symbolic links,
//! hard links (by inode identity) and extended attributes. Files of one directory are
//! copied several at a time; hard links are made once every file exists, and
//! directory attributes are set last, deepest first, so adding entries does not
//! disturb the mtimes already set.
use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt, TryStreamExt};

use super::fs::{download, upload};
use cephr::error::{CmdError, Errno};
use cephr::msg::mds::{Ino, InodeStat, SetAttr, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use cephr::roles::client::ops::{ctx, is_dir};
use cephr::roles::client::Client;

/// Files copied at once within one directory.
const PARALLEL_FILES: usize = 16;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CmdError + '_ {
    move |e| CmdError::new(Errno::EIO, format!("{}: {e}", path.display()))
}

fn cpath(p: &Path) -> Result<CString, CmdError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| CmdError::einval(format!("{}: NUL in path", p.display())))
}

/// Extended attributes of a local file (not following symlinks).
fn local_xattrs(p: &Path) -> Result<Vec<(String, Vec<u8>)>, CmdError> {
    let c = cpath(p)?;
    // SAFETY: c is a valid NUL-terminated path; a null buffer of size 0 asks for the size.
    let n = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if n <= 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; n as usize];
    // SAFETY: names is a writable buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr() as *mut libc::c_char, names.len()) };
    if n < 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in names[..n as usize].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let cname = CString::new(name).unwrap_or_default();
        // SAFETY: valid path and name; size query with a null buffer.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            continue;
        }
        let mut v = vec![0u8; len as usize];
        // SAFETY: v is writable for v.len() bytes.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), v.as_mut_ptr() as *mut libc::c_void, v.len()) };
        if len < 0 {
            continue;
        }
        v.truncate(len as usize);
        out.push((String::from_utf8_lossy(name).into_owned(), v));
    }
    Ok(out)
}

fn set_local_xattr(p: &Path, name: &str, value: &[u8]) -> Result<(), CmdError> {
    let c = cpath(p)?;
    let n = CString::new(name).map_err(|_| CmdError::einval("NUL in xattr name"))?;
    // SAFETY: valid path, name and value buffer.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), n.as_ptr(), value.as_ptr() as *const libc::c_void, value.len(), 0) };
    if r != 0 {
        return Err(io_err(p)(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn set_local_times(p: &Path, atime: i64, mtime: i64) -> Result<(), CmdError> {
    let c = cpath(p)?;
    let ts = |ns: i64| libc::timespec { tv_sec: ns.div_euclid(1_000_000_000) as _, tv_nsec: ns.rem_euclid(1_000_000_000) as _ };
    let times = [ts(atime), ts(mtime)];
    // SAFETY: valid path and a two-element timespec array.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if r != 0 {
        return Err(io_err(p)(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs * 1_000_000_000 + nsec
}

/// Attributes to give the copy of a local file.
fn attrs_of(m: &std::fs::Metadata, with_mode: bool) -> SetAttr {
    SetAttr {
        mode: with_mode.then_some(m.mode() & 0o7777),
        uid: Some(m.uid()),
        gid: Some(m.gid()),
        size: None,
        atime: Some(ns(m.atime(), m.atime_nsec())),
        mtime: Some(ns(m.mtime(), m.mtime_nsec())),
        times_now: false,
    }
}

#[derive(Default)]
struct PutState {
    /// Local (dev, ino) of multiply-linked files → the copy's ino.
    linked: HashMap<(u64, u64), Ino>,
    /// Later names of those files, made in a second pass: (local id, parent, name).
    links: Vec<((u64, u64), Ino, String)>,
    /// Directories in creation order with their local metadata and path.
    dirs: Vec<(Ino, PathBuf, std::fs::Metadata)>,
}

/// Copies local directory `local` to `path` (created if missing, like `cp -r`).
pub async fn put_tree(c: &Client, local: &Path, path: &str) -> anyhow::Result<()> {
    let m = std::fs::symlink_metadata(local).map_err(io_err(local))?;
    if !m.is_dir() {
        return Err(CmdError::new(Errno::ENOTDIR, format!("{}: not a directory", local.display())).into());
    }
    let top = c.mkdirs(path, m.mode() & 0o7777).await?;
    let mut st = PutState::default();
    st.dirs.push((top.ino, local.to_path_buf(), m));
    put_dir(c, local, top.ino, &mut st).await?;
    for (id, parent, name) in &st.links {
        let ino = st.linked[id];
        c.link(ino, *parent, name).await.map_err(ctx(format!("link {name}")))?;
    }
    for (ino, p, m) in st.dirs.iter().rev() {
        copy_xattrs_up(c, *ino, p).await?;
        c.setattr(*ino, attrs_of(m, true)).await.map_err(ctx(p.display()))?;
    }
    c.sync().await?;
    Ok(())
}

async fn copy_xattrs_up(c: &Client, ino: Ino, p: &Path) -> Result<(), CmdError> {
    for (name, value) in local_xattrs(p)? {
        c.setxattr(ino, &name, &value, 0).await.map_err(ctx(format!("{}: setxattr {name}", p.display())))?;
    }
    Ok(())
}

async fn put_dir(c: &Client, local: &Path, dir: Ino, st: &mut PutState) -> Result<(), CmdError> {
    let mut entries: Vec<_> = std::fs::read_dir(local)
        .map_err(io_err(local))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_err(local))?;
    entries.sort();
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for p in entries {
        let m = std::fs::symlink_metadata(&p).map_err(io_err(&p))?;
        let name = p.file_name().and_then(|n| n.to_str()).map(str::to_string).ok_or_else(|| {
            CmdError::einval(format!("{}: name is not UTF-8", p.display()))
        })?;
        if m.is_dir() {
            subdirs.push((p, name, m));
            continue;
        }
        if m.is_file() && m.nlink() > 1 {
            let id = (m.dev(), m.ino());
            if st.linked.contains_key(&id) || files.iter().any(|(_, _, fm, _): &(PathBuf, String, std::fs::Metadata, bool)| (fm.dev(), fm.ino()) == id) {
                st.links.push((id, dir, name));
                continue;
            }
            files.push((p, name, m, true));
        } else {
            files.push((p, name, m, false));
        }
    }
    let made: Vec<Option<((u64, u64), Ino)>> = stream::iter(files)
        .map(|(p, name, m, multi)| async move {
            let ino = put_one(c, &p, dir, &name, &m).await?;
            Ok::<_, CmdError>(multi.then_some(((m.dev(), m.ino()), ino)))
        })
        .buffer_unordered(PARALLEL_FILES)
        .try_collect()
        .await?;
    st.linked.extend(made.into_iter().flatten());
    for (p, name, m) in subdirs {
        let d = c.mkdir(dir, &name, m.mode() & 0o7777).await.map_err(ctx(format!("mkdir {}", p.display())))?;
        st.dirs.push((d.ino, p.clone(), m));
        Box::pin(put_dir(c, &p, d.ino, st)).await?;
    }
    Ok(())
}

/// Copies one non-directory entry; returns the copy's ino.
async fn put_one(c: &Client, p: &Path, dir: Ino, name: &str, m: &std::fs::Metadata) -> Result<Ino, CmdError> {
    let shown = p.display();
    let ft = m.file_type();
    let ino = if ft.is_symlink() {
        let target = std::fs::read_link(p).map_err(io_err(p))?;
        let target = target.to_str().ok_or_else(|| CmdError::einval(format!("{shown}: target is not UTF-8")))?;
        let st = c.symlink(dir, name, target).await.map_err(ctx(format!("symlink {shown}")))?;
        // Owners and times of links are best effort: not every MDS allows them.
        if let Err(e) = c.setattr(st.ino, attrs_of(m, false)).await {
            tracing::debug!("{shown}: {e}");
        }
        return Ok(st.ino);
    } else if ft.is_file() {
        let st = c.create(dir, name, m.mode() & 0o7777, true).await.map_err(ctx(format!("create {shown}")))?;
        if m.len() > 0 {
            let f = std::fs::File::open(p).map_err(io_err(p))?;
            upload(c, &st, std::io::BufReader::with_capacity(1 << 20, f), p).await?;
        }
        st.ino
    } else {
        let mode = (m.mode() & S_IFMT) | (m.mode() & 0o7777);
        c.mknod(dir, name, mode, m.rdev()).await.map_err(ctx(format!("mknod {shown}")))?.ino
    };
    copy_xattrs_up(c, ino, p).await?;
    c.setattr(ino, attrs_of(m, true)).await.map_err(ctx(format!("setattr {shown}")))?;
    Ok(ino)
}

/// Copies directory `path` to local `local` (created if missing).
pub async fn get_tree(c: &Client, path: &str, local: &Path) -> anyhow::Result<()> {
    let top = c.lookup_path(path).await?;
    let top = c.getattr(top.ino).await.map_err(ctx(path))?;
    if !is_dir(&top) {
        return Err(CmdError::new(Errno::ENOTDIR, format!("{path}: not a directory")).into());
    }
    std::fs::create_dir_all(local).map_err(io_err(local))?;
    let mut seen: HashMap<Ino, PathBuf> = HashMap::new();
    let mut dirs = vec![(top.clone(), local.to_path_buf())];
    get_dir(c, &top, local, &mut seen, &mut dirs).await?;
    for (st, p) in dirs.iter().rev() {
        finish_local(c, st, p).await?;
    }
    Ok(())
}

async fn get_dir(
    c: &Client,
    dir: &InodeStat,
    local: &Path,
    seen: &mut HashMap<Ino, PathBuf>,
    dirs: &mut Vec<(InodeStat, PathBuf)>,
) -> Result<(), CmdError> {
    let mut files = Vec::new();
    let mut links = Vec::new();
    let mut subdirs = Vec::new();
    for e in c.readdir(dir.ino).await? {
        let st = match e.stat {
            Some(s) => s,
            None => c.getattr(e.ino).await?,
        };
        let p = local.join(&e.name);
        if st.mode & S_IFMT == S_IFDIR {
            subdirs.push((st, p));
        } else if let Some(first) = seen.get(&st.ino) {
            links.push((first.clone(), p));
        } else {
            if st.nlink > 1 {
                seen.insert(st.ino, p.clone());
            }
            files.push((st, p));
        }
    }
    stream::iter(files)
        .map(|(st, p)| async move { get_one(c, &st, &p).await })
        .buffer_unordered(PARALLEL_FILES)
        .try_collect::<Vec<()>>()
        .await?;
    for (first, p) in links {
        std::fs::hard_link(&first, &p).map_err(io_err(&p))?;
    }
    for (st, p) in subdirs {
        std::fs::create_dir(&p).map_err(io_err(&p))?;
        dirs.push((st.clone(), p.clone()));
        Box::pin(get_dir(c, &st, &p, seen, dirs)).await?;
    }
    Ok(())
}

async fn get_one(c: &Client, st: &InodeStat, p: &Path) -> Result<(), CmdError> {
    match st.mode & S_IFMT {
        S_IFLNK => {
            let target = match &st.symlink {
                Some(t) => t.clone(),
                None => c.readlink(st.ino).await?,
            };
            std::os::unix::fs::symlink(&target, p).map_err(io_err(p))?;
        }
        S_IFREG => {
            let f = std::fs::File::create(p).map_err(io_err(p))?;
            download(c, st, std::io::BufWriter::with_capacity(1 << 20, f), p).await?;
        }
        other => {
            let cp = cpath(p)?;
            // SAFETY: valid path; mode and device numbers come from the inode.
            let r = unsafe { libc::mknod(cp.as_ptr(), other | (st.mode & 0o7777), st.rdev as libc::dev_t) };
            if r != 0 {
                return Err(io_err(p)(std::io::Error::last_os_error()));
            }
        }
    }
    finish_local(c, st, p).await
}

/// Gives a local copy the inode's xattrs, owner (as root), mode and times.
async fn finish_local(c: &Client, st: &InodeStat, p: &Path) -> Result<(), CmdError> {
    let link = st.mode & S_IFMT == S_IFLNK;
    if !link {
        for name in c.listxattr(st.ino).await? {
            let v = c.getxattr(st.ino, &name).await?;
            set_local_xattr(p, &name, &v)?;
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::lchown(p, Some(st.uid), Some(st.gid)).map_err(io_err(p))?;
    }
    if !link {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(st.mode & 0o7777)).map_err(io_err(p))?;
    }
    set_local_times(p, st.atime, st.mtime)
}
