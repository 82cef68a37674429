use super::*;
use crate::msg::mds::{Caller, ClientRequest, MdsOp, SetAttr};
use crate::roles::mds::cache::tests::{flush_all, load_all};
use crate::roles::mds::cache::{FlushPayload, FlushTarget};
use crate::roles::mds::journal::{JournalCursor, JournalReader};
use crate::roles::mds::quota::{rstat_mismatches, MAX_BYTES, MAX_FILES};
use crate::roles::mds::server::handle;
use crate::roles::mds::types::{FileLayout, Ino, ROOT_INO};
use proptest::prelude::*;
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;

/// An op on abstract indices, resolved against the live tree when it runs.
#[derive(Clone, Debug)]
enum AOp {
    Create(usize, u8),
    Mkdir(usize, u8),
    Symlink(usize, u8),
    Unlink(usize, u8),
    Rmdir(usize, u8),
    Rename(usize, u8, usize, u8),
    Link(usize, usize, u8),
    Chmod(usize, u16),
    Truncate(usize, u16),
    Setxattr(usize, u8),
    SetSize(usize, u16),
    /// Set `ceph.quota.max_files` (small, so it bites) or `max_bytes` on a directory.
    Quota(usize, bool, u16),
    /// Start a new journal segment.
    Segment,
    /// Write every dirty item back (the store replay may start from).
    Flush,
}

fn aop() -> impl Strategy<Value = AOp> {
    let i = || 0usize..64;
    let n = || 0u8..5;
    prop_oneof![
        4 => (i(), n()).prop_map(|(a, b)| AOp::Create(a, b)),
        3 => (i(), n()).prop_map(|(a, b)| AOp::Mkdir(a, b)),
        1 => (i(), n()).prop_map(|(a, b)| AOp::Symlink(a, b)),
        3 => (i(), n()).prop_map(|(a, b)| AOp::Unlink(a, b)),
        2 => (i(), n()).prop_map(|(a, b)| AOp::Rmdir(a, b)),
        4 => (i(), n(), i(), n()).prop_map(|(a, b, c, d)| AOp::Rename(a, b, c, d)),
        3 => (i(), i(), n()).prop_map(|(a, b, c)| AOp::Link(a, b, c)),
        1 => (i(), any::<u16>()).prop_map(|(a, m)| AOp::Chmod(a, m)),
        1 => (i(), any::<u16>()).prop_map(|(a, s)| AOp::Truncate(a, s)),
        1 => (i(), n()).prop_map(|(a, b)| AOp::Setxattr(a, b)),
        1 => (i(), any::<u16>()).prop_map(|(a, s)| AOp::SetSize(a, s)),
        1 => (i(), any::<bool>(), any::<u16>()).prop_map(|(a, b, v)| AOp::Quota(a, b, v)),
        1 => Just(AOp::Segment),
        1 => Just(AOp::Flush),
    ]
}

/// Directories (not the mdsdir) and all names' inodes in the live cache, sorted.
fn inventory(c: &crate::roles::mds::cache::MdCache) -> (Vec<Ino>, Vec<Ino>) {
    let v = c.view();
    let dirs: Vec<Ino> = v.dirs.keys().copied().filter(|d| *d != c.mdsdir()).collect();
    let mut all: Vec<Ino> = dirs.iter().flat_map(|d| v.dirs[d].1.values().map(|l| l.ino())).collect();
    all.sort_unstable();
    all.dedup();
    (dirs, all)
}

