//! Placement: which OSDs store an object. Pure functions of the `OsdMap`, so every
//! monitor, OSD and client computes the same answer without asking anyone.
//!
//! Data flow:
//!
//! 1. object name → [`object_hash`] (32 bits) → `stable_mod(hash, pg_num)` → [`PgId`]
//!    ([`object_to_pg`]). The reduction is Ceph's documented "stable mod": take the hash
//!    modulo the next power of two and fold values ≥ `pg_num` into the lower half. It is
//!    exactly uniform when `pg_num` is a power of two (as Ceph recommends), and when
//!    `pg_num` grows an object only ever moves from PG `s` to its split child, never
//!    between unrelated PGs.
//! 2. `PgId` → CRUSH input `x` = mix(seed, pool) so pools do not overlay each other.
//! 3. `x` + CRUSH hierarchy (root → host → osd) + each OSD's `in_`/`weight` →
//!    [`crush_pg`]: an ordered list of up to `pool.size` OSDs in distinct failure
//!    domains (hosts or OSDs). Up/down is ignored here, as in Ceph's raw mapping.
//! 4. raw list + up/down + `pg_temp` → [`pg_mapping`]: up set, acting set, primaries.
//!
//! # Straw2
//!
//! Every candidate item `i` (weight `w_i > 0`) draws `d_i = ln(u_i) / w_i`, where
//! `u_i ∈ (0, 1]` comes from 16 bits of `hash3(x, i, r)`; the largest draw wins. Since
//! `-ln(u)/w` is exponentially distributed with rate `w`, item `i` wins with probability
//! `w_i / Σw`, and an item's draw depends only on its own id and weight: changing one
//! weight only moves placements to or from that item. The logarithm is a fixed-point
//! integer table (44 fractional bits) and draws are compared exactly by
//! cross-multiplication in `i128` (equal draws go to the lower OSD id), so no
//! floating point is involved anywhere.
//!
//! # Hierarchy: one draw per OSD
//!
//! A host's draw is the maximum of its candidate OSDs' draws (same `x`, same round `r`),
//! and the OSD chosen inside the winning host is the one that produced that maximum.
//! The maximum of independent straw2 draws with weights `w_j` is distributed like a
//! single straw2 draw with weight `Σ w_j`, so this *is* straw2 at host level with host
//! weight = sum of its candidates' weights, followed by straw2 among the host's OSDs
//! with the same `r`. Drawing the two levels with independent hashes instead would make
//! every weight change inside a host reshuffle the PGs among that host's other OSDs
//! (measured 1.57× the ideal movement for one OSD out of 40 hosts × 3, 1.79× for one
//! OSD added to a host); correlating the levels keeps movement at the ideal. Hosts therefore need no hash id of their own: a host is
//! identified by its *name*, which is stable when other hosts come and go, and OSD ids
//! are the only item ids ever hashed.
//!
//! # Replicas (firstn)
//!
//! Slot `r = 0, 1, …` picks the best draw of round `r` among candidates whose failure
//! domain is not used by an earlier slot. This is the limit of "retry with a fresh
//! round on collision" (straw2 restricted to a subset has the same distribution as
//! retrying until the winner is in the subset) but never gives up while an unused
//! domain with a candidate remains, so the result has exactly
//! `min(size, number of domains holding a candidate)` distinct OSDs.
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::OnceLock;

use crate::ids::OsdId;
use crate::maps::{FailureDomain, OsdMap, PgId, Pool};

/// FNV-1a 64-bit offset basis and prime.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Fractional bits of the fixed-point logarithm.
const LN_FRAC_BITS: u32 = 44;
/// Bits of hash used for one straw2 draw (`u = (h16 + 1) / 2^16`).
const DRAW_BITS: u32 = 16;
/// Separates the CRUSH-input hash from the draw hash.
const PG_SALT: u64 = 0x5047_5f49_4e50_5554;
const DRAW_SALT: u64 = 0x4352_5553_485f_5332;

/// Stable 32-bit hash of an object name, identical on every machine and version.
///
/// Algorithm: 64-bit FNV-1a over the UTF-8 bytes of `name` (offset basis
/// `0xcbf29ce484222325`, prime `0x100000001b3`), then the SplitMix64 finalizer
/// (`z ^= z >> 30; z *= 0xbf58476d1ce4e5b9; z ^= z >> 27; z *= 0x94d049bb133111eb;
/// z ^= z >> 31`), and the high 32 bits of the result. The finalizer spreads every
/// input bit over the low bits used by the PG reduction.
pub fn object_hash(name: &str) -> u32 {
    let h = name.as_bytes().iter().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME)
    });
    (splitmix64(h) >> 32) as u32
}

