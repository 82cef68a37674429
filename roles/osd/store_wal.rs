//! The store's write-ahead log `<dir>/wal.dat`: a file of [`WAL_BYTES`], written full of
//! zeros once when it is created, so a commit *overwrites* blocks the file already has
//! (one `O_DIRECT | O_DSYNC` write, no file-size or block-map change for the file system
//! to journal). A batch that writes only key/value records (no block-file slot) is
//! committed by appending its changes here as one record; its fjall transaction then
//! commits without an `fsync` of fjall's own journal, which grows the journal file on
//! every commit (docs/design.md, "Write-ahead log").
//!
//! # Records
//!
//! A record is a 32-byte header — magic, sequence number, body length, CRC-32C of the
//! body, CRC-32C of the header — and its body (the batch's puts and removes, see
//! [`Changes`]), padded to a multiple of 4096 bytes. Records are written back to back
//! from the start of the file with consecutive sequence numbers. Every fjall commit of a
//! logged batch also stores its sequence number (key [`SEQ_KEY`] of the `wal` table), so
//! after a crash the records fjall is missing are exactly those after the stored number.
//!
//! # Reuse
//!
//! Once fjall's own journal is durable (a batch that went the `fsync` way, or a
//! checkpoint because the next record does not fit), every record is in fjall and the
//! log starts again at offset 0. Recovery reads records from offset 0 while their
//! checksums hold and their numbers follow each other: older records after the newest
//! lap have smaller numbers, so they end the chain, as does a torn last record (never
//! acknowledged).
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use super::StoreError;

/// Size of the log file.
pub(super) const WAL_BYTES: u64 = 16 << 20;
/// Largest record body: a bigger batch commits the `fsync` way.
pub(super) const MAX_BODY: usize = (WAL_BYTES / 4) as usize;
/// Key of the `wal` table holding the last logged sequence number fjall has applied.
pub(super) const SEQ_KEY: &[u8] = b"seq";

const MAGIC: u32 = 0x4c41_5743; // "CWAL" little-endian
const HEADER: usize = 32;
const ALIGN: usize = 4096;

/// Bytes a record with a body of `len` bytes takes in the file.
fn record_len(len: usize) -> usize {
    (HEADER + len).div_ceil(ALIGN) * ALIGN
}

/// Which table a change is for (ids are stable: they are on disk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Table {
    Pgs = 0,
    Objects = 1,
    Data = 2,
    Extents = 3,
    Xattrs = 4,
    Omap = 5,
    Meta = 6,
    Wal = 7,
}

impl Table {
    fn from_id(id: u8) -> Option<Table> {
        const ALL: [Table; 8] =
            [Table::Pgs, Table::Objects, Table::Data, Table::Extents, Table::Xattrs, Table::Omap, Table::Meta, Table::Wal];
        ALL.get(usize::from(id)).copied()
    }
}

/// Marks a removal where a value length would be.
const REMOVED: u32 = u32::MAX;

/// The key/value changes of one batch, in order: `table u8 ‖ key len u32 LE ‖ key ‖
/// value len u32 LE (u32::MAX: removed) ‖ value`.
#[derive(Default)]
pub(super) struct Changes {
    body: Vec<u8>,
}

/// One decoded change; `value` None is a removal.
#[derive(Debug, PartialEq)]
pub(super) struct Change<'b> {
    pub(super) table: Table,
    pub(super) key: &'b [u8],
    pub(super) value: Option<&'b [u8]>,
}

impl Changes {
    pub(super) fn put(&mut self, table: Table, key: &[u8], value: &[u8]) {
        self.entry(table, key, Some(value));
    }

    pub(super) fn remove(&mut self, table: Table, key: &[u8]) {
        self.entry(table, key, None);
    }

    fn entry(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) {
        // Keys and values of the store are far below 4 GiB; a longer one would not fit
        // a record anyway (the batch then commits the fsync way, see `fits`).
        let len32 = |n: usize| u32::try_from(n).unwrap_or(REMOVED - 1);
        self.body.push(table as u8);
        self.body.extend_from_slice(&len32(key.len()).to_le_bytes());
        self.body.extend_from_slice(key);
        match value {
            Some(v) => {
                self.body.extend_from_slice(&len32(v.len()).to_le_bytes());
                self.body.extend_from_slice(v);
            }
            None => self.body.extend_from_slice(&REMOVED.to_le_bytes()),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the body can go into one record.
    pub(super) fn fits(&self) -> bool {
        self.body.len() <= MAX_BODY
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.body
    }
}

/// Decodes a record body into its changes, or says where it is malformed.
pub(super) fn decode_changes(body: &[u8]) -> Result<Vec<Change<'_>>, StoreError> {
    fn bad(what: &str) -> StoreError {
        StoreError::Corrupt(format!("write-ahead log record: {what}"))
    }
    fn take<'b>(rest: &mut &'b [u8], n: usize) -> Result<&'b [u8], StoreError> {
        if rest.len() < n {
            return Err(bad("truncated change"));
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let table = Table::from_id(take(&mut rest, 1)?[0]).ok_or_else(|| bad("unknown table"))?;
        let klen = u32::from_le_bytes(take(&mut rest, 4)?.try_into().map_err(|_| bad("key length"))?);
        let key = take(&mut rest, klen as usize)?;
        let vlen = u32::from_le_bytes(take(&mut rest, 4)?.try_into().map_err(|_| bad("value length"))?);
        let value = if vlen == REMOVED { None } else { Some(take(&mut rest, vlen as usize)?) };
        out.push(Change { table, key, value });
    }
    Ok(out)
}

