//! The MDS's data model: inode numbers, the full inode, directory-entry linkage, and
//! the names of the RADOS objects metadata lives in.
//!
//! Hard links: the first name of an inode holds the inode itself (a *primary* dentry);
//! each further name is a *remote* dentry that holds only the inode number and type. To
//! find the inode behind a remote dentry, the cache keeps an *anchor table*
//! `ino → (dir, name)` of the primary dentry of every inode that has remote names. When
//! the primary name of a still-linked inode goes away, the inode moves to a *stray*
//! dentry named `<ino hex>` in the rank's own directory (`mdsdir`, 0x100 + rank) and its
//! anchor follows; it is destroyed when its last remote name goes.
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

pub use crate::msg::mds::{FileLayout, Ino, InodeStat};
use crate::msg::mds::{S_IFDIR, S_IFLNK, S_IFMT};
use crate::ids::Rank;

/// The root directory of the file system.
pub const ROOT_INO: Ino = 0x1;
/// First inode number the InoTable of rank 0 hands out (Ceph's value); rank r gets the
/// range starting at `(r + 1) << 40`.
pub const FIRST_CLIENT_INO: Ino = 0x100_0000_0000;
/// Width of each rank's range of inode numbers.
pub const RANK_INO_RANGE: u64 = 1 << 40;

/// The rank's own directory; it holds stray (unlinked but still referenced) inodes.
pub fn mdsdir_ino(rank: Rank) -> Ino {
    0x100 + rank as u64
}

/// The inode number whose "objects" are the rank's journal.
pub fn journal_ino(rank: Rank) -> Ino {
    0x200 + rank as u64
}

/// Whether `ino` is one of the inodes with no parent (root and mdsdirs).
pub fn is_base(ino: Ino) -> bool {
    ino == ROOT_INO || (0x100..0x200).contains(&ino)
}

/// Name of the object holding directory fragment `frag` of directory `ino`.
pub fn dirfrag_object(ino: Ino, frag: u32) -> String {
    format!("{ino:x}.{frag:08x}")
}

/// Name of data object `objno` of file `ino` (in the file's data pool).
pub fn data_object(ino: Ino, objno: u64) -> String {
    format!("{ino:x}.{objno:08x}")
}

/// Name of journal object `objno` of `rank`.
pub fn journal_object(rank: Rank, objno: u64) -> String {
    format!("{:x}.{objno:08x}", journal_ino(rank))
}

/// Name of the journal header object of `rank`; it sits apart from the data objects so
/// that rewriting it never touches the entry stream.
pub fn journal_header_object(rank: Rank) -> String {
    format!("{:x}.header", journal_ino(rank))
}

/// Name of the object holding a base inode (root, mdsdir), which has no parent dentry.
pub fn base_inode_object(ino: Ino) -> String {
    format!("{ino:x}.00000000.inode")
}

pub fn inotable_object(rank: Rank) -> String {
    format!("mds{rank}_inotable")
}

pub fn sessionmap_object(rank: Rank) -> String {
    format!("mds{rank}_sessionmap")
}

pub fn openfiles_object(rank: Rank) -> String {
    format!("mds{rank}_openfiles")
}

pub fn anchortable_object(rank: Rank) -> String {
    format!("mds{rank}_anchortable")
}

/// Name of the stray dentry that holds `ino` in the mdsdir.
pub fn stray_name(ino: Ino) -> String {
    format!("{ino:x}")
}

/// The full state of one inode, as journaled and as stored in its primary dentry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    pub ino: Ino,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
    pub rdev: u64,
    pub layout: FileLayout,
    pub symlink: Option<String>,
    pub xattrs: BTreeMap<String, ByteBuf>,
    pub version: u64,
    /// Writable ranges (max_size) of clients holding `Fw`, by client: after a crash the
    /// file may have data up to there that no size report has covered yet.
    #[serde(default)]
    pub client_ranges: BTreeMap<String, u64>,
    /// Recursive statistics of a directory's subtree (zero for other inodes); kept by
    /// `quota::propagate` in every blob that changes the subtree.
    #[serde(default)]
    pub rstat: RStat,
    /// The directory's quota (`ceph.quota.*`); zero fields mean no limit.
    #[serde(default)]
    pub quota: Quota,
}

/// What lies below a directory, recursively (the directory itself not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RStat {
    /// Sizes of the regular files whose primary dentry is below.
    pub rbytes: u64,
    /// Non-directory dentries below (hard links count once per name).
    pub rfiles: u64,
    /// Directories below.
    pub rsubdirs: u64,
}

