//! The InoTable: which inode numbers of the rank's range are still free. Stored as the
//! object `mds<rank>_inotable`; every change to it is also in the journal, and the
//! operations are idempotent (taking an ino already taken does nothing) so replaying
//! events older than the stored table is harmless.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::types::{decode, encode, DecodeError, Ino, FIRST_CLIENT_INO, RANK_INO_RANGE};
use crate::ids::Rank;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InoTable {
    pub rank: Rank,
    /// Free ranges as start → end (exclusive), never overlapping or touching.
    free: BTreeMap<Ino, Ino>,
    /// Bumped on every change; stored with the table.
    pub version: u64,
    /// Inode numbers handed out so far (for statfs).
    pub allocated: u64,
}

impl InoTable {
    /// A fresh table: the whole range of the rank is free.
    pub fn new(rank: Rank) -> Self {
        let start = FIRST_CLIENT_INO + rank as u64 * RANK_INO_RANGE;
        let mut free = BTreeMap::new();
        free.insert(start, start + RANK_INO_RANGE);
        InoTable { rank, free, version: 0, allocated: 0 }
    }

    /// The ino the next allocation would take, without taking it.
    pub fn project(&self) -> Option<Ino> {
        self.free.keys().next().copied()
    }

    /// Takes `ino` out of the free set (no-op if it is not free).
    pub fn take(&mut self, ino: Ino) {
        self.take_range(ino, 1);
    }

    /// Takes `start..start+len` out of the free set; the parts already taken are skipped.
    pub fn take_range(&mut self, start: Ino, len: u64) {
        let end = start.saturating_add(len);
        let hits: Vec<(Ino, Ino)> = self.free.range(..end).filter(|(_, &e)| e > start).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in hits {
            self.free.remove(&s);
            if s < start {
                self.free.insert(s, start);
            }
            if e > end {
                self.free.insert(end, e);
            }
            self.allocated += e.min(end) - s.max(start);
            self.version += 1;
        }
    }

    /// The first `len` free inos as a contiguous range (for session preallocation),
    /// without taking them; `None` if no free range is that long.
    pub fn project_range(&self, len: u64) -> Option<(Ino, u64)> {
        self.free.iter().find(|(s, e)| *e - *s >= len).map(|(&s, _)| (s, len))
    }

    /// Gives inos back (a closed session's unused preallocation).
    pub fn release_range(&mut self, start: Ino, len: u64) {
        let mut s = start;
        let mut e = start.saturating_add(len);
        if len == 0 || self.free.range(..e).any(|(&fs, &fe)| fe > s && fs < e) {
            return; // partly free already: a replayed release, ignore
        }
        if let Some((&ps, &pe)) = self.free.range(..s).next_back() {
            if pe == s {
                self.free.remove(&ps);
                s = ps;
            }
        }
        if let Some(ne) = self.free.remove(&e) {
            e = ne;
        }
        self.free.insert(s, e);
        self.allocated = self.allocated.saturating_sub(len);
        self.version += 1;
    }

    pub fn is_free(&self, ino: Ino) -> bool {
        self.free.range(..=ino).next_back().is_some_and(|(_, &e)| e > ino)
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        decode("inotable", b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// That allocation takes the lowest free ino and a replayed take is a no-op.
    #[test]
    fn take_is_idempotent() {
        let mut t = InoTable::new(0);
        let a = t.project().unwrap();
        assert_eq!(a, FIRST_CLIENT_INO);
        t.take(a);
        let v = t.version;
        t.take(a);
        assert_eq!((t.version, t.allocated), (v, 1));
        assert_eq!(t.project(), Some(a + 1));
        assert!(!t.is_free(a) && t.is_free(a + 1));
    }

    /// That ranges split, release merges back, and double release is ignored.
    #[test]
    fn ranges_split_and_merge() {
        let mut t = InoTable::new(1);
        let base = t.project().unwrap();
        assert_eq!(base, FIRST_CLIENT_INO + RANK_INO_RANGE);
        t.take_range(base + 10, 5);
        assert!(t.is_free(base + 9) && !t.is_free(base + 12) && t.is_free(base + 15));
        assert_eq!(t.project_range(20), Some((base + 15, 20)));
        t.release_range(base + 10, 5);
        let v = t.version;
        t.release_range(base + 10, 5);
        assert_eq!(t.version, v);
        assert_eq!(t, { let mut n = InoTable::new(1); n.version = v; n });
        assert_eq!(InoTable::decode(&t.encode()).unwrap(), t);
    }
}
