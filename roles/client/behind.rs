//! Write-behind for the `Fb` buffer: as soon as a sequential writer's buffer holds a
//! whole object (up to an object boundary), a flusher task of that inode writes it to
//! the OSDs while the writer goes on buffering the next ones, with several objects in
//! flight (like Ceph's ObjectCacher flushing dirty buffers behind the writer).
//! Without it, a writer filled the buffer, then waited for all of it to land, then
//! filled it again: the OSDs idled while it filled and saw only four objects at once.
//!
//! The flusher holds the inode's `landing` lock (exclusively) from its start until
//! everything it took has landed, exactly as a synchronous `flush_buffer` does, so
//! readers (which lay the buffer over what they read under `landing`) never miss
//! bytes that left the buffer and have not landed yet, and an explicit flush (fsync,
//! close, revoke, truncate) waits for it and then writes the rest. A reader waiting
//! for `landing` makes the flusher stop taking new objects, so it gets the lock once
//! the ones in flight landed. On a failed write the piece goes back into the buffer
//! under anything buffered since and the flusher stops: the next explicit flush
//! retries it and reports the error.
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

use super::caps::MAX_BUFFER;
use super::session::lock;
use super::Client;
use crate::msg::mds::{Ino, InodeStat};

/// Objects a flusher has in flight at once.
const BEHIND_PARALLEL: usize = 8;
/// Bytes per inode buffered plus in flight; a writer beyond it waits for landings.
pub(super) const BEHIND_LIMIT: usize = 48 << 20;

/// The write-behind unit of a layout: one object set (every object of it complete).
pub(super) fn behind_unit(st: &InodeStat) -> u64 {
    (u64::from(st.layout.object_size) * u64::from(st.layout.stripe_count.max(1))).max(1)
}

/// Whether a write of `off..end` completes a unit boundary (a run of the buffer then
/// reaches from below a boundary up to it): the moment the flusher has work.
pub(super) fn reaches_boundary(off: u64, end: u64, unit: u64) -> bool {
    end / unit * unit > off
}

impl super::caps::InodeCaps {
    /// Buffers a write like `buffer_write`, appending it in place to the piece that
    /// ends where it starts when it overlaps nothing and stays within that piece's
    /// unit (the piece is then given room up to the unit's end): a sequential
    /// writer's unit becomes one buffer, taken out whole without a copy.
    pub fn buffer_append(&mut self, off: u64, data: &[u8], unit: u64) {
        let end = off + data.len() as u64;
        let overlaps_later = self.buffer.range(off..end).next().is_some();
        if let Some((&o, piece)) = self.buffer.range_mut(..off).next_back() {
            let unit_end = (o / unit + 1) * unit;
            if !overlaps_later && o + piece.len() as u64 == off && end <= unit_end {
                if piece.capacity() < (unit_end - o) as usize {
                    piece.reserve_exact((unit_end - o) as usize - piece.len());
                }
                piece.extend_from_slice(data);
                self.buffered += data.len();
                return;
            }
        }
        self.buffer_write(off, data);
    }

    /// Buffers a write if there is room (`MAX_BUFFER` buffered, `BEHIND_LIMIT` with
    /// what is in flight): whether the write-behind flusher must be started for it
    /// (it reached a unit boundary and none runs; a running one is woken). None: no
    /// room, nothing done.
    pub fn buffer_if_room(&mut self, off: u64, data: &[u8], unit: u64) -> Option<bool> {
        let room = self.buffered + data.len() <= MAX_BUFFER && self.buffered + self.behind_bytes + data.len() <= BEHIND_LIMIT;
        if !room {
            return None;
        }
        self.buffer_append(off, data, unit);
        if !reaches_boundary(off, off + data.len() as u64, unit) {
            return Some(false);
        }
        if self.behind {
            self.behind_wake.notify_one();
            return Some(false);
        }
        self.behind = true;
        Some(true)
    }

