//! Client ↔ MDS wire types: metadata requests (`MClientRequest`), their replies
//! (`MClientReply`) and session control (`MClientSession`). Requests name inodes by
//! number (`Ino`) and entries by (parent ino, name), the way a kernel client walks a
//! path one lookup at a time. These are data only; the MDS's pure request logic lives in
//! `roles/mds/server.rs` and the actor that carries them is wired separately.
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

use crate::error::Errno;
use crate::ids::PoolId;

/// Caps (`p A L X F` bits) and `MClientCaps` live in `msg::caps`.
pub use super::caps::{CapOp, Caps, ClientCaps, FileMode};

/// An inode number. Small numbers are reserved for the MDS (see `roles/mds/types.rs`).
pub type Ino = u64;

/// Longest name of one directory entry, in bytes (Linux NAME_MAX).
pub const NAME_MAX: usize = 255;

/// File type bits of `mode` (the `S_IFMT` family, as in Linux).
pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;
pub const S_ISUID: u32 = 0o4000;
pub const S_ISGID: u32 = 0o2000;
pub const S_ISVTX: u32 = 0o1000;

/// `open` flags the MDS looks at (Linux values).
pub const O_ACCMODE: u32 = 0o3;
pub const O_WRONLY: u32 = 0o1;
pub const O_RDWR: u32 = 0o2;
pub const O_TRUNC: u32 = 0o1000;

/// `setxattr` flags (Linux values).
pub const XATTR_CREATE: u32 = 1;
pub const XATTR_REPLACE: u32 = 2;

/// Who asks: the credentials permission checks use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub gids: Vec<u32>,
}

impl Caller {
    pub fn root() -> Self {
        Caller::default()
    }
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.gids.contains(&gid)
    }

    /// Mode-bit permission check as Linux does it for a file of `mode` owned by
    /// `uid`:`gid`: owner, then group, then other bits; uid 0 passes except that it
    /// needs some execute bit to execute a non-directory. `mask`: R=4, W=2, X=1.
    pub fn may(&self, mode: u32, uid: u32, gid: u32, mask: u32) -> bool {
        let mask = mask & 7;
        if self.uid == 0 {
            return mask & 1 == 0 || mode & S_IFMT == S_IFDIR || mode & 0o111 != 0;
        }
        let bits = if self.uid == uid {
            (mode >> 6) & 7
        } else if self.in_group(gid) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        bits & mask == mask
    }

    /// Linux's xattr namespace rules for `name` on a file of `mode` owned by
    /// `uid`:`gid` (the MDS's, and the client's when it serves xattrs from its
    /// cache): `user.` needs read (write) permission and a regular file or
    /// directory; `trusted.` is root's; `security.`/`system.` are readable by all
    /// and writable by the owner; other prefixes are not supported.
    pub fn xattr_allowed(&self, name: &str, write: bool, mode: u32, uid: u32, gid: u32) -> Result<(), Errno> {
        if name.is_empty() {
            return Err(Errno::EINVAL);
        }
        if name.len() > NAME_MAX {
            return Err(Errno::ERANGE);
        }
        let refused = if write { Errno::EPERM } else { Errno::ENODATA };
        if name.starts_with("user.") {
            let ft = mode & S_IFMT;
            if ft != S_IFREG && ft != S_IFDIR {
                return Err(refused);
            }
            if !self.may(mode, uid, gid, if write { 2 } else { 4 }) {
                return Err(Errno::EACCES);
            }
        } else if name.starts_with("trusted.") {
            if self.uid != 0 {
                return Err(refused);
            }
        } else if name.starts_with("security.") || name.starts_with("system.") {
            if write && !(self.uid == 0 || self.uid == uid) {
                return Err(Errno::EPERM);
            }
        } else {
            return Err(Errno::ENOTSUP);
        }
        Ok(())
    }

    /// The names of `names` this caller may list (`trusted.` only for root).
    pub fn listable<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        names.into_iter().filter(|k| self.uid == 0 || !k.starts_with("trusted.")).cloned().collect()
    }
}

