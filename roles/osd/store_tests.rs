use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use tempfile::TempDir;

type R<T = ()> = Result<T, StoreError>;

fn pg(seed: u32) -> PgId {
    PgId { pool: 3, seed }
}

fn open_tmp() -> (TempDir, ObjectStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStore::open(dir.path()).expect("open store");
    (dir, store)
}

fn txn(ops: Vec<TxOp>) -> Transaction {
    Transaction { ops, mtime_ms: 1000 }
}

fn s(x: &str) -> String {
    x.to_string()
}

fn write(oid: &str, off: u64, data: &[u8]) -> TxOp {
    TxOp::Write { oid: s(oid), off, data: data.to_vec().into() }
}

fn omap_set(oid: &str, kvs: &[(&str, &[u8])]) -> TxOp {
    let entries = kvs.iter().map(|(k, v)| (s(k), serde_bytes::ByteBuf::from(v.to_vec()))).collect();
    TxOp::OmapSet { oid: s(oid), entries }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i % 251) as u8)).collect()
}

/// That Create makes an empty object stamped with the transaction mtime, that an exclusive
/// Create of an existing object fails with Exists, and that a non-exclusive one changes nothing.
#[test]
fn create_exclusive_and_idempotent() -> R {
    let (_d, st) = open_tmp();
    st.apply(pg(0), &Transaction { ops: vec![TxOp::Create { oid: s("o"), exclusive: true }], mtime_ms: 7 })?;
    assert_eq!(st.stat(pg(0), "o")?, ObjStat { size: 0, mtime_ms: 7 });
    let again = st.apply(pg(0), &txn(vec![TxOp::Create { oid: s("o"), exclusive: true }]));
    assert!(matches!(again, Err(StoreError::Exists(o)) if o == "o"));
    st.apply(pg(0), &txn(vec![TxOp::Create { oid: s("o"), exclusive: false }]))?;
    assert_eq!(st.stat(pg(0), "o")?, ObjStat { size: 0, mtime_ms: 7 });
    assert_eq!(st.read(pg(0), "o", 0, None)?, Vec::<u8>::new());
    Ok(())
}

/// That `check` answers exactly what a commit of the same transaction would (so a
/// primary refuses a write before replicating it), says whether the object exists
/// before and after, and commits nothing.
#[test]
fn check_matches_commit_and_commits_nothing() -> R {
    let (_d, st) = open_tmp();
    let create = txn(vec![TxOp::Create { oid: s("o"), exclusive: true }, write("o", 0, b"abc")]);
    assert_eq!(st.check(pg(0), "o", &create)?, (false, true));
    assert!(matches!(st.stat(pg(0), "o"), Err(StoreError::NoObject(_))), "check commits nothing");
    st.apply(pg(0), &create)?;
    assert!(matches!(st.check(pg(0), "o", &create), Err(StoreError::Exists(_))));
    assert_eq!(st.check(pg(0), "o", &txn(vec![TxOp::Remove { oid: s("o") }]))?, (true, false));
    assert_eq!(st.check(pg(0), "o", &txn(vec![TxOp::Remove { oid: s("o") }, write("o", 0, b"x")]))?, (true, true));
    let failing = [
        txn(vec![TxOp::Remove { oid: s("missing") }]),
        txn(vec![TxOp::OmapClear { oid: s("missing") }]),
        txn(vec![write("o", MAX_OBJECT_SIZE, b"x")]),
        txn(vec![omap_set("o", &[(&"k".repeat(MAX_NAME_LEN + 1), b"v")])]),
        txn(vec![TxOp::SetXattr { oid: s("o"), name: String::new(), value: vec![1] }]),
        txn(vec![TxOp::Create { oid: "n".repeat(MAX_NAME_LEN + 1), exclusive: false }]),
    ];
    for t in &failing {
        let oid = t.ops[0].oid().unwrap_or_default();
        let checked = st.check(pg(0), oid, t).map(|_| ()).map_err(|e| e.to_string());
        let committed = st.apply(pg(0), t).map_err(|e| e.to_string());
        assert!(checked.is_err(), "{t:?}");
        assert_eq!(checked, committed, "{t:?}");
    }
    assert_eq!(st.read(pg(0), "o", 0, None)?, b"abc".to_vec());
    Ok(())
}

/// That WriteFull replaces the whole content, shrinking a larger object to the new length.
#[test]
fn write_full_replaces() -> R {
    let (_d, st) = open_tmp();
    let big = pattern(200_000, 1);
    st.apply(pg(0), &txn(vec![TxOp::WriteFull { oid: s("o"), data: big.into() }]))?;
    st.apply(pg(0), &txn(vec![TxOp::WriteFull { oid: s("o"), data: b"short".to_vec().into() }]))?;
    assert_eq!(st.stat(pg(0), "o")?.size, 5);
    assert_eq!(st.read(pg(0), "o", 0, None)?, b"short");
    st.apply(pg(0), &txn(vec![TxOp::Truncate { oid: s("o"), size: 150_000 }]))?;
    let mut want = b"short".to_vec();
    want.resize(150_000, 0);
    assert_eq!(st.read(pg(0), "o", 0, None)?, want, "old tail must not come back");
    Ok(())
}

