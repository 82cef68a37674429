use super::*;
use crate::maps::{CrushMap, OsdInfo, WEIGHT_ONE};
use proptest::prelude::*;
use std::collections::BTreeMap;

const POOL: u64 = 1;

fn osd_info(id: OsdId, host: &str, weight: u32) -> OsdInfo {
    OsdInfo {
        id,
        addr: None,
        up: true,
        in_: true,
        weight,
        up_from: 1,
        up_thru: 1,
        down_at: 0,
        down_stamp_ms: None,
        auto_out: false,
        host: host.to_string(),
        full: false,
        laggy_ppm: 0,
        laggy_interval_ms: 0,
    }
}

fn pool(pg_num: u32, size: u32, failure_domain: FailureDomain) -> Pool {
    Pool {
        id: POOL,
        name: "rbd".into(),
        size,
        min_size: 1,
        pg_num,
        failure_domain,
    }
}

fn host_name(h: usize) -> String {
    format!("host-{h:03}")
}

/// `hosts` hosts with `per_host` OSDs of weight 1.0 each, ids 0.., and pool 1
/// (pg_num 4096, size 3, failure domain Host).
fn cluster(hosts: usize, per_host: usize) -> OsdMap {
    let mut map = OsdMap::default();
    for h in 0..hosts {
        for k in 0..per_host {
            add_osd(
                &mut map,
                (h * per_host + k) as OsdId,
                &host_name(h),
                WEIGHT_ONE,
            );
        }
    }
    map.pools.insert(POOL, pool(4096, 3, FailureDomain::Host));
    map
}

fn add_osd(map: &mut OsdMap, id: OsdId, host: &str, weight: u32) {
    map.osds.insert(id, osd_info(id, host, weight));
    map.crush_place(id, host);
}

fn the_pool(map: &OsdMap) -> Pool {
    map.pools
        .get(&POOL)
        .cloned()
        .unwrap_or_else(|| pool(0, 0, FailureDomain::Host))
}

fn all_placements(map: &OsdMap) -> Vec<Vec<OsdId>> {
    let p = the_pool(map);
    pool_pgs(&p).map(|pg| crush_pg(map, &p, pg)).collect()
}

fn host_of(map: &OsdMap, osd: OsdId) -> Option<&String> {
    map.crush
        .hosts
        .iter()
        .find(|(_, v)| v.contains(&osd))
        .map(|(h, _)| h)
}

fn total_weight(map: &OsdMap) -> u64 {
    map.osds
        .values()
        .filter(|o| o.in_)
        .map(|o| u64::from(o.weight))
        .sum()
}

/// Number of (pg, slot) placements whose OSD differs (a slot present on one side only
/// counts as changed), and the number of slots compared.
fn moved(before: &[Vec<OsdId>], after: &[Vec<OsdId>]) -> (usize, usize) {
    let mut changed = 0;
    let mut total = 0;
    for (b, a) in before.iter().zip(after) {
        let slots = b.len().max(a.len());
        total += slots;
        changed += (0..slots).filter(|&i| b.get(i) != a.get(i)).count();
    }
    (changed, total)
}

/// Placements (pg, slot) held by `osd`.
fn held_by(placements: &[Vec<OsdId>], osd: OsdId) -> usize {
    placements.iter().flatten().filter(|o| **o == osd).count()
}

/// Runs one movement experiment from placements `b` (every PG of the pool before the
/// change) to map `after`, where `osd` was marked out or added.
///
/// measured = (pg, slot) placements whose OSD changed / all (pg, slot) placements
/// (pg_num × size). ideal = weight of `osd` / total weight of the in OSDs of the map
/// in which `osd` is in (the map before for "out", after for "add"): the share of
/// placements straw2 gives that OSD, i.e. what must move.
/// Asserts: every placement that must move does (those held by `osd` before or after
/// ≤ changed), and measured ≤ 1.2 × ideal.
fn check_movement(label: &str, b: &[Vec<OsdId>], after: &OsdMap, osd: OsdId, ideal: f64) {
    let a = all_placements(after);
    let (changed, total) = moved(b, &a);
    let forced = held_by(b, osd) + held_by(&a, osd);
    let frac = changed as f64 / total as f64;
    eprintln!(
        "{label}: moved {changed}/{total} = {:.4}% (ideal {:.4}%, ratio {:.3}, forced {forced})",
        frac * 100.0,
        ideal * 100.0,
        frac / ideal
    );
    assert!(
        changed >= forced,
        "{label}: {changed} moved but {forced} had to"
    );
    assert!(
        frac <= 1.2 * ideal,
        "{label}: moved fraction {frac} > 1.2 × ideal {ideal}"
    );
}

