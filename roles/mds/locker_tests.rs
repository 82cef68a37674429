//! Locker scenarios, asserted on the commands it returns.
use super::*;
use crate::msg::caps::FileMode;
use crate::roles::mds::locks::{LockKind::*, LockMode, LockState};

const F: Ino = 0x1000_0000_0001;
const FILE: InodeInfo = InodeInfo { is_dir: false, size: 0 };
const RW: FileMode = FileMode { read: true, write: true };
const RD: FileMode = FileMode { read: true, write: false };

fn c(s: &str) -> Caps {
    Caps::parse(s).unwrap_or_else(|| panic!("bad caps {s}"))
}

/// The cap message (revoke?, caps, seq, max_size) sent to `client` in `out`, if any.
fn sent(out: &[Command], client: &str) -> Option<(bool, Caps, u64, u64)> {
    out.iter().rev().find_map(|cmd| match cmd {
        Command::Caps { client: cl, revoke, caps, seq, max_size, .. } if cl == client => {
            Some((*revoke, *caps, *seq, *max_size))
        }
        _ => None,
    })
}

fn journals(out: &[Command]) -> Vec<(BTreeMap<ClientId, u64>, bool)> {
    out.iter()
        .filter_map(|cmd| match cmd {
            Command::JournalRanges { ranges, locked, .. } => Some((ranges.clone(), *locked)),
            _ => None,
        })
        .collect()
}

/// Acks the last message `client` got in `out` with exactly those caps.
fn ack_last(l: &mut Locker, out: &[Command], client: &str) -> Vec<Command> {
    let (_, caps, seq, _) = sent(out, client).expect("a message to ack");
    l.ack(client, F, seq, caps, None)
}

/// That seed 004's walk-through happens: a lone writer is the loner with every file
/// cap; a second writer makes the file lock go excl->mix and revokes the loner's
/// excess caps; the second writer's range is journaled under the lock while it waits;
/// the lock reaches MIX only after the loner's ack, and then both hold Frw, not Fc/Fb.
#[test]
fn seed_004_second_writer_moves_excl_to_mix() {
    let mut l = Locker::new();
    let out = l.issue("client.1", F, FILE, Some(RW));
    assert_eq!(l.loner(F), Some("client.1"));
    assert_eq!(l.state(F, File), LockState::Excl);
    let (revoke, caps, _, max) = sent(&out, "client.1").expect("grant");
    assert!(!revoke);
    assert_eq!(caps.to_string(), "pAsxLsXsxFsxcrwb");
    assert!(max >= RANGE_STEP, "a writer gets a writable range, got {max}");
    assert_eq!(journals(&out), vec![(BTreeMap::from([("client.1".to_string(), max)]), true)]);
    assert!(l.range_journaled(F, true).is_empty());

    // client 2 opens for write: client 1 is revoked down to Frw, client 2 waits.
    let out2 = l.issue("client.2", F, FILE, Some(RW));
    assert_eq!(l.state(F, File), LockState::ExclMix);
    let (revoke, caps1, _, _) = sent(&out2, "client.1").expect("revoke");
    assert!(revoke);
    assert_eq!(caps1.to_string(), "pAsLsXsFrw");
    let (_, caps2, _, _) = sent(&out2, "client.2").expect("first grant");
    assert!(!caps2.intersects(Caps::FILE_WR | Caps::FILE_RD), "client 2 gets no file caps yet: {caps2}");
    let j = journals(&out2);
    assert_eq!(j.len(), 1);
    assert!(j[0].0.contains_key("client.2") && j[0].1, "client 2's range is journaled under a wrlock: {j:?}");

    // The range is journaled: the lock is given back, but nothing moves until the ack.
    let out3 = l.range_journaled(F, true);
    assert!(out3.iter().all(|c| !matches!(c, Command::Caps { .. })), "{out3:?}");
    assert_eq!(l.state(F, File), LockState::ExclMix);
    assert!(l.cap("client.1", F).unwrap().is_revoking());

    // Client 1 acks (after flushing its buffered data): MIX, both with Frw.
    let out4 = ack_last(&mut l, &out2, "client.1");
    assert_eq!(l.state(F, File), LockState::Mix);
    assert_eq!(l.loner(F), None);
    let (revoke, caps2, _, max2) = sent(&out4, "client.2").expect("grant to client 2");
    assert!(!revoke);
    assert!(max2 > 0);
    for cl in ["client.1", "client.2"] {
        let p = l.cap(cl, F).unwrap().pending;
        assert!(p.contains(c("Frw")), "{cl}: {p}");
        assert!(!p.intersects(c("Fcbx")), "{cl} must not cache or buffer in mix: {p}");
    }
    assert_eq!(caps2.to_string(), "pAsLsXsFrw");
}