/// How a file's bytes map onto data objects `<ino hex>.<objno 8 hex>`: stripe units of
/// `stripe_unit` bytes go round-robin over `stripe_count` objects of `object_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLayout {
    pub object_size: u32,
    pub stripe_unit: u32,
    pub stripe_count: u32,
    pub pool: PoolId,
}

impl FileLayout {
    /// Ceph's default: 4 MiB objects, no striping over several objects.
    pub fn default_for(pool: PoolId) -> Self {
        FileLayout { object_size: 4 << 20, stripe_unit: 4 << 20, stripe_count: 1, pool }
    }

    /// How many data objects a file of `size` bytes may occupy (those to purge).
    pub fn object_count(&self, size: u64) -> u64 {
        if size == 0 || self.stripe_unit == 0 || self.object_size == 0 {
            return 0;
        }
        let su = self.stripe_unit as u64;
        let sc = self.stripe_count.max(1) as u64;
        let per_obj = (self.object_size as u64 / su).max(1);
        let units = size.div_ceil(su);
        let stripes_per_set = per_obj * sc;
        let full_sets = units / stripes_per_set;
        let rest = units % stripes_per_set;
        full_sets * sc + rest.min(sc)
    }
}

/// Attributes of one inode as a client sees them. Times are nanoseconds since the epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InodeStat {
    pub ino: Ino,
    /// Permission bits plus the `S_IFMT` type bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub rdev: u64,
    /// 512-byte blocks, derived from size (sparse files are not tracked).
    pub blocks: u64,
    pub layout: FileLayout,
    /// The target of a symbolic link.
    pub symlink: Option<String>,
    /// Bumped on every change; lets a client order replies about one inode.
    pub version: u64,
}

/// Attribute changes of a `setattr`; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttr {
    /// Permission bits only; the type bits are ignored.
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Truncate or extend to this size.
    pub size: Option<u64>,
    pub atime: Option<i64>,
    pub mtime: Option<i64>,
    /// The given times are "now" (utimes(NULL), UTIME_NOW): write permission suffices
    /// instead of ownership (like Ceph's CEPH_SETATTR_[AM]TIME_NOW).
    #[serde(default)]
    pub times_now: bool,
}

/// One metadata operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MdsOp {
    /// `name` may be `.` or `..`; `..` of the session root is the root itself.
    Lookup { parent: Ino, name: String },
    /// Find an inode by number (after reconnect or by an NFS-style handle).
    LookupIno { ino: Ino },
    Getattr { ino: Ino },
    Setattr { ino: Ino, set: SetAttr },
    /// Create (or with `excl: false` open an existing) regular file.
    Create { parent: Ino, name: String, mode: u32, excl: bool },
    /// Create a node of any non-directory type given by the type bits of `mode`.
    Mknod { parent: Ino, name: String, mode: u32, rdev: u64 },
    Open { ino: Ino, flags: u32 },
    Mkdir { parent: Ino, name: String, mode: u32 },
    Symlink { parent: Ino, name: String, target: String },
    Readlink { ino: Ino },
    Link { ino: Ino, new_parent: Ino, new_name: String },
    Unlink { parent: Ino, name: String },
    Rmdir { parent: Ino, name: String },
    /// An async create (Ceph's async dirops): an exclusive create of a regular file with
    /// inode number `ino`, which the MDS delegated to the session (`MdsReply::deleg`).
    /// The client has already answered its caller; the reply only confirms. `stamp`
    /// is the client's time of the create (ns): the new inode's times, which the
    /// client already gave its caller.
    CreateIno { parent: Ino, name: String, mode: u32, ino: Ino, stamp: i64 },
    /// An async mkdir, with an inode number delegated to the session like `CreateIno`.
    MkdirIno { parent: Ino, name: String, mode: u32, ino: Ino, stamp: i64 },
    Rename { src_parent: Ino, src_name: String, dst_parent: Ino, dst_name: String },
    /// Entries in name order after `cookie` (the last name already returned).
    Readdir { ino: Ino, cookie: Option<String>, max: u32 },
    Getxattr { ino: Ino, name: String },
    Setxattr { ino: Ino, name: String, value: ByteBuf, flags: u32 },
    Listxattr { ino: Ino },
    /// Every xattr of the inode, whatever the caller may read: a client holding `Xs`
    /// caches them and applies the namespace rules (`Caller::xattr_allowed`) itself,
    /// as Ceph's clients keep the inode's xattr blob under `Xs`.
    Getxattrs { ino: Ino },
    Removexattr { ino: Ino, name: String },
    /// A writer reports the size and mtime its writes produced (a cap flush).
    SetSize { ino: Ino, size: u64, mtime: i64 },
    Statfs,
}