/// Marks each of `osds` out in turn (separately) and checks the movement.
fn movement_out(label: &str, base: &OsdMap, osds: &[OsdId]) {
    let before = all_placements(base);
    for &o in osds {
        let mut after = base.clone();
        let w = after.osds.get(&o).map_or(0, |i| i.weight);
        let ideal = f64::from(w) / total_weight(base) as f64;
        if let Some(info) = after.osds.get_mut(&o) {
            info.in_ = false;
        }
        check_movement(&format!("{label} out osd.{o}"), &before, &after, o, ideal);
    }
}

/// Adds one new OSD of weight 1.0 under each of `hosts` in turn (separately).
fn movement_add(label: &str, base: &OsdMap, hosts: &[String]) {
    let new_id = base.osds.keys().next_back().map_or(0, |k| k + 1);
    let before = all_placements(base);
    for host in hosts {
        let mut after = base.clone();
        add_osd(&mut after, new_id, host, WEIGHT_ONE);
        let ideal = f64::from(WEIGHT_ONE) / total_weight(&after) as f64;
        let label = format!("{label} add osd.{new_id} to {host}");
        check_movement(&label, &before, &after, new_id, ideal);
    }
}

/// That on 40 hosts × 3 OSDs (pg_num 4096, size 3) marking one OSD out, adding an OSD
/// on a new host, or adding one into an existing host moves at most 1.2× the changed
/// OSD's weight share of the (pg, slot) placements, and at least those it must.
#[test]
fn movement_is_near_ideal_40_hosts_x_3() {
    let base = cluster(40, 3);
    movement_out("40x3", &base, &[0, 1, 59, 61, 119]);
    let new_hosts = ["host-new".to_string(), "a-first-host".to_string()];
    movement_add("40x3 new host", &base, &new_hosts);
    movement_add(
        "40x3 existing host",
        &base,
        &[host_name(0), host_name(17), host_name(39)],
    );
}

/// That on 120 hosts × 1 OSD (pg_num 4096, size 3) the same changes move at most 1.2×
/// the changed OSD's weight share of the placements.
#[test]
fn movement_is_near_ideal_120_hosts_x_1() {
    let base = cluster(120, 1);
    movement_out("120x1", &base, &[0, 1, 59, 61, 119]);
    let new_hosts = ["host-new".to_string(), "a-first-host".to_string()];
    movement_add("120x1 new host", &base, &new_hosts);
    movement_add(
        "120x1 existing host",
        &base,
        &[host_name(0), host_name(17), host_name(119)],
    );
}

/// That a host's position in name order does not matter: adding a host whose name
/// sorts first (shifting every other host's index) gives exactly the placements of
/// adding the same OSD under a host whose name sorts last.
#[test]
fn host_position_does_not_matter() {
    let base = cluster(12, 2);
    let (mut first, mut last) = (base.clone(), base.clone());
    add_osd(&mut first, 24, "aaa-first", WEIGHT_ONE);
    add_osd(&mut last, 24, "zzz-last", WEIGHT_ONE);
    assert_eq!(all_placements(&first), all_placements(&last));
    assert_ne!(all_placements(&first), all_placements(&base));
}

/// That object_hash is the documented FNV-1a-64 + SplitMix64 hash (values pinned, so
/// they are the same on every machine and release) and is not trivially constant.
#[test]
fn object_hash_is_pinned() {
    assert_eq!(object_hash(""), 0xc381_7c01);
    assert_eq!(object_hash("a"), 0x5f29_c2aa);
    assert_eq!(object_hash("rbd_data.1234"), 0xe7d1_fb55);
    assert_eq!(object_hash("héllo"), 0x4019_771f);
}

