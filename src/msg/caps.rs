//! Capabilities ("caps"): what a client may do with one inode without asking the MDS,
//! in Ceph's bit layout, and the `MClientCaps` message that grants, revokes,
//! acknowledges, flushes and releases them.
//!
//! Layout (as Ceph's `ceph_fs.h`): bit 0 is `p` (PIN: the client may keep the inode in
//! its cache); then four families of generic bits, each shifted into place: `A`uth
//! (mode, uid, gid) at 2, `L`ink (nlink) at 4, `X`attr at 6 and `F`ile at 8. The generic
//! bits are `s` shared, `x` exclusive, `c` cache, `r` read, `w` write, `b` buffer,
//! `a` write-extend and `l` lazy-io; only the file family uses more than `s` and `x`.
//! Caps render like Ceph prints them: `pAsLsXsFscr`.
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign, Not};

use super::mds::{Ino, InodeStat, O_ACCMODE};

/// Generic bits, shifted into a family by `Caps::gen`.
pub const GSHARED: u32 = 1;
pub const GEXCL: u32 = 2;
pub const GCACHE: u32 = 4;
pub const GRD: u32 = 8;
pub const GWR: u32 = 16;
pub const GBUFFER: u32 = 32;
pub const GWREXTEND: u32 = 64;
pub const GLAZYIO: u32 = 128;

/// Shifts of the families.
pub const SHIFT_AUTH: u32 = 2;
pub const SHIFT_LINK: u32 = 4;
pub const SHIFT_XATTR: u32 = 6;
pub const SHIFT_FILE: u32 = 8;

/// A set of cap bits. Serialized as the plain number, like Ceph's `__le32 caps`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Caps(pub u32);

impl Caps {
    pub const NONE: Caps = Caps(0);
    pub const PIN: Caps = Caps(1);
    pub const AUTH_SHARED: Caps = Caps(GSHARED << SHIFT_AUTH);
    pub const AUTH_EXCL: Caps = Caps(GEXCL << SHIFT_AUTH);
    pub const LINK_SHARED: Caps = Caps(GSHARED << SHIFT_LINK);
    pub const LINK_EXCL: Caps = Caps(GEXCL << SHIFT_LINK);
    pub const XATTR_SHARED: Caps = Caps(GSHARED << SHIFT_XATTR);
    pub const XATTR_EXCL: Caps = Caps(GEXCL << SHIFT_XATTR);
    pub const FILE_SHARED: Caps = Caps(GSHARED << SHIFT_FILE);
    pub const FILE_EXCL: Caps = Caps(GEXCL << SHIFT_FILE);
    pub const FILE_CACHE: Caps = Caps(GCACHE << SHIFT_FILE);
    pub const FILE_RD: Caps = Caps(GRD << SHIFT_FILE);
    pub const FILE_WR: Caps = Caps(GWR << SHIFT_FILE);
    pub const FILE_BUFFER: Caps = Caps(GBUFFER << SHIFT_FILE);
    pub const FILE_WREXTEND: Caps = Caps(GWREXTEND << SHIFT_FILE);
    pub const FILE_LAZYIO: Caps = Caps(GLAZYIO << SHIFT_FILE);
    /// Every shared bit (what any client likes to hold for attribute caching).
    pub const ANY_SHARED: Caps =
        Caps(Caps::AUTH_SHARED.0 | Caps::LINK_SHARED.0 | Caps::XATTR_SHARED.0 | Caps::FILE_SHARED.0);
    /// Every exclusive bit.
    pub const ANY_EXCL: Caps = Caps(Caps::AUTH_EXCL.0 | Caps::LINK_EXCL.0 | Caps::XATTR_EXCL.0 | Caps::FILE_EXCL.0);
    /// Bits that let a client hold changes the MDS does not know yet (dirty state).
    pub const ANY_WR: Caps = Caps(Caps::ANY_EXCL.0 | Caps::FILE_WR.0 | Caps::FILE_BUFFER.0);