/// Object → PG of a pool: `object_hash(name)` reduced to `0..pg_num` with the stable
/// mod (see the module header); `pg_num` 0 gives seed 0.
pub fn object_to_pg(pool: &Pool, name: &str) -> PgId {
    PgId {
        pool: pool.id,
        seed: stable_mod(object_hash(name), pool.pg_num),
    }
}

/// The CRUSH result for a PG: up to `pool.size` distinct OSDs chosen by straw2 over
/// root → host → osd, replicas in distinct hosts when `failure_domain == Host`
/// (distinct OSDs when `Osd`). Only OSDs that are `in_` with weight > 0 are
/// candidates; host weight = sum of its candidates' weights. Up/down is not
/// considered (raw CRUSH mapping). Fewer OSDs are returned when the map runs out of
/// failure domains; never panics.
pub fn crush_pg(map: &OsdMap, pool: &Pool, pg: PgId) -> Vec<OsdId> {
    let cands = candidates(map);
    let x = pg_input(pg);
    let mut chosen = Vec::new();
    let mut used: Vec<u64> = Vec::new();
    for r in 0..pool.size {
        let free = |c: &Candidate| !used.contains(&c.domain(pool.failure_domain));
        match best_candidate(&cands, x, r, free) {
            Some(c) => {
                used.push(c.domain(pool.failure_domain));
                chosen.push(c.osd);
            }
            None => break,
        }
    }
    chosen
}

/// Where a PG lives now: the up set (CRUSH result restricted to up OSDs) and the
/// acting set (`pg_temp` override, else the up set), each with its primary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgMapping {
    pub up: Vec<OsdId>,
    pub up_primary: Option<OsdId>,
    pub acting: Vec<OsdId>,
    pub acting_primary: Option<OsdId>,
}

/// up = [`crush_pg`] filtered to OSDs that are up (order kept); acting =
/// `map.pg_temp[pg]` filtered to up OSDs (duplicates dropped) if present and non-empty
/// after filtering, else up; primaries are the first entries. Unknown pool → all
/// empty / `None`.
pub fn pg_mapping(map: &OsdMap, pg: PgId) -> PgMapping {
    let Some(pool) = map.pools.get(&pg.pool) else {
        return PgMapping {
            up: Vec::new(),
            up_primary: None,
            acting: Vec::new(),
            acting_primary: None,
        };
    };
    let is_up = |o: &OsdId| map.osds.get(o).is_some_and(|info| info.up);
    let up: Vec<OsdId> = crush_pg(map, pool, pg).into_iter().filter(is_up).collect();
    let mut temp: Vec<OsdId> = Vec::new();
    for o in map.pg_temp.get(&pg).into_iter().flatten() {
        if is_up(o) && !temp.contains(o) {
            temp.push(*o);
        }
    }
    let acting = if temp.is_empty() { up.clone() } else { temp };
    PgMapping {
        up_primary: up.first().copied(),
        acting_primary: acting.first().copied(),
        up,
        acting,
    }
}

/// Every PG id of a pool (seeds `0..pg_num`).
pub fn pool_pgs(pool: &Pool) -> impl Iterator<Item = PgId> {
    let id = pool.id;
    (0..pool.pg_num).map(move |seed| PgId { pool: id, seed })
}

/// Ceph's stable mod: `x` modulo the next power of two ≥ `b`, with results ≥ `b`
/// folded into the lower half. `b` 0 gives 0.
fn stable_mod(x: u32, b: u32) -> u32 {
    if b == 0 {
        return 0;
    }
    let mask = b.checked_next_power_of_two().map_or(u32::MAX, |p| p - 1);
    if x & mask < b {
        x & mask
    } else {
        x & (mask >> 1)
    }
}

/// One OSD eligible for placement, with the index of its host (in host-name order).
#[derive(Clone, Copy, Debug)]
struct Candidate {
    osd: OsdId,
    weight: u32,
    host: usize,
}

impl Candidate {
    /// The failure-domain key: two candidates with the same key may not both be chosen.
    fn domain(&self, fd: FailureDomain) -> u64 {
        match fd {
            FailureDomain::Host => self.host as u64,
            FailureDomain::Osd => u64::from(self.osd),
        }
    }
}