/// That the fixed-point log is exact at powers of two and monotonic.
#[test]
fn fixed_point_log_is_exact_and_monotonic() {
    assert_eq!(ln_fixed(0xffff), 0);
    assert_eq!(ln_fixed(0), -(16 << LN_FRAC_BITS));
    assert_eq!(ln_fixed(0x7fff), -(1 << LN_FRAC_BITS));
    assert!((0..0xffff).all(|u| ln_fixed(u) < ln_fixed(u + 1)));
    // log2(3) = 1.584962500721156...
    let l3 = log2_fixed(3) as f64 / (1u64 << LN_FRAC_BITS) as f64;
    assert!((l3 - 1.584_962_500_721_156).abs() < 1e-9, "{l3}");
}

/// That the same map, pool and PG always give the same OSDs, and that a clone of the
/// map (built independently) agrees PG by PG.
#[test]
fn crush_is_deterministic() {
    let a = cluster(10, 2);
    let b = cluster(10, 2);
    let p = the_pool(&a);
    for pg in pool_pgs(&p) {
        let first = crush_pg(&a, &p, pg);
        assert_eq!(first, crush_pg(&a, &p, pg));
        assert_eq!(first, crush_pg(&b, &p, pg));
        assert_eq!(first.len(), 3);
    }
    // Pinned: these placements must never change across versions or machines.
    let pinned: [[OsdId; 3]; 4] = [[10, 5, 7], [4, 10, 13], [7, 11, 1], [6, 19, 14]];
    for (seed, want) in (0..).zip(pinned) {
        assert_eq!(
            crush_pg(&a, &p, PgId { pool: POOL, seed }),
            want.to_vec(),
            "seed {seed}"
        );
    }
}

/// That with failure domain Host every PG gets `size` OSDs on pairwise distinct hosts.
#[test]
fn replicas_land_on_distinct_hosts() {
    let map = cluster(8, 4);
    let p = the_pool(&map);
    for pg in pool_pgs(&p) {
        let osds = crush_pg(&map, &p, pg);
        assert_eq!(osds.len(), 3, "{pg}");
        let hosts: BTreeSet<_> = osds.iter().map(|o| host_of(&map, *o)).collect();
        assert_eq!(hosts.len(), 3, "{pg}: {osds:?}");
    }
}

/// That with failure domain Osd replicas are distinct OSDs that may share a host:
/// two hosts of 3 OSDs serve a size-5 pool.
#[test]
fn failure_domain_osd_allows_shared_hosts() {
    let mut map = cluster(2, 3);
    map.pools.insert(POOL, pool(256, 5, FailureDomain::Osd));
    let p = the_pool(&map);
    for pg in pool_pgs(&p) {
        let osds = crush_pg(&map, &p, pg);
        assert_eq!(osds.len(), 5);
        assert_eq!(osds.iter().collect::<BTreeSet<_>>().len(), 5);
    }
}

/// That a pool larger than the number of hosts gets one OSD per host and no panic,
/// including an absurd size.
#[test]
fn size_above_host_count_returns_fewer() {
    let mut map = cluster(2, 3);
    for size in [3, 10, u32::MAX] {
        map.pools.insert(POOL, pool(64, size, FailureDomain::Host));
        let p = the_pool(&map);
        for pg in pool_pgs(&p) {
            let osds = crush_pg(&map, &p, pg);
            assert_eq!(osds.len(), 2);
            assert_ne!(host_of(&map, osds[0]), host_of(&map, osds[1]));
        }
    }
}