/// That a write past the end zero-fills the gap, creates a missing object, spans chunk
/// boundaries correctly, and that an empty write creates but does not extend.
#[test]
fn sparse_writes_zero_fill() -> R {
    let (_d, st) = open_tmp();
    let data = pattern(70_000, 9);
    st.apply(pg(0), &txn(vec![write("o", 100_000, &data)]))?;
    assert_eq!(st.stat(pg(0), "o")?.size, 170_000);
    let all = st.read(pg(0), "o", 0, None)?;
    assert!(all[..100_000].iter().all(|&b| b == 0));
    assert_eq!(&all[100_000..], &data[..]);
    st.apply(pg(0), &txn(vec![write("o", 65_530, b"0123456789")]))?;
    assert_eq!(st.read(pg(0), "o", 65_528, Some(14))?, b"\0\x000123456789\0\0");
    st.apply(pg(0), &txn(vec![write("e", 5000, b"")]))?;
    assert_eq!(st.stat(pg(0), "e")?.size, 0);
    Ok(())
}

/// That a 4 KiB overwrite in the middle of a 4 MiB object changes exactly those bytes.
#[test]
fn small_overwrite_in_large_object() -> R {
    let (_d, st) = open_tmp();
    let mut model = pattern(4 << 20, 3);
    st.apply(pg(0), &txn(vec![TxOp::WriteFull { oid: s("big"), data: model.clone().into() }]))?;
    let patch = pattern(4096, 200);
    st.apply(pg(0), &txn(vec![write("big", 1_000_000, &patch)]))?;
    model[1_000_000..1_004_096].copy_from_slice(&patch);
    assert_eq!(st.read(pg(0), "big", 999_000, Some(10_000))?, &model[999_000..1_009_000]);
    assert_eq!(st.read(pg(0), "big", 0, None)?, model);
    Ok(())
}

/// That Append writes at the current end, creating the object when missing.
#[test]
fn append_extends() -> R {
    let (_d, st) = open_tmp();
    let first = pattern(65_000, 1);
    st.apply(pg(0), &txn(vec![TxOp::Append { oid: s("o"), data: first.clone().into() }]))?;
    st.apply(pg(0), &txn(vec![TxOp::Append { oid: s("o"), data: b"tail".to_vec().into() }]))?;
    let mut want = first;
    want.extend_from_slice(b"tail");
    assert_eq!(st.read(pg(0), "o", 0, None)?, want);
    assert_eq!(st.stat(pg(0), "o")?.size, 65_004);
    Ok(())
}

/// That Truncate shrinks (dropping the tail, also mid-chunk) and grows with zeros, so bytes cut
/// off never reappear.
#[test]
fn truncate_shrinks_and_grows() -> R {
    let (_d, st) = open_tmp();
    let data = pattern(150_000, 5);
    st.apply(pg(0), &txn(vec![TxOp::WriteFull { oid: s("o"), data: data.clone().into() }]))?;
    st.apply(pg(0), &txn(vec![TxOp::Truncate { oid: s("o"), size: 70_000 }]))?;
    assert_eq!(st.read(pg(0), "o", 0, None)?, &data[..70_000]);
    st.apply(pg(0), &txn(vec![TxOp::Truncate { oid: s("o"), size: 200_000 }]))?;
    let got = st.read(pg(0), "o", 0, None)?;
    assert_eq!(got.len(), 200_000);
    assert_eq!(&got[..70_000], &data[..70_000]);
    assert!(got[70_000..].iter().all(|&b| b == 0));
    st.apply(pg(0), &txn(vec![TxOp::Truncate { oid: s("new"), size: 10 }]))?;
    assert_eq!(st.read(pg(0), "new", 0, None)?, vec![0u8; 10]);
    Ok(())
}

/// That trimming an object with more chunks than are dropped one by one (the range scan)
/// and fewer (point lookups) both leave no old bytes behind, in slots or inline.
#[test]
fn trims_of_large_sparse_objects() -> R {
    let (_d, st) = open_tmp();
    let whole = pattern(CHUNK_SIZE as usize, 7);
    let far = 30 << 20;
    let ops = vec![write("o", 0, &whole), write("o", 20 << 20, b"tail"), write("o", far, &whole)];
    st.apply(pg(0), &txn(ops))?;
    assert_eq!(st.stat(pg(0), "o")?.size, far + CHUNK_SIZE);
    st.apply(pg(0), &txn(vec![TxOp::Truncate { oid: s("o"), size: 100 }]))?;
    st.apply(pg(0), &txn(vec![TxOp::Truncate { oid: s("o"), size: far + CHUNK_SIZE }]))?;
    let got = st.read(pg(0), "o", 0, None)?;
    assert_eq!(&got[..100], &whole[..100]);
    assert!(got[100..].iter().all(|&b| b == 0), "a trimmed chunk came back");
    st.apply(pg(0), &txn(vec![write("o", 5 << 20, &whole), write("o", 6 << 20, b"x")]))?;
    st.apply(pg(0), &txn(vec![TxOp::WriteFull { oid: s("o"), data: b"new".to_vec().into() }]))?;
    st.apply(pg(0), &txn(vec![TxOp::Truncate { oid: s("o"), size: 7 << 20 }]))?;
    let got = st.read(pg(0), "o", 0, None)?;
    assert_eq!(&got[..3], b"new");
    assert!(got[3..].iter().all(|&b| b == 0), "write_full left old bytes behind");
    Ok(())
}

/// That reads past the end are short or empty, and reads of missing objects fail with NoObject.
#[test]
fn reads_past_eof() -> R {
    let (_d, st) = open_tmp();
    st.apply(pg(0), &txn(vec![TxOp::WriteFull { oid: s("o"), data: b"hello".to_vec().into() }]))?;
    assert_eq!(st.read(pg(0), "o", 3, Some(100))?, b"lo");
    assert_eq!(st.read(pg(0), "o", 5, Some(1))?, b"");
    assert_eq!(st.read(pg(0), "o", u64::MAX, Some(u64::MAX))?, b"");
    assert_eq!(st.read(pg(0), "o", 1, Some(0))?, b"");
    assert!(matches!(st.read(pg(0), "nope", 0, None), Err(StoreError::NoObject(_))));
    assert!(matches!(st.stat(pg(0), "nope"), Err(StoreError::NoObject(_))));
    Ok(())
}