    /// Generic bits `g` of the family at `shift`.
    pub const fn gen(g: u32, shift: u32) -> Caps {
        Caps(g << shift)
    }
    /// The generic bits of the family at `shift` (inverse of `gen`).
    pub const fn family(self, shift: u32) -> u32 {
        (self.0 >> shift) & if shift == SHIFT_FILE { 0xff } else { 0x3 }
    }
    pub const fn contains(self, o: Caps) -> bool {
        self.0 & o.0 == o.0
    }
    pub const fn intersects(self, o: Caps) -> bool {
        self.0 & o.0 != 0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn minus(self, o: Caps) -> Caps {
        Caps(self.0 & !o.0)
    }

    /// Caps a client wants for a file opened with open(2) `flags` (Ceph's
    /// `ceph_caps_for_mode`): readers want `Fscr`, writers `Fxwb` plus `AsAx XsXx`.
    pub fn for_open_flags(flags: u32) -> Caps {
        Caps::for_mode(FileMode::from_flags(flags))
    }

    pub fn for_mode(m: FileMode) -> Caps {
        let mut c = Caps::PIN;
        if m.read {
            c |= Caps::FILE_SHARED | Caps::FILE_RD | Caps::FILE_CACHE;
        }
        if m.write {
            c |= Caps::FILE_EXCL | Caps::FILE_WR | Caps::FILE_BUFFER;
            c |= Caps::AUTH_SHARED | Caps::AUTH_EXCL | Caps::XATTR_SHARED | Caps::XATTR_EXCL;
        }
        c
    }

    /// Parses the rendering of `Display` (e.g. `pAsxLsFscrwb`); `-` is the empty set.
    pub fn parse(s: &str) -> Option<Caps> {
        let mut c = Caps::NONE;
        let mut shift: Option<u32> = None;
        for ch in s.chars() {
            let g = match ch {
                '-' if s.len() == 1 => return Some(Caps::NONE),
                'p' if shift.is_none() => {
                    c |= Caps::PIN;
                    continue;
                }
                'A' | 'L' | 'X' | 'F' => {
                    shift = Some(match ch {
                        'A' => SHIFT_AUTH,
                        'L' => SHIFT_LINK,
                        'X' => SHIFT_XATTR,
                        _ => SHIFT_FILE,
                    });
                    continue;
                }
                _ => GEN_LETTERS.iter().find(|(_, l)| *l == ch)?.0,
            };
            let sh = shift?;
            if sh != SHIFT_FILE && g > GEXCL {
                return None;
            }
            c |= Caps::gen(g, sh);
        }
        Some(c)
    }
}

const GEN_LETTERS: [(u32, char); 8] = [
    (GSHARED, 's'),
    (GEXCL, 'x'),
    (GCACHE, 'c'),
    (GRD, 'r'),
    (GWR, 'w'),
    (GBUFFER, 'b'),
    (GWREXTEND, 'a'),
    (GLAZYIO, 'l'),
];

impl fmt::Display for Caps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("-");
        }
        if self.contains(Caps::PIN) {
            f.write_str("p")?;
        }
        for (letter, shift) in [('A', SHIFT_AUTH), ('L', SHIFT_LINK), ('X', SHIFT_XATTR), ('F', SHIFT_FILE)] {
            let g = self.family(shift);
            if g == 0 {
                continue;
            }
            write!(f, "{letter}")?;
            for (bit, l) in GEN_LETTERS {
                if g & bit != 0 {
                    write!(f, "{l}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Caps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl BitOr for Caps {
    type Output = Caps;
    fn bitor(self, o: Caps) -> Caps {
        Caps(self.0 | o.0)
    }
}
impl BitOrAssign for Caps {
    fn bitor_assign(&mut self, o: Caps) {
        self.0 |= o.0;
    }
}
impl BitAnd for Caps {
    type Output = Caps;
    fn bitand(self, o: Caps) -> Caps {
        Caps(self.0 & o.0)
    }
}
impl Not for Caps {
    type Output = Caps;
    fn not(self) -> Caps {
        Caps(!self.0)
    }
}

/// How a file is open (Ceph's `CEPH_FILE_MODE_*`), from open(2) flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMode {
    pub read: bool,
    pub write: bool,
}

impl FileMode {
    pub fn from_flags(flags: u32) -> FileMode {
        match flags & O_ACCMODE {
            0 => FileMode { read: true, write: false },
            1 => FileMode { read: false, write: true },
            _ => FileMode { read: true, write: true },
        }
    }
}

/// What an `MClientCaps` message does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapOp {
    /// MDS → client: the caps in `caps` are now held (a superset of before).
    Grant,
    /// MDS → client: keep only `caps`; flush what the revoked bits cover, then `Ack`.
    Revoke,
    /// Client → MDS: a revoke (or grant) of `seq` is done; `caps` is what it still has.
    Ack,
    /// Client → MDS: what it wants changed (`wanted`) or a larger `max_size` (`want_max`).
    Update,
    /// Client → MDS: dirty metadata (`dirty` bits: size, mtime, atime) to record now.
    Flush,
    /// MDS → client: the flush with `flush_tid` is journaled.
    FlushAck,
    /// Client → MDS: gives up all caps on the inode (it forgets the inode).
    Release,
}

/// `MClientCaps`: one cap message about one inode. Fields that an op does not use
/// are zero. Sent one-way in both directions; ordering per inode is by `seq`, which
/// the MDS bumps on every grant or revoke and the client echoes in acks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientCaps {
    pub op: CapOp,
    pub ino: Ino,
    /// Grant/Revoke: the caps the client holds from now on. Ack/Release: what it has.
    pub caps: Caps,
    /// The caps the client wants (for its open files).
    pub wanted: Caps,
    /// Which caps cover the dirty metadata of a `Flush` (`Fw` for size/mtime, `Ax`...).
    pub dirty: Caps,
    pub seq: u64,
    /// Client's id of a flush, echoed in `FlushAck`.
    pub flush_tid: u64,
    pub size: u64,
    /// Grant: the client may write up to here without asking (its writable range).
    pub max_size: u64,
    /// Update: the client needs its writable range to reach this.
    pub want_max: u64,
    pub mtime: i64,
    pub atime: i64,
    /// Grant/Revoke: the inode's attributes as the MDS has them (the client caches
    /// them under `As`/`Fs`; `version` orders them against replies).
    #[serde(default)]
    pub stat: Option<InodeStat>,
    /// Flush: attributes the client changed under its exclusive caps.
    #[serde(default)]
    pub attrs: Option<CapAttrs>,
}