/// That an empty map, an all-out map, zero weights, size 0 and pg_num 0 give empty
/// results rather than panics.
#[test]
fn empty_inputs_give_nothing() {
    let empty = OsdMap::default();
    let p = pool(0, 3, FailureDomain::Host);
    assert_eq!(pool_pgs(&p).count(), 0);
    assert_eq!(
        object_to_pg(&p, "x"),
        PgId {
            pool: POOL,
            seed: 0
        }
    );
    assert!(crush_pg(
        &empty,
        &p,
        PgId {
            pool: POOL,
            seed: 7
        }
    )
    .is_empty());
    let mut zero = cluster(3, 2);
    for o in zero.osds.values_mut() {
        o.weight = 0;
    }
    let pg = PgId {
        pool: POOL,
        seed: 1,
    };
    assert!(crush_pg(&zero, &the_pool(&zero), pg).is_empty());
    let m = pg_mapping(&zero, pg);
    assert!(m.up.is_empty() && m.acting.is_empty() && m.up_primary.is_none());
    let live = cluster(3, 2);
    assert!(crush_pg(&live, &pool(8, 0, FailureDomain::Host), pg).is_empty());
    // A host listing an OSD unknown to the map, and an empty host.
    let hosts = BTreeMap::from([("h".into(), vec![5]), ("e".into(), vec![])]);
    let ghost = OsdMap {
        crush: CrushMap { hosts },
        ..OsdMap::default()
    };
    assert!(crush_pg(&ghost, &p, pg).is_empty());
}

/// That a PG of a pool the map does not know maps to nothing.
#[test]
fn unknown_pool_maps_to_nothing() {
    let map = cluster(4, 1);
    let m = pg_mapping(&map, PgId { pool: 99, seed: 0 });
    let none = PgMapping {
        up: vec![],
        up_primary: None,
        acting: vec![],
        acting_primary: None,
    };
    assert_eq!(m, none);
}

/// That OSDs marked out are never chosen, while their hosts keep serving through
/// their remaining in OSDs.
#[test]
fn out_osds_never_chosen() {
    let mut map = cluster(5, 3);
    for o in [0, 4, 5, 14] {
        if let Some(i) = map.osds.get_mut(&o) {
            i.in_ = false;
        }
    }
    let p = the_pool(&map);
    let mut seen = BTreeSet::new();
    for pg in pool_pgs(&p) {
        let osds = crush_pg(&map, &p, pg);
        assert_eq!(osds.len(), 3);
        seen.extend(osds);
    }
    assert!(seen.iter().all(|o| ![0, 4, 5, 14].contains(o)), "{seen:?}");
    assert_eq!(seen.len(), 11, "every in OSD is used somewhere");
}

/// That a down (but in) OSD stays in the raw CRUSH result yet leaves the up set, the
/// remaining order is kept, and the primary moves to the next up OSD.
#[test]
fn down_osds_leave_up_but_stay_in_crush() {
    let mut map = cluster(6, 2);
    let pg = PgId {
        pool: POOL,
        seed: 3,
    };
    let raw = crush_pg(&map, &the_pool(&map), pg);
    let victim = raw[0];
    if let Some(i) = map.osds.get_mut(&victim) {
        i.up = false;
    }
    assert_eq!(crush_pg(&map, &the_pool(&map), pg), raw);
    let m = pg_mapping(&map, pg);
    assert_eq!(m.up, raw[1..].to_vec());
    assert_eq!(m.up_primary, Some(raw[1]));
    assert_eq!(m.acting, m.up);
    assert_eq!(m.acting_primary, Some(raw[1]));
}

/// That pg_temp overrides the acting set (down and repeated entries dropped) while
/// the up set stays the CRUSH result.
#[test]
fn pg_temp_overrides_acting() {
    let mut map = cluster(6, 2);
    let pg = PgId {
        pool: POOL,
        seed: 9,
    };
    let raw = crush_pg(&map, &the_pool(&map), pg);
    let others: Vec<OsdId> = (0..12).filter(|o| !raw.contains(o)).collect();
    if let Some(i) = map.osds.get_mut(&others[1]) {
        i.up = false;
    }
    map.pg_temp
        .insert(pg, vec![others[0], others[1], others[2], others[0]]);
    let m = pg_mapping(&map, pg);
    assert_eq!(m.up, raw);
    assert_eq!(m.up_primary, Some(raw[0]));
    assert_eq!(m.acting, vec![others[0], others[2]]);
    assert_eq!(m.acting_primary, Some(others[0]));
}

