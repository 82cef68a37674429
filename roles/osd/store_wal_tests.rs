//! The store's write-ahead log seen from the store: batches that write only key/value
//! records are logged, and a store whose fjall journal lost them (a crash before fjall's
//! own journal reached the disk) gets them back from the log when it opens.
use super::*;
use std::path::Path;

type R<T = ()> = Result<T, StoreError>;

const PG: PgId = PgId { pool: 2, seed: 5 };

fn write_full(oid: &str, data: Vec<u8>) -> Transaction {
    Transaction { ops: vec![TxOp::WriteFull { oid: oid.to_string(), data: data.into() }], mtime_ms: 9 }
}

fn omap(oid: &str, key: &str, value: &[u8]) -> Transaction {
    let entries = vec![(key.to_string(), serde_bytes::ByteBuf::from(value.to_vec()))];
    Transaction { ops: vec![TxOp::OmapSet { oid: oid.to_string(), entries }], mtime_ms: 9 }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).expect("copy");
        }
    }
}

fn logged_seq(st: &ObjectStore) -> u64 {
    st.wal.lock().map(|w| w.next_seq).unwrap_or(0)
}

/// That small writes go to the log (its sequence advances) while a whole-chunk write
/// commits the fsync way (it does not), and that a store whose keyspace is older than
/// its log replays exactly the missing records on open.
#[test]
fn a_store_missing_logged_batches_replays_them() -> R {
    let root = tempfile::tempdir().expect("tempdir");
    let (live, old) = (root.path().join("live"), root.path().join("old"));
    {
        let st = ObjectStore::open(&live)?;
        let first = logged_seq(&st);
        st.apply(PG, &write_full("big", vec![7u8; CHUNK_SIZE as usize * 2]))?;
        assert_eq!(logged_seq(&st), first, "a whole-chunk write is not logged");
        st.apply(PG, &write_full("a", b"before".to_vec()))?;
        assert_eq!(logged_seq(&st), first + 1, "a small write is logged");
    }
    // The keyspace as it was: every later batch reaches it only through the log.
    copy_dir(&live, &old);
    let mut want = Vec::new();
    {
        let st = ObjectStore::open(&live)?;
        for i in 0..40u32 {
            let body = vec![(i % 251) as u8; 100 + i as usize * 37];
            st.apply(PG, &write_full(&format!("o{i}"), body.clone()))?;
            want.push((format!("o{i}"), body));
        }
        st.apply(PG, &write_full("a", b"after".to_vec()))?;
        st.apply(PG, &omap("a", "k", b"v"))?;
        st.apply(PG, &Transaction { ops: vec![TxOp::Remove { oid: "o3".into() }], mtime_ms: 9 })?;
    }
    std::fs::copy(live.join("wal.dat"), old.join("wal.dat")).expect("copy log");
    for dir in [&old, &live] {
        let st = ObjectStore::open(dir)?;
        assert_eq!(st.read(PG, "a", 0, None)?, b"after");
        assert_eq!(st.omap_get(PG, "a", &["k".to_string()])?, vec![("k".to_string(), b"v".to_vec())]);
        assert!(matches!(st.stat(PG, "o3"), Err(StoreError::NoObject(_))));
        for (oid, body) in want.iter().filter(|(o, _)| o != "o3") {
            assert_eq!(&st.read(PG, oid, 0, None)?, body, "{oid} in {}", dir.display());
        }
        assert_eq!(st.read(PG, "big", 0, None)?, vec![7u8; CHUNK_SIZE as usize * 2]);
        // Numbering continues after the replayed records.
        let next = logged_seq(&st);
        st.apply(PG, &write_full("later", b"x".to_vec()))?;
        assert_eq!(logged_seq(&st), next + 1);
    }
    Ok(())
}

