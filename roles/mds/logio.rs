//! Pure pieces of journal I/O: group commit batching, where a batch lands in the
//! journal objects, how the end of the stream read back is judged (a torn last entry
//! is normal, anything broken before it is damage), and which objects a trim removes.
//! The MdLog actor (`mdlog.rs`) and replay (`store.rs`) drive these with RADOS I/O.
use super::journal::{object_extents, Damage, DamageKind, JournalEntry, JournalReader, ENTRY_HEADER};

/// One framed entry waiting to be written, with whoever waits for it.
#[derive(Debug)]
pub struct Pending<T> {
    pub pos: u64,
    pub bytes: Vec<u8>,
    /// The entry starts a segment: the header is rewritten after the batch.
    pub segment_start: bool,
    pub waiter: T,
}

/// A contiguous run of entries written with one set of object writes.
#[derive(Debug)]
pub struct Batch<T> {
    pub pos: u64,
    pub bytes: Vec<u8>,
    pub waiters: Vec<T>,
    pub segment_start: bool,
}

impl<T> Batch<T> {
    pub fn end(&self) -> u64 {
        self.pos + self.bytes.len() as u64
    }
    /// `(objno, offset in object, start in self.bytes, len)` of each object write.
    pub fn writes(&self, object_size: u32) -> Vec<(u64, u64, usize, usize)> {
        let mut at = 0usize;
        object_extents(self.pos, self.bytes.len() as u64, object_size)
            .into_iter()
            .map(|(o, off, n)| {
                let w = (o, off, at, n as usize);
                at += n as usize;
                w
            })
            .collect()
    }
}

/// Group commit: entries submitted while a batch is being written wait and all go in
/// the next batch. One batch is in flight at a time, so what is durable is always a
/// prefix of the stream.
#[derive(Debug)]
pub struct GroupCommit<T> {
    queue: Vec<Pending<T>>,
    inflight: bool,
    /// Everything below this is durable.
    pub durable: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("entry at {got} submitted out of order (expected {want})")]
pub struct OutOfOrder {
    pub want: u64,
    pub got: u64,
}

impl<T> GroupCommit<T> {
    pub fn new(durable: u64) -> Self {
        GroupCommit { queue: Vec::new(), inflight: false, durable }
    }

    pub fn submit(&mut self, p: Pending<T>) {
        self.queue.push(p);
    }

    pub fn is_inflight(&self) -> bool {
        self.inflight
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The next batch to write, if none is in flight and entries wait. Entries must be
    /// contiguous; a gap ends the batch (the rest waits for the next one).
    pub fn take_batch(&mut self) -> Option<Batch<T>> {
        if self.inflight || self.queue.is_empty() {
            return None;
        }
        let mut n = 0;
        let mut end = self.queue[0].pos;
        for p in &self.queue {
            if p.pos != end {
                break;
            }
            end += p.bytes.len() as u64;
            n += 1;
        }
        let taken: Vec<Pending<T>> = self.queue.drain(..n).collect();
        let mut b = Batch { pos: taken[0].pos, bytes: Vec::new(), waiters: Vec::new(), segment_start: false };
        for p in taken {
            b.bytes.extend_from_slice(&p.bytes);
            b.segment_start |= p.segment_start;
            b.waiters.push(p.waiter);
        }
        self.inflight = true;
        Some(b)
    }

    /// The in-flight batch ending at `end` is durable.
    pub fn batch_done(&mut self, end: u64) {
        self.inflight = false;
        self.durable = self.durable.max(end);
    }
}

/// What a replay read of the stream yields.
#[derive(Debug, PartialEq)]
pub struct ReadOutcome {
    pub entries: Vec<JournalEntry>,
    /// Where the next entry goes (end of the last good entry).
    pub end: u64,
    /// A torn last entry that was ignored, for the log.
    pub torn_tail: Option<Damage>,
}

/// Parses `bytes` (the stream from `start`, read object by object until the first
/// missing one) and judges its end. `durable` is the header's `write_pos`: everything
/// below it was durable when the header was written, so any fault before it is damage.
/// Past it, only the last entry may be broken, and only by being cut short or torn
/// (its checksum fails and its claimed length runs exactly to the end of what was
/// read); a broken entry with more stream after it is damage.
pub fn judge_stream(bytes: &[u8], start: u64, durable: u64) -> Result<ReadOutcome, Damage> {
    let (entries, dmg) = JournalReader::new(bytes, start, None).read_prefix();
    let stream_end = start + bytes.len() as u64;
    let Some(d) = dmg else {
        if stream_end < durable {
            return Err(Damage { pos: stream_end, kind: DamageKind::Truncated });
        }
        return Ok(ReadOutcome { entries, end: stream_end, torn_tail: None });
    };
    if d.pos < durable {
        return Err(d);
    }
    let torn = match d.kind {
        DamageKind::Truncated => true,
        DamageKind::BadChecksum => {
            let off = (d.pos - start) as usize;
            let len = u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]]) as u64;
            d.pos + ENTRY_HEADER as u64 + len == stream_end
        }
        _ => false,
    };
    if torn {
        Ok(ReadOutcome { entries, end: d.pos, torn_tail: Some(d) })
    } else {
        Err(d)
    }
}