/// That a pg_temp whose OSDs are all down (or unknown) is ignored: acting = up.
#[test]
fn pg_temp_ignored_when_all_down() {
    let mut map = cluster(6, 2);
    let pg = PgId {
        pool: POOL,
        seed: 9,
    };
    let raw = crush_pg(&map, &the_pool(&map), pg);
    let other = (0..12).find(|o| !raw.contains(o)).unwrap_or(0);
    if let Some(i) = map.osds.get_mut(&other) {
        i.up = false;
    }
    map.pg_temp.insert(pg, vec![other, 1000]);
    let m = pg_mapping(&map, pg);
    assert_eq!(m.acting, raw);
    assert_eq!(m.acting_primary, m.up_primary);
    map.pg_temp.insert(pg, vec![]);
    assert_eq!(pg_mapping(&map, pg).acting, raw);
}

/// That pool_pgs lists seeds 0..pg_num of the pool, in order.
#[test]
fn pool_pgs_lists_every_seed() {
    let p = pool(5, 3, FailureDomain::Host);
    let seeds: Vec<u32> = pool_pgs(&p).map(|pg| pg.seed).collect();
    assert_eq!(seeds, vec![0, 1, 2, 3, 4]);
    assert!(pool_pgs(&p).all(|pg| pg.pool == POOL));
}

/// That objects spread uniformly over a power-of-two pg_num: chi-square of 64 000
/// names over 64 PGs stays below 63 + 5σ (σ ≈ 11.2), and every PG is within ±15%.
#[test]
fn object_to_pg_is_roughly_uniform() {
    let p = pool(64, 3, FailureDomain::Host);
    let mut counts = [0u32; 64];
    for i in 0..64_000 {
        let pg = object_to_pg(&p, &format!("obj-{i}"));
        assert_eq!(pg.pool, POOL);
        counts[pg.seed as usize] += 1;
    }
    let chi2: f64 = counts
        .iter()
        .map(|&c| (f64::from(c) - 1000.0).powi(2) / 1000.0)
        .sum();
    eprintln!("object_to_pg chi-square over 64 PGs: {chi2:.1} (dof 63)");
    assert!(chi2 < 120.0, "{chi2}");
    assert!(
        counts.iter().all(|&c| (850..=1150).contains(&c)),
        "{counts:?}"
    );
}

/// That a non-power-of-two pg_num keeps every seed below pg_num and uses them all,
/// and that growing pg_num 12 → 24 (the stable-mod property PG splitting relies on)
/// never moves an object between two old PGs: it stays, or goes to a new PG whose
/// objects all come from one single parent.
#[test]
fn object_to_pg_splits_stably() {
    let small = pool(12, 3, FailureDomain::Host);
    let big = pool(24, 3, FailureDomain::Host);
    let huge = pool(u32::MAX, 3, FailureDomain::Host);
    let mut parents: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for i in 0..20_000 {
        let name = format!("obj-{i}");
        let (a, b) = (
            object_to_pg(&small, &name).seed,
            object_to_pg(&big, &name).seed,
        );
        assert!(a < 12 && b < 24);
        assert!(b == a || b >= 12, "{name}: moved between old PGs {a} → {b}");
        parents.entry(b).or_default().insert(a);
        assert!(object_to_pg(&huge, &name).seed < u32::MAX);
    }
    assert_eq!(parents.len(), 24, "every seed is used");
    assert!(parents.values().all(|from| from.len() == 1), "{parents:?}");
}

/// Mean number of (pg, slot) placements per OSD over `osds`.
fn mean_load(placements: &[Vec<OsdId>], osds: &[OsdId]) -> f64 {
    let sum: usize = osds.iter().map(|o| held_by(placements, *o)).sum();
    sum as f64 / osds.len() as f64
}