impl RStat {
    /// Files plus directories: what `ceph.quota.max_files` limits.
    pub fn rentries(&self) -> u64 {
        self.rfiles + self.rsubdirs
    }
}

/// A directory quota as set through `ceph.quota.max_bytes` / `ceph.quota.max_files`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub max_bytes: u64,
    pub max_files: u64,
}

impl Quota {
    pub fn is_set(&self) -> bool {
        self.max_bytes > 0 || self.max_files > 0
    }
}

impl Inode {
    /// A fresh inode; directories start with nlink 2 (their name and their `.`).
    pub fn new(ino: Ino, mode: u32, uid: u32, gid: u32, now: i64, layout: FileLayout) -> Self {
        let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        Inode {
            ino,
            mode,
            uid,
            gid,
            size: 0,
            nlink,
            atime: now,
            mtime: now,
            ctime: now,
            rdev: 0,
            layout,
            symlink: None,
            xattrs: BTreeMap::new(),
            version: 0,
            client_ranges: BTreeMap::new(),
            rstat: RStat::default(),
            quota: Quota::default(),
        }
    }
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }
    pub fn stat(&self) -> InodeStat {
        InodeStat {
            ino: self.ino,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            nlink: self.nlink,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            rdev: self.rdev,
            blocks: self.size.div_ceil(512),
            layout: self.layout,
            symlink: self.symlink.clone(),
            version: self.version,
        }
    }
    /// Rough bytes this inode takes in memory, for the cache budget.
    pub fn mem_estimate(&self) -> usize {
        let x: usize = self.xattrs.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
        160 + self.symlink.as_ref().map_or(0, |s| s.len()) + x
    }
}

/// What a dentry points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Linkage {
    /// The inode's first name; the dentry holds the inode.
    Primary(Inode),
    /// A further hard link; the inode is found through the anchor table.
    Remote { ino: Ino, d_type: u32 },
}

impl Linkage {
    pub fn ino(&self) -> Ino {
        match self {
            Linkage::Primary(i) => i.ino,
            Linkage::Remote { ino, .. } => *ino,
        }
    }
    pub fn d_type(&self) -> u32 {
        match self {
            Linkage::Primary(i) => i.file_type(),
            Linkage::Remote { d_type, .. } => *d_type,
        }
    }
    pub fn is_dir(&self) -> bool {
        self.d_type() == S_IFDIR
    }
    pub fn mem_estimate(&self) -> usize {
        match self {
            Linkage::Primary(i) => i.mem_estimate(),
            Linkage::Remote { .. } => 16,
        }
    }
}

/// Failure to decode a stored metadata object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {what}: {why}")]
pub struct DecodeError {
    pub what: String,
    pub why: String,
}

/// Encodes with named fields, as every stored structure is.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Encoding plain structs into a Vec cannot fail.
    rmp_serde::to_vec_named(v).unwrap_or_default()
}

/// Decodes stored bytes, naming `what` in the error.
pub fn decode<T: for<'de> Deserialize<'de>>(what: &str, b: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(b).map_err(|e| DecodeError { what: what.to_string(), why: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That object names follow the `<ino hex>.<8 hex>` scheme.
    #[test]
    fn object_names() {
        assert_eq!(dirfrag_object(ROOT_INO, 0), "1.00000000");
        assert_eq!(data_object(0x10000000000, 3), "10000000000.00000003");
        assert_eq!(journal_object(0, 0x12), "200.00000012");
        assert_eq!(journal_object(2, 0), "202.00000000");
        assert_eq!(journal_header_object(1), "201.header");
        assert_eq!(mdsdir_ino(1), 0x101);
        assert_eq!(inotable_object(0), "mds0_inotable");
        assert!(is_base(ROOT_INO) && is_base(mdsdir_ino(3)) && !is_base(FIRST_CLIENT_INO));
    }

    /// That a linkage round-trips through the stored encoding.
    #[test]
    fn linkage_round_trip() {
        let mut i = Inode::new(5, S_IFDIR | 0o755, 1, 2, 3, FileLayout::default_for(1));
        i.xattrs.insert("user.k".into(), ByteBuf::from(vec![0, 1]));
        for l in [Linkage::Primary(i), Linkage::Remote { ino: 9, d_type: 0o100000 }] {
            assert_eq!(decode::<Linkage>("l", &encode(&l)).unwrap(), l);
        }
        assert!(decode::<Linkage>("l", &[0xc1]).is_err());
    }
}
