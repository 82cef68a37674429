//! Lock state machines of an inode (pure, no I/O): the auth, link and xattr locks are
//! *simple* locks (sync, lock, excl and the moves between them); the file lock adds
//! mix (several writers). Each state says which caps it allows a client to hold (all
//! clients, and the loner on top), and which request locks it admits (rd, wr, x).
//!
//! A move between stable states passes through a transitional state `A_B` that allows
//! only what both ends allow; the Locker leaves it for `B` once no client still holds
//! caps beyond what `A_B` allows (the "gather"). So EXCL -> MIX for a second writer
//! sits in `ExclMix` until the loner has given back `Fscb`; it keeps `Frw` all along.
//! The tables follow Ceph's `locks.c` (`simplelock`, `filelock`), simplified to one MDS.
use std::fmt;

use crate::msg::caps::{Caps, GBUFFER, GCACHE, GEXCL, GLAZYIO, GRD, GSHARED, GWR};
use crate::msg::caps::{SHIFT_AUTH, SHIFT_FILE, SHIFT_LINK, SHIFT_XATTR};

/// The four locks of an inode; each guards one cap family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockKind {
    /// mode, uid, gid (`A` caps).
    Auth,
    /// nlink (`L` caps); for a directory also its entries' existence.
    Link,
    /// extended attributes (`X` caps).
    Xattr,
    /// size, mtime, data (`F` caps); for a directory its entries (cached dentries).
    File,
}

impl LockKind {
    pub const ALL: [LockKind; 4] = [LockKind::Auth, LockKind::Link, LockKind::Xattr, LockKind::File];

    pub fn shift(self) -> u32 {
        match self {
            LockKind::Auth => SHIFT_AUTH,
            LockKind::Link => SHIFT_LINK,
            LockKind::Xattr => SHIFT_XATTR,
            LockKind::File => SHIFT_FILE,
        }
    }
    /// Every cap bit of this lock's family.
    pub fn mask(self) -> Caps {
        Caps::gen(if self == LockKind::File { 0xff } else { GSHARED | GEXCL }, self.shift())
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Lock states. The first four are stable; `AB` is the move from `A` to `B`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockState {
    Sync,
    Lock,
    Excl,
    /// File lock only.
    Mix,
    SyncLock,
    ExclLock,
    MixLock,
    LockSync,
    ExclSync,
    MixSync,
    SyncExcl,
    LockExcl,
    MixExcl,
    SyncMix,
    ExclMix,
    LockMix,
}

/// Who a state admits a request lock from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    No,
    /// Requests from the loner, and the MDS's own wrlock for journaling writable
    /// ranges (Ceph's `XCL`).
    Xcl,
    Any,
}

impl Admit {
    pub fn allows(self, xcl: bool) -> bool {
        match self {
            Admit::No => false,
            Admit::Xcl => xcl,
            Admit::Any => true,
        }
    }
}

/// How a request wants to hold a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockMode {
    /// Read a value consistently (no client may hold it exclusively or dirty).
    Rd,
    /// Change it in a way that commutes with other writers (size grows, mtime).
    Wr,
    /// Change it exclusively (setattr, unlink's nlink).
    X,
}

/// What a state allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateProps {
    /// For a transitional state, the stable state it moves to.
    pub next: Option<LockState>,
    /// Whether the state belongs to a loner (the loner cannot change while in it).
    pub loner: bool,
    /// Generic cap bits any client may hold.
    pub caps: u32,
    /// Generic cap bits the loner may hold on top of `caps`.
    pub loner_caps: u32,
    pub rd: Admit,
    pub wr: Admit,
    pub x: Admit,
}

const fn p(next: Option<LockState>, loner: bool, caps: u32, loner_caps: u32, rd: Admit, wr: Admit, x: Admit) -> StateProps {
    StateProps { next, loner, caps, loner_caps, rd, wr, x }
}

use Admit::{Any, No, Xcl};
use LockState::*;

impl LockState {
    pub const ALL: [LockState; 16] = [
        Sync, Lock, Excl, Mix, SyncLock, ExclLock, MixLock, LockSync, ExclSync, MixSync, SyncExcl, LockExcl, MixExcl,
        SyncMix, ExclMix, LockMix,
    ];

    pub fn is_stable(self) -> bool {
        matches!(self, Sync | Lock | Excl | Mix)
    }

    /// Whether a lock of `kind` can be in this state (only the file lock mixes).
    pub fn valid_for(self, kind: LockKind) -> bool {
        kind == LockKind::File || !matches!(self, Mix | MixLock | MixSync | MixExcl | SyncMix | ExclMix | LockMix)
    }

    /// The stable state this one is or moves to.
    pub fn target(self) -> LockState {
        self.props(LockKind::File).next.unwrap_or(self)
    }

