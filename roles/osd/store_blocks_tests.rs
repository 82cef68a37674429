//! Tests of the block file under the object store: slot reuse, batches that abort,
//! on-disk damage, and readers racing a writer that overwrites the object they read.
use super::blocks::{Extent, GROW_SLOTS, SLOT};
use super::*;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use tempfile::TempDir;

type R<T = ()> = Result<T, StoreError>;

const PG: PgId = PgId { pool: 5, seed: 1 };

fn open_tmp() -> (TempDir, ObjectStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStore::open(dir.path()).expect("open store");
    (dir, store)
}

/// `len` bytes that differ per `seed` in every 8-byte word.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    (0..len).map(|i| ((i as u64 / 8).wrapping_mul(0x9e37_79b9) ^ seed.wrapping_mul(0x5bd1_e995)) as u8 ^ (i as u8)).collect()
}

fn write_full(oid: &str, data: Vec<u8>) -> Transaction {
    Transaction { ops: vec![TxOp::WriteFull { oid: oid.into(), data: data.into() }], mtime_ms: 7 }
}

fn blocks_len(dir: &TempDir) -> u64 {
    std::fs::metadata(dir.path().join("blocks.dat")).map(|m| m.len()).unwrap_or(0)
}

/// The extent record of chunk `idx` of `oid`, if the chunk lives in a slot.
fn extent_of(st: &ObjectStore, oid: &str, idx: u64) -> R<Option<Extent>> {
    let v = st.raw_extent(&chunk_key(&sub_prefix(PG, oid), idx))?;
    v.map(|v| Extent::decode(&v)).transpose()
}

/// That whole chunks live in slots and short ones inline, that content reads back exactly
/// (also across a reopen), and that overwriting and removing objects reuses freed slots
/// instead of growing the file.
#[test]
fn slots_are_reused() -> R {
    let (dir, st) = open_tmp();
    let len = 4 * SLOT + 100;
    for round in 0..40u64 {
        st.apply(PG, &write_full("big", pattern(len, round)))?;
        st.apply(PG, &write_full(&format!("tmp{round}"), pattern(SLOT, round)))?;
        st.apply(PG, &Transaction { ops: vec![TxOp::Remove { oid: format!("tmp{round}") }], mtime_ms: 8 })?;
    }
    assert!(extent_of(&st, "big", 0)?.is_some(), "a whole chunk is in a slot");
    assert!(extent_of(&st, "big", 4)?.is_none(), "the 100-byte tail is inline");
    assert_eq!(st.read(PG, "big", 0, None)?, pattern(len, 39));
    assert_eq!(blocks_len(&dir), GROW_SLOTS * SLOT as u64, "40 rounds of 5 slots fit one growth step");
    drop(st);
    let st = ObjectStore::open(dir.path())?;
    assert_eq!(st.read(PG, "big", SLOT as u64 - 10, Some(20))?, pattern(len, 39)[SLOT - 10..SLOT + 10].to_vec());
    Ok(())
}

/// That a batch aborted by a storage error leaves the previous content readable and gives
/// back the slots it had taken, so they are reused (the file does not grow).
#[test]
fn aborted_batch_frees_its_slots() -> R {
    let (dir, st) = open_tmp();
    st.apply(PG, &write_full("a", pattern(8 * SLOT, 1)))?;
    st.apply(PG, &write_full("c", pattern(SLOT, 2)))?;
    st.raw_put("extents", &chunk_key(&sub_prefix(PG, "c"), 0), b"short")?;
    let poke = Transaction { ops: vec![TxOp::Write { oid: "c".into(), off: 10, data: vec![1; 10].into() }], mtime_ms: 9 };
    for round in 0..200u64 {
        let batch = [(PG, write_full("a", pattern(8 * SLOT, round + 10))), (PG, poke.clone())];
        assert!(matches!(st.apply_batch(&batch), Err(StoreError::Corrupt(_))), "the batch aborts");
    }
    assert_eq!(st.read(PG, "a", 0, None)?, pattern(8 * SLOT, 1), "the old content stays");
    assert_eq!(blocks_len(&dir), GROW_SLOTS * SLOT as u64, "200 aborted batches of 8 slots took no space");
    Ok(())
}

/// That damaged slot bytes fail their checksum (Corrupt from read and pg_digest, never
/// wrong data), and that extent records pointing past the file or at one slot twice make
/// open fail with Corrupt instead of handing out a slot twice.
#[test]
fn damage_is_detected() -> R {
    let (dir, st) = open_tmp();
    st.apply(PG, &write_full("a", pattern(2 * SLOT, 3)))?;
    let e = extent_of(&st, "a", 1)?.ok_or_else(|| StoreError::Invalid("no extent".into()))?;
    let f = OpenOptions::new().write(true).open(dir.path().join("blocks.dat"))?;
    f.write_all_at(b"XX", e.slot * SLOT as u64 + 5)?;
    assert_eq!(st.read(PG, "a", 0, Some(SLOT as u64))?, pattern(SLOT, 3), "the intact slot still reads");
    assert!(matches!(st.read(PG, "a", 0, None), Err(StoreError::Corrupt(_))));
    assert!(matches!(st.read(PG, "a", SLOT as u64 + 1, Some(3)), Err(StoreError::Corrupt(_))));
    assert!(matches!(st.pg_digest(PG), Err(StoreError::Corrupt(_))));
    let twice = extent_of(&st, "a", 0)?.unwrap_or(e);
    drop(st);
    for bad in [Extent { slot: 1 << 40, crc: 0 }, twice] {
        raw_put_at(dir.path(), "extents", &chunk_key(&sub_prefix(PG, "z"), 0), &bad.encode())?;
        let reopened = ObjectStore::open(dir.path());
        assert!(matches!(reopened, Err(StoreError::Corrupt(_))), "slot {} refused", bad.slot);
    }
    Ok(())
}

/// That readers racing a writer which keeps replacing a multi-slot object always see one
/// whole committed version (never slots reused under them), and the last version wins.
#[test]
fn readers_never_see_reused_slots() -> R {
    let (_dir, st) = open_tmp();
    let st = std::sync::Arc::new(st);
    let len = 6 * SLOT;
    let versions: Vec<Vec<u8>> = (0..8).map(|v| pattern(len, v)).collect();
    st.apply(PG, &write_full("o", versions[0].clone()))?;
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (st, versions) = (st.clone(), versions.clone());
            std::thread::spawn(move || -> R<usize> {
                for _ in 0..150 {
                    let got = st.read(PG, "o", 0, None)?;
                    if !versions.contains(&got) {
                        return Err(StoreError::Invalid("a read mixed versions".into()));
                    }
                }
                Ok(150)
            })
        })
        .collect();
    for round in 1..120usize {
        st.apply(PG, &write_full("o", versions[round % 8].clone()))?;
    }
    for r in readers {
        assert_eq!(r.join().map_err(|_| StoreError::Invalid("reader panicked".into()))??, 150);
    }
    assert_eq!(st.read(PG, "o", 0, None)?, versions[119 % 8]);
    Ok(())
}