/// That readers share: a second reader moves the file lock from the first reader's
/// EXCL to SYNC without revoking anything, both hold Fscr; a writer then takes Fc
/// and Fs from both (sync->mix) before it gets Fw.
#[test]
fn readers_share_and_a_writer_revokes_cache() {
    let mut l = Locker::new();
    let out = l.issue("client.1", F, FILE, Some(RD));
    assert_eq!(sent(&out, "client.1").unwrap().1.to_string(), "pAsLsXsFscr");
    let out = l.issue("client.2", F, FILE, Some(RD));
    assert!(out.iter().all(|c| !matches!(c, Command::Caps { revoke: true, .. })), "{out:?}");
    assert_eq!(l.state(F, File), LockState::Sync);
    assert_eq!(l.loner(F), None);
    assert_eq!(l.cap("client.1", F).unwrap().pending.to_string(), "pAsLsXsFscr");
    assert_eq!(l.cap("client.2", F).unwrap().pending.to_string(), "pAsLsXsFscr");

    let out = l.issue("client.3", F, FILE, Some(RW));
    assert_eq!(l.state(F, File), LockState::SyncMix);
    for r in ["client.1", "client.2"] {
        let (revoke, caps, _, _) = sent(&out, r).expect("revoke");
        assert!(revoke && caps.contains(Caps::FILE_RD) && !caps.intersects(c("Fsc")), "{r}: {caps}");
    }
    assert!(!l.cap("client.3", F).unwrap().pending.contains(Caps::FILE_WR));
    let a = ack_last(&mut l, &out, "client.1");
    assert_eq!(l.state(F, File), LockState::SyncMix, "one reader still holds Fsc: {a:?}");
    let b = ack_last(&mut l, &out, "client.2");
    assert_eq!(l.state(F, File), LockState::Mix);
    let (_, caps3, _, max3) = sent(&b, "client.3").expect("writer's grant");
    assert!(caps3.contains(c("Frw")) && max3 > 0, "{caps3} {max3}");
}

/// That a setattr by another client parks until the loner has given back Ax and Fx:
/// the locks go to LOCK only after the ack, the request is woken then, and the loner
/// gets its caps back once the request drops its locks.
#[test]
fn setattr_by_another_client_waits_for_revocation() {
    let mut l = Locker::new();
    let out = l.issue("client.1", F, FILE, Some(RW));
    let _ = l.range_journaled(F, true);
    assert!(sent(&out, "client.1").unwrap().1.contains(c("AxFx")));
    let out = l.issue("client.2", F, FILE, None);
    assert_eq!(l.loner(F), Some("client.1"), "a client that only looks does not end the loner");
    assert_eq!(sent(&out, "client.2").unwrap().1.to_string(), "pLs");

    let needs = [(F, Auth, LockMode::X), (F, File, LockMode::X)];
    let (a, out) = l.acquire(7, "client.2", &needs);
    assert_eq!(a, Acquire::Parked(F));
    let (revoke, caps, _, _) = sent(&out, "client.1").expect("revoke");
    assert!(revoke && !caps.intersects(c("AsxFsxcrwb")), "{caps}");
    assert_eq!(l.state(F, Auth), LockState::ExclLock);
    assert!(!out.contains(&Command::Wake(7)));

    let out = ack_last(&mut l, &out, "client.1");
    assert!(out.contains(&Command::Wake(7)), "{out:?}");
    assert_eq!((l.state(F, Auth), l.state(F, File)), (LockState::Lock, LockState::Lock));
    let (a, _) = l.acquire(7, "client.2", &needs);
    let Acquire::Granted(held) = a else { panic!("not granted: {a:?}") };
    let out = l.release_locks(held);
    assert_eq!(l.state(F, File), LockState::Excl);
    let (revoke, caps, _, _) = sent(&out, "client.1").expect("re-grant");
    assert!(!revoke && caps.contains(c("AxFxwb")), "{caps}");
}