    /// The state's table row. Simple locks only use `s` and `x`.
    pub fn props(self, kind: LockKind) -> StateProps {
        if kind == LockKind::File {
            return self.file_props();
        }
        match self {
            Sync => p(None, false, GSHARED, 0, Any, No, No),
            Lock => p(None, false, 0, 0, Any, No, Any),
            Excl => p(None, true, 0, GSHARED | GEXCL, Xcl, Xcl, No),
            SyncLock => p(Some(Lock), false, 0, 0, No, No, No),
            ExclLock => p(Some(Lock), false, 0, 0, No, No, No),
            LockSync => p(Some(Sync), false, 0, 0, No, No, No),
            ExclSync => p(Some(Sync), true, 0, GSHARED, No, No, No),
            SyncExcl => p(Some(Excl), true, 0, GSHARED, No, No, No),
            LockExcl => p(Some(Excl), true, 0, 0, No, No, No),
            // Not states of a simple lock (`valid_for` says so); nothing allowed.
            Mix | MixLock | MixSync | MixExcl | SyncMix | ExclMix | LockMix => p(None, false, 0, 0, No, No, No),
        }
    }

    fn file_props(self) -> StateProps {
        const SCRL: u32 = GSHARED | GCACHE | GRD | GLAZYIO;
        const ALL_EXCL: u32 = GSHARED | GEXCL | GCACHE | GRD | GWR | GBUFFER;
        match self {
            Sync => p(None, false, SCRL, 0, Any, No, No),
            Lock => p(None, false, 0, 0, Any, Any, Any),
            Excl => p(None, true, 0, ALL_EXCL, Xcl, Xcl, No),
            Mix => p(None, false, GRD | GWR | GLAZYIO, 0, No, Any, No),
            SyncLock => p(Some(Lock), false, 0, 0, No, No, No),
            ExclLock => p(Some(Lock), false, 0, 0, No, Xcl, No),
            MixLock => p(Some(Lock), false, 0, 0, No, No, No),
            LockSync => p(Some(Sync), false, 0, 0, No, No, No),
            ExclSync => p(Some(Sync), true, 0, GSHARED | GCACHE | GRD, No, Xcl, No),
            MixSync => p(Some(Sync), false, GRD, 0, No, No, No),
            SyncExcl => p(Some(Excl), true, 0, GSHARED | GCACHE | GRD, No, No, No),
            LockExcl => p(Some(Excl), true, 0, 0, No, No, No),
            MixExcl => p(Some(Excl), true, 0, GRD | GWR, No, Xcl, No),
            SyncMix => p(Some(Mix), false, GRD, 0, No, No, No),
            ExclMix => p(Some(Mix), true, 0, GRD | GWR, No, Xcl, No),
            LockMix => p(Some(Mix), false, 0, 0, No, No, No),
        }
    }

    /// Cap bits (already shifted into `kind`'s family) a client may hold in this state.
    pub fn allowed(self, kind: LockKind, is_loner: bool) -> Caps {
        let pr = self.props(kind);
        let g = if is_loner { pr.caps | pr.loner_caps } else { pr.caps };
        Caps::gen(g, kind.shift()) & kind.mask()
    }

    /// Whether a request lock of `mode` is admitted (`xcl`: from the loner or the MDS).
    pub fn admits(self, kind: LockKind, mode: LockMode, xcl: bool) -> bool {
        let pr = self.props(kind);
        match mode {
            LockMode::Rd => pr.rd,
            LockMode::Wr => pr.wr,
            LockMode::X => pr.x,
        }
        .allows(xcl)
    }

    /// The transitional state that moves from stable `self` to stable `to`.
    pub fn via(self, to: LockState) -> Option<LockState> {
        let t = match (self, to) {
            (Sync, Lock) => SyncLock,
            (Sync, Excl) => SyncExcl,
            (Sync, Mix) => SyncMix,
            (Lock, Sync) => LockSync,
            (Lock, Excl) => LockExcl,
            (Lock, Mix) => LockMix,
            (Excl, Sync) => ExclSync,
            (Excl, Lock) => ExclLock,
            (Excl, Mix) => ExclMix,
            (Mix, Sync) => MixSync,
            (Mix, Lock) => MixLock,
            (Mix, Excl) => MixExcl,
            _ => return None,
        };
        Some(t)
    }