/// That Remove of a missing object fails with NoObject, and Remove drops data, xattrs and omap
/// so a re-created object starts clean.
#[test]
fn remove_semantics() -> R {
    let (_d, st) = open_tmp();
    let r = st.apply(pg(0), &txn(vec![TxOp::Remove { oid: s("o") }]));
    assert!(matches!(r, Err(StoreError::NoObject(o)) if o == "o"));
    let set_x = TxOp::SetXattr { oid: s("o"), name: s("x"), value: b"v".to_vec() };
    st.apply(pg(0), &txn(vec![write("o", 0, &pattern(100_000, 1)), set_x, omap_set("o", &[("k", b"v")])]))?;
    st.apply(pg(0), &txn(vec![TxOp::Remove { oid: s("o") }]))?;
    assert!(matches!(st.stat(pg(0), "o"), Err(StoreError::NoObject(_))));
    st.apply(pg(0), &txn(vec![TxOp::Truncate { oid: s("o"), size: 100_000 }]))?;
    assert!(st.read(pg(0), "o", 0, None)?.iter().all(|&b| b == 0));
    assert!(st.xattrs(pg(0), "o")?.is_empty());
    assert!(st.omap_list(pg(0), "o", None, 10)?.is_empty());
    Ok(())
}

/// That ops that need an existing object (RmXattr, OmapRm, OmapClear, SetMtime) fail with
/// NoObject on a missing one, and that SetMtime sets the given mtime.
#[test]
fn ops_needing_object() -> R {
    let (_d, st) = open_tmp();
    for op in [
        TxOp::RmXattr { oid: s("m"), name: s("x") },
        TxOp::OmapRm { oid: s("m"), keys: vec![s("k")] },
        TxOp::OmapClear { oid: s("m") },
        TxOp::SetMtime { oid: s("m"), mtime_ms: 5 },
    ] {
        assert!(matches!(st.apply(pg(0), &txn(vec![op])), Err(StoreError::NoObject(_))));
    }
    st.apply(pg(0), &txn(vec![TxOp::Create { oid: s("m"), exclusive: false }]))?;
    st.apply(pg(0), &txn(vec![TxOp::SetMtime { oid: s("m"), mtime_ms: 5 }]))?;
    assert_eq!(st.stat(pg(0), "m")?.mtime_ms, 5);
    st.apply(pg(0), &Transaction { ops: vec![write("m", 0, b"x")], mtime_ms: 99 })?;
    assert_eq!(st.stat(pg(0), "m")?, ObjStat { size: 1, mtime_ms: 99 });
    Ok(())
}

/// That xattrs can be set, overwritten, read singly and in name order, and removed.
#[test]
fn xattr_semantics() -> R {
    let (_d, st) = open_tmp();
    let set = |n: &str, v: &[u8]| TxOp::SetXattr { oid: s("o"), name: s(n), value: v.to_vec() };
    st.apply(pg(0), &txn(vec![set("b", b"2"), set("a", b"1"), set("c", b"3"), set("b", b"22")]))?;
    assert_eq!(st.xattr_get(pg(0), "o", "b")?, Some(b"22".to_vec()));
    assert_eq!(st.xattr_get(pg(0), "o", "zz")?, None);
    st.apply(pg(0), &txn(vec![TxOp::RmXattr { oid: s("o"), name: s("c") }]))?;
    st.apply(pg(0), &txn(vec![TxOp::RmXattr { oid: s("o"), name: s("absent") }]))?;
    assert_eq!(st.xattrs(pg(0), "o")?, vec![(s("a"), b"1".to_vec()), (s("b"), b"22".to_vec())]);
    assert!(matches!(st.xattr_get(pg(0), "x", "a"), Err(StoreError::NoObject(_))));
    Ok(())
}

/// That omap entries list in key order, `after` pages strictly after the given key, omap_get
/// returns only existing keys, and OmapRm/OmapClear remove entries.
#[test]
fn omap_ordering_paging() -> R {
    let (_d, st) = open_tmp();
    let keys: Vec<String> = (0..25).rev().map(|i| format!("key{i:02}")).collect();
    let entries = keys.iter().map(|k| (k.clone(), serde_bytes::ByteBuf::from(k.as_bytes().to_vec()))).collect();
    st.apply(pg(0), &txn(vec![TxOp::OmapSet { oid: s("o"), entries }]))?;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = st.omap_list(pg(0), "o", after.as_deref(), 10)?;
        let Some(last) = page.last() else { break };
        after = Some(last.0.clone());
        seen.extend(page.into_iter().map(|(k, _)| k));
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(seen, sorted);
    assert_eq!(st.omap_list(pg(0), "o", Some("key10x"), 1)?[0].0, "key11");
    let got = st.omap_get(pg(0), "o", &[s("key05"), s("nope"), s("key01")])?;
    assert_eq!(got, vec![(s("key01"), b"key01".to_vec()), (s("key05"), b"key05".to_vec())]);
    st.apply(pg(0), &txn(vec![TxOp::OmapRm { oid: s("o"), keys: vec![s("key00"), s("nope")] }]))?;
    assert_eq!(st.omap_list(pg(0), "o", None, 1)?[0].0, "key01");
    st.apply(pg(0), &txn(vec![TxOp::OmapClear { oid: s("o") }]))?;
    assert!(st.omap_list(pg(0), "o", None, 100)?.is_empty());
    Ok(())
}