/// That a session going away releases everything: its caps and range go, a lock
/// waiting for its ack moves on, and the other writer becomes the loner.
#[test]
fn session_loss_releases_everything() {
    let mut l = Locker::new();
    let _ = l.issue("client.1", F, FILE, Some(RW));
    let _ = l.range_journaled(F, true);
    let _ = l.issue("client.2", F, FILE, Some(RW));
    let _ = l.range_journaled(F, true);
    assert_eq!(l.state(F, File), LockState::ExclMix);
    let (a, _) = l.acquire(9, "client.1", &[(F, File, LockMode::X)]);
    assert_eq!(a, Acquire::Parked(F));
    assert_eq!(l.parked_count(), 1);

    let out = l.drop_client("client.1");
    assert_eq!(l.cap_count("client.1"), 0);
    assert_eq!(l.parked_count(), 0, "the gone client's parked request is forgotten");
    assert!(!l.ranges(F).contains_key("client.1"));
    assert!(journals(&out).iter().any(|(r, locked)| !locked && !r.contains_key("client.1")), "{out:?}");
    assert_eq!(l.loner(F), Some("client.2"));
    assert_eq!(l.state(F, File), LockState::Excl);
    assert!(l.cap("client.2", F).unwrap().pending.contains(c("Fxcwb")));
}

/// That a stale client's caps are taken back at once (no ack needed), so a writer is
/// not held up, and that it gets caps again when it is fresh.
#[test]
fn stale_client_does_not_block_others() {
    let mut l = Locker::new();
    let _ = l.issue("client.1", F, FILE, Some(RW));
    let _ = l.range_journaled(F, true);
    let _ = l.issue("client.2", F, FILE, Some(RW));
    let _ = l.range_journaled(F, true);
    assert_eq!(l.cap_count("client.1"), 1);
    let out = l.mark_stale("client.1");
    assert_eq!(l.cap("client.1", F).unwrap().pending, Caps::PIN);
    assert_eq!(l.loner(F), Some("client.2"));
    assert!(sent(&out, "client.2").unwrap().1.contains(c("Fxwb")));
    let out = l.mark_fresh("client.1");
    assert!(sent(&out, "client.2").unwrap().0, "the loner is revoked again");
}

/// That a renewal after staleness first revokes every cap down to `p` (the client
/// never learned they were taken), then grants again; and that the client's late ack
/// of that revoke does not clear bits a later revoke still waits for.
#[test]
fn fresh_client_is_revoked_to_pin_then_granted_and_old_acks_keep_later_revokes() {
    let mut l = Locker::new();
    let out = l.issue("client.1", F, FILE, Some(RW));
    let first = sent(&out, "client.1").unwrap().2;
    let _ = l.range_journaled(F, true);
    let _ = l.mark_stale("client.1");
    let out = l.mark_fresh("client.1");
    let mine: Vec<(bool, Caps, u64)> = out
        .iter()
        .filter_map(|cmd| match cmd {
            Command::Caps { client, revoke, caps, seq, .. } if client == "client.1" => Some((*revoke, *caps, *seq)),
            _ => None,
        })
        .collect();
    assert!(mine.len() >= 2, "a revoke to p, then a grant: {out:?}");
    let (revoke, caps, to_pin) = mine[0];
    assert!(revoke && caps == Caps::PIN && to_pin > first, "{mine:?}");
    let (revoke, caps, grant) = mine[mine.len() - 1];
    assert!(!revoke && caps.contains(c("Fxcwb")) && grant > to_pin, "{mine:?}");

    // A second writer: client 1 is revoked (not yet acked) ...
    let out = l.issue("client.2", F, FILE, Some(RW));
    let (revoke, _, later, _) = sent(&out, "client.1").expect("revoke");
    assert!(revoke && later > grant);
    // ... when its ack of the revoke to p arrives: Fb stays issued until it acks the later one.
    let _ = l.ack("client.1", F, to_pin, Caps::PIN, None);
    let cap = l.cap("client.1", F).unwrap();
    assert!(cap.issued.contains(c("Fb")) && cap.is_revoking(), "{cap:?}");
    assert_eq!(l.state(F, File), LockState::ExclMix);
    let _ = ack_last(&mut l, &out, "client.1");
    let cap = l.cap("client.1", F).unwrap();
    assert!(!cap.issued.contains(c("Fb")) && !cap.is_revoking(), "{cap:?}");
}