/// That more logged bytes than the log holds make it start over after a checkpoint, and
/// every write of every lap is there after a reopen.
#[test]
fn the_log_wraps_after_a_checkpoint() -> R {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = |i: usize| vec![(i % 199) as u8; 60_000];
    let n = (wal::WAL_BYTES as usize / 60_000) * 2;
    {
        let st = ObjectStore::open(dir.path())?;
        for i in 0..n {
            st.apply(PG, &write_full(&format!("w{}", i % 50), body(i)))?;
        }
    }
    let st = ObjectStore::open(dir.path())?;
    for i in n - 50..n {
        assert_eq!(st.read(PG, &format!("w{}", i % 50), 0, None)?, body(i));
    }
    Ok(())
}

/// That a log whose records start past what the keyspace has applied (a record lost in
/// between) refuses to open rather than serve a store with a hole in its history.
#[test]
fn a_gap_between_keyspace_and_log_is_corruption() -> R {
    let root = tempfile::tempdir().expect("tempdir");
    let (live, old) = (root.path().join("live"), root.path().join("old"));
    {
        let st = ObjectStore::open(&live)?;
        st.apply(PG, &write_full("a", b"1".to_vec()))?;
    }
    copy_dir(&live, &old);
    {
        let st = ObjectStore::open(&live)?;
        st.apply(PG, &write_full("a", b"2".to_vec()))?;
        // A whole-chunk batch: the log starts over, its next record is #3 at offset 0.
        st.apply(PG, &write_full("big", vec![1u8; CHUNK_SIZE as usize]))?;
        st.apply(PG, &write_full("a", b"3".to_vec()))?;
    }
    std::fs::copy(live.join("wal.dat"), old.join("wal.dat")).expect("copy log");
    match ObjectStore::open(&old) {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("write-ahead log"), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a store with a hole in its history opened"),
    }
    Ok(())
}

/// That `apply_batch_notify` reports a logged batch durable (with each transaction's
/// result) before fjall applies it, that a crash right then loses nothing (the store
/// directory copied inside the callback opens with the write), and that a batch
/// committed the `fsync` way is reported once it is committed and visible.
#[test]
fn durable_is_reported_before_applied_and_survives_a_crash() -> R {
    let root = tempfile::tempdir().expect("tempdir");
    let (live, crashed) = (root.path().join("live"), root.path().join("crashed"));
    let st = ObjectStore::open(&live)?;
    st.apply(PG, &write_full("a", b"first".to_vec()))?;
    let exclusive = Transaction { ops: vec![TxOp::Create { oid: "a".into(), exclusive: true }], mtime_ms: 9 };
    let batch = vec![(PG, write_full("b", vec![2u8; 4096])), (PG, exclusive)];
    let mut reports = Vec::new();
    let results = st.apply_batch_notify(&batch, &mut |r| {
        reports.push(r.iter().map(Result::is_ok).collect::<Vec<_>>());
        assert!(matches!(st.stat(PG, "b"), Err(StoreError::NoObject(_))), "not applied yet");
        copy_dir(&live, &crashed);
    })?;
    assert_eq!(reports, vec![vec![true, false]]);
    assert!(results[0].is_ok() && matches!(results[1], Err(StoreError::Exists(_))));
    assert_eq!(st.read(PG, "b", 0, None)?, vec![2u8; 4096]);
    st.settle();

    let mut reports = 0;
    let big = vec![(PG, write_full("big", vec![5u8; CHUNK_SIZE as usize]))];
    st.apply_batch_notify(&big, &mut |r| {
        reports += 1;
        assert!(r[0].is_ok());
        assert!(st.stat(PG, "big").is_ok(), "an fsync-way batch is visible when reported");
    })?;
    assert_eq!(reports, 1);
    drop(st);

    let st = ObjectStore::open(&crashed)?;
    assert_eq!(st.read(PG, "a", 0, None)?, b"first");
    assert_eq!(st.read(PG, "b", 0, None)?, vec![2u8; 4096]);
    Ok(())
}