/// That bad arguments (empty or over-long oid, empty xattr name, sizes past the maximum,
/// offset overflow) fail with Invalid.
#[test]
fn invalid_arguments() {
    let (_d, st) = open_tmp();
    let bad = [
        TxOp::Create { oid: s(""), exclusive: false },
        TxOp::Create { oid: "x".repeat(MAX_NAME_LEN + 1), exclusive: false },
        TxOp::SetXattr { oid: s("o"), name: s(""), value: vec![] },
        TxOp::Truncate { oid: s("o"), size: MAX_OBJECT_SIZE + 1 },
        write("o", u64::MAX - 1, b"abc"),
        write("o", MAX_OBJECT_SIZE, b"a"),
    ];
    for op in bad {
        let r = st.apply(pg(0), &txn(vec![op.clone()]));
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{op:?} gave {r:?}");
    }
    assert_eq!(st.list_objects(pg(0), None, 10).ok(), Some(vec![]));
}

/// That a transaction whose later op fails leaves no trace: no object data, omap or PG metadata.
#[test]
fn failed_txn_leaves_no_trace() -> R {
    let (_d, st) = open_tmp();
    st.apply(pg(0), &txn(vec![TxOp::WriteFull { oid: s("keep"), data: b"old".to_vec().into() }]))?;
    let ops = vec![
        TxOp::WriteFull { oid: s("keep"), data: b"new".to_vec().into() },
        write("fresh", 0, b"data"),
        omap_set("keep", &[("k", b"v")]),
        TxOp::PgMetaSet { key: s("log"), value: b"entry".to_vec() },
        TxOp::Remove { oid: s("missing") },
    ];
    assert!(matches!(st.apply(pg(0), &txn(ops)), Err(StoreError::NoObject(_))));
    assert_eq!(st.read(pg(0), "keep", 0, None)?, b"old");
    assert!(st.omap_list(pg(0), "keep", None, 10)?.is_empty());
    assert_eq!(st.list_objects(pg(0), None, 10)?, vec![s("keep")]);
    assert_eq!(st.pg_meta_get(pg(0), "log")?, None);
    Ok(())
}

/// That in one batch a failing transaction is skipped alone: the others commit, later ones see
/// earlier ones, and each slot reports its own result.
#[test]
fn batch_partial_failure() -> R {
    let (_d, st) = open_tmp();
    let batch = vec![
        (pg(0), txn(vec![TxOp::Create { oid: s("a"), exclusive: true }])),
        (pg(0), txn(vec![write("b", 0, b"bbb"), TxOp::Create { oid: s("a"), exclusive: true }])),
        (pg(1), txn(vec![TxOp::PgMetaSet { key: s("info"), value: b"i".to_vec() }])),
        (pg(0), txn(vec![TxOp::Append { oid: s("a"), data: b"x".to_vec().into() }])),
    ];
    let res = st.apply_batch(&batch)?;
    assert!(res[0].is_ok() && res[2].is_ok() && res[3].is_ok());
    assert!(matches!(res[1], Err(StoreError::Exists(_))));
    assert_eq!(st.list_objects(pg(0), None, 10)?, vec![s("a")]);
    assert_eq!(st.read(pg(0), "a", 0, None)?, b"x");
    assert_eq!(st.pg_meta_get(pg(1), "info")?, Some(b"i".to_vec()));
    assert!(st.apply_batch(&[])?.is_empty());
    Ok(())
}

/// That committed objects, xattrs, omap and PG metadata survive closing and reopening the store.
#[test]
fn durable_across_reopen() -> R {
    let dir = tempfile::tempdir().map_err(StoreError::from)?;
    let data = pattern(300_000, 4);
    {
        let st = ObjectStore::open(dir.path())?;
        let set_x = TxOp::SetXattr { oid: s("o"), name: s("x"), value: b"xv".to_vec() };
        let meta = TxOp::PgMetaSet { key: s("log"), value: b"e1".to_vec() };
        st.apply(pg(2), &txn(vec![TxOp::WriteFull { oid: s("o"), data: data.clone().into() }, set_x, meta]))?;
        st.apply(pg(2), &txn(vec![omap_set("o", &[("k", b"v")])]))?;
    }
    let st = ObjectStore::open(dir.path())?;
    assert_eq!(st.read(pg(2), "o", 0, None)?, data);
    assert_eq!(st.xattr_get(pg(2), "o", "x")?, Some(b"xv".to_vec()));
    assert_eq!(st.omap_get(pg(2), "o", &[s("k")])?, vec![(s("k"), b"v".to_vec())]);
    assert_eq!(st.pg_meta_get(pg(2), "log")?, Some(b"e1".to_vec()));
    assert_eq!(st.list_pgs()?, vec![pg(2)]);
    Ok(())
}

/// That the same oid in two PGs are independent objects, and PG metadata is per PG.
#[test]
fn pg_isolation() -> R {
    let (_d, st) = open_tmp();
    st.apply(pg(0), &txn(vec![write("o", 0, b"zero"), TxOp::PgMetaSet { key: s("k"), value: b"0".to_vec() }]))?;
    st.apply(pg(1), &txn(vec![write("o", 0, b"one!"), omap_set("o", &[("k", b"1")])]))?;
    st.apply(pg(0), &txn(vec![TxOp::Remove { oid: s("o") }]))?;
    assert_eq!(st.read(pg(1), "o", 0, None)?, b"one!");
    assert_eq!(st.omap_list(pg(1), "o", None, 5)?.len(), 1);
    assert!(matches!(st.stat(pg(0), "o"), Err(StoreError::NoObject(_))));
    assert_eq!(st.pg_meta_get(pg(1), "k")?, None);
    assert_eq!(st.pg_meta_get(pg(0), "k")?, Some(b"0".to_vec()));
    let other_pool = PgId { pool: 4, seed: 0 };
    assert!(matches!(st.stat(other_pool, "o"), Err(StoreError::NoObject(_))));
    Ok(())
}