/// That a writer asking to write past its range gets a larger one, journaled before
/// the grant, and that a quota limit caps the range.
#[test]
fn writable_range_grows_on_demand_and_stops_at_quota() {
    let mut l = Locker::new();
    let out = l.issue("client.1", F, FILE, Some(RW));
    let first = sent(&out, "client.1").unwrap().3;
    let _ = l.range_journaled(F, true);
    let out = l.want_max_size("client.1", F, first + 10);
    let j = journals(&out);
    assert_eq!(j.len(), 1);
    let grown = j[0].0["client.1"];
    assert!(grown >= first + 10);
    let jpos = out.iter().position(|c| matches!(c, Command::JournalRanges { .. })).unwrap();
    let gpos = out.iter().position(|c| matches!(c, Command::Caps { .. })).unwrap();
    assert!(jpos < gpos, "journal before grant: {out:?}");
    assert_eq!(sent(&out, "client.1").unwrap().3, grown);
    let _ = l.range_journaled(F, true);

    l.set_quota_limit(F, Some(grown + 100));
    let out = l.want_max_size("client.1", F, grown + 50);
    assert_eq!(sent(&out, "client.1").unwrap().3, grown + 100);
    assert!(l.want_max_size("client.1", F, grown + 60).is_empty(), "already covered");
}

/// That an ack for a seq never sent changes nothing, and that a release forgets the
/// client's cap and range.
#[test]
fn bogus_ack_and_release() {
    let mut l = Locker::new();
    let out = l.issue("client.1", F, FILE, Some(RW));
    let _ = l.range_journaled(F, true);
    let seq = sent(&out, "client.1").unwrap().2;
    assert!(l.ack("client.1", F, seq + 5, Caps::NONE, None).is_empty());
    assert!(l.cap("client.1", F).unwrap().pending.contains(Caps::FILE_WR));
    let out = l.release("client.1", F);
    assert_eq!(l.cap_count("client.1"), 0);
    assert_eq!(journals(&out), vec![(BTreeMap::new(), false)]);
    assert_eq!(l.state(F, File), LockState::Sync);
}

/// That a directory's only client is its loner, holds `Fsx` (async creates) and may
/// change it without revoking its own caps; a second client's arrival revokes the
/// loner's `Fx` (its in-flight changes are admitted meanwhile), and a second client's
/// create waits until both lose Fs.
#[test]
fn directory_entries_and_loner() {
    let dir = InodeInfo { is_dir: true, size: 0 };
    let d: Ino = 0x1;
    let mut l = Locker::new();
    let _ = l.issue("client.1", d, dir, None);
    assert_eq!(l.loner(d), Some("client.1"));
    assert!(l.cap("client.1", d).unwrap().pending.contains(Caps::FILE_SHARED | Caps::FILE_EXCL));
    let (a, out) = l.acquire(1, "client.1", &[(d, File, LockMode::Wr)]);
    assert!(matches!(a, Acquire::Granted(_)) && out.is_empty(), "{a:?} {out:?}");
    let Acquire::Granted(h) = a else { unreachable!() };
    let _ = l.release_locks(h);
    let out = l.issue("client.2", d, dir, None);
    let (revoke, caps, _, _) = sent(&out, "client.1").expect("the loner's Fx is revoked");
    assert!(revoke && caps.contains(Caps::FILE_SHARED) && !caps.contains(Caps::FILE_EXCL), "{caps}");
    let (a, _) = l.acquire(3, "client.1", &[(d, File, LockMode::Wr)]);
    assert!(matches!(a, Acquire::Granted(_)), "the loner's in-flight create is admitted before its ack: {a:?}");
    let Acquire::Granted(h) = a else { unreachable!() };
    let _ = l.release_locks(h);
    let _ = ack_last_on(&mut l, &out, "client.1", d);
    assert_eq!(l.state(d, File), LockState::Sync);
    assert_eq!(l.cap("client.2", d).unwrap().pending & Caps::FILE_EXCL, Caps::NONE);
    assert!(l.cap("client.1", d).unwrap().pending.contains(Caps::FILE_SHARED));
    let (a, out) = l.acquire(2, "client.2", &[(d, File, LockMode::Wr)]);
    assert_eq!(a, Acquire::Parked(d));
    assert!(sent(&out, "client.1").unwrap().0 && sent(&out, "client.2").unwrap().0, "both lose Fs: {out:?}");
    let _ = ack_last_on(&mut l, &out, "client.1", d);
    let out = ack_last_on(&mut l, &out, "client.2", d);
    assert!(out.contains(&Command::Wake(2)));
}

fn ack_last_on(l: &mut Locker, out: &[Command], client: &str, ino: Ino) -> Vec<Command> {
    let (_, caps, seq, _) = sent(out, client).expect("a message to ack");
    l.ack(client, ino, seq, caps, None)
}
