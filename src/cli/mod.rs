//! Command-line front end: argument parsing (clap), daemon start-up, and the admin
//! commands, which talk to the monitors as `client.admin` (or `--name`).
mod admin;
mod bench;
mod bench_data;
mod bench_meta;
mod bench_stats;
mod client;
mod cluster;
mod daemon;
mod format;
mod fs;
mod fs_tree;
mod fs_xattr;
mod journal;
mod mount;
mod rados;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

use cephr::error::{CmdError, Errno};

#[derive(Parser, Debug)]
#[command(name = "cephr", version, about = "cephr: a distributed POSIX file system modelled on CephFS")]
pub struct Cli {
    /// Cluster configuration file (DIR/cephr.toml).
    #[arg(short = 'c', long = "conf", env = "CEPHR_CONF", global = true)]
    pub conf: Option<PathBuf>,
    /// Override an option: --set mds_beacon_grace=3 (repeatable).
    #[arg(long = "set", global = true, value_name = "OPTION=VALUE")]
    pub set: Vec<String>,
    /// Run daemons of this role instead of a command.
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// Daemon id for --role (e.g. `a` for mon.a).
    #[arg(long)]
    pub id: Option<String>,
    /// Entity to act as for commands.
    #[arg(short = 'n', long = "name", default_value = "client.admin", global = true)]
    pub name: String,
    /// Directory holding ca.crt and NAME.crt/NAME.key (default: the cluster's key_dir).
    #[arg(long = "key-dir", global = true)]
    pub key_dir: Option<PathBuf>,
    /// Output format of read commands.
    #[arg(long, value_enum, default_value = "plain", global = true)]
    pub format: Format,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Mon,
    Osd,
    Mds,
    All,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Plain,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Cluster directory management.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Client identities and capabilities.
    #[command(subcommand)]
    Auth(AuthCmd),
    /// Cluster health and services (like `ceph -s`).
    Status,
    /// Monitor commands.
    #[command(subcommand)]
    Mon(MonCmd),
    /// Ask one daemon directly: `cephr tell mon.b status` (its own view, not the leader's).
    Tell { daemon: String, what: String },
    /// File systems.
    #[command(subcommand)]
    Fs(FsCmd),
    /// MDS daemons.
    #[command(subcommand)]
    Mds(MdsCmd),
    /// Client sessions of a file system (asks the MDS holding rank 0).
    #[command(subcommand)]
    Client(ClientCmd),
    /// OSDs, pools and the blocklist.
    #[command(subcommand)]
    Osd(OsdCmd),
    /// Placement group states.
    #[command(subcommand)]
    Pg(PgCmd),
    /// Raw space of the OSDs and objects per pool.
    Df,
    /// Offline look at a stopped OSD's store: `digest` prints every PG's object
    /// count and content digest (to compare replicas).
    ObjectstoreTool {
        #[arg(long = "data")]
        data: PathBuf,
        op: String,
    },
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(BenchCmd),
    /// A rank's MDS journal, read from RADOS (like cephfs-journal-tool).
    Journal {
        #[arg(long)]
        fs: String,
        #[arg(long, default_value_t = 0)]
        rank: u32,
        #[command(subcommand)]
        cmd: JournalCmd,
    },
    /// Mount the file system with FUSE (daemonizes unless -f).
    Mount(mount::MountArgs),
    /// Unmount a FUSE mount (-l: lazily, when no longer busy); its process then exits.
    Umount {
        mountpoint: PathBuf,
        #[arg(short = 'l', long = "lazy")]
        lazy: bool,
    },
    /// Objects of a pool, straight to the OSDs.
    Rados {
        #[arg(short = 'p', long = "pool")]
        pool: String,
        #[command(subcommand)]
        cmd: RadosCmd,
    },
}

#[derive(Subcommand, Debug)]
pub enum JournalCmd {
    /// Write, expire and trim positions.
    Header,
    #[command(subcommand)]
    Event(EventCmd),
    /// Checks every entry from the expire position: "Overall journal integrity: OK".
    Inspect,
}

#[derive(Subcommand, Debug)]
pub enum EventCmd {
    /// One line per event: seq, position, type and description.
    List,
    /// One event in full.
    Get { seq: u64 },
}