/// Attributes a client changed itself while it held the exclusive cap covering them
/// (Ceph's client does the same): `Ax` covers mode, uid and gid, `Fx` atime and mtime.
/// They reach the MDS in a cap `Flush`. `None` leaves a field alone; `ctime` is the
/// client's stamp of its last change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapAttrs {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<i64>,
    pub mtime: Option<i64>,
    pub ctime: i64,
}

impl CapAttrs {
    /// The exclusive caps the changed fields need.
    pub fn needs(&self) -> Caps {
        let mut c = Caps::NONE;
        if self.mode.is_some() || self.uid.is_some() || self.gid.is_some() {
            c |= Caps::AUTH_EXCL;
        }
        if self.atime.is_some() || self.mtime.is_some() {
            c |= Caps::FILE_EXCL;
        }
        c
    }

    /// `later`'s changes over these.
    pub fn then(self, later: CapAttrs) -> CapAttrs {
        CapAttrs {
            mode: later.mode.or(self.mode),
            uid: later.uid.or(self.uid),
            gid: later.gid.or(self.gid),
            atime: later.atime.or(self.atime),
            mtime: later.mtime.or(self.mtime),
            ctime: later.ctime.max(self.ctime),
        }
    }

    /// Only the fields `held` covers (the rest stay `None`).
    pub fn covered_by(self, held: Caps) -> CapAttrs {
        let a = held.contains(Caps::AUTH_EXCL);
        let f = held.contains(Caps::FILE_EXCL);
        CapAttrs {
            mode: self.mode.filter(|_| a),
            uid: self.uid.filter(|_| a),
            gid: self.gid.filter(|_| a),
            atime: self.atime.filter(|_| f),
            mtime: self.mtime.filter(|_| f),
            ctime: self.ctime,
        }
    }

