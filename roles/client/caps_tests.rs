//! Unit tests of `caps.rs`: the write-back buffer, spans of the read cache, attributes
//! changed under exclusive caps.
use super::attrs::overlay_attrs;
use super::*;

/// That the write-back buffer keeps the newest bytes of overlapping writes and
/// that reads see them over older data.
#[test]
fn buffer_overlay() {
    let mut c = InodeCaps::default();
    c.buffer_write(10, b"aaaaaaaaaa");
    c.buffer_write(15, b"bb");
    c.buffer_write(0, b"cccccccccccc");
    assert_eq!(c.buffered, 20);
    let mut out = vec![b'.'; 24];
    c.overlay(0, &mut out);
    assert_eq!(&out, b"ccccccccccccaaabbaaa....");
    let mut part = vec![b'.'; 4];
    c.overlay(14, &mut part);
    assert_eq!(&part, b"abba");
}

/// That a buffer's adjacent pieces are joined into one run and gaps split runs,
/// so a sequential writer's buffer goes out as whole objects.
#[test]
fn coalesced_runs() {
    let mut c = InodeCaps::default();
    c.buffer_write(0, b"aaaa");
    c.buffer_write(4, b"bb");
    c.buffer_write(6, b"c");
    c.buffer_write(10, b"dd");
    c.buffer_write(2, b"XX");
    let runs = coalesce(&c.buffer);
    assert_eq!(runs, vec![(0, b"aaXXbbc".to_vec()), (10, b"dd".to_vec())]);
    assert!(coalesce(&BTreeMap::new()).is_empty());
}

/// That a read is one slice of a read buffer only while every page it covers is
/// still cached as a slice of that buffer.
#[test]
fn span_slices_only_over_their_own_pages() {
    let mut c = InodeCaps::default();
    let span = Bytes::from((0..4 * PAGE).map(|i| i as u8).collect::<Vec<u8>>());
    let base = 8 * PAGE;
    c.spans.insert(base, span.clone());
    for p in 0..4 {
        c.pages.insert(8 + p, span.slice((p * PAGE) as usize..((p + 1) * PAGE) as usize));
    }
    let got = c.span_slice(base + 100, 2 * PAGE).expect("one slice");
    assert_eq!(&got[..], &span[100..100 + 2 * PAGE as usize]);
    assert_eq!(got.as_ptr(), span[100..].as_ptr(), "not a copy");
    assert!(c.span_slice(base + 3 * PAGE, 2 * PAGE).is_none(), "past the span");
    assert!(c.span_slice(base - 1, 10).is_none(), "before it");
    // A page replaced by a copy (buffered bytes laid over it) breaks the chain.
    c.pages.insert(9, Bytes::from(span[PAGE as usize..2 * PAGE as usize].to_vec()));
    assert!(c.span_slice(base, 3 * PAGE).is_none());
    assert!(c.span_slice(base + 2 * PAGE, PAGE).is_some(), "other pages still are");
    c.drop_pages(base + 2 * PAGE, base + 2 * PAGE + 1);
    assert!(c.span_slice(base + 2 * PAGE, PAGE).is_none(), "a dropped page");
    c.clear_pages();
    assert!(c.spans.is_empty());
}

/// That attributes changed under exclusive caps are laid over the MDS's, go out
/// in one flush with the written size (or alone, without it), stay laid over
/// until that flush is acknowledged, and that a later write's mtime wins over a
/// set one.
#[test]
fn attrs_flush_and_overlay() {
    let mut c = InodeCaps { caps: Caps::parse("pAsxLsXsxFsxcrwb").unwrap(), seq: 3, ..Default::default() };
    let mds = crate::msg::caps::tests::stat(0o100600, 100, 100);
    c.wrote(0, 10);
    c.attrs = Some(CapAttrs { mode: Some(0o644), mtime: Some(50), ctime: 200, ..Default::default() });
    c.dirty.as_mut().unwrap().1 = 0;
    let mut st = mds.clone();
    overlay_attrs(&mut st, c.unreported(), c.attrs_unacked());
    assert_eq!((st.mode, st.size, st.mtime, st.ctime), (0o100644, 10, 50, 200));
    // Without the size: only the attributes go (the data may not have landed).
    let m = c.take_flush(7, false).expect("a flush");
    assert_eq!((m.dirty, m.size, m.attrs.unwrap().mode), (Caps::AUTH_EXCL | Caps::FILE_EXCL, 0, Some(0o644)));
    assert!(c.attrs.is_none() && c.dirty.is_some());
    assert_eq!(c.attrs_unacked().unwrap().mtime, Some(50), "still laid over until acknowledged");
    let m2 = c.take_flush(7, true).expect("the size");
    assert_eq!((m2.dirty, m2.size, m2.attrs), (Caps::FILE_WR, 10, None));
    assert!(c.take_flush(7, true).is_none(), "nothing left");
    c.wrote(10, 12);
    assert_eq!(c.attrs_unacked().unwrap().mtime, None, "a write moves mtime on");
    c.flush_acked = m.flush_tid;
    assert!(c.attrs_unacked().is_none());
}

/// That writes drop exactly the cached pages they overlap, and that open modes
/// want the caps Ceph's client wants.
#[test]
fn pages_and_wants() {
    let mut c = InodeCaps::default();
    for p in 0..4 {
        c.pages.insert(p, Bytes::from(vec![0; PAGE as usize]));
    }
    c.drop_pages(PAGE + 1, 2 * PAGE + 1);
    let mut left: Vec<u64> = c.pages.keys().copied().collect();
    left.sort();
    assert_eq!(left, vec![0, 3]);
    assert_eq!(c.wanted(), Caps::NONE);
    c.opens = (1, 0);
    assert_eq!(c.wanted().to_string(), "pFscr");
    c.opens = (0, 1);
    assert!(c.wanted().contains(Caps::parse("Fwb").unwrap()));
}

/// That a purged inode's unsent state (buffered data, written size, attribute
/// changes) is dropped when nothing here has it open, and kept while a handle does.
#[test]
fn purged_inode_drops_unsent_state_unless_open() {
    let mut c = InodeCaps::default();
    assert!(!c.discard_unsent_of_purged(), "nothing to drop");
    c.buffer.insert(0, vec![1; 10]);
    c.buffered = 10;
    c.dirty = Some((10, 5));
    c.opens = (0, 1);
    assert!(!c.discard_unsent_of_purged(), "still open here");
    assert_eq!(c.buffered, 10);
    c.opens = (0, 0);
    assert!(c.discard_unsent_of_purged());
    assert!(c.nothing_unsent() && c.buffered == 0);
}