/// One record found by [`Wal::open`].
#[derive(Debug)]
pub(super) struct Record {
    pub(super) seq: u64,
    pub(super) body: Vec<u8>,
}

/// The log file and where the next record goes.
pub(super) struct Wal {
    file: File,
    head: u64,
    /// Page-aligned staging buffer for `O_DIRECT` writes, kept between records.
    buf: Vec<u8>,
}

fn header(seq: u64, body: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..12].copy_from_slice(&seq.to_le_bytes());
    h[12..16].copy_from_slice(&(body.len() as u32).to_le_bytes());
    h[16..20].copy_from_slice(&crate::crc::crc32c(body).to_le_bytes());
    let hc = crate::crc::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&hc.to_le_bytes());
    h
}

/// Sequence number and body length of a valid header.
fn parse_header(h: &[u8; HEADER]) -> Option<(u64, usize, u32)> {
    let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    if u32_at(0) != MAGIC || crate::crc::crc32c(&h[..20]) != u32_at(20) {
        return None;
    }
    let seq = u64::from_le_bytes([h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11]]);
    Some((seq, u32_at(12) as usize, u32_at(16)))
}

/// Creates `path` as [`WAL_BYTES`] of written zeros, durably (file and directory).
fn create(path: &Path) -> Result<(), StoreError> {
    let tmp = path.with_extension("new");
    let f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    let zeros = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < WAL_BYTES {
        f.write_all_at(&zeros, off)?;
        off += zeros.len() as u64;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Wal {
    /// Opens (creating) `dir/wal.dat`; the records of the chain from offset 0 that come
    /// after record `after`, oldest first, and the number of the chain's last record.
    pub(super) fn open(dir: &Path, after: u64) -> Result<(Wal, Vec<Record>, Option<u64>), StoreError> {
        let path = dir.join("wal.dat");
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path)?,
            Err(e) => return Err(e.into()),
            // `create` renames a complete file into place: any other size is damage,
            // and records it may hold must not be dropped silently.
            Ok(m) if m.len() != WAL_BYTES => {
                return Err(StoreError::Corrupt(format!("{} is {} bytes, not {WAL_BYTES}", path.display(), m.len())));
            }
            Ok(_) => {}
        }
        let (records, last) = scan(&File::open(&path)?, after)?;
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        let file = match o.clone().custom_flags(libc::O_DIRECT | libc::O_DSYNC).open(&path) {
            Ok(f) => f,
            // tmpfs and some others refuse O_DIRECT: O_DSYNC alone is as durable.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => o.custom_flags(libc::O_DSYNC).open(&path)?,
            Err(e) => return Err(e.into()),
        };
        Ok((Wal { file, head: 0, buf: Vec::new() }, records, last))
    }

    /// Whether a record of `body_len` bytes fits before the end of the file.
    pub(super) fn has_room(&self, body_len: usize) -> bool {
        self.head + record_len(body_len) as u64 <= WAL_BYTES
    }

    /// Writes record `seq` durably at the head (the caller checked [`Wal::has_room`]).
    pub(super) fn append(&mut self, seq: u64, body: &[u8]) -> Result<(), StoreError> {
        let len = record_len(body.len());
        if self.head + len as u64 > WAL_BYTES {
            return Err(StoreError::Invalid("write-ahead log record does not fit".into()));
        }
        if self.buf.len() < len + ALIGN {
            self.buf.resize(len + ALIGN, 0);
        }
        let at = self.buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        let out = &mut self.buf[at..at + len];
        out[..HEADER].copy_from_slice(&header(seq, body));
        out[HEADER..HEADER + body.len()].copy_from_slice(body);
        out[HEADER + body.len()..].fill(0);
        self.file.write_all_at(out, self.head)?;
        self.head += len as u64;
        Ok(())
    }

    /// Starts again at offset 0: every record so far is durable in fjall.
    pub(super) fn restart(&mut self) {
        self.head = 0;
    }
}