    /// Whether a lock of `kind` may go from `self` to `to`: a stable state to one of its
    /// transitional states, a transitional state to its target. Exhaustive on `self`.
    pub fn can_transition(self, kind: LockKind, to: LockState) -> bool {
        if !self.valid_for(kind) || !to.valid_for(kind) {
            return false;
        }
        match self {
            Sync => matches!(to, SyncLock | SyncExcl | SyncMix),
            Lock => matches!(to, LockSync | LockExcl | LockMix),
            Excl => matches!(to, ExclSync | ExclLock | ExclMix),
            Mix => matches!(to, MixSync | MixLock | MixExcl),
            SyncLock | ExclLock | MixLock => to == Lock,
            LockSync | ExclSync | MixSync => to == Sync,
            SyncExcl | LockExcl | MixExcl => to == Excl,
            SyncMix | ExclMix | LockMix => to == Mix,
        }
    }
}

impl fmt::Display for LockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Sync => "sync",
            Lock => "lock",
            Excl => "excl",
            Mix => "mix",
            SyncLock => "sync->lock",
            ExclLock => "excl->lock",
            MixLock => "mix->lock",
            LockSync => "lock->sync",
            ExclSync => "excl->sync",
            MixSync => "mix->sync",
            SyncExcl => "sync->excl",
            LockExcl => "lock->excl",
            MixExcl => "mix->excl",
            SyncMix => "sync->mix",
            ExclMix => "excl->mix",
            LockMix => "lock->mix",
        };
        f.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Caps {
        Caps::parse(s).unwrap()
    }

    /// That the transition function allows exactly stable -> its transitional states
    /// and transitional -> its target, for every pair of states and every lock kind.
    #[test]
    fn transition_table() {
        let mut legal = 0;
        for kind in LockKind::ALL {
            for from in LockState::ALL {
                for to in LockState::ALL {
                    let ok = from.can_transition(kind, to);
                    let valid = from.valid_for(kind) && to.valid_for(kind);
                    let want = valid
                        && if from.is_stable() {
                            !to.is_stable() && from.via(to.target()) == Some(to)
                        } else {
                            to == from.target()
                        };
                    assert_eq!(ok, want, "{kind:?}: {from} -> {to}");
                    legal += ok as u32;
                }
            }
        }
        // Simple locks: 3 stable states x 2 moves + 6 finishing moves, three kinds; the
        // file lock: 4 x 3 + 12.
        assert_eq!(legal, 3 * 12 + 24);
    }

    /// That every transitional state allows no more than both of its ends allow, so a
    /// move never hands out a cap it will have to take back.
    #[test]
    fn transitional_states_allow_the_intersection() {
        for kind in LockKind::ALL {
            for from in [Sync, Lock, Excl, Mix] {
                for to in [Sync, Lock, Excl, Mix] {
                    let Some(t) = from.via(to).filter(|t| t.valid_for(kind)) else { continue };
                    for loner in [false, true] {
                        let both = from.allowed(kind, loner) & to.allowed(kind, loner);
                        assert!(both.contains(t.allowed(kind, loner)), "{kind:?} {t} loner={loner}");
                    }
                }
            }
        }
    }

    /// That the states hand out Ceph's caps: shared for all in sync, everything to the
    /// loner in excl, read/write (no cache or buffer) for all in mix.
    #[test]
    fn caps_per_state() {
        assert_eq!(Sync.allowed(LockKind::File, false), c("Fscrl"));
        assert_eq!(Excl.allowed(LockKind::File, true), c("Fsxcrwb"));
        assert_eq!(Excl.allowed(LockKind::File, false), Caps::NONE);
        assert_eq!(Mix.allowed(LockKind::File, false), c("Frwl"));
        assert_eq!(ExclMix.allowed(LockKind::File, true), c("Frw"));
        assert_eq!(Sync.allowed(LockKind::Auth, false), c("As"));
        assert_eq!(Excl.allowed(LockKind::Auth, true), c("Asx"));
        assert_eq!(Excl.allowed(LockKind::Xattr, true), c("Xsx"));
        assert_eq!(Lock.allowed(LockKind::Link, true), Caps::NONE);
    }

    /// That request locks are admitted as the seed describes: a wrlock in excl->mix
    /// only for the loner's side, xlocks only in lock, rdlocks in sync.
    #[test]
    fn request_locks() {
        assert!(ExclMix.admits(LockKind::File, LockMode::Wr, true));
        assert!(!ExclMix.admits(LockKind::File, LockMode::Wr, false));
        assert!(Mix.admits(LockKind::File, LockMode::Wr, false));
        assert!(!Mix.admits(LockKind::File, LockMode::Rd, false));
        assert!(Sync.admits(LockKind::Auth, LockMode::Rd, false));
        assert!(!Sync.admits(LockKind::Auth, LockMode::X, false));
        assert!(Lock.admits(LockKind::Auth, LockMode::X, false));
        assert!(!Excl.admits(LockKind::Auth, LockMode::X, true));
        assert!(Excl.admits(LockKind::File, LockMode::Rd, true) && !Excl.admits(LockKind::File, LockMode::Rd, false));
    }
}