/// That objects whose names are prefixes of each other ("a", "ab", "a\0") keep separate data
/// and omap (removing "a" leaves the others intact), and list_objects returns names sorted and pages with `after`.
#[test]
fn prefix_names_and_listing() -> R {
    let (_d, st) = open_tmp();
    let names = ["ab", "a", "b", "a\0", "a b", "aa", "c"];
    for (i, n) in names.iter().enumerate() {
        let ops = vec![write(n, 0, &pattern(70_000, i as u8)), omap_set(n, &[("k", n.as_bytes())])];
        st.apply(pg(0), &txn(ops))?;
    }
    st.apply(pg(0), &txn(vec![TxOp::Remove { oid: s("a") }]))?;
    for (i, n) in names.iter().enumerate().filter(|(_, n)| **n != "a") {
        assert_eq!(st.read(pg(0), n, 0, None)?, pattern(70_000, i as u8), "data of {n:?}");
        assert_eq!(st.omap_list(pg(0), n, None, 5)?, vec![(s("k"), n.as_bytes().to_vec())]);
    }
    let mut want: Vec<String> = names.iter().filter(|n| **n != "a").map(|n| s(n)).collect();
    want.sort();
    assert_eq!(st.list_objects(pg(0), None, 100)?, want);
    assert_eq!(st.list_objects(pg(0), None, 2)?, want[..2]);
    assert_eq!(st.list_objects(pg(0), Some(&want[1]), 3)?, want[2..5]);
    assert_eq!(st.list_objects(pg(0), Some("zzz"), 3)?, Vec::<String>::new());
    assert!(st.list_objects(pg(9), None, 10)?.is_empty());
    Ok(())
}

/// That RemovePg drops every object and metadata key of that PG only, removes it from
/// list_pgs, and ops after it in the same transaction start from an empty PG.
#[test]
fn remove_pg() -> R {
    let (_d, st) = open_tmp();
    for p in [pg(0), pg(1)] {
        st.apply(p, &txn(vec![write("o", 0, b"data"), TxOp::PgMetaSet { key: s("m"), value: b"v".to_vec() }]))?;
    }
    assert_eq!(st.list_pgs()?, vec![pg(0), pg(1)]);
    st.apply(pg(0), &txn(vec![TxOp::RemovePg]))?;
    assert_eq!(st.list_pgs()?, vec![pg(1)]);
    assert!(st.list_objects(pg(0), None, 10)?.is_empty());
    assert_eq!(st.pg_meta_get(pg(0), "m")?, None);
    assert_eq!(st.read(pg(1), "o", 0, None)?, b"data");
    st.apply(pg(1), &txn(vec![TxOp::RemovePg, TxOp::Create { oid: s("o"), exclusive: true }]))?;
    assert_eq!(st.stat(pg(1), "o")?.size, 0);
    assert_eq!(st.pg_meta_get(pg(1), "m")?, None);
    Ok(())
}

/// That PG metadata is set, overwritten and removed in the same transaction as object ops.
#[test]
fn pg_meta_semantics() -> R {
    let (_d, st) = open_tmp();
    let set = |k: &str, v: &[u8]| TxOp::PgMetaSet { key: s(k), value: v.to_vec() };
    st.apply(pg(0), &txn(vec![set("info", b"1"), set("log", b"a"), write("o", 0, b"x")]))?;
    st.apply(pg(0), &txn(vec![set("info", b"2"), TxOp::PgMetaRm { key: s("log") }]))?;
    assert_eq!(st.pg_meta_get(pg(0), "info")?, Some(b"2".to_vec()));
    assert_eq!(st.pg_meta_get(pg(0), "log")?, None);
    Ok(())
}

/// That pg_digest is equal for equal content reached by different histories (and mtimes), and
/// differs after any change to data, size, xattrs, omap or the set of objects.
#[test]
fn pg_digest_tracks_content() -> R {
    let (_d, st) = open_tmp();
    st.apply(pg(0), &Transaction { ops: content_ops(), mtime_ms: 1 })?;
    let mut full = vec![0u8; 100_000];
    full.extend_from_slice(b"tail");
    let other = vec![
        write("o", 0, &pattern(200_000, 1)),
        TxOp::WriteFull { oid: s("o"), data: full.into() },
        omap_set("o", &[("k", b"v")]),
        TxOp::SetXattr { oid: s("o"), name: s("x"), value: b"1".to_vec() },
    ];
    st.apply(pg(1), &Transaction { ops: other, mtime_ms: 2 })?;
    let base = st.pg_digest(pg(0))?;
    assert_eq!(base.len(), 1);
    assert_eq!(base, st.pg_digest(pg(1))?);
    let changes = vec![
        write("o", 5, b"\x01"),
        TxOp::Truncate { oid: s("o"), size: 100_005 },
        TxOp::SetXattr { oid: s("o"), name: s("x"), value: b"2".to_vec() },
        TxOp::RmXattr { oid: s("o"), name: s("x") },
        omap_set("o", &[("k2", b"")]),
        TxOp::OmapClear { oid: s("o") },
        TxOp::Create { oid: s("p"), exclusive: true },
        TxOp::Remove { oid: s("o") },
    ];
    for (i, change) in changes.into_iter().enumerate() {
        let p = pg(100 + i as u32);
        st.apply(p, &Transaction { ops: content_ops(), mtime_ms: 3 })?;
        assert_eq!(st.pg_digest(p)?, base, "copy {i} equals before the change");
        st.apply(p, &txn(vec![change.clone()]))?;
        assert_ne!(st.pg_digest(p)?, base, "change {change:?} must alter the digest");
    }
    Ok(())
}