/// Journal objects to delete when the trim position moves from `old` to `new`: those
/// wholly below `new` that were not already below `old`.
pub fn trim_objects(old: u64, new: u64, object_size: u32) -> std::ops::Range<u64> {
    let os = object_size.max(1) as u64;
    (old / os)..(new / os).max(old / os)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::mds::events::LogEvent;
    use crate::roles::mds::journal::JournalCursor;

    fn p(pos: u64, n: usize, w: u32) -> Pending<u32> {
        Pending { pos, bytes: vec![w as u8; n], segment_start: w == 0, waiter: w }
    }

    /// That entries submitted during a write go together into the next batch.
    #[test]
    fn group_commit_batches() {
        let mut g = GroupCommit::new(0);
        g.submit(p(0, 10, 1));
        let b1 = g.take_batch().unwrap();
        assert_eq!((b1.pos, b1.bytes.len(), b1.waiters.clone()), (0, 10, vec![1]));
        g.submit(p(10, 5, 2));
        g.submit(p(15, 5, 0));
        assert!(g.take_batch().is_none(), "one batch in flight at a time");
        g.batch_done(b1.end());
        assert_eq!(g.durable, 10);
        let b2 = g.take_batch().unwrap();
        assert_eq!((b2.pos, b2.end(), b2.waiters.clone(), b2.segment_start), (10, 20, vec![2, 0], true));
        g.batch_done(b2.end());
        assert!(g.take_batch().is_none());
    }

    /// That a gap in positions ends a batch.
    #[test]
    fn gap_ends_batch() {
        let mut g = GroupCommit::new(0);
        g.submit(p(0, 4, 1));
        g.submit(p(8, 4, 2));
        let b = g.take_batch().unwrap();
        assert_eq!(b.waiters, vec![1]);
        g.batch_done(b.end());
        assert_eq!(g.take_batch().unwrap().waiters, vec![2]);
    }

    /// That a batch's object writes split at object boundaries and cover its bytes.
    #[test]
    fn batch_writes_split() {
        let b = Batch { pos: 6, bytes: vec![0; 12], waiters: vec![()], segment_start: false };
        assert_eq!(b.writes(8), vec![(0, 6, 0, 2), (1, 0, 2, 8), (2, 0, 10, 2)]);
    }

    fn stream(n: u64) -> (Vec<u8>, Vec<u64>) {
        let mut c = JournalCursor { pos: 0, next_seq: 1 };
        let mut out = Vec::new();
        let mut starts = Vec::new();
        for i in 0..n {
            let (pos, b) = c.append(&LogEvent::Subtrees { segment: i });
            starts.push(pos);
            out.extend(b);
        }
        (out, starts)
    }

    /// That a torn or cut last entry past write_pos is a normal end, and the same
    /// fault before write_pos, or with stream after it, is damage.
    #[test]
    fn tail_versus_damage() {
        let (b, s) = stream(4);
        let ok = judge_stream(&b, 0, s[2]).unwrap();
        assert_eq!((ok.entries.len(), ok.end, ok.torn_tail), (4, b.len() as u64, None));
        // Cut inside the last entry.
        let cut = &b[..b.len() - 3];
        let r = judge_stream(cut, 0, s[2]).unwrap();
        assert_eq!((r.entries.len(), r.end), (3, s[3]));
        assert_eq!(judge_stream(cut, 0, b.len() as u64 - 1).unwrap_err().pos, s[3]);
        // Torn last entry: a flipped payload byte at the very end.
        let mut torn = b.clone();
        let last = torn.len() - 1;
        torn[last] ^= 1;
        let r = judge_stream(&torn, 0, s[3]).unwrap();
        assert_eq!((r.entries.len(), r.torn_tail.map(|d| d.kind)), (3, Some(DamageKind::BadChecksum)));
        // The same flip in the middle is damage even past write_pos.
        let mut mid = b.clone();
        mid[(s[2] + ENTRY_HEADER as u64) as usize] ^= 1;
        assert_eq!(judge_stream(&mid, 0, s[1]).unwrap_err(), Damage { pos: s[2], kind: DamageKind::BadChecksum });
        // Data missing below write_pos (an object gone) is damage.
        assert!(judge_stream(&b[..s[2] as usize], 0, s[3]).is_err());
        // Nothing at all is a fine empty journal.
        assert_eq!(judge_stream(&[], 0, 0).unwrap().entries.len(), 0);
    }

    /// That trims remove each object once.
    #[test]
    fn trims() {
        assert_eq!(trim_objects(0, 7, 8), 0..0);
        assert_eq!(trim_objects(0, 17, 8), 0..2);
        assert_eq!(trim_objects(17, 40, 8), 2..5);
        assert_eq!(trim_objects(40, 40, 8), 5..5);
    }
}