fn concrete(op: &AOp, dirs: &[Ino], all: &[Ino]) -> Option<MdsOp> {
    let d = |i: usize| dirs[i % dirs.len()];
    let a = |i: usize| if all.is_empty() { ROOT_INO } else { all[i % all.len()] };
    let nm = |b: u8| format!("n{b}");
    Some(match *op {
        AOp::Create(p, n) => MdsOp::Create { parent: d(p), name: nm(n), mode: 0o644, excl: true },
        AOp::Mkdir(p, n) => MdsOp::Mkdir { parent: d(p), name: nm(n), mode: 0o755 },
        AOp::Symlink(p, n) => MdsOp::Symlink { parent: d(p), name: nm(n), target: "t".into() },
        AOp::Unlink(p, n) => MdsOp::Unlink { parent: d(p), name: nm(n) },
        AOp::Rmdir(p, n) => MdsOp::Rmdir { parent: d(p), name: nm(n) },
        AOp::Rename(p, n, q, m) => MdsOp::Rename { src_parent: d(p), src_name: nm(n), dst_parent: d(q), dst_name: nm(m) },
        AOp::Link(i, p, n) => MdsOp::Link { ino: a(i), new_parent: d(p), new_name: nm(n) },
        AOp::Chmod(i, m) => MdsOp::Setattr { ino: a(i), set: SetAttr { mode: Some(m as u32 & 0o777), ..Default::default() } },
        AOp::Truncate(i, s) => MdsOp::Setattr { ino: a(i), set: SetAttr { size: Some(s as u64), ..Default::default() } },
        AOp::Setxattr(i, n) => MdsOp::Setxattr { ino: a(i), name: format!("user.{n}"), value: ByteBuf::from(vec![n]), flags: 0 },
        AOp::SetSize(i, s) => MdsOp::SetSize { ino: a(i), size: s as u64, mtime: s as i64 },
        AOp::Quota(p, bytes, v) => {
            let (name, v) = if bytes { (MAX_BYTES, v as u64 * 2) } else { (MAX_FILES, v as u64 % 8) };
            MdsOp::Setxattr { ino: d(p), name: name.into(), value: ByteBuf::from(v.to_string().into_bytes()), flags: 0 }
        }
        AOp::Segment | AOp::Flush => return None,
    })
}

fn fresh() -> RankState {
    let mut s = RankState {
        cache: crate::roles::mds::cache::MdCache::create_fs(0, 1, FileLayout::default_for(2)),
        inotable: crate::roles::mds::inotable::InoTable::new(0),
        sessions: Default::default(),
    };
    let start = s.inotable.project_range(4).unwrap();
    s.apply_event(&LogEvent::Session(SessionEvent::Open { client: "client.1".into(), root: ROOT_INO, prealloc: Some(start), addr: None }));
    s
}

/// The stored objects at a flush, and where replay would then start.
struct Snapshot {
    store: BTreeMap<FlushTarget, FlushPayload>,
    inotable: Vec<u8>,
    sessions: Vec<u8>,
    /// Index of the first entry of the segment the flush happened in.
    from_entry: usize,
}