#[derive(Subcommand, Debug)]
pub enum PgCmd {
    /// Summary: PGs by state, objects, degraded objects.
    Stat,
    /// Every PG: state, acting set, primary, last update, objects.
    Dump,
}

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Write then read objects of one size with N in flight (like `rados bench`).
    Rados {
        #[arg(short = 'p', long = "pool")]
        pool: String,
        #[arg(long, default_value = "4M")]
        size: String,
        #[arg(long, default_value_t = 16)]
        threads: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Runtime worker threads of the client (0: one thread for all). Default: 0 with
        /// one op in flight (a reply then wakes no second thread), else 2.
        #[arg(long = "client-threads")]
        client_threads: Option<usize>,
    },
    /// Single-threaded metadata ops (create, stat, readdir, unlink, mkdir, rmdir) on a
    /// mounted file system, or through the client library with --fs NAME.
    Meta {
        /// A mounted file system (plain syscalls); or give --fs.
        mountpoint: Option<PathBuf>,
        /// A cephr file system, used through the client library.
        #[arg(long)]
        fs: Option<String>,
        /// Files created, stat'ed and unlinked.
        #[arg(long, default_value_t = 5000)]
        files: usize,
        /// Directories made and removed.
        #[arg(long, default_value_t = 2000)]
        dirs: usize,
        /// Runs; the JSON line holds the median of each phase.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// With --fs: runtime worker threads of the client (0: one thread for all).
        /// One is fastest for a single-threaded workload (no cross-thread wake-ups).
        #[arg(long = "client-threads", default_value_t = 1)]
        client_threads: usize,
    },
    /// Sequential 4 MiB writes + fsync, then a cold and a warm read, of one file.
    Data {
        mountpoint: Option<PathBuf>,
        #[arg(long)]
        fs: Option<String>,
        #[arg(long = "size-mib", default_value_t = 256)]
        size_mib: u64,
        /// With --fs: runtime worker threads of the client (0: one thread for all).
        #[arg(long = "client-threads", default_value_t = 2)]
        client_threads: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum RadosCmd {
    /// Store FILE (- for stdin) as OBJECT.
    Put { object: String, file: String },
    /// Write OBJECT to FILE (- for stdout).
    Get { object: String, file: String },
    Append { object: String, file: String },
    Rm { object: String },
    Stat { object: String },
    Truncate { object: String, size: u64 },
    Ls,
    Listomapkeys { object: String },
    Getomapval { object: String, key: String },
    Setomapval { object: String, key: String, value: String },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Write a new cluster directory: fsid, CA, keys, cephr.toml.
    Create {
        #[arg(long)]
        dir: PathBuf,
        /// Monitor ids, comma-separated (1, 3 or 5).
        #[arg(long, default_value = "a,b,c", value_delimiter = ',')]
        mons: Vec<String>,
        #[arg(long, default_value = "default")]
        profile: String,
        /// First port; default: free ports picked at random.
        #[arg(long)]
        port_base: Option<u16>,
        /// Number of OSDs (osd.0 ..), each in its own CRUSH host bucket.
        #[arg(long, default_value_t = 3)]
        osds: u32,
        /// Number of MDS daemons (mds.a, mds.b, ..): one active per rank, the rest standby.
        #[arg(long, default_value_t = 2)]
        mds: u32,
        /// File system the monitors create at first start (pools NAME_metadata, NAME_data).
        #[arg(long)]
        fs: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuthCmd {
    /// Issue a certificate for client.NAME and record its caps: --caps 'mds=allow rw path=/x'.
    Add {
        entity: String,
        #[arg(long = "caps", value_name = "SERVICE=CAPS")]
        caps: Vec<String>,
    },
    Ls,
    Get { entity: String },
    Rm { entity: String },
}

#[derive(Subcommand, Debug)]
pub enum MonCmd {
    /// Monitor map, leader and quorum.
    Stat,
}

#[derive(Subcommand, Debug)]
pub enum FsCmd {
    New { fs: String, metadata_pool: String, data_pool: String },
    /// Without PATH: the file systems. With PATH: a directory listing (`ls -l` style).
    Ls {
        path: Option<String>,
        #[command(flatten)]
        at: FsTarget,
    },
    /// Make a directory (-p: with missing parents, no error if it exists).
    Mkdir {
        path: String,
        #[arg(short = 'p', long)]
        parents: bool,
        /// Permission bits, octal.
        #[arg(short = 'm', long, default_value = "755")]
        mode: String,
        #[command(flatten)]
        at: FsTarget,
    },
    /// Copy a local file (- for stdin) to PATH; -r copies a directory tree.
    Put {
        #[arg(short = 'r', long)]
        recursive: bool,
        local: PathBuf,
        path: String,
        #[command(flatten)]
        at: FsTarget,
    },
    /// Rename or move an entry (into DST when DST is a directory).
    Mv {
        src: String,
        dst: String,
        #[command(flatten)]
        at: FsTarget,
    },
    /// Attributes of an entry: ino, mode, uid, gid, size, nlink, mtime.
    Stat {
        path: String,
        #[command(flatten)]
        at: FsTarget,
    },
    /// `get FS`: one file system's MDSMap. `get PATH LOCAL [-r]`: copy PATH to a
    /// local file (- for stdout); -r copies a directory tree.
    Get {
        #[arg(id = "target", value_name = "FS|PATH")]
        fs: String,
        local: Option<PathBuf>,
        #[arg(short = 'r', long)]
        recursive: bool,
        #[command(flatten)]
        at: FsTarget,
    },
    /// Set an extended attribute (`-x`: remove it), e.g. `ceph.quota.max_bytes`.
    Setfattr {
        path: String,
        #[arg(value_name = "NAME")]
        attr: String,
        value: Option<String>,
        #[arg(short = 'x', long = "remove", conflicts_with = "value")]
        remove: bool,
        #[command(flatten)]
        at: FsTarget,
    },
    /// Print an extended attribute (also `ceph.dir.rbytes|rfiles|rsubdirs|rentries`,
    /// `ceph.quota.*`); without NAME, every listed one.
    Getfattr {
        path: String,
        #[arg(value_name = "NAME")]
        attr: Option<String>,
        #[command(flatten)]
        at: FsTarget,
    },
    Dump,
    Status { fs: Option<String> },
    /// Set max_mds, allow_standby_replay, joinable, session_timeout or session_autoclose.
    Set { fs: String, var: String, val: String },
    /// Take a file system down: not joinable, every rank failed.
    Fail { fs: String },
    /// `rm /PATH [-r]` removes a file or tree; `rm FS --yes-i-really-mean-it` removes
    /// a whole file system (file paths start with `/`, file system names never do).
    Rm {
        #[arg(id = "target", value_name = "FS|/PATH")]
        fs: String,
        #[arg(long = "yes-i-really-mean-it")]
        yes: bool,
        #[arg(short = 'r', long)]
        recursive: bool,
        #[command(flatten)]
        at: FsTarget,
    },
}

/// Which file system file commands act on.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FsTarget {
    /// File system name (default: the only one).
    #[arg(long = "fs")]
    pub fs: Option<String>,
    /// Mount this sub-directory as the root.
    #[arg(long = "root")]
    pub root: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum MdsCmd {
    /// Fail an MDS: <fs>:<rank>, <rank>, or a daemon name.
    Fail { who: String },
}

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Sessions: id, entity, address, state, root, time since renewal, caps.
    Ls { fs: String },
    /// Evict a client (by id, entity or IP:PORT/NONCE) and blocklist its instance.
    Evict { fs: String, client: String },
}

#[derive(Subcommand, Debug)]
pub enum OsdCmd {
    Tree,
    /// The whole OSDMap: OSDs, pools, pg_temp, blocklist.
    Dump,
    /// Where an object goes: its PG and the PG's up and acting sets.
    Map { pool: String, object: String },
    #[command(subcommand)]
    Pool(PoolCmd),
    Down { id: String },
    Out { id: String },
    In { id: String },
    #[command(subcommand)]
    Blocklist(BlocklistCmd),
}

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    Create {
        pool: String,
        #[arg(long)]
        pg_num: Option<u32>,
        #[arg(long)]
        size: Option<u32>,
        #[arg(long)]
        min_size: Option<u32>,
    },
    Ls {
        /// `detail` for every field.
        detail: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BlocklistCmd {
    Ls,
    /// Blocklist IP:PORT[/NONCE] for EXPIRE seconds (default mon_osd_blocklist_default_expire).
    Add { addr: String, expire: Option<f64> },
    Rm { addr: String },
}

/// Lets a command die quietly of SIGPIPE when its reader goes away (`cephr ... | head`),
/// as other command-line tools do: Rust ignores SIGPIPE, so a print to the closed pipe
/// would panic instead. Daemons and the mount keep ignoring it.
fn restore_sigpipe() {
    // SAFETY: resets one signal's disposition; no handler is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Parses arguments, runs, and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    if cli.role.is_none() && !matches!(cli.cmd, Some(Cmd::Mount(_))) {
        restore_sigpipe();
    }
    let r = if let Some(role) = cli.role {
        daemon::run(&cli, role)
    } else if let Some(cmd) = &cli.cmd {
        match cmd {
            Cmd::Cluster(c) => cluster::run(c),
            Cmd::Rados { pool, cmd } => rados::run(&cli, pool, cmd),
            Cmd::Journal { fs, rank, cmd } => journal::run(&cli, fs, *rank, cmd),
            Cmd::Fs(f) => match fs_file_cmd(f) {
                Some((at, fc)) => fc.and_then(|fc| fs::run(&cli, at, fc)),
                None => admin::run(&cli, cmd),
            },
            Cmd::ObjectstoreTool { data, op } => objectstore_tool(data, op),
            Cmd::Client(c) => client::run(&cli, c),
            Cmd::Mount(a) => mount::run(&cli, a),
            Cmd::Umount { mountpoint, lazy } => mount::umount(mountpoint, *lazy),
            Cmd::Bench(BenchCmd::Rados { pool, size, threads, seconds, client_threads }) => {
                let a = bench::BenchArgs { pool, size, threads: *threads, seconds: *seconds, client_threads: *client_threads };
                bench::run(&cli, a)
            }
            Cmd::Bench(BenchCmd::Meta { mountpoint, fs, files, dirs, repeat, client_threads }) => {
                let a = bench_meta::MetaArgs { files: *files, dirs: *dirs, repeat: *repeat, client_threads: *client_threads };
                bench_meta::Target::pick(mountpoint.as_deref(), fs.as_deref())
                    .map_err(Into::into)
                    .and_then(|t| bench_meta::run(&cli, t, a))
            }
            Cmd::Bench(BenchCmd::Data { mountpoint, fs, size_mib, client_threads }) => {
                bench_meta::Target::pick(mountpoint.as_deref(), fs.as_deref())
                    .map_err(Into::into)
                    .and_then(|t| bench_data::run(&cli, t, *size_mib, *client_threads))
            }
            other => admin::run(&cli, other),
        }
    } else {
        Err(CmdError::einval("nothing to do: give a command (see --help) or --role").into())
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            let (errno, msg) = match e.downcast_ref::<CmdError>() {
                Some(c) => (c.errno, c.message.clone()),
                None => (Errno::EINVAL, format!("{e:#}")),
            };
            eprintln!("Error {errno:?}: {msg}");
            errno.code()
        }
    }
}

fn objectstore_tool(data: &std::path::Path, op: &str) -> anyhow::Result<()> {
    if op != "digest" {
        return Err(CmdError::einval(format!("unknown op '{op}' (digest)")).into());
    }
    let store = cephr::roles::osd::store::ObjectStore::open(data)?;
    for pg in store.list_pgs()? {
        let d = store.pg_digest(pg)?;
        let combined = d.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, (_, x)| (h ^ x).wrapping_mul(0x100_0000_01b3));
        println!("{pg} {} {combined:016x}", d.len());
    }
    Ok(())
}