    /// Lays the changes over `st` (the type bits of `mode` stay).
    pub fn apply(&self, st: &mut InodeStat) {
        self.apply_to(&mut st.mode, [&mut st.uid, &mut st.gid], [&mut st.atime, &mut st.mtime, &mut st.ctime]);
    }

    /// Lays the changes over an inode's mode, `[uid, gid]` and `[atime, mtime,
    /// ctime]` (the client's attributes and the MDS's inode alike).
    pub fn apply_to(&self, mode: &mut u32, [uid, gid]: [&mut u32; 2], [atime, mtime, ctime]: [&mut i64; 3]) {
        if let Some(m) = self.mode {
            *mode = (*mode & super::mds::S_IFMT) | (m & 0o7777);
        }
        *uid = self.uid.unwrap_or(*uid);
        *gid = self.gid.unwrap_or(*gid);
        *atime = self.atime.unwrap_or(*atime);
        *mtime = self.mtime.unwrap_or(*mtime);
        *ctime = (*ctime).max(self.ctime);
    }
}

impl ClientCaps {
    /// A message with every optional field zero.
    pub fn new(op: CapOp, ino: Ino, caps: Caps, seq: u64) -> ClientCaps {
        ClientCaps {
            op,
            ino,
            caps,
            wanted: Caps::NONE,
            dirty: Caps::NONE,
            seq,
            flush_tid: 0,
            size: 0,
            max_size: 0,
            want_max: 0,
            mtime: 0,
            atime: 0,
            stat: None,
            attrs: None,
        }
    }
}

/// One cap a reconnecting client holds (Ceph's `cap_reconnect_t`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapReconnect {
    pub ino: Ino,
    /// What the previous MDS issued.
    pub issued: Caps,
    /// What the client's open files want.
    pub wanted: Caps,
    /// The last grant/revoke seq the client saw.
    pub seq: u64,
    pub is_dir: bool,
    /// The size the client knows (with its unreported writes).
    pub size: u64,
    /// Its writable range (0: none).
    pub max_size: u64,
    /// Whether the client has the inode open.
    pub open: bool,
    /// Where the client last saw it: parent directory and name (a path hint the MDS
    /// loads the inode through).
    pub path: Option<(Ino, String)>,
}