fn check(ops: &[AOp], users: &[bool]) -> Result<(), TestCaseError> {
    let mut live = fresh();
    let initial = live.clone();
    let mut cur = JournalCursor { pos: 0, next_seq: 1 };
    let mut stream = Vec::new();
    let mut n_entries = 0usize;
    let mut seg_start = 0usize;
    let mut append = |ev: &LogEvent, stream: &mut Vec<u8>, n: &mut usize| {
        stream.extend(cur.append(ev).1);
        *n += 1;
    };
    append(&LogEvent::Subtrees { segment: 0 }, &mut stream, &mut n_entries);
    let (mut seg, mut now) = (0u64, 10i64);
    let mut store = BTreeMap::new();
    let mut snap: Option<Snapshot> = None;
    for (k, op) in ops.iter().enumerate() {
        match op {
            AOp::Segment => {
                seg += 1;
                live.cache.set_segment(seg);
                seg_start = n_entries;
                append(&LogEvent::Subtrees { segment: seg }, &mut stream, &mut n_entries);
                continue;
            }
            AOp::Flush => {
                flush_all(&mut live.cache, &mut store);
                snap = Some(Snapshot {
                    store: store.clone(),
                    inotable: live.inotable.encode(),
                    sessions: live.sessions.encode(),
                    from_entry: seg_start,
                });
                continue;
            }
            _ => {}
        }
        let (dirs, all) = inventory(&live.cache);
        let Some(mop) = concrete(op, &dirs, &all) else { continue };
        let caller = if users.get(k).copied().unwrap_or(false) { Caller { uid: 1000, gid: 1000, gids: vec![] } } else { Caller::root() };
        let info = live.sessions.get("client.1").unwrap().info();
        now += 1;
        let req = ClientRequest { tid: k as u64 + 1, op: mop.clone(), caller, oldest_tid: 0 };
        let out = handle(&mut live.cache, &mut live.inotable, &info, &req, now);
        let out = out.map_err(|n| TestCaseError::fail(format!("{mop:?} needed {n:?} with everything in cache")))?;
        if let Some(b) = &out.blob {
            live.sessions.apply_blob(b);
            append(&LogEvent::Update(b.clone()), &mut stream, &mut n_entries);
        }
    }
    let entries = JournalReader::new(&stream, 0, Some(1)).read_all().map_err(|d| TestCaseError::fail(d.to_string()))?;
    prop_assert_eq!(entries.len(), n_entries);
    let bad = rstat_mismatches(&live.cache);
    prop_assert!(bad.is_empty(), "live rstats: {:?}", bad);
    // Full replay from the start.
    let mut r = initial;
    r.replay(&entries);
    prop_assert_eq!(r.cache.view(), live.cache.view());
    prop_assert_eq!(&r.inotable, &live.inotable);
    prop_assert_eq!(&r.sessions.sessions, &live.sessions.sessions);
    // Replay from the segment of the last flush onto what that flush stored.
    if let Some(s) = snap {
        let mut r = RankState {
            cache: load_all(0, &s.store),
            inotable: crate::roles::mds::inotable::InoTable::decode(&s.inotable).unwrap(),
            sessions: crate::roles::mds::sessionmap::SessionMap::decode(&s.sessions).unwrap(),
        };
        r.replay(&entries[s.from_entry..]);
        prop_assert_eq!(r.cache.view(), live.cache.view());
        prop_assert!(rstat_mismatches(&r.cache).is_empty());
        prop_assert_eq!(&r.inotable, &live.inotable);
        prop_assert_eq!(&r.sessions.sessions, &live.sessions.sessions);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// That replaying the journal (encoded, read back) of a random op sequence rebuilds
    /// the live state exactly, both from the start and from the segment of the last
    /// write-back onto what that write-back stored, recursive stats included (they stay
/// equal to the sum over each directory, and quotas refuse some of the ops).
    #[test]
    fn replay_equals_live(ops in proptest::collection::vec(aop(), 1..80), users in proptest::collection::vec(any::<bool>(), 80)) {
        check(&ops, &users)?;
    }
}

/// That a fixed sequence touching hard links, strays, renames and quotas replays exactly.
#[test]
fn replay_fixed_sequence() {
    use AOp::*;
    let ops = [
        Mkdir(0, 0), Create(0, 1), Create(1, 2), Link(1, 0, 3), Segment, Flush, Unlink(0, 1),
        Rename(0, 3, 1, 4), Mkdir(0, 4), Rename(1, 4, 0, 2), Segment, Rmdir(0, 0), Setxattr(0, 1), Truncate(0, 9),
        Quota(0, false, 3), Quota(0, true, 100), Create(0, 0), SetSize(1, 300), Create(1, 3), Flush, Mkdir(0, 3),
    ];
    check(&ops, &[false; 20]).unwrap();
}

/// That the expire position stops at the oldest segment with unflushed changes and
/// never passes the current segment.
#[test]
fn expire_pos_follows_flushes() {
    let mut s = fresh();
    let segs: BTreeMap<u64, u64> = [(0, 0), (1, 100), (2, 200)].into_iter().collect();
    assert_eq!(expire_pos(&segs, &s.cache), Some(0), "create_fs dirtied segment 0");
    let mut store = BTreeMap::new();
    flush_all(&mut s.cache, &mut store);
    assert_eq!(expire_pos(&segs, &s.cache), Some(200));
    s.cache.set_segment(1);
    let info = s.sessions.get("client.1").unwrap().info();
    let req = ClientRequest { tid: 1, op: MdsOp::Mkdir { parent: ROOT_INO, name: "a".into(), mode: 0o755 }, caller: Caller::root(), oldest_tid: 0 };
    handle(&mut s.cache, &mut s.inotable, &info, &req, 5).unwrap();
    assert_eq!(expire_pos(&segs, &s.cache), Some(100));
    assert_eq!(expire_pos(&BTreeMap::new(), &s.cache), None);
}
