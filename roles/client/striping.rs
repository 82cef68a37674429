//! Pure striping math: which byte ranges of which data objects hold a file extent.
//!
//! A layout cuts the file into stripe units of `stripe_unit` bytes and deals them
//! round-robin over `stripe_count` objects; once each object of that set holds
//! `object_size` bytes the next set of `stripe_count` objects starts. With the default
//! layout (stripe_unit == object_size, stripe_count 1) object `n` simply holds bytes
//! `[n * object_size, (n + 1) * object_size)`.
use crate::msg::mds::FileLayout;

/// One contiguous piece of a file extent inside one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjExtent {
    pub objno: u64,
    /// Offset inside the object.
    pub obj_off: u64,
    pub len: u64,
    /// Offset of this piece inside the caller's buffer (file offset − extent start).
    pub buf_off: u64,
}

/// A usable view of a layout: zero or inconsistent fields fall back to the simple
/// layout (stripe unit = object size, one object per stripe).
fn norm(l: &FileLayout) -> (u64, u64, u64) {
    let os = if l.object_size == 0 { 4 << 20 } else { l.object_size as u64 };
    let mut su = if l.stripe_unit == 0 { os } else { l.stripe_unit as u64 };
    if su > os || os % su != 0 {
        su = os;
    }
    (os, su, l.stripe_count.max(1) as u64)
}

/// Object number and offset in it of file byte `off`.
pub fn locate(l: &FileLayout, off: u64) -> (u64, u64) {
    let (os, su, sc) = norm(l);
    let units_per_obj = os / su;
    let block = off / su;
    let stripe = block / sc;
    let pos = block % sc;
    let objset = stripe / units_per_obj;
    let objno = objset * sc + pos;
    let obj_off = (stripe % units_per_obj) * su + off % su;
    (objno, obj_off)
}

/// The object pieces of the file extent `[off, off + len)`, in file order, with
/// adjacent pieces in the same object merged.
pub fn file_to_extents(l: &FileLayout, off: u64, len: u64) -> Vec<ObjExtent> {
    let (_, su, _) = norm(l);
    let mut out: Vec<ObjExtent> = Vec::new();
    let mut cur = off;
    let end = off.saturating_add(len);
    while cur < end {
        let (objno, obj_off) = locate(l, cur);
        let n = (su - cur % su).min(end - cur);
        match out.last_mut() {
            Some(last) if last.objno == objno && last.obj_off + last.len == obj_off => last.len += n,
            _ => out.push(ObjExtent { objno, obj_off, len: n, buf_off: cur - off }),
        }
        cur += n;
    }
    out
}