    /// Takes the first piece of the buffer that ends at a unit boundary: from the start
    /// of a contiguous run up to the first boundary above it that the run reaches
    /// (a whole object for a sequential writer). None if no run reaches one.
    pub fn take_unit(&mut self, unit: u64) -> Option<(u64, Vec<u8>)> {
        let mut run: Option<(u64, u64)> = None;
        let mut found = None;
        for (o, d) in &self.buffer {
            let end = o + d.len() as u64;
            let start = match run {
                Some((s, e)) if e == *o => s,
                _ => *o,
            };
            run = Some((start, end));
            if reaches_boundary(start, end, unit) {
                found = Some((start, (start / unit + 1) * unit));
                break;
            }
        }
        let (start, stop) = found?;
        if let Some(whole) = self.buffer.remove(&start) {
            if whole.len() as u64 == stop - start {
                self.buffered -= whole.len();
                return Some((start, whole));
            }
            self.buffer.insert(start, whole);
        }
        let mut out = Vec::with_capacity((stop - start) as usize);
        let keys: Vec<u64> = self.buffer.range(start..stop).map(|(o, _)| *o).collect();
        for o in keys {
            let Some(mut d) = self.buffer.remove(&o) else { continue };
            let end = o + d.len() as u64;
            if end > stop {
                let tail = d.split_off((stop - o) as usize);
                self.buffer.insert(stop, tail);
            }
            out.extend_from_slice(&d);
        }
        self.buffered -= out.len();
        Some((start, out))
    }

    /// Puts pieces that failed to land back into the buffer, under anything buffered
    /// since (rewriting what did land is harmless).
    pub fn put_back<'d>(&mut self, pieces: impl IntoIterator<Item = (u64, &'d [u8])>) {
        let newer = std::mem::take(&mut self.buffer);
        self.buffered = 0;
        for (o, d) in pieces {
            self.buffer_write(o, d);
        }
        for (o, d) in &newer {
            self.buffer_write(*o, d);
        }
    }
}

impl Client {
    /// Starts the flusher of `ino` (the caller set `behind` under the map lock).
    pub(super) fn spawn_behind(&self, ino: Ino, st: InodeStat) {
        let me = self.clone();
        tokio::spawn(async move { me.run_behind(ino, st).await });
    }