impl MdsOp {
    /// Whether the op changes metadata (and so is journaled).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            MdsOp::Lookup { .. }
                | MdsOp::LookupIno { .. }
                | MdsOp::Getattr { .. }
                | MdsOp::Readlink { .. }
                | MdsOp::Readdir { .. }
                | MdsOp::Getxattr { .. }
                | MdsOp::Listxattr { .. }
                | MdsOp::Getxattrs { .. }
                | MdsOp::Statfs
        )
    }
}

/// `MClientRequest`: one op with the caller's credentials. `tid` is unique per session
/// and is how a re-sent request is recognised after an MDS failover.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub tid: u64,
    pub op: MdsOp,
    pub caller: Caller,
    /// The client's oldest request still waiting for its safe reply (Ceph's
    /// `oldest_client_tid`): the MDS forgets the completed requests below it, so a
    /// session's completed set stays as small as what the client may still re-send.
    /// 0 (what a client that does not say sends): forget nothing.
    #[serde(default)]
    pub oldest_tid: u64,
}

/// One directory entry of a readdir reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: String,
    pub ino: Ino,
    /// The `S_IFMT` bits of the entry's inode.
    pub d_type: u32,
    /// Attributes when the MDS has them at hand (always for non-hard-linked entries).
    pub stat: Option<InodeStat>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatfsReply {
    /// Inode numbers handed out so far (an upper bound on files in use).
    pub files: u64,
    pub namemax: u32,
    /// Preferred I/O size (the default object size).
    pub bsize: u32,
    /// Space in `bsize` units: the MDS asks the monitors (`df`: the up OSDs' reported
    /// file-system size and free space); 0 when they don't answer within 3 s.
    pub blocks: u64,
    pub bfree: u64,
}

/// What a successful op returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ReplyBody {
    Empty,
    Inode(InodeStat),
    Dir { entries: Vec<DirEntry>, end: bool },
    Readlink(String),
    Xattr(ByteBuf),
    XattrNames(Vec<String>),
    Xattrs(BTreeMap<String, ByteBuf>),
    Statfs(StatfsReply),
}

/// `MClientReply`. An unsafe reply (`safe: false`) is sent once the change is applied in
/// memory; the safe one follows once it is journaled. Reads are safe at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MdsReply {
    pub tid: u64,
    pub result: Result<ReplyBody, Errno>,
    pub safe: bool,
    /// Caps granted on what the reply returns (Ceph issues them inside the reply); the
    /// client applies them before the op returns, so no separate grant round trip.
    #[serde(default)]
    pub caps: Vec<ClientCaps>,
    /// Safe replies to creates: every inode number now delegated to the session for
    /// async creates, as `(start, len)` ranges (journaled before this reply was sent).
    #[serde(default)]
    pub deleg: Option<Vec<(Ino, u64)>>,
}

impl MdsReply {
    /// A reply with no caps and no delegation.
    pub fn new(tid: u64, result: Result<ReplyBody, Errno>, safe: bool) -> MdsReply {
        MdsReply { tid, result, safe, caps: Vec::new(), deleg: None }
    }
}

/// `MClientSession` from a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SessionOp {
    /// Open a session confined to `root` (a path; "/" for the whole fs).
    Open { root: String, metadata: BTreeMap<String, String> },
    /// Heartbeat; the MDS answers with the same `seq`.
    Renew { seq: u64 },
    Close,
    /// Answer to a `Recall`: what the client still holds after trimming.
    RecallAck { seq: u64, caps: u64, dentries: u64 },
}

