//! The journal's byte format. The journal is one byte stream striped over objects
//! `<0x200+rank hex>.<objno 8 hex>` of `object_size` bytes each; a header object records
//! where the stream is written to (`write_pos`), where replay starts (`expire_pos`, the
//! start of the oldest segment not yet flushed) and below which objects may be deleted
//! (`trim_pos`).
//!
//! Each entry is framed as `[u32 len][u32 crc32c][u64 seq][payload]` (little endian),
//! where `len` is the payload length, the checksum covers `seq` and the payload, and
//! `seq` increases by one per entry. The reader trusts nothing: every way a stream can
//! be broken maps to a `Damage` report with the stream position, never a panic.
use serde::{Deserialize, Serialize};

use super::events::LogEvent;
use super::types::{decode, encode, DecodeError};

/// "CEPHRJNL" as a number.
pub const JOURNAL_MAGIC: u64 = 0x4345_5048_524a_4e4c;
pub const JOURNAL_FORMAT: u32 = 1;
pub const DEFAULT_OBJECT_SIZE: u32 = 4 << 20;
/// Bytes of framing before each payload.
pub const ENTRY_HEADER: usize = 16;
/// Largest payload the reader accepts; anything larger is taken for garbage.
pub const MAX_ENTRY: u32 = 64 << 20;

/// The journal header object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHeader {
    pub magic: u64,
    pub version: u32,
    pub object_size: u32,
    pub write_pos: u64,
    pub expire_pos: u64,
    pub trim_pos: u64,
}

impl JournalHeader {
    pub fn new(object_size: u32) -> Self {
        JournalHeader { magic: JOURNAL_MAGIC, version: JOURNAL_FORMAT, object_size, write_pos: 0, expire_pos: 0, trim_pos: 0 }
    }
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// Decodes and checks the header: magic, format and position order.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let h: JournalHeader = decode("journal header", b)?;
        let bad = |why: &str| DecodeError { what: "journal header".into(), why: why.into() };
        if h.magic != JOURNAL_MAGIC {
            return Err(bad("bad magic"));
        }
        if h.version != JOURNAL_FORMAT {
            return Err(bad("unknown format version"));
        }
        if h.object_size == 0 {
            return Err(bad("object size 0"));
        }
        if !(h.trim_pos <= h.expire_pos && h.expire_pos <= h.write_pos) {
            return Err(bad("positions out of order (need trim <= expire <= write)"));
        }
        Ok(h)
    }
    /// Journal objects wholly below `trim_pos` may be deleted.
    pub fn trimmable_objects(&self) -> std::ops::Range<u64> {
        0..self.trim_pos / self.object_size as u64
    }
}

/// Frames one event for appending to the stream.
pub fn encode_entry(seq: u64, ev: &LogEvent) -> Vec<u8> {
    let payload = encode(ev);
    let mut out = Vec::with_capacity(ENTRY_HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(seq, &payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    crate::crc::crc32c_append(crate::crc::crc32c(&seq.to_le_bytes()), payload)
}

/// Splits the stream range `pos..pos+len` into `(objno, offset in object, len)` pieces.
pub fn object_extents(pos: u64, len: u64, object_size: u32) -> Vec<(u64, u64, u64)> {
    let os = object_size.max(1) as u64;
    let mut out = Vec::new();
    let (mut p, end) = (pos, pos.saturating_add(len));
    while p < end {
        let (objno, off) = (p / os, p % os);
        let n = (os - off).min(end - p);
        out.push((objno, off, n));
        p += n;
    }
    out
}

/// What is wrong at a position of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DamageKind {
    /// The checksum does not match the bytes.
    BadChecksum,
    /// The sequence number is not the one expected next.
    SeqJump { expected: u64, found: u64 },
    /// The stream ends inside an entry.
    Truncated,
    /// The length field is beyond any sane entry.
    BadLength(u32),
    /// The checksum matches but the payload is not an event we know.
    Undecodable(String),
}

/// The first damaged entry: replay stops here (and the rank is marked damaged).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("journal damaged at {pos}: {kind:?}")]
pub struct Damage {
    pub pos: u64,
    pub kind: DamageKind,
}

/// One decoded entry with its stream position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    pub pos: u64,
    pub seq: u64,
    pub event: LogEvent,
}