    async fn run_behind(&self, ino: Ino, st: InodeStat) {
        /// What the flusher does next: write this piece (or, with none, wait for a
        /// landing or the writer), let what is in flight land, or stop.
        enum Step {
            Go(Option<(u64, Vec<u8>)>),
            Drain,
            Done,
        }
        let Some((landing, wake)) = lock(&self.inner.caps.map).get(&ino).map(|c| (c.landing.clone(), c.behind_wake.clone())) else {
            return;
        };
        let _landing = landing.write().await;
        let unit = behind_unit(&st);
        let mut running = FuturesUnordered::new();
        let mut failed = false;
        loop {
            // (The entry is never gone while `behind` holds; if it were, what is in
            // flight would still land rather than be dropped.)
            let next = {
                let mut map = lock(&self.inner.caps.map);
                match map.get_mut(&ino) {
                    None if running.is_empty() => Step::Done,
                    None => Step::Drain,
                    Some(c) => {
                        let piece = if failed || c.landing_waiters > 0 || running.len() >= BEHIND_PARALLEL {
                            None
                        } else {
                            c.take_unit(unit)
                        };
                        if piece.is_none() && running.is_empty() {
                            c.behind = false;
                            Step::Done
                        } else {
                            if let Some((_, d)) = &piece {
                                c.behind_bytes += d.len();
                            }
                            Step::Go(piece)
                        }
                    }
                }
            };
            let next = match next {
                Step::Done => break,
                Step::Drain => {
                    let _ = running.next().await;
                    continue;
                }
                Step::Go(next) => next,
            };
            if let Some((off, data)) = next {
                let data = Bytes::from(data);
                let (me, st) = (self.clone(), &st);
                running.push(async move {
                    let r = me.write_data(st, off, data.clone()).await;
                    (off, data, r)
                });
                continue;
            }
            // Wait for a landing, or for the writer to buffer another unit.
            let wake_up = wake.notified();
            let landed = tokio::select! {
                l = running.next() => l,
                _ = wake_up => None,
            };
            let Some((off, data, r)) = landed else { continue };
            let mut map = lock(&self.inner.caps.map);
            if let Some(c) = map.get_mut(&ino) {
                c.behind_bytes = c.behind_bytes.saturating_sub(data.len());
                // The file's bytes on the OSDs changed under reads that sampled its size.
                c.page_gen += 1;
                if let Err(e) = r {
                    tracing::warn!(ino = format!("{ino:#x}"), "write-behind failed (kept buffered for the next flush): {e}");
                    c.put_back([(off, &data[..])]);
                    failed = true;
                }
            }
            drop(map);
            self.inner.caps.changed.notify_waiters();
        }
        self.inner.caps.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::super::caps::InodeCaps;
    use super::*;

    /// That a sequential writer's buffer yields whole objects, a run's head up to the
    /// next boundary when it starts unaligned, and nothing while no run reaches one.
    #[test]
    fn units_come_out_whole() {
        let mut c = InodeCaps::default();
        c.buffer_write(0, &[1; 6]);
        assert_eq!(c.take_unit(8), None);
        c.buffer_write(6, &[2; 4]);
        assert!(reaches_boundary(6, 10, 8));
        assert_eq!(c.take_unit(8), Some((0, vec![1, 1, 1, 1, 1, 1, 2, 2])));
        assert_eq!(c.buffered, 2);
        assert_eq!(c.buffer.get(&8), Some(&vec![2, 2]));
        assert_eq!(c.take_unit(8), None);
        // An unaligned run: its head up to the boundary first.
        c.buffer_write(20, &[3; 14]);
        assert_eq!(c.take_unit(8), Some((20, vec![3; 4])));
        assert_eq!(c.take_unit(8), Some((24, vec![3; 8])));
        assert_eq!(c.take_unit(8), None);
        assert_eq!(c.buffered, 4);
        assert!(!reaches_boundary(9, 15, 8));
        assert!(reaches_boundary(15, 16, 8));
    }

    /// That in-place appends keep to one piece per unit and read back like writes.
    #[test]
    fn appends_fill_one_piece_per_unit() {
        let mut c = InodeCaps::default();
        for i in 0..6u8 {
            c.buffer_append(u64::from(i) * 3, &[i; 3], 8);
        }
        // A piece grows only up to the end of the unit it starts in.
        assert_eq!(c.buffered, 18);
        let mut out = vec![0u8; 18];
        c.overlay(0, &mut out);
        assert_eq!(out, vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]);
        // An overwrite inside the buffer is no append.
        c.buffer_append(4, &[9; 2], 8);
        c.overlay(0, &mut out);
        assert_eq!(&out[..8], &[0, 0, 0, 1, 9, 9, 2, 2]);
        assert_eq!(c.take_unit(8), Some((0, vec![0, 0, 0, 1, 9, 9, 2, 2])));
        assert_eq!(c.take_unit(8), Some((8, vec![2, 3, 3, 3, 4, 4, 4, 5])));
        assert_eq!(c.buffered, 2);
    }

    /// That a failed piece goes back under what was buffered since.
    #[test]
    fn failed_piece_goes_back_under_newer() {
        let mut c = InodeCaps::default();
        c.buffer_write(0, &[1; 8]);
        let (off, data) = c.take_unit(8).expect("a unit");
        c.buffer_write(2, &[9; 2]);
        c.put_back([(off, &data[..])]);
        assert_eq!(c.buffered, 8);
        let runs = super::super::caps::coalesce(&c.buffer);
        assert_eq!(runs, vec![(0, vec![1, 1, 9, 9, 1, 1, 1, 1])]);
    }
}