/// `MClientSession` from the MDS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SessionReply {
    Opened { root_ino: Ino, session_timeout_ms: u64 },
    RenewAck { seq: u64 },
    Closed,
    /// The session was refused (bad root, blocklisted, not permitted) or evicted.
    Rejected { errno: Errno, reason: String },
    /// Cache pressure (sent one-way): keep at most `max_caps` caps and cached dentries,
    /// release the rest, and answer with `RecallAck` carrying the same `seq`.
    Recall { seq: u64, max_caps: u64 },
}

/// `MMdsCommand`: an admin asks the MDS holding a rank about its client sessions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MdsCommand {
    /// Every session of the rank (`cephr client ls`).
    SessionLs,
    /// Evict a client: by entity (`client.x`), entity id (`x`) or instance
    /// (`IP:PORT/NONCE`); answered once its blocklist entry is committed.
    SessionEvict { who: String },
}

/// One session as `cephr client ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionListing {
    /// The session key: entity and messenger nonce (`client.x/1f3a…`), one per mount.
    pub id: String,
    pub entity: String,
    /// The client instance (address/nonce) the blocklist would name.
    pub addr: Option<crate::ids::EntityAddr>,
    /// `open`, `stale`, `killing`, ...
    pub state: String,
    pub root: Ino,
    /// Milliseconds since the session was last renewed.
    pub renew_age_ms: u64,
    pub caps: u64,
    /// Whether a cache-pressure recall to it is outstanding past its deadline.
    pub recall_overdue: bool,
    /// Completed requests the rank remembers for it (re-sends are answered from
    /// them); trimmed below the client's oldest unfinished request.
    #[serde(default)]
    pub completed_requests: u64,
}

/// Answer to an `MMdsCommand`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MdsCommandReply {
    Sessions(Vec<SessionListing>),
    Done(String),
}