/// `MClientReconnect`: every cap of one client on the rank.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReconnect {
    pub caps: Vec<CapReconnect>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::msg::mds::{O_RDWR, O_WRONLY};

    /// Attributes of inode 7 of `mode`, mtime and ctime (the rest zero).
    pub(crate) fn stat(mode: u32, mtime: i64, ctime: i64) -> InodeStat {
        let layout = crate::msg::mds::FileLayout::default_for(1);
        InodeStat {
            ino: 7,
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            nlink: 1,
            atime: 0,
            mtime,
            ctime,
            rdev: 0,
            blocks: 0,
            layout,
            symlink: None,
            version: 1,
        }
    }

    /// That attribute changes name the caps they need, later ones win, only what
    /// the held caps cover survives, and applying keeps the type bits.
    #[test]
    fn cap_attrs() {
        let a = CapAttrs { mode: Some(0o640), ctime: 5, ..Default::default() };
        let b = CapAttrs { mode: Some(0o600), mtime: Some(9), ctime: 7, ..Default::default() };
        assert_eq!(a.needs(), Caps::AUTH_EXCL);
        assert_eq!(b.needs(), Caps::AUTH_EXCL | Caps::FILE_EXCL);
        let ab = a.then(b);
        assert_eq!((ab.mode, ab.mtime, ab.ctime), (Some(0o600), Some(9), 7));
        let only_a = ab.covered_by(Caps::parse("pAsxFs").unwrap());
        assert_eq!((only_a.mode, only_a.mtime), (Some(0o600), None));
        assert_eq!(ab.covered_by(Caps::PIN).needs(), Caps::NONE);
        let mut st = stat(0o100644, 1, 6);
        ab.apply(&mut st);
        assert_eq!((st.mode, st.mtime, st.ctime), (0o100600, 9, 7));
    }

    /// That caps render and parse the way Ceph prints them.
    #[test]
    fn render_and_parse() {
        let c = Caps::PIN | Caps::AUTH_SHARED | Caps::LINK_SHARED | Caps::XATTR_SHARED;
        let c = c | Caps::FILE_SHARED | Caps::FILE_CACHE | Caps::FILE_RD;
        assert_eq!(c.to_string(), "pAsLsXsFscr");
        assert_eq!(Caps::parse("pAsLsXsFscr"), Some(c));
        assert_eq!(Caps::NONE.to_string(), "-");
        assert_eq!(Caps::parse("-"), Some(Caps::NONE));
        let all = Caps::parse("pAsxLsxXsxFsxcrwbal").unwrap();
        assert_eq!(all.to_string(), "pAsxLsxXsxFsxcrwbal");
        assert_eq!(all.0, 0xfffd, "bit 1 is unused, as in Ceph");
        assert_eq!(Caps::parse("Ac"), None, "auth has only s and x");
        assert_eq!(Caps::parse("s"), None, "a bit needs a family");
        assert_eq!(Caps::parse("Fq"), None);
    }

    /// That the bits sit where Ceph puts them.
    #[test]
    fn ceph_bit_values() {
        assert_eq!(Caps::AUTH_SHARED.0, 4);
        assert_eq!(Caps::AUTH_EXCL.0, 8);
        assert_eq!(Caps::LINK_SHARED.0, 16);
        assert_eq!(Caps::XATTR_EXCL.0, 128);
        assert_eq!(Caps::FILE_SHARED.0, 256);
        assert_eq!(Caps::FILE_RD.0, 2048);
        assert_eq!(Caps::FILE_WR.0, 4096);
        assert_eq!(Caps::FILE_BUFFER.0, 8192);
        assert_eq!(Caps::FILE_LAZYIO.0, 32768);
        assert_eq!(Caps::parse("Fcb").unwrap().family(SHIFT_FILE), GCACHE | GBUFFER);
    }

    /// That open modes map to the caps Ceph wants for them.
    #[test]
    fn open_mode_wants() {
        assert_eq!(Caps::for_open_flags(0).to_string(), "pFscr");
        assert_eq!(Caps::for_open_flags(O_WRONLY).to_string(), "pAsxXsxFxwb");
        assert_eq!(Caps::for_open_flags(O_RDWR).to_string(), "pAsxXsxFsxcrwb");
        assert_eq!(Caps::for_open_flags(3), Caps::for_open_flags(O_RDWR));
    }

    /// That a cap message round-trips through MessagePack with named fields.
    #[test]
    fn wire_round_trip() {
        let mut m = ClientCaps::new(CapOp::Revoke, 0x1000, Caps::parse("pFrw").unwrap(), 7);
        m.max_size = 1 << 22;
        let b = rmp_serde::to_vec_named(&m).unwrap();
        assert_eq!(rmp_serde::from_slice::<ClientCaps>(&b).unwrap(), m);
    }
}