/// That an OSD of weight 2.0 gets ≈ 2× the placements of a weight-1.0 OSD (within
/// 10%): one heavy OSD among 40 hosts × 3, and ten heavy OSDs (one per host on ten
/// hosts) for a lower-noise average; pg_num 16384, size 3, failure domain Host.
#[test]
fn weight_two_gets_twice_the_pgs() {
    for heavy in [vec![0], (0..10).map(|h| h * 3).collect::<Vec<OsdId>>()] {
        let mut map = cluster(40, 3);
        map.pools.insert(POOL, pool(16384, 3, FailureDomain::Host));
        for o in &heavy {
            if let Some(i) = map.osds.get_mut(o) {
                i.weight = 2 * WEIGHT_ONE;
            }
        }
        let placements = all_placements(&map);
        let light: Vec<OsdId> = (0..120).filter(|o| !heavy.contains(o)).collect();
        let ratio = mean_load(&placements, &heavy) / mean_load(&placements, &light);
        eprintln!(
            "{} heavy OSD(s): weight-2.0 / weight-1.0 load ratio {ratio:.3}",
            heavy.len()
        );
        assert!((1.8..=2.2).contains(&ratio), "{ratio}");
    }
}

/// A random small map: up to 6 hosts of up to 4 OSDs drawn from ids 0..16 (so an OSD
/// may be listed twice, or be missing from the OSD table), random up/in/weights.
fn arb_map() -> impl Strategy<Value = OsdMap> {
    let osd = (
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![0, 1, WEIGHT_ONE, 3 * WEIGHT_ONE, u32::MAX]),
    );
    let osds = prop::collection::vec(osd, 16);
    let hosts = prop::collection::vec(prop::collection::vec(0u32..18, 0..5), 0..7);
    (osds, hosts).prop_map(|(osds, hosts)| {
        let mut map = OsdMap::default();
        for (id, (up, in_, weight)) in osds.into_iter().enumerate() {
            let mut info = osd_info(id as OsdId, "", weight);
            (info.up, info.in_) = (up, in_);
            map.osds.insert(id as OsdId, info);
        }
        for (h, list) in hosts.into_iter().enumerate() {
            map.crush.hosts.insert(host_name(h), list);
        }
        map
    })
}

/// Domains (host index or OSD id) holding at least one candidate OSD.
fn live_domains(map: &OsdMap, fd: FailureDomain) -> usize {
    candidates(map)
        .iter()
        .map(|c| c.domain(fd))
        .collect::<BTreeSet<_>>()
        .len()
}

proptest! {
    /// That random small maps never panic, always give distinct in, weighted OSDs in
    /// distinct failure domains, exactly min(size, live domains) of them, and a
    /// pg_mapping whose up and acting sets contain only up OSDs.
    #[test]
    fn random_maps_give_distinct_osds(
        map in arb_map(),
        size in 0u32..8,
        pg_num in 0u32..64,
        seed in any::<u32>(),
        host_fd in any::<bool>(),
        temp in prop::collection::vec(0u32..20, 0..4),
    ) {
        let fd = if host_fd { FailureDomain::Host } else { FailureDomain::Osd };
        let mut map = map;
        let p = Pool { id: 3, name: "p".into(), size, min_size: 1, pg_num, failure_domain: fd };
        map.pools.insert(3, p.clone());
        let pg = PgId { pool: 3, seed };
        map.pg_temp.insert(pg, temp);
        let osds = crush_pg(&map, &p, pg);
        prop_assert_eq!(osds.len(), (size as usize).min(live_domains(&map, fd)));
        prop_assert_eq!(osds.iter().collect::<BTreeSet<_>>().len(), osds.len());
        prop_assert!(osds.iter().all(|o| map.osds.get(o).is_some_and(|i| i.in_ && i.weight > 0)));
        if fd == FailureDomain::Host {
            let hosts: BTreeSet<_> = osds.iter().map(|o| host_of(&map, *o)).collect();
            prop_assert_eq!(hosts.len(), osds.len());
        }
        let m = pg_mapping(&map, pg);
        let is_up = |o: &OsdId| map.osds.get(o).is_some_and(|i| i.up);
        prop_assert!(m.up.iter().all(|o| osds.contains(o) && is_up(o)));
        prop_assert!(m.acting.iter().all(is_up));
        prop_assert_eq!(m.up_primary, m.up.first().copied());
        prop_assert_eq!(m.acting_primary, m.acting.first().copied());
        prop_assert!(object_to_pg(&p, "obj").seed < pg_num.max(1));
    }
}