/// Checks a name given for a new or existing entry: non-empty, at most `NAME_MAX`
/// bytes, no `/` or NUL. `.` and `..` are left to each op (their errors differ).
pub fn check_name(name: &str) -> Result<(), Errno> {
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.is_empty() || name.bytes().any(|b| b == b'/' || b == 0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Whether `name` is `.` or `..`.
pub fn is_dot(name: &str) -> bool {
    name == "." || name == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That the xattr namespace rules (the MDS's and the client cache's) are Linux's.
    #[test]
    fn xattr_namespaces() {
        let (root, user) = (Caller::root(), Caller { uid: 5, gid: 5, gids: vec![] });
        let file = S_IFREG | 0o640;
        let ok = |c: &Caller, name: &str, write: bool, mode: u32| c.xattr_allowed(name, write, mode, 7, 5);
        assert_eq!(ok(&user, "user.a", false, file), Ok(()), "group may read");
        assert_eq!(ok(&user, "user.a", true, file), Err(Errno::EACCES), "but not write");
        assert_eq!(ok(&user, "user.a", false, S_IFLNK | 0o777), Err(Errno::ENODATA), "no user. xattrs on links");
        assert_eq!(ok(&user, "user.a", true, S_IFLNK | 0o777), Err(Errno::EPERM));
        assert_eq!(ok(&user, "trusted.a", false, file), Err(Errno::ENODATA));
        assert_eq!(ok(&user, "trusted.a", true, file), Err(Errno::EPERM));
        assert_eq!(ok(&root, "trusted.a", true, file), Ok(()));
        assert_eq!(ok(&user, "security.capability", false, S_IFREG), Ok(()), "readable by all");
        assert_eq!(ok(&user, "security.capability", true, file), Err(Errno::EPERM), "writable by the owner");
        assert_eq!(user.xattr_allowed("system.x", true, file, 5, 5), Ok(()));
        assert_eq!(ok(&root, "bogus.a", false, file), Err(Errno::ENOTSUP));
        assert_eq!(ok(&root, "", false, file), Err(Errno::EINVAL));
        assert_eq!(ok(&root, &format!("user.{}", "a".repeat(251)), false, file), Err(Errno::ERANGE));
        let names = [String::from("trusted.t"), String::from("user.u")];
        assert_eq!(user.listable(&names), vec!["user.u".to_string()]);
        assert_eq!(root.listable(&names).len(), 2);
    }

    /// That names are checked like Linux checks path components.
    #[test]
    fn names_are_checked() {
        assert_eq!(check_name("a"), Ok(()));
        assert_eq!(check_name(&"x".repeat(255)), Ok(()));
        assert_eq!(check_name(&"x".repeat(256)), Err(Errno::ENAMETOOLONG));
        assert_eq!(check_name(""), Err(Errno::EINVAL));
        assert_eq!(check_name("a/b"), Err(Errno::EINVAL));
        assert_eq!(check_name("a\0b"), Err(Errno::EINVAL));
        assert!(is_dot(".") && is_dot("..") && !is_dot("..."));
    }

    /// That requests and replies round-trip through MessagePack with named fields.
    #[test]
    fn wire_round_trip() {
        let req = ClientRequest {
            tid: 7,
            op: MdsOp::Setxattr { ino: 0x1, name: "user.a".into(), value: ByteBuf::from(vec![1, 2]), flags: XATTR_CREATE },
            caller: Caller { uid: 1000, gid: 1000, gids: vec![4, 27] },
            oldest_tid: 5,
        };
        let b = rmp_serde::to_vec_named(&req).unwrap();
        assert_eq!(rmp_serde::from_slice::<ClientRequest>(&b).unwrap(), req);
        let mut rep = MdsReply::new(7, Err(Errno::ENODATA), true);
        rep.caps.push(ClientCaps::new(CapOp::Grant, 9, Caps::PIN, 1));
        rep.deleg = Some(vec![(0x1000, 64)]);
        let b = rmp_serde::to_vec_named(&rep).unwrap();
        assert_eq!(rmp_serde::from_slice::<MdsReply>(&b).unwrap(), rep);
    }

    /// That the session-fault messages (recall, its answer, the admin commands and
    /// their replies) round-trip through MessagePack with named fields.
    #[test]
    fn session_fault_messages_round_trip() {
        let recall = SessionReply::Recall { seq: 3, max_caps: 100 };
        let b = rmp_serde::to_vec_named(&recall).unwrap();
        assert_eq!(rmp_serde::from_slice::<SessionReply>(&b).unwrap(), recall);
        let ack = SessionOp::RecallAck { seq: 3, caps: 0, dentries: 12 };
        let b = rmp_serde::to_vec_named(&ack).unwrap();
        assert_eq!(rmp_serde::from_slice::<SessionOp>(&b).unwrap(), ack);
        let evict = MdsCommand::SessionEvict { who: "127.0.0.1:6800/9".into() };
        let b = rmp_serde::to_vec_named(&evict).unwrap();
        assert_eq!(rmp_serde::from_slice::<MdsCommand>(&b).unwrap(), evict);
        let ls = MdsCommandReply::Sessions(vec![SessionListing {
            id: "x".into(),
            entity: "client.x".into(),
            addr: Some("127.0.0.1:6800/9".parse().unwrap()),
            state: "stale".into(),
            root: 1,
            renew_age_ms: 7_000,
            caps: 0,
            recall_overdue: true,
            completed_requests: 4,
        }]);
        let b = rmp_serde::to_vec_named(&ls).unwrap();
        assert_eq!(rmp_serde::from_slice::<MdsCommandReply>(&b).unwrap(), ls);
    }

    /// That the object count of a layout covers every byte and no more.
    #[test]
    fn layout_object_count() {
        let l = FileLayout::default_for(1);
        assert_eq!(l.object_count(0), 0);
        assert_eq!(l.object_count(1), 1);
        assert_eq!(l.object_count(4 << 20), 1);
        assert_eq!(l.object_count((4 << 20) + 1), 2);
        let s = FileLayout { object_size: 4 << 20, stripe_unit: 1 << 20, stripe_count: 3, pool: 1 };
        assert_eq!(s.object_count(1 << 20), 1);
        assert_eq!(s.object_count(3 << 20), 3);
        assert_eq!(s.object_count(13 << 20), 4);
    }
}