/// The candidate OSDs of the CRUSH hierarchy: listed under a host, known to the map,
/// `in_` and with weight > 0. An OSD listed twice counts once (first host wins).
fn candidates(map: &OsdMap) -> Vec<Candidate> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (host, osds) in map.crush.hosts.values().enumerate() {
        for &osd in osds {
            let Some(info) = map.osds.get(&osd) else {
                continue;
            };
            if info.in_ && info.weight > 0 && seen.insert(osd) {
                out.push(Candidate {
                    osd,
                    weight: info.weight,
                    host,
                });
            }
        }
    }
    out
}

/// The straw2 winner of round `r` among the candidates accepted by `allowed`.
/// Equal draws (u quantized to 16 bits) go to the lower OSD id, so the result never
/// depends on the order of hosts or of OSDs within a host.
fn best_candidate(
    cands: &[Candidate],
    x: u32,
    r: u32,
    allowed: impl Fn(&Candidate) -> bool,
) -> Option<Candidate> {
    let mut best: Option<(Candidate, Draw)> = None;
    for c in cands.iter().filter(|c| allowed(c)) {
        let d = Draw::new(x, c.osd, r, c.weight);
        let wins = match &best {
            None => true,
            Some((bc, bd)) => match d.cmp(bd) {
                Ordering::Greater => true,
                Ordering::Equal => c.osd < bc.osd,
                Ordering::Less => false,
            },
        };
        if wins {
            best = Some((*c, d));
        }
    }
    best.map(|(c, _)| c)
}

/// A straw2 draw `ln / weight`, kept as the exact fraction.
#[derive(Clone, Copy, Debug)]
struct Draw {
    /// Fixed-point `ln(u)` (scaled by a constant), ≤ 0.
    ln: i64,
    /// Weight, > 0.
    weight: u32,
}

impl Draw {
    fn new(x: u32, item: OsdId, r: u32, weight: u32) -> Draw {
        let u = hash3(x, item, r) >> (32 - DRAW_BITS);
        Draw {
            ln: ln_fixed(u),
            weight,
        }
    }

    /// Compares `self.ln / self.weight` with `other.ln / other.weight` exactly, by
    /// cross-multiplying (both weights are > 0).
    fn cmp(&self, other: &Draw) -> Ordering {
        let lhs = i128::from(self.ln) * i128::from(other.weight);
        lhs.cmp(&(i128::from(other.ln) * i128::from(self.weight)))
    }
}

/// The CRUSH input of a PG: its seed mixed with its pool id.
fn pg_input(pg: PgId) -> u32 {
    let h = splitmix64(PG_SALT ^ pg.pool);
    (splitmix64(h ^ u64::from(pg.seed)) >> 32) as u32
}

/// 32-bit mix of (CRUSH input, item id, round): chained SplitMix64 finalizers,
/// high 32 bits.
fn hash3(x: u32, item: OsdId, r: u32) -> u32 {
    let h = splitmix64(DRAW_SALT ^ u64::from(x));
    let h = splitmix64(h ^ u64::from(item));
    (splitmix64(h ^ u64::from(r)) >> 32) as u32
}

/// The SplitMix64 finalizer: a bijective 64-bit mixer with full avalanche.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `log2((u + 1) / 2^16)` in fixed point (44 fractional bits) for a 16-bit `u`:
/// from `-16.0` (u = 0) to `0` (u = 0xffff). Using log2 instead of ln scales every
/// draw by the same positive constant, which does not change any comparison.
fn ln_fixed(u: u32) -> i64 {
    let table = LN_TABLE.get_or_init(|| (1..=1u32 << DRAW_BITS).map(log2_fixed).collect());
    let idx = (u & ((1 << DRAW_BITS) - 1)) as usize;
    let log = table.get(idx).copied().unwrap_or(0);
    log - (i64::from(DRAW_BITS) << LN_FRAC_BITS)
}

static LN_TABLE: OnceLock<Vec<i64>> = OnceLock::new();

/// `log2(v)` for `v ≥ 1` in fixed point with [`LN_FRAC_BITS`] fractional bits, by
/// repeated squaring of the mantissa (integer arithmetic only). `v = 0` gives 0.
fn log2_fixed(v: u32) -> i64 {
    if v == 0 {
        return 0;
    }
    let int = 31 - v.leading_zeros();
    // Mantissa in [1, 2) as a Q62 number.
    let mut m = u128::from(v) << (62 - int);
    let mut frac: i64 = 0;
    for _ in 0..LN_FRAC_BITS {
        m = (m * m) >> 62;
        frac <<= 1;
        if m >= 1 << 63 {
            m >>= 1;
            frac |= 1;
        }
    }
    (i64::from(int) << LN_FRAC_BITS) | frac
}

#[cfg(test)]
#[path = "crush_tests.rs"]
mod tests;