/// The ops building the reference content of the digest test.
fn content_ops() -> Vec<TxOp> {
    vec![
        write("o", 100_000, b"tail"),
        TxOp::SetXattr { oid: s("o"), name: s("x"), value: b"1".to_vec() },
        omap_set("o", &[("k", b"v")]),
    ]
}

/// That corrupt records on disk (bad header, oversized chunk, non-UTF-8 name) surface as
/// Corrupt errors rather than panics or wrong data.
#[test]
fn corrupt_records_are_errors() -> R {
    let (_d, st) = open_tmp();
    st.apply(pg(0), &txn(vec![write("o", 0, b"abc")]))?;
    st.raw_put("objects", &obj_key(pg(0), "bad"), b"\x01short")?;
    st.raw_put("objects", &joined(&pg_prefix(pg(1)), b"\xff\xfe"), &encode_header(&ObjStat { size: 0, mtime_ms: 0 }))?;
    st.raw_put("data", &chunk_key(&sub_prefix(pg(0), "o"), 0), &vec![1u8; CHUNK_SIZE as usize + 1])?;
    assert!(matches!(st.stat(pg(0), "bad"), Err(StoreError::Corrupt(_))));
    assert!(matches!(st.read(pg(0), "o", 0, None), Err(StoreError::Corrupt(_))));
    assert!(matches!(st.pg_digest(pg(0)), Err(StoreError::Corrupt(_))));
    assert!(matches!(st.list_objects(pg(1), None, 10), Err(StoreError::Corrupt(_))));
    let r = st.apply(pg(0), &txn(vec![write("bad", 0, b"x")]));
    assert!(matches!(r, Err(StoreError::Corrupt(_))));
    Ok(())
}

/// That transaction ops round-trip through MessagePack (they travel between OSDs).
#[test]
fn txop_serde_roundtrip() {
    let ops = vec![write("o", 3, b"abc"), omap_set("o", &[("k", b"v")]), TxOp::RemovePg];
    let bytes = rmp_serde::to_vec(&ops).unwrap_or_default();
    let back: Vec<TxOp> = rmp_serde::from_slice(&bytes).unwrap_or_default();
    assert_eq!(back, ops);
}

// ---------------------------------------------------------------------------------------------
// Model-based property test
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq)]
struct MObj {
    data: Vec<u8>,
    mtime: u64,
    xattrs: BTreeMap<String, Vec<u8>>,
    omap: BTreeMap<String, Vec<u8>>,
}

/// A simple in-memory model: per PG, objects by name and metadata.
type Model = BTreeMap<u32, (BTreeMap<String, MObj>, BTreeMap<String, Vec<u8>>)>;

#[derive(Debug, PartialEq)]
enum Kind {
    NoObject,
    Exists,
    Invalid,
}

fn kind(e: &StoreError) -> Option<Kind> {
    match e {
        StoreError::NoObject(_) => Some(Kind::NoObject),
        StoreError::Exists(_) => Some(Kind::Exists),
        StoreError::Invalid(_) => Some(Kind::Invalid),
        _ => None,
    }
}

fn model_data_op(o: &mut MObj, op: &TxOp) -> Result<(), Kind> {
    let fits = |base: u64, len: usize| base.checked_add(len as u64).is_some_and(|e| e <= MAX_OBJECT_SIZE);
    match op {
        TxOp::WriteFull { data, .. } => o.data = data.to_vec(),
        TxOp::Write { off, data, .. } if fits(*off, data.len()) => {
            if !data.is_empty() {
                let end = *off as usize + data.len();
                o.data.resize(o.data.len().max(end), 0);
                o.data[*off as usize..end].copy_from_slice(data);
            }
        }
        TxOp::Append { data, .. } if fits(o.data.len() as u64, data.len()) => o.data.extend_from_slice(data),
        TxOp::Truncate { size, .. } if *size <= MAX_OBJECT_SIZE => o.data.resize(*size as usize, 0),
        TxOp::SetXattr { name, value, .. } if !name.is_empty() => {
            o.xattrs.insert(name.clone(), value.clone());
        }
        TxOp::RmXattr { name, .. } if !name.is_empty() => {
            o.xattrs.remove(name);
        }
        TxOp::OmapSet { entries, .. } => o.omap.extend(entries.iter().map(|(k, v)| (k.clone(), v.to_vec()))),
        TxOp::OmapRm { keys, .. } => keys.iter().for_each(|k| drop(o.omap.remove(k))),
        TxOp::OmapClear { .. } => o.omap.clear(),
        TxOp::Create { .. } => {}
        _ => return Err(Kind::Invalid),
    }
    Ok(())
}

fn model_obj_op(objs: &mut BTreeMap<String, MObj>, op: &TxOp, now: u64) -> Result<(), Kind> {
    let oid = op.oid().unwrap_or_default();
    if oid.is_empty() {
        return Err(Kind::Invalid);
    }
    let exists = objs.contains_key(oid);
    let needs_object = matches!(
        op,
        TxOp::Remove { .. }
            | TxOp::RmXattr { .. }
            | TxOp::OmapRm { .. }
            | TxOp::OmapClear { .. }
            | TxOp::SetMtime { .. }
    );
    match op {
        _ if needs_object && !exists => return Err(Kind::NoObject),
        TxOp::Create { exclusive: true, .. } if exists => return Err(Kind::Exists),
        TxOp::Create { .. } if exists => return Ok(()),
        TxOp::Remove { .. } => return objs.remove(oid).map(|_| ()).ok_or(Kind::NoObject),
        TxOp::SetMtime { mtime_ms, .. } => {
            objs.entry(oid.to_string()).or_default().mtime = *mtime_ms;
            return Ok(());
        }
        _ => {}
    }
    let o = objs.entry(oid.to_string()).or_default();
    o.mtime = now;
    model_data_op(o, op)
}