/// The chain of valid records with consecutive numbers from offset 0.
/// Only the bodies of records after `after` are read (the others are applied already;
/// a torn record is the newest, never one of those).
fn scan(file: &File, after: u64) -> Result<(Vec<Record>, Option<u64>), StoreError> {
    let mut out: Vec<Record> = Vec::new();
    let mut last: Option<u64> = None;
    let mut off = 0u64;
    while off + ALIGN as u64 <= WAL_BYTES {
        let mut h = [0u8; HEADER];
        file.read_exact_at(&mut h, off)?;
        let Some((seq, len, crc)) = parse_header(&h) else { break };
        if last.is_some_and(|l| l.checked_add(1) != Some(seq)) {
            break;
        }
        let total = record_len(len) as u64;
        if len > MAX_BODY || off + total > WAL_BYTES {
            break;
        }
        if seq > after {
            let mut body = vec![0u8; len];
            file.read_exact_at(&mut body, off + HEADER as u64)?;
            if crate::crc::crc32c(&body) != crc {
                break;
            }
            out.push(Record { seq, body });
        }
        last = Some(seq);
        off += total;
    }
    Ok((out, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_reject_garbage() {
        let mut c = Changes::default();
        c.put(Table::Objects, b"k1", b"value");
        c.remove(Table::Omap, b"k2");
        c.put(Table::Data, b"", b"");
        let got = decode_changes(c.as_bytes()).expect("decode");
        assert_eq!(
            got,
            vec![
                Change { table: Table::Objects, key: b"k1", value: Some(b"value") },
                Change { table: Table::Omap, key: b"k2", value: None },
                Change { table: Table::Data, key: b"", value: Some(b"") },
            ]
        );
        let body = c.as_bytes();
        // Cut between two changes, a body decodes to the changes before the cut; cut
        // anywhere else, it does not decode.
        let boundaries = [(16, 1), (27, 2)];
        for cut in 1..body.len() {
            match boundaries.iter().find(|(at, _)| *at == cut) {
                Some((_, n)) => assert_eq!(decode_changes(&body[..cut]).expect("prefix").len(), *n),
                None => assert!(decode_changes(&body[..cut]).is_err(), "a body cut at {cut} must not decode"),
            }
        }
        assert!(decode_changes(&[9, 0, 0, 0, 0, 0, 0, 0, 0]).is_err(), "unknown table");
    }

    #[test]
    fn records_chain_from_offset_zero_and_a_torn_tail_ends_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, recs, _) = Wal::open(dir.path(), 0).expect("open");
        assert!(recs.is_empty());
        assert_eq!(std::fs::metadata(dir.path().join("wal.dat")).expect("meta").len(), WAL_BYTES);
        wal.append(7, b"first").expect("append");
        wal.append(8, &vec![5u8; 10_000]).expect("append");
        wal.append(9, b"third").expect("append");
        drop(wal);
        // Tear the third record's body: the chain ends after the second.
        let path = dir.path().join("wal.dat");
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.write_all_at(b"X", (4096 + 12288 + HEADER) as u64).expect("tear");
        drop(f);
        let (mut wal, recs, _) = Wal::open(dir.path(), 0).expect("reopen");
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(recs[0].body, b"first");
        assert_eq!(recs[1].body, vec![5u8; 10_000]);
        // A new lap: record 10 at offset 0; the old record 8 after it ends the chain.
        wal.append(10, b"new lap").expect("append");
        drop(wal);
        let (_, recs, _) = Wal::open(dir.path(), 0).expect("reopen");
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![10]);
    }

    #[test]
    fn a_log_of_the_wrong_size_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Wal::open(dir.path(), 0).expect("create"));
        let f = OpenOptions::new().write(true).open(dir.path().join("wal.dat")).expect("open");
        f.set_len(WAL_BYTES / 2).expect("truncate");
        match Wal::open(dir.path(), 0) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("wal.dat"), "{m}"),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a damaged log opened"),
        }
    }

    #[test]
    fn a_full_log_refuses_a_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut wal, _, _) = Wal::open(dir.path(), 0).expect("open");
        let body = vec![1u8; MAX_BODY];
        let mut seq = 0;
        while wal.has_room(body.len()) {
            seq += 1;
            wal.append(seq, &body).expect("append");
        }
        assert!(seq >= 3);
        assert!(wal.append(seq + 1, &body).is_err());
        wal.restart();
        assert!(wal.has_room(body.len()));
        wal.append(seq + 1, &body).expect("append after restart");
    }
}
