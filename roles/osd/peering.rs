//! Pure peering decisions: the past intervals of a PG from a run of OSDMap epochs,
//! which of them may have accepted writes, and which OSDs must therefore be heard
//! from before the PG may go active ("prior set").
//!
//! An interval is a maximal run of epochs with the same acting set and primary. It
//! may have gone read-write only if its acting set met `min_size` and the monitors
//! recorded its primary's `up_thru` at or after the interval's first epoch (a primary
//! asks for that before it activates). If every member of such an interval is down,
//! the PG must stay down: one of them may hold writes nobody else has.
use std::collections::BTreeSet;

use crate::crush::pg_mapping;
use crate::ids::{Epoch, OsdId};
use crate::maps::{OsdMap, PgId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastInterval {
    pub first: Epoch,
    pub last: Epoch,
    pub acting: Vec<OsdId>,
    pub primary: Option<OsdId>,
    pub maybe_went_rw: bool,
}

/// Intervals of `pg` over `maps` (consecutive epochs, oldest first), excluding the
/// interval still open at the last map.
pub fn past_intervals(maps: &[&OsdMap], pg: PgId) -> Vec<PastInterval> {
    let mut out: Vec<PastInterval> = Vec::new();
    let mut cur: Option<(Epoch, Vec<OsdId>, Option<OsdId>)> = None;
    for (i, m) in maps.iter().enumerate() {
        let pm = pg_mapping(m, pg);
        let same = cur.as_ref().is_some_and(|(_, a, p)| *a == pm.acting && *p == pm.acting_primary);
        if !same {
            if let Some((first, acting, primary)) = cur.take() {
                let last = maps[i - 1].epoch;
                out.push(close(maps[i - 1], pg, first, last, acting, primary));
            }
            cur = Some((m.epoch, pm.acting, pm.acting_primary));
        }
    }
    out
}

fn close(end: &OsdMap, pg: PgId, first: Epoch, last: Epoch, acting: Vec<OsdId>, primary: Option<OsdId>) -> PastInterval {
    let min_size = end.pools.get(&pg.pool).map_or(1, |p| p.min_size as usize);
    let up_thru = primary.and_then(|p| end.osds.get(&p)).map_or(0, |o| o.up_thru);
    let maybe_went_rw = primary.is_some() && acting.len() >= min_size && up_thru >= first;
    PastInterval { first, last, acting, primary, maybe_went_rw }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorSet {
    /// OSDs that must be asked for their copy (up members of maybe-rw intervals).
    pub probe: BTreeSet<OsdId>,
    /// An interval that may have accepted writes has no member up: the PG is down.
    pub down: bool,
}

/// The prior set of the intervals that ended at or after `since` (the newest epoch
/// in which the PG is known to have gone active).
pub fn prior_set(intervals: &[PastInterval], since: Epoch, is_up: impl Fn(OsdId) -> bool) -> PriorSet {
    let mut probe = BTreeSet::new();
    let mut down = false;
    for iv in intervals.iter().filter(|i| i.last >= since && i.maybe_went_rw) {
        let up: Vec<OsdId> = iv.acting.iter().copied().filter(|o| is_up(*o)).collect();
        if up.is_empty() {
            down = true;
        }
        probe.extend(up);
    }
    PriorSet { probe, down }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EntityAddr;
    use crate::maps::{FailureDomain, OsdInfo, Pool};

    const A: OsdId = 0;
    const B: OsdId = 1;

    fn base() -> OsdMap {
        let mut m = OsdMap { epoch: 1, ..OsdMap::default() };
        for id in [A, B] {
            m.osds.insert(
                id,
                OsdInfo {
                    addr: Some(EntityAddr { addr: "127.0.0.1:1".parse().unwrap(), nonce: 1 }),
                    up: true,
                    up_from: 1,
                    ..OsdInfo::new(id, &format!("h{id}"))
                },
            );
            m.crush_place(id, &format!("h{id}"));
        }
        let pool = Pool { id: 1, name: "p".into(), size: 2, min_size: 1, pg_num: 1, failure_domain: FailureDomain::Host };
        m.pools.insert(1, pool);
        m
    }

    fn next(m: &OsdMap, f: impl FnOnce(&mut OsdMap)) -> OsdMap {
        let mut n = m.clone();
        n.epoch += 1;
        f(&mut n);
        n
    }

    fn set_up(m: &mut OsdMap, id: OsdId, up: bool) {
        if let Some(o) = m.osds.get_mut(&id) {
            o.up = up;
        }
    }

    /// Seed 002's example with two replicas: A goes down, then B, then A returns.
    /// Whether A may go active alone depends on whether B's interval alone was
    /// recorded (`up_thru`) and so may have accepted writes.
    fn scenario(b_got_up_thru: bool) -> PriorSet {
        let pg = PgId { pool: 1, seed: 0 };
        let e1 = base();
        let e2 = next(&e1, |m| {
            if let Some(o) = m.osds.get_mut(&A) {
                o.up_thru = 1;
            }
        });
        let e3 = next(&e2, |m| set_up(m, A, false)); // interval [B] starts at 3
        let e4 = next(&e3, |m| {
            if b_got_up_thru {
                if let Some(o) = m.osds.get_mut(&B) {
                    o.up_thru = 3;
                }
            }
        });
        let e5 = next(&e4, |m| set_up(m, B, false)); // nobody up
        let e6 = next(&e5, |m| set_up(m, A, true)); // A back alone
        let maps = [&e1, &e2, &e3, &e4, &e5, &e6];
        let iv = past_intervals(&maps, pg);
        let sets: Vec<Vec<OsdId>> = iv
            .iter()
            .map(|i| {
                let mut a = i.acting.clone();
                a.sort_unstable();
                a
            })
            .collect();
        assert_eq!(sets, vec![vec![A, B], vec![B], vec![]]);
        prior_set(&iv, 2, |o| e6.osds.get(&o).is_some_and(|x| x.up))
    }

    /// That when B's lone interval was recorded read-write, A returning alone must
    /// not go active (B may hold the newest writes): the PG is down.
    #[test]
    fn seed002_b_recorded_up_thru_blocks_a() {
        let ps = scenario(true);
        assert!(ps.down, "{ps:?}");
    }

    /// That when B's lone interval never got `up_thru`, it cannot have accepted
    /// writes, and A may go active with what it has.
    #[test]
    fn seed002_b_without_up_thru_lets_a_go_active() {
        let ps = scenario(false);
        assert!(!ps.down, "{ps:?}");
        assert!(ps.probe.contains(&A) || ps.probe.is_empty());
    }

    /// That members of maybe-rw intervals that are up are probed, and intervals
    /// below min_size never count as read-write.
    #[test]
    fn probe_set_and_min_size() {
        let iv = vec![
            PastInterval { first: 5, last: 7, acting: vec![3, 4], primary: Some(3), maybe_went_rw: true },
            PastInterval { first: 8, last: 9, acting: vec![5], primary: Some(5), maybe_went_rw: false },
        ];
        let ps = prior_set(&iv, 6, |o| o != 4);
        assert_eq!(ps.probe.into_iter().collect::<Vec<_>>(), vec![3]);
        assert!(!ps.down);
        assert!(prior_set(&iv, 8, |_| false) == PriorSet { probe: BTreeSet::new(), down: false });
        let mut pool_map = base();
        if let Some(p) = pool_map.pools.get_mut(&1) {
            p.min_size = 2;
        }
        let e2 = next(&pool_map, |m| set_up(m, A, false));
        let e3 = next(&e2, |m| set_up(m, A, true));
        let iv = past_intervals(&[&pool_map, &e2, &e3], PgId { pool: 1, seed: 0 });
        assert!(iv.iter().all(|i| i.acting.len() >= 2 || !i.maybe_went_rw), "{iv:?}");
    }
}