fn model_txn(m: &mut Model, pg: u32, t: &Transaction) -> Result<(), Kind> {
    let mut state = m.get(&pg).cloned().unwrap_or_default();
    for op in &t.ops {
        match op {
            TxOp::PgMetaSet { key, value } => drop(state.1.insert(key.clone(), value.clone())),
            TxOp::PgMetaRm { key } => drop(state.1.remove(key)),
            TxOp::RemovePg => state = Default::default(),
            _ => model_obj_op(&mut state.0, op, t.mtime_ms)?,
        }
    }
    m.insert(pg, state);
    Ok(())
}

fn check_against_model(st: &ObjectStore, m: &Model) -> R {
    for (&seed, (objs, meta)) in m {
        let names: Vec<String> = objs.keys().cloned().collect();
        assert_eq!(st.list_objects(pg(seed), None, usize::MAX)?, names);
        for (oid, o) in objs {
            assert_eq!(st.stat(pg(seed), oid)?, ObjStat { size: o.data.len() as u64, mtime_ms: o.mtime });
            assert_eq!(st.read(pg(seed), oid, 0, None)?, o.data, "data of {oid}");
            let third = o.data.len() / 3;
            let part = st.read(pg(seed), oid, third as u64, Some(third as u64 + 7))?;
            assert_eq!(part, &o.data[third..(2 * third + 7).min(o.data.len())]);
            let xs: Vec<_> = o.xattrs.clone().into_iter().collect();
            assert_eq!(st.xattrs(pg(seed), oid)?, xs);
            let om: Vec<_> = o.omap.clone().into_iter().collect();
            assert_eq!(st.omap_list(pg(seed), oid, None, usize::MAX)?, om);
        }
        for (k, v) in meta {
            assert_eq!(st.pg_meta_get(pg(seed), k)?.as_ref(), Some(v));
        }
    }
    Ok(())
}

fn arb_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0usize..300, any::<u8>()).prop_map(|(l, sd)| pattern(l, sd)),
        (60_000usize..140_000, any::<u8>()).prop_map(|(l, sd)| pattern(l, sd)),
    ]
}

fn arb_op() -> impl Strategy<Value = TxOp> {
    let oid = prop_oneof![6 => Just("a"), 3 => Just("ab"), 1 => Just("a\0"), 1 => Just("")].prop_map(s);
    let off = prop_oneof![0u64..300_000, Just(u64::MAX - 3), Just(MAX_OBJECT_SIZE)];
    let name = prop::sample::select(vec!["", "x", "y", "xy"]).prop_map(s);
    let key = prop::sample::select(vec!["k1", "k2", "k10", ""]).prop_map(s);
    prop_oneof![
        1 => (oid.clone(), any::<bool>()).prop_map(|(oid, exclusive)| TxOp::Create { oid, exclusive }),
        2 => (oid.clone(), arb_data()).prop_map(|(oid, data)| TxOp::WriteFull { oid, data: data.into() }),
        3 => (oid.clone(), off, arb_data()).prop_map(|(oid, off, data)| TxOp::Write { oid, off, data: data.into() }),
        2 => (oid.clone(), arb_data()).prop_map(|(oid, data)| TxOp::Append { oid, data: data.into() }),
        3 => (oid.clone(), prop_oneof![0u64..300_000, Just(MAX_OBJECT_SIZE + 1)])
            .prop_map(|(oid, size)| TxOp::Truncate { oid, size }),
        1 => oid.clone().prop_map(|oid| TxOp::Remove { oid }),
        1 => (oid.clone(), name.clone(), arb_data()).prop_map(|(oid, name, value)| TxOp::SetXattr { oid, name, value }),
        1 => (oid.clone(), name).prop_map(|(oid, name)| TxOp::RmXattr { oid, name }),
        1 => (oid.clone(), prop::collection::vec((key.clone(), arb_data()), 0..3)).prop_map(|(oid, kv)| TxOp::OmapSet {
            oid,
            entries: kv.into_iter().map(|(k, v)| (k, serde_bytes::ByteBuf::from(v))).collect()
        }),
        1 => (oid.clone(), prop::collection::vec(key.clone(), 0..3)).prop_map(|(oid, keys)| TxOp::OmapRm { oid, keys }),
        1 => oid.clone().prop_map(|oid| TxOp::OmapClear { oid }),
        1 => (oid, any::<u64>()).prop_map(|(oid, mtime_ms)| TxOp::SetMtime { oid, mtime_ms }),
        1 => (key.clone(), arb_data()).prop_map(|(key, value)| TxOp::PgMetaSet { key, value }),
        1 => key.prop_map(|key| TxOp::PgMetaRm { key }),
        1 => Just(TxOp::RemovePg),
    ]
}

#[derive(Clone, Debug)]
enum Step {
    Batch(Vec<(u32, Transaction)>),
    Reopen,
}

fn arb_step() -> impl Strategy<Value = Step> {
    let txn = (0u32..2, prop::collection::vec(arb_op(), 1..4), 0u64..1_000_000)
        .prop_map(|(p, ops, mtime_ms)| (p, Transaction { ops, mtime_ms }));
    prop_oneof![
        8 => prop::collection::vec(txn, 1..4).prop_map(Step::Batch),
        1 => Just(Step::Reopen),
    ]
}

