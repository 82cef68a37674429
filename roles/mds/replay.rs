//! Replay: rebuilding the rank's state from journal entries. The same functions apply
//! an event on the live path (after the handler planned it) and in replay, and every
//! one of them is an idempotent overwrite, so replaying from `expire_pos` onto state
//! that was flushed later than that still ends in the journal's final state.
use super::cache::MdCache;
use super::events::{InoSource, LogEvent, SessionEvent};
use super::inotable::InoTable;
use super::journal::JournalEntry;
use super::sessionmap::SessionMap;

/// The rank's metadata state that the journal protects.
#[derive(Clone, Debug)]
pub struct RankState {
    pub cache: MdCache,
    pub inotable: InoTable,
    pub sessions: SessionMap,
}

impl RankState {
    /// Applies one event. The directories an `Update` touches must be loaded first
    /// (`EMetaBlob::dirs_touched`); the replaying actor loads them from RADOS.
    pub fn apply_event(&mut self, ev: &LogEvent) {
        match ev {
            LogEvent::Subtrees { segment } => self.cache.set_segment(*segment),
            LogEvent::Update(blob) => {
                self.cache.apply(blob);
                if let Some(a) = blob.ino_alloc {
                    if a.from == InoSource::Table {
                        self.inotable.take(a.ino);
                    }
                }
                self.sessions.apply_blob(blob);
            }
            LogEvent::Session(se) => {
                if let SessionEvent::Open { prealloc: Some((start, len)), .. } = se {
                    self.inotable.take_range(*start, *len);
                }
                if let SessionEvent::Prealloc { start, len, .. } = se {
                    self.inotable.take_range(*start, *len);
                }
                for ino in self.sessions.apply_event(se) {
                    self.inotable.release_range(ino, 1);
                }
            }
            LogEvent::InoTableAlloc { start, len } => self.inotable.take_range(*start, *len),
            LogEvent::ResetJournal | LogEvent::NoOp => {}
        }
    }

    /// Replays entries in order.
    pub fn replay(&mut self, entries: &[JournalEntry]) {
        for e in entries {
            self.apply_event(&e.event);
        }
    }
}

/// Where replay must start (the new `expire_pos`): the start of the oldest segment that
/// still has unflushed changes, and never past the current (last) segment's start.
/// `segments` maps segment number → stream position of its `Subtrees` entry.
pub fn expire_pos(segments: &std::collections::BTreeMap<u64, u64>, cache: &MdCache) -> Option<u64> {
    let (_, &current) = segments.iter().next_back()?;
    let oldest_dirty = segments.iter().find(|(s, _)| !cache.dirty_for_segment(**s).is_empty());
    Some(oldest_dirty.map_or(current, |(_, &p)| p.min(current)))
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