/// Parses the journal stream. `bytes` are the stream from `start_pos` (normally
/// `expire_pos`) up to `write_pos`.
pub struct JournalReader<'a> {
    bytes: &'a [u8],
    start_pos: u64,
    /// The seq of the first entry when known (else taken from the first entry).
    first_seq: Option<u64>,
}

impl<'a> JournalReader<'a> {
    pub fn new(bytes: &'a [u8], start_pos: u64, first_seq: Option<u64>) -> Self {
        JournalReader { bytes, start_pos, first_seq }
    }

    /// Every entry, or the first damage found.
    pub fn read_all(&self) -> Result<Vec<JournalEntry>, Damage> {
        match self.read_prefix() {
            (v, None) => Ok(v),
            (_, Some(d)) => Err(d),
        }
    }

    /// The good entries before the first damage, and that damage if any (what a
    /// journal tool shows, and what replay may use after an operator's decision).
    pub fn read_prefix(&self) -> (Vec<JournalEntry>, Option<Damage>) {
        let mut out = Vec::new();
        let mut off = 0usize;
        let mut expect = self.first_seq;
        while off < self.bytes.len() {
            let pos = self.start_pos + off as u64;
            match parse_one(&self.bytes[off..], expect) {
                Ok((seq, event, used)) => {
                    out.push(JournalEntry { pos, seq, event });
                    expect = seq.checked_add(1);
                    off += used;
                }
                Err(kind) => return (out, Some(Damage { pos, kind })),
            }
        }
        (out, None)
    }
}

/// Parses the entry at the start of `b`: (seq, event, bytes used).
fn parse_one(b: &[u8], expect: Option<u64>) -> Result<(u64, LogEvent, usize), DamageKind> {
    if b.len() < ENTRY_HEADER {
        return Err(DamageKind::Truncated);
    }
    let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let (len, crc) = (word(0), word(4));
    let mut s = [0u8; 8];
    s.copy_from_slice(&b[8..16]);
    let seq = u64::from_le_bytes(s);
    if len > MAX_ENTRY {
        return Err(DamageKind::BadLength(len));
    }
    let end = ENTRY_HEADER + len as usize;
    if b.len() < end {
        return Err(DamageKind::Truncated);
    }
    let payload = &b[ENTRY_HEADER..end];
    if checksum(seq, payload) != crc {
        return Err(DamageKind::BadChecksum);
    }
    if let Some(e) = expect {
        if e != seq {
            return Err(DamageKind::SeqJump { expected: e, found: seq });
        }
    }
    let event = decode::<LogEvent>("log event", payload).map_err(|e| DamageKind::Undecodable(e.why))?;
    Ok((seq, event, end))
}

/// The writing side's cursor: next position and seq. Entries are appended to the
/// stream; the caller writes the bytes at `object_extents(pos, len)` and moves
/// `write_pos` in the header once they are durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalCursor {
    pub pos: u64,
    pub next_seq: u64,
}