/// What truncating a file from `old_size` to `new_size` does to its objects: each
/// entry is an object and either the length to cut it to (`Some`) or removal (`None`).
/// Objects wholly before the new end are left alone. Lazy: a file of a terabyte has
/// 262,144 objects of 4 MiB, which are visited, not listed.
pub fn truncate_plan(l: &FileLayout, old_size: u64, new_size: u64) -> impl Iterator<Item = (u64, Option<u64>)> + Send + 'static {
    let (os, _, sc) = norm(l);
    let set_bytes = os * sc;
    let shrinks = new_size < old_size;
    let last_obj = if shrinks { l.object_count(old_size).max(locate(l, old_size - 1).0 + 1) } else { 0 };
    let set_start = (new_size / set_bytes) * set_bytes;
    let first_obj_of_set = (new_size / set_bytes) * sc;
    // In the object set holding the new end, how much of each object stays.
    let mut keep = vec![0u64; if shrinks { sc as usize } else { 0 }];
    if shrinks {
        for e in file_to_extents(l, set_start, new_size - set_start) {
            let i = (e.objno - first_obj_of_set) as usize;
            keep[i] = keep[i].max(e.obj_off + e.len);
        }
    }
    (first_obj_of_set..last_obj.max(first_obj_of_set)).map(move |objno| {
        let cut = keep.get((objno - first_obj_of_set) as usize).copied().filter(|k| *k > 0);
        (objno, cut)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn simple(os: u32) -> FileLayout {
        FileLayout { object_size: os, stripe_unit: os, stripe_count: 1, pool: 1 }
    }

    /// That the default layout puts byte `n * 4 MiB + k` at offset `k` of object `n`.
    #[test]
    fn default_layout_is_contiguous() {
        let l = FileLayout::default_for(1);
        assert_eq!(locate(&l, 0), (0, 0));
        assert_eq!(locate(&l, (4 << 20) + 5), (1, 5));
        let e = file_to_extents(&l, (4 << 20) - 10, 20);
        assert_eq!(
            e,
            vec![
                ObjExtent { objno: 0, obj_off: (4 << 20) - 10, len: 10, buf_off: 0 },
                ObjExtent { objno: 1, obj_off: 0, len: 10, buf_off: 10 },
            ]
        );
        assert!(file_to_extents(&l, 7, 0).is_empty());
    }

    /// That a striped layout deals stripe units round-robin over the object set.
    #[test]
    fn striped_layout_round_robin() {
        let l = FileLayout { object_size: 4, stripe_unit: 2, stripe_count: 2, pool: 1 };
        // units: 0→obj0@0, 1→obj1@0, 2→obj0@2, 3→obj1@2, 4→obj2@0 ...
        assert_eq!(locate(&l, 0), (0, 0));
        assert_eq!(locate(&l, 2), (1, 0));
        assert_eq!(locate(&l, 4), (0, 2));
        assert_eq!(locate(&l, 7), (1, 3));
        assert_eq!(locate(&l, 8), (2, 0));
        assert_eq!(file_to_extents(&l, 0, 8).len(), 4);
    }

    /// That truncation keeps whole objects before the end, cuts the one holding it and
    /// removes the rest.
    #[test]
    fn truncate_simple() {
        let l = simple(10);
        assert_eq!(truncate_plan(&l, 35, 12).collect::<Vec<_>>(), vec![(1, Some(2)), (2, None), (3, None)]);
        assert_eq!(truncate_plan(&l, 35, 20).collect::<Vec<_>>(), vec![(2, None), (3, None)]);
        assert_eq!(truncate_plan(&l, 35, 0).collect::<Vec<_>>(), vec![(0, None), (1, None), (2, None), (3, None)]);
        assert_eq!(truncate_plan(&l, 10, 20).count(), 0);
    }

    fn layouts() -> impl Strategy<Value = FileLayout> {
        (1u32..5, 1u32..4, 1u32..4).prop_map(|(su, per, sc)| FileLayout {
            object_size: su * per,
            stripe_unit: su,
            stripe_count: sc,
            pool: 1,
        })
    }

    proptest! {
        /// That extents tile the file extent exactly, each byte landing where `locate`
        /// says, and no two file bytes share an object byte.
        #[test]
        fn extents_tile(l in layouts(), off in 0u64..200, len in 0u64..200) {
            let ex = file_to_extents(&l, off, len);
            let mut seen = std::collections::HashSet::new();
            let mut total = 0;
            let mut next_buf = 0;
            for e in &ex {
                prop_assert_eq!(e.buf_off, next_buf);
                next_buf += e.len;
                for k in 0..e.len {
                    let file_off = off + e.buf_off + k;
                    prop_assert_eq!(locate(&l, file_off), (e.objno, e.obj_off + k));
                    prop_assert!(seen.insert((e.objno, e.obj_off + k)));
                }
                total += e.len;
            }
            prop_assert_eq!(total, len);
        }

        /// That after a truncate plan every object byte left belongs to a file byte
        /// below the new size, and every file byte below it is untouched.
        #[test]
        fn truncate_keeps_exactly_prefix(l in layouts(), old in 1u64..300, frac in 0u64..100) {
            let new = old * frac / 100;
            let plan: std::collections::HashMap<u64, Option<u64>> =
                truncate_plan(&l, old, new).into_iter().collect();
            for b in 0..old {
                let (o, off) = locate(&l, b);
                let kept = match plan.get(&o) { None => true, Some(None) => false, Some(Some(n)) => off < *n };
                prop_assert_eq!(kept, b < new, "byte {} obj {} off {}", b, o, off);
            }
        }
    }
}
