//! `cephr fs ls|mkdir|put|get|rm|mv|stat|setfattr|getfattr PATH`: file commands through the client
//! library (`roles/client`). They mount the file system given by `--fs` (default: the
//! only one), optionally confined to `--root DIR`, as `--name` (default client.admin).
use std::io::{Read, Write};
use std::path::Path;

use super::{load_config, Cli, Format, FsTarget};
use cephr::error::{CmdError, Errno};
use cephr::ids::EntityName;
use cephr::msg::mds::{InodeStat, S_IFMT, S_IFREG};
use cephr::now_ns;
use cephr::roles::client::ops::{ctx, is_dir};
use cephr::roles::client::Client;

/// Bytes moved per step by put and get (four default objects, written in parallel).
pub const PIECE: usize = 16 << 20;

/// A file command, parsed.
pub enum FileCmd<'a> {
    Ls(&'a str),
    Mkdir { path: &'a str, parents: bool, mode: u32 },
    Put { local: &'a Path, path: &'a str, recursive: bool },
    Get { path: &'a str, local: &'a Path, recursive: bool },
    Rm { path: &'a str, recursive: bool },
    Mv { src: &'a str, dst: &'a str },
    Stat(&'a str),
    Setfattr { path: &'a str, name: &'a str, op: super::fs_xattr::SetOp<'a> },
    Getfattr { path: &'a str, name: Option<&'a str> },
}

pub fn run(cli: &Cli, at: &FsTarget, cmd: FileCmd<'_>) -> anyhow::Result<()> {
    let json = cli.format == Format::Json;
    let cfg = load_config(cli)?;
    let name: EntityName = cli.name.parse().map_err(|e: cephr::error::ParseError| CmdError::einval(e.to_string()))?;
    let key_dir = cli.key_dir.clone().unwrap_or_else(|| cfg.key_dir.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let client = Client::mount_with_keys(&cfg, &key_dir, &name, at.fs.as_deref(), at.root.as_deref()).await?;
        let r = execute(&client, cmd, json).await;
        let u = client.unmount().await;
        r?;
        u?;
        Ok(())
    })
}

async fn execute(c: &Client, cmd: FileCmd<'_>, json: bool) -> anyhow::Result<()> {
    match cmd {
        FileCmd::Ls(path) => ls(c, path, json).await?,
        FileCmd::Stat(path) => {
            let st = c.lookup_path(path).await?;
            let st = c.getattr(st.ino).await.map_err(ctx(path))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
            } else {
                print_stat(path, &st);
            }
        }
        FileCmd::Mkdir { path, parents, mode } => {
            if parents {
                c.mkdirs(path, mode).await?;
            } else {
                let (dir, name) = c.lookup_parent(path).await?;
                c.mkdir(dir.ino, &name, mode).await.map_err(ctx(format!("mkdir {path}")))?;
            }
        }
        FileCmd::Rm { path, recursive } => {
            let (dir, name) = c.lookup_parent(path).await?;
            let st = c.lookup(dir.ino, &name).await.map_err(ctx(path))?;
            if is_dir(&st) && !recursive {
                return Err(CmdError::new(Errno::EISDIR, format!("rm {path}: is a directory (use -r)")).into());
            }
            c.remove_tree(dir.ino, &name).await.map_err(ctx(format!("rm {path}")))?;
        }
        FileCmd::Mv { src, dst } => {
            let (sdir, sname) = c.lookup_parent(src).await?;
            c.lookup(sdir.ino, &sname).await.map_err(ctx(src))?;
            let (ddir, dname) = match c.lookup_path(dst).await {
                Ok(st) if is_dir(&st) => (st, sname.clone()),
                _ => c.lookup_parent(dst).await?,
            };
            c.rename(sdir.ino, &sname, ddir.ino, &dname).await.map_err(ctx(format!("mv {src} {dst}")))?;
        }
        FileCmd::Put { local, path, recursive } => {
            if recursive {
                super::fs_tree::put_tree(c, local, path).await?;
            } else {
                put_file(c, local, path).await?;
            }
        }
        FileCmd::Setfattr { path, name, op } => super::fs_xattr::setfattr(c, path, name, op).await?,
        FileCmd::Getfattr { path, name } => super::fs_xattr::getfattr(c, path, name, json).await?,
        FileCmd::Get { path, local, recursive } => {
            if recursive {
                super::fs_tree::get_tree(c, path, local).await?;
            } else {
                get_file(c, path, local).await?;
            }
        }
    }
    Ok(())
}

fn local_err(path: &Path, e: std::io::Error) -> CmdError {
    let errno = match e.kind() {
        std::io::ErrorKind::NotFound => Errno::ENOENT,
        std::io::ErrorKind::PermissionDenied => Errno::EACCES,
        std::io::ErrorKind::AlreadyExists => Errno::EEXIST,
        _ => Errno::EIO,
    };
    CmdError::new(errno, format!("{}: {e}", path.display()))
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the input.
pub fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Copies the local stream into regular file `st` from offset 0, piece by piece.
pub async fn upload(c: &Client, st: &InodeStat, mut r: impl Read, shown: &Path) -> Result<u64, CmdError> {
    let mut buf = vec![0u8; PIECE];
    let mut off = 0u64;
    loop {
        let n = fill(&mut r, &mut buf).map_err(|e| local_err(shown, e))?;
        if n == 0 {
            break;
        }
        c.write_data(st, off, bytes::Bytes::copy_from_slice(&buf[..n])).await?;
        off += n as u64;
        c.set_size(st.ino, off, now_ns()).await?;
        if n < buf.len() {
            break;
        }
    }
    Ok(off)
}

/// Copies regular file `st` into a local writer.
pub async fn download(c: &Client, st: &InodeStat, mut w: impl Write, shown: &Path) -> Result<u64, CmdError> {
    let mut off = 0u64;
    while off < st.size {
        let piece = c.read_with(st, off, PIECE as u64).await?;
        if piece.is_empty() {
            break;
        }
        w.write_all(&piece).map_err(|e| local_err(shown, e))?;
        off += piece.len() as u64;
    }
    w.flush().map_err(|e| local_err(shown, e))?;
    Ok(off)
}

async fn put_file(c: &Client, local: &Path, path: &str) -> anyhow::Result<()> {
    let (dir, name) = match c.lookup_path(path).await {
        Ok(st) if is_dir(&st) => {
            let base = local.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
                CmdError::einval(format!("{}: cannot name the copy (give a file path)", local.display()))
            })?;
            (st, base.to_string())
        }
        _ => c.lookup_parent(path).await?,
    };
    let (reader, mode): (Box<dyn Read>, u32) = if local == Path::new("-") {
        (Box::new(std::io::stdin()), 0o644)
    } else {
        use std::os::unix::fs::MetadataExt;
        let f = std::fs::File::open(local).map_err(|e| local_err(local, e))?;
        let m = f.metadata().map_err(|e| local_err(local, e))?;
        if m.is_dir() {
            return Err(CmdError::new(Errno::EISDIR, format!("{}: is a directory (use -r)", local.display())).into());
        }
        (Box::new(std::io::BufReader::with_capacity(1 << 20, f)), m.mode() & 0o7777)
    };
    let st = c.create(dir.ino, &name, mode, false).await.map_err(ctx(format!("create {path}")))?;
    let st = if st.size > 0 { c.truncate(st.ino, 0).await? } else { st };
    upload(c, &st, reader, local).await?;
    Ok(())
}

async fn get_file(c: &Client, path: &str, local: &Path) -> anyhow::Result<()> {
    let st = c.lookup_path(path).await?;
    let st = c.getattr(st.ino).await.map_err(ctx(path))?;
    if st.mode & S_IFMT != S_IFREG {
        return Err(CmdError::new(Errno::EINVAL, format!("{path}: not a regular file (use -r for directories)")).into());
    }
    if local == Path::new("-") {
        let out = std::io::stdout();
        match download(c, &st, out.lock(), local).await {
            Err(e) if e.message.contains("Broken pipe") => {}
            r => {
                r?;
            }
        }
        return Ok(());
    }
    let target = if local.is_dir() {
        let base = cephr::roles::client::path::normalize(path)?.pop().unwrap_or_else(|| "root".into());
        local.join(base)
    } else {
        local.to_path_buf()
    };
    let f = std::fs::File::create(&target).map_err(|e| local_err(&target, e))?;
    download(c, &st, std::io::BufWriter::with_capacity(1 << 20, f), &target).await?;
    Ok(())
}

/// `drwxr-xr-x` from a mode.
pub fn mode_string(mode: u32) -> String {
    let t = match mode & S_IFMT {
        cephr::msg::mds::S_IFDIR => 'd',
        cephr::msg::mds::S_IFLNK => 'l',
        cephr::msg::mds::S_IFCHR => 'c',
        cephr::msg::mds::S_IFBLK => 'b',
        cephr::msg::mds::S_IFIFO => 'p',
        cephr::msg::mds::S_IFSOCK => 's',
        _ => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let b = (mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// UTC `YYYY-MM-DD HH:MM:SS` from nanoseconds since the epoch.
pub fn time_string(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

fn print_stat(path: &str, st: &InodeStat) {
    println!("  File: {path}{}", st.symlink.as_ref().map(|t| format!(" -> {t}")).unwrap_or_default());
    println!("   Ino: {:#x}", st.ino);
    println!("  Mode: {:04o} ({})", st.mode & 0o7777, mode_string(st.mode));
    println!("   Uid: {}  Gid: {}", st.uid, st.gid);
    println!("  Size: {}  Blocks: {}  Nlink: {}", st.size, st.blocks, st.nlink);
    println!(" Mtime: {}.{:09}", time_string(st.mtime), st.mtime.rem_euclid(1_000_000_000));
    println!(" Ctime: {}.{:09}", time_string(st.ctime), st.ctime.rem_euclid(1_000_000_000));
}

async fn ls(c: &Client, path: &str, json: bool) -> anyhow::Result<()> {
    let st = c.lookup_path(path).await?;
    let rows: Vec<(String, InodeStat)> = if is_dir(&st) {
        let mut rows = Vec::new();
        for e in c.readdir(st.ino).await.map_err(ctx(path))? {
            let s = match e.stat {
                Some(s) => s,
                None => c.getattr(e.ino).await.map_err(ctx(format!("{path}/{}", e.name)))?,
            };
            rows.push((e.name, s));
        }
        rows
    } else {
        vec![(path.to_string(), st)]
    };
    if json {
        let v: Vec<_> = rows.iter().map(|(n, s)| serde_json::json!({ "name": n, "stat": s })).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut out = String::new();
    for (name, s) in rows {
        let link = s.symlink.as_ref().map(|t| format!(" -> {t}")).unwrap_or_default();
        out.push_str(&format!(
            "{} {:>3} {:>5} {:>5} {:>12} {} {name}{link}\n",
            mode_string(s.mode),
            s.nlink,
            s.uid,
            s.gid,
            s.size,
            &time_string(s.mtime)[..16]
        ));
    }
    let mut o = std::io::stdout();
    let _ = o.write_all(out.as_bytes()).and_then(|_| o.flush());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That the command line definition is consistent (clap's debug checks).
    #[test]
    fn cli_definition() {
        use clap::CommandFactory;
        super::super::Cli::command().debug_assert();
    }

    /// That modes and times print like `ls -l` and `date -u` print them.
    #[test]
    fn formatting() {
        assert_eq!(mode_string(0o040755), "drwxr-xr-x");
        assert_eq!(mode_string(0o100640), "-rw-r-----");
        assert_eq!(mode_string(0o120777), "lrwxrwxrwx");
        assert_eq!(time_string(0), "1970-01-01 00:00:00");
        assert_eq!(time_string(1_700_000_000 * 1_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(time_string(951_782_400 * 1_000_000_000), "2000-02-29 00:00:00");
    }
}