impl JournalCursor {
    /// Frames `ev`; returns its position and bytes and advances.
    pub fn append(&mut self, ev: &LogEvent) -> (u64, Vec<u8>) {
        let bytes = encode_entry(self.next_seq, ev);
        let pos = self.pos;
        self.pos += bytes.len() as u64;
        self.next_seq += 1;
        (pos, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream(n: u64) -> (Vec<u8>, Vec<u64>) {
        let mut c = JournalCursor { pos: 100, next_seq: 10 };
        let mut out = Vec::new();
        let mut starts = Vec::new();
        for i in 0..n {
            let ev = if i % 2 == 0 { LogEvent::Subtrees { segment: i } } else { LogEvent::NoOp };
            let (p, b) = c.append(&ev);
            starts.push(p);
            out.extend(b);
        }
        (out, starts)
    }

    /// That entries written by the cursor read back with their positions and seqs.
    #[test]
    fn round_trip() {
        let (b, starts) = stream(5);
        let v = JournalReader::new(&b, 100, Some(10)).read_all().unwrap();
        assert_eq!(v.iter().map(|e| e.pos).collect::<Vec<_>>(), starts);
        assert_eq!(v.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![10, 11, 12, 13, 14]);
        assert_eq!(v[2].event, LogEvent::Subtrees { segment: 2 });
    }

    /// That each kind of damage is reported at the broken entry's position.
    #[test]
    fn damage_kinds() {
        let (b, s) = stream(3);
        let r = |b: &[u8], first| JournalReader::new(b, 100, first).read_all().unwrap_err();
        assert_eq!(r(&b[..b.len() - 1], None), Damage { pos: s[2], kind: DamageKind::Truncated });
        let mut flip = b.clone();
        let at = (s[1] - 100) as usize + ENTRY_HEADER + 1;
        flip[at] ^= 0x40;
        assert_eq!(r(&flip, None), Damage { pos: s[1], kind: DamageKind::BadChecksum });
        assert_eq!(r(&b, Some(9)).kind, DamageKind::SeqJump { expected: 9, found: 10 });
        let mut gap = b[..(s[1] - 100) as usize].to_vec();
        gap.extend_from_slice(&b[(s[2] - 100) as usize..]);
        assert_eq!(r(&gap, None), Damage { pos: s[1], kind: DamageKind::SeqJump { expected: 11, found: 12 } });
        let mut big = b.clone();
        big[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(r(&big, None).kind, DamageKind::BadLength(u32::MAX));
        let junk = {
            let payload = [0xc1u8, 0, 0];
            let mut v = 3u32.to_le_bytes().to_vec();
            v.extend(checksum(10, &payload).to_le_bytes());
            v.extend(10u64.to_le_bytes());
            v.extend(payload);
            v
        };
        assert!(matches!(r(&junk, None).kind, DamageKind::Undecodable(_)));
        let (good, dmg) = JournalReader::new(&flip, 100, None).read_prefix();
        assert_eq!((good.len(), dmg.map(|d| d.pos)), (1, Some(s[1])));
    }

    /// That extents cover the range exactly, split at object boundaries.
    #[test]
    fn extents() {
        assert_eq!(object_extents(0, 0, 8), vec![]);
        assert_eq!(object_extents(6, 12, 8), vec![(0, 6, 2), (1, 0, 8), (2, 0, 2)]);
        assert_eq!(object_extents(16, 8, 8), vec![(2, 0, 8)]);
    }

    /// That the header round-trips and nonsense headers are refused.
    #[test]
    fn header() {
        let mut h = JournalHeader::new(DEFAULT_OBJECT_SIZE);
        h.write_pos = 9 << 20;
        h.expire_pos = 5 << 20;
        h.trim_pos = 4 << 20;
        assert_eq!(JournalHeader::decode(&h.encode()).unwrap(), h);
        assert_eq!(h.trimmable_objects(), 0..1);
        h.trim_pos = h.write_pos + 1;
        assert!(JournalHeader::decode(&h.encode()).is_err());
        assert!(JournalHeader::decode(b"garbage").is_err());
    }

    proptest! {
        /// That the reader never panics on random bytes.
        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = JournalReader::new(&b, 0, None).read_prefix();
        }

        /// That truncating or flipping a bit in a good stream yields either the good
        /// prefix or a damage report at an entry start, never a panic or a wrong entry.
        #[test]
        fn truncation_and_flips(n in 1u64..8, cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8, do_flip: bool) {
            let (mut b, starts) = stream(n);
            let good = JournalReader::new(&b, 100, Some(10)).read_all().unwrap();
            if do_flip {
                let i = flip.index(b.len());
                b[i] ^= 1 << bit;
            } else {
                b.truncate(cut.index(b.len()));
            }
            let (v, d) = JournalReader::new(&b, 100, Some(10)).read_prefix();
            for (e, g) in v.iter().zip(&good) {
                prop_assert_eq!(e, g);
            }
            if let Some(d) = d {
                prop_assert!(starts.contains(&d.pos));
                prop_assert_eq!(d.pos, starts[v.len()]);
            } else if !do_flip {
                prop_assert!(starts.contains(&(100 + b.len() as u64)) || b.is_empty());
            }
        }
    }
}