/// The file-command form of an `fs` subcommand, if it is one.
fn fs_file_cmd(f: &FsCmd) -> Option<(&FsTarget, anyhow::Result<fs::FileCmd<'_>>)> {
    use fs::FileCmd as F;
    Some(match f {
        FsCmd::Ls { path: Some(p), at } => (at, Ok(F::Ls(p))),
        FsCmd::Rm { fs, yes: false, recursive, at } if fs.starts_with('/') => {
            (at, Ok(F::Rm { path: fs, recursive: *recursive }))
        }
        FsCmd::Mkdir { path, parents, mode, at } => {
            let m = u32::from_str_radix(mode, 8)
                .map_err(|_| CmdError::einval(format!("mode '{mode}' is not octal")).into())
                .map(|mode| F::Mkdir { path, parents: *parents, mode: mode & 0o7777 });
            (at, m)
        }
        FsCmd::Put { recursive, local, path, at } => (at, Ok(F::Put { local, path, recursive: *recursive })),
        FsCmd::Get { fs: path, local: Some(local), recursive, at } => {
            (at, Ok(F::Get { path, local, recursive: *recursive }))
        }
        FsCmd::Mv { src, dst, at } => (at, Ok(F::Mv { src, dst })),
        FsCmd::Stat { path, at } => (at, Ok(F::Stat(path))),
        FsCmd::Setfattr { path, attr, value, remove, at } => {
            let op = match (value, remove) {
                (Some(v), false) => Ok(fs_xattr::SetOp::Set(v)),
                (None, true) => Ok(fs_xattr::SetOp::Remove),
                _ => Err(CmdError::einval("setfattr: give a VALUE or -x").into()),
            };
            (at, op.map(|op| F::Setfattr { path, name: attr, op }))
        }
        FsCmd::Getfattr { path, attr, at } => (at, Ok(F::Getfattr { path, name: attr.as_deref() })),
        _ => return None,
    })
}

/// Loads the configuration named by -c/CEPHR_CONF.
pub fn load_config(cli: &Cli) -> anyhow::Result<cephr::config::ClusterConfig> {
    let path = cli
        .conf
        .clone()
        .ok_or_else(|| CmdError::einval("no configuration: pass -c DIR/cephr.toml or set CEPHR_CONF"))?;
    cephr::config::ClusterConfig::load(&path, &cli.set).map_err(|e| CmdError::einval(e.to_string()).into())
}