/// Runs `steps` against a fresh store and the model. The store and its directory are handed
/// to `closing`, which drops them off the test's thread (closing a keyspace waits up to a
/// quarter second for fjall's monitor thread).
fn run_steps(steps: &[Step], closing: &std::sync::mpsc::Sender<(ObjectStore, TempDir)>) -> R {
    let dir = tempfile::tempdir().map_err(StoreError::from)?;
    let mut st = ObjectStore::open(dir.path())?;
    let mut model = Model::new();
    for step in steps {
        match step {
            Step::Reopen => {
                drop(st);
                st = ObjectStore::open(dir.path())?;
            }
            Step::Batch(txns) => {
                let batch: Vec<_> = txns.iter().map(|(p, t)| (pg(*p), t.clone())).collect();
                let results = st.apply_batch(&batch)?;
                for ((p, t), got) in txns.iter().zip(&results) {
                    let want = model_txn(&mut model, *p, t);
                    assert_eq!(got.as_ref().err().map(kind), want.err().map(Some), "txn {t:?}");
                }
            }
        }
        check_against_model(&st, &model)?;
    }
    let _ = closing.send((st, dir));
    Ok(())
}

/// That random batches of random op sequences, with reopens in between, give the same
/// results, data, sizes, mtimes, xattrs, omap and PG metadata as a simple in-memory model.
#[test]
fn matches_in_memory_model() {
    let (closing, stores) = std::sync::mpsc::channel::<(ObjectStore, TempDir)>();
    let closer = std::thread::spawn(move || stores.into_iter().for_each(drop));
    // 64 cases: each reopen costs a quarter second (see `run_steps`).
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    let result = runner.run(&prop::collection::vec(arb_step(), 1..24), |steps| {
        run_steps(&steps, &closing).map_err(|e| TestCaseError::fail(e.to_string()))
    });
    drop(closing);
    let _ = closer.join();
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// That the benchmark runs; prints durable-write figures for 4 KiB × batch 1, 4 KiB × batch 16
/// and 4 MiB × batch 1 (run with `cargo test --release -- --ignored --nocapture`).
#[test]
#[ignore]
fn bench_figures() -> R {
    for (size, ops, batch) in [(4096, 2000, 1), (4096, 8000, 16), (4 << 20, 100, 1)] {
        let dir = tempfile::tempdir().map_err(StoreError::from)?;
        let r = bench(dir.path(), size, ops, batch)?;
        println!(
            "bench object={size}B ops={ops} batch={batch}: {:.0} ops/s, {:.1} MB/s, p50 {:.0} us, p99 {:.0} us (per commit)",
            r.ops_per_s, r.mb_per_s, r.p50_us, r.p99_us
        );
        assert!(r.ops_per_s > 0.0 && r.p99_us >= r.p50_us);
    }
    Ok(())
}


/// That running out of disk space is told apart from other failures: the client sees
/// ENOSPC, and fjall's "poisoned" (every later write refused) is its own kind.
#[test]
fn no_space_and_poisoned_errors() {
    use crate::error::Errno;
    use crate::roles::osd::ops::store_errno;
    let e = StoreError::from(std::io::Error::from_raw_os_error(libc::ENOSPC));
    assert!(matches!(e, StoreError::NoSpace(_)), "{e:?}");
    assert_eq!(store_errno(&e).errno, Errno::ENOSPC);
    let e = StoreError::from(fjall::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC)));
    assert!(matches!(e, StoreError::NoSpace(_)), "{e:?}");
    let e = StoreError::from(fjall::Error::Poisoned);
    assert!(matches!(e, StoreError::Poisoned(_)), "{e:?}");
    assert_eq!(store_errno(&e).errno, Errno::EIO);
    let e = StoreError::from(std::io::Error::from_raw_os_error(libc::EIO));
    assert!(matches!(e, StoreError::Db(_)), "{e:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// That one transaction of many writes at offsets to one object (a client's
    /// compound op of its buffer's scattered pieces, applied chunk by chunk) leaves
    /// exactly what the same writes leave applied one transaction each, overlaps and
    /// whole chunks included, over existing data.
    #[test]
    fn a_run_of_writes_in_one_transaction_equals_them_one_by_one(
        writes in proptest::collection::vec((0u64..3 * CHUNK_SIZE, 1usize..(CHUNK_SIZE as usize + 100), any::<u8>()), 1..40),
        whole in proptest::option::of(0u64..3),
    ) {
        let (_d, st) = open_tmp();
        let base = pattern(2 * CHUNK_SIZE as usize + 17, 9);
        let mut ops: Vec<TxOp> = writes.iter().map(|(off, len, seed)| write("o", *off, &pattern(*len, *seed))).collect();
        if let Some(c) = whole {
            let at = (c as usize).min(ops.len());
            ops.insert(at, write("o", c * CHUNK_SIZE, &pattern(CHUNK_SIZE as usize, 77)));
        }
        for oid in ["one", "many"] {
            st.apply(pg(0), &txn(vec![write(oid, 0, &base)])).expect("base");
        }
        for op in &ops {
            let TxOp::Write { off, data, .. } = op else { continue };
            st.apply(pg(0), &txn(vec![write("one", *off, data)])).expect("one by one");
        }
        let many: Vec<TxOp> = ops.iter().map(|op| match op {
            TxOp::Write { off, data, .. } => write("many", *off, data),
            other => other.clone(),
        }).collect();
        st.apply(pg(0), &txn(many)).expect("in one transaction");
        prop_assert_eq!(st.stat(pg(0), "one").expect("stat"), st.stat(pg(0), "many").expect("stat"));
        prop_assert!(st.read(pg(0), "one", 0, None).expect("read") == st.read(pg(0), "many", 0, None).expect("read"));
    }
}
