//! Model-based tests: random operation sequences run against the map and against
//! `std::collections::HashMap`, comparing every result.
//!
//! Each sequence (seeded, reproducible) draws a few thousand operations over a small key
//! space, so that keys are inserted, replaced and removed many times, and uses every public
//! method: `get`, `contains_key`, `insert`, `insert_if_absent`, `remove`, `remove_if`,
//! `compare_exchange`, `update` (including removal by returning `None`), `clear`, `len`,
//! `is_empty`, `iter` (compared as a set, and checked to yield each key once), and clones
//! (operations go through several handles, which must share one map). After each sequence
//! the contents are compared once more, and after `clear` + `reclaim()` no garbage is
//! pending.
//!
//! Every sequence runs with five hashers: SipHash (`RandomState`), a constant hasher (every
//! key in one collision list), a low-bits-only hasher (deep chains ending in collision
//! lists), one whose low 30 bits are constant (collisions through the top six levels), and
//! one where only the top 4 bits vary (only the last level distinguishes keys).
//!
//! A failure names the hasher, the seed and the step. `MODEL_SEED=<seed>` runs that seed
//! alone (the sequences are deterministic, except under `RandomState`).
#![cfg(not(loom))]

mod common;

use common::{Masked, Rng};
use concurrent_hamt::layout::Layout;
use concurrent_hamt::{Hamt, Inline, Leaves};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};

const SEEDS: [u64; 12] = [
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    0xC0FFEE,
    0xDEAD_BEEF,
    20_140_101,
    0x5EED_5EED,
    u64::MAX,
];
const OPS: usize = 4_000;

/// Where a failure happened.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    hasher: &'a str,
    seed: u64,
    keys: u64,
    step: usize,
}

impl std::fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "hasher {}, seed {}, key space {}, step {}",
            self.hasher, self.seed, self.keys, self.step
        )
    }
}

/// The map's contents through `iter`, checking that no key is yielded twice.
fn contents<K, V, S, L>(map: &Hamt<K, V, S, L>, ctx: Ctx) -> HashMap<K, V>
where
    K: Hash + Eq + Clone + Debug,
    V: Clone,
    S: BuildHasher,
    L: Layout<K, V>,
{
    let mut out = HashMap::new();
    for entry in map.iter() {
        let dup = out.insert(entry.key().clone(), entry.value().clone());
        assert!(dup.is_none(), "{ctx}: iter yielded {:?} twice", entry.key());
    }
    out
}

fn check_contents<K, S, L>(map: &Hamt<K, u64, S, L>, model: &HashMap<K, u64>, ctx: Ctx)
where
    K: Hash + Eq + Clone + Debug,
    S: BuildHasher,
    L: Layout<K, u64>,
{
    assert_eq!(map.len(), model.len(), "{ctx}: len");
    assert_eq!(map.is_empty(), model.is_empty(), "{ctx}: is_empty");
    let seen = contents(map, ctx);
    if &seen != model {
        let extra: Vec<_> = seen
            .iter()
            .filter(|(k, v)| model.get(*k) != Some(v))
            .collect();
        let missing: Vec<_> = model
            .iter()
            .filter(|(k, v)| seen.get(*k) != Some(v))
            .collect();
        panic!("{ctx}: iter differs from the model: extra or wrong {extra:?}, missing or wrong {missing:?}");
    }
}

/// One random sequence. Keys are `key(i)` for `i < keys`; values are small so that
/// `compare_exchange` guesses right often.
fn run_sequence<K, S, L>(name: &str, hasher: S, seed: u64, keys: u64, key: impl Fn(u64) -> K)
where
    K: Hash + Eq + Clone + Debug,
    S: BuildHasher,
    L: Layout<K, u64>,
{
    let mut rng = Rng::new(seed);
    let mut model: HashMap<K, u64> = HashMap::new();
    let mut handles: Vec<Hamt<K, u64, S, L>> = vec![Hamt::with_layout(hasher)];
    let mut ctx = Ctx {
        hasher: name,
        seed,
        keys,
        step: 0,
    };
    for step in 0..OPS {
        ctx.step = step;
        // Clones share one map: route each operation through any handle, and now and then
        // drop a handle or make a new one.
        if rng.chance(2) {
            if handles.len() > 1 && rng.chance(50) {
                let i = rng.below(handles.len() as u64) as usize;
                handles.swap_remove(i);
            } else {
                let i = rng.below(handles.len() as u64) as usize;
                let clone = handles[i].clone();
                handles.push(clone);
            }
        }
        let map = &handles[rng.below(handles.len() as u64) as usize];
        let k = key(rng.below(keys));
        let v = rng.below(8);
        let present = model.get(&k).copied();
        let op = rng.below(1000);
        match op {
            0..=149 => {
                let got = map.get(&k);
                if let Some(entry) = &got {
                    assert_eq!(entry.key(), &k, "{ctx}: get returned another key");
                    assert_eq!(**entry, *entry.value());
                }
                assert_eq!(got.map(|e| *e), present, "{ctx}: get({k:?})");
            }
            150..=229 => {
                assert_eq!(
                    map.contains_key(&k),
                    present.is_some(),
                    "{ctx}: contains_key({k:?})"
                );
            }
            230..=379 => {
                let prev = map.insert(k.clone(), v);
                let prev = prev.map(|e| (e.key().clone(), *e));
                assert_eq!(
                    prev,
                    present.map(|p| (k.clone(), p)),
                    "{ctx}: insert({k:?}, {v}) returned the wrong previous entry"
                );
                model.insert(k.clone(), v);
                assert_eq!(map.get(&k).map(|e| *e), Some(v), "{ctx}: get after insert");
            }
            380..=479 => {
                let inserted = map.insert_if_absent(k.clone(), v);
                assert_eq!(
                    inserted,
                    present.is_none(),
                    "{ctx}: insert_if_absent({k:?})"
                );
                model.entry(k.clone()).or_insert(v);
            }
            480..=599 => {
                let removed = map.remove(&k).map(|e| (e.key().clone(), *e));
                assert_eq!(
                    removed,
                    present.map(|p| (k.clone(), p)),
                    "{ctx}: remove({k:?})"
                );
                model.remove(&k);
                assert!(map.get(&k).is_none(), "{ctx}: get after remove({k:?})");
            }
            600..=679 => {
                // The predicate: always, never, or on even values.
                let mode = rng.below(3);
                let mut calls = 0;
                let removed = map.remove_if(&k, |value| {
                    calls += 1;
                    assert_eq!(
                        Some(*value),
                        present,
                        "remove_if's predicate saw a wrong value"
                    );
                    match mode {
                        0 => true,
                        1 => false,
                        _ => value % 2 == 0,
                    }
                });
                let removed = removed.map(|e| (e.key().clone(), *e));
                let expected = present.filter(|p| match mode {
                    0 => true,
                    1 => false,
                    _ => p % 2 == 0,
                });
                assert_eq!(
                    removed,
                    expected.map(|p| (k.clone(), p)),
                    "{ctx}: remove_if({k:?}) mode {mode}"
                );
                if present.is_none() {
                    assert_eq!(
                        calls, 0,
                        "{ctx}: remove_if called its predicate on an absent key"
                    );
                } else {
                    assert!(calls >= 1, "{ctx}: remove_if never called its predicate");
                }
                if expected.is_some() {
                    model.remove(&k);
                }
            }
            680..=779 => {
                // Guess the present value half of the time.
                let current = match present {
                    Some(p) if rng.chance(50) => p,
                    _ => rng.below(8),
                };
                let result = map.compare_exchange(k.clone(), &current, v);
                match (result, present) {
                    (Ok(entry), Some(p)) if p == current => {
                        assert_eq!((entry.key(), *entry), (&k, v), "{ctx}: compare_exchange Ok");
                        model.insert(k.clone(), v);
                    }
                    (Err(Some(entry)), Some(p)) if p != current => {
                        assert_eq!(
                            (entry.key(), *entry),
                            (&k, p),
                            "{ctx}: compare_exchange Err(Some)"
                        );
                    }
                    (Err(None), None) => {}
                    (result, present) => panic!(
                        "{ctx}: compare_exchange({k:?}, {current}, {v}) with {present:?} present \
                         returned {:?}",
                        result.map(|e| *e).map_err(|e| e.map(|e| *e))
                    ),
                }
            }
            780..=979 => {
                // Increment, remove (None), or set; on an absent key, insert or leave absent.
                let mode = rng.below(4);
                let mut calls = 0;
                let new = map.update(k.clone(), |old| {
                    calls += 1;
                    assert_eq!(old.copied(), present, "update's closure saw a wrong value");
                    match (mode, old) {
                        (0, Some(o)) => Some(o + 1),
                        (1, _) => None,
                        (2, _) => Some(v),
                        (_, Some(_)) => None,
                        (_, None) => Some(v + 100),
                    }
                });
                assert!(calls >= 1, "{ctx}: update never called its closure");
                let expected = match (mode, present) {
                    (0, Some(o)) => Some(o + 1),
                    (1, _) => None,
                    (2, _) => Some(v),
                    (_, Some(_)) => None,
                    (_, None) => Some(v + 100),
                };
                let new = new.map(|e| (e.key().clone(), *e));
                assert_eq!(
                    new,
                    expected.map(|e| (k.clone(), e)),
                    "{ctx}: update({k:?}) mode {mode} on {present:?} returned a wrong entry"
                );
                match expected {
                    Some(e) => model.insert(k.clone(), e),
                    None => model.remove(&k),
                };
            }
            980..=994 => check_contents(map, &model, ctx),
            995..=996 => {
                map.clear();
                model.clear();
                assert!(map.is_empty(), "{ctx}: not empty after clear");
            }
            _ => {
                map.reclaim();
                let stats = map.stats();
                assert_eq!(stats.pending, 0, "{ctx}: garbage left after reclaim");
                assert_eq!(stats.retired, stats.reclaimed, "{ctx}: stats");
            }
        }
        assert_eq!(map.len(), model.len(), "{ctx}: len after op {op}");
        assert_eq!(
            map.is_empty(),
            model.is_empty(),
            "{ctx}: is_empty after op {op}"
        );
    }
    ctx.step = OPS;
    // Every handle sees the same contents.
    for map in &handles {
        check_contents(map, &model, ctx);
    }
    for k in (0..keys).map(&key) {
        assert_eq!(
            handles[0].get(&k).map(|e| *e),
            model.get(&k).copied(),
            "{ctx}: final get({k:?})"
        );
    }
    let map = handles.pop().unwrap();
    drop(handles);
    map.clear();
    assert!(map.is_empty(), "{ctx}: not empty after the final clear");
    assert_eq!(map.iter().count(), 0, "{ctx}: iter after the final clear");
    map.reclaim();
    let stats = map.stats();
    assert_eq!(
        stats.pending, 0,
        "{ctx}: garbage after clear + reclaim: {stats:?}"
    );
}

/// Every seed, with a dense key space (frequent hits) and a sparse one (more structure).
fn all_seeds<S: BuildHasher>(name: &str, hasher: impl Fn() -> S) {
    let seeds = match std::env::var("MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("MODEL_SEED is a u64")],
        Err(_) => SEEDS.to_vec(),
    };
    for seed in seeds {
        for keys in [24, 300] {
            run_sequence::<_, _, Leaves>(name, hasher(), seed, keys, |i| i);
        }
        // String keys: a heap-allocated key type (its seed is `seed ^ 0x5157`).
        run_sequence::<_, _, Leaves>(name, hasher(), seed ^ 0x5157, 64, |i| format!("key-{i}"));
    }
}

/// Every seed, for the inline layout (entries copied bit for bit with their nodes): `u64`
/// keys, dense and sparse, and `(u32, u16)` keys (a tuple, with padding).
fn all_seeds_inline<S: BuildHasher>(name: &str, hasher: impl Fn() -> S) {
    let seeds = match std::env::var("MODEL_SEED") {
        Ok(s) => vec![s.parse().expect("MODEL_SEED is a u64")],
        Err(_) => SEEDS.to_vec(),
    };
    for seed in seeds {
        for keys in [24, 300] {
            run_sequence::<_, _, Inline>(name, hasher(), seed, keys, |i| i);
        }
        run_sequence::<_, _, Inline>(name, hasher(), seed ^ 0x1d1e, 64, |i| {
            (i as u32, (i % 7) as u16)
        });
    }
}

#[test]
fn sip_hash() {
    all_seeds("SipHash", RandomState::new);
}

#[test]
fn constant_hash() {
    all_seeds("constant", || Masked::CONSTANT);
}

#[test]
fn low_bits_only_hash() {
    all_seeds("low 8 bits", || Masked::LOW_BITS);
}

#[test]
fn top_levels_collide() {
    all_seeds("low 30 bits constant", || Masked::TOP_LEVELS_COLLIDE);
}

#[test]
fn last_level_only() {
    all_seeds("top 4 bits only", || Masked::LAST_LEVEL_ONLY);
}

/// `get`, `contains_key`, `remove` and `remove_if` through `Borrow`: `String` keys looked up
/// by `&str`.
#[test]
fn borrowed_lookups() {
    for hasher in [
        Masked::CONSTANT,
        Masked::LOW_BITS,
        Masked::TOP_LEVELS_COLLIDE,
    ] {
        let map: Hamt<String, usize, Masked> = Hamt::with_hasher(hasher);
        for i in 0..200 {
            assert!(map.insert(format!("k{i}"), i).is_none());
        }
        assert_eq!(map.get("k7").map(|e| *e), Some(7));
        assert_eq!(map.get("k7").unwrap().key(), "k7");
        assert!(map.contains_key("k199"));
        assert!(!map.contains_key("k200"));
        assert_eq!(map.remove("k3").map(|e| *e), Some(3));
        assert!(map.remove("k3").is_none());
        assert!(map.remove_if("k4", |v| *v == 5).is_none());
        assert_eq!(map.remove_if("k4", |v| *v == 4).map(|e| *e), Some(4));
        assert_eq!(map.len(), 198);
    }
}

/// `Default`, `FromIterator`, `Extend` (later pairs win, as for `HashMap`), `Debug`, and a
/// clone that outlives the original.
#[test]
fn construction_traits_and_clones() {
    let pairs: Vec<(u64, u64)> = (0..500).map(|i| (i % 300, i)).collect();
    let map: Hamt<u64, u64> = pairs.iter().copied().collect();
    let model: HashMap<u64, u64> = pairs.iter().copied().collect();
    let ctx = Ctx {
        hasher: "SipHash",
        seed: 0,
        keys: 300,
        step: 0,
    };
    check_contents(&map, &model, ctx);

    let mut extended: Hamt<u64, u64> = Hamt::default();
    assert!(extended.is_empty());
    extended.extend(pairs.iter().copied());
    extended.extend([(1_000, 1), (0, 7)]);
    let mut model2 = model.clone();
    model2.extend([(1_000, 1), (0, 7)]);
    check_contents(&extended, &model2, ctx);

    // A clone shares the map, writes through either are seen by both, and the map outlives
    // the handle it was cloned from.
    let clone = map.clone();
    clone.insert(10_000, 1);
    assert_eq!(map.get(&10_000).map(|e| *e), Some(1));
    assert!(map.remove(&0).is_some());
    assert!(!clone.contains_key(&0));
    drop(map);
    assert_eq!(clone.len(), 300);
    assert_eq!(clone.get(&299).map(|e| *e), Some(299));

    let small: Hamt<u64, &str> = [(1, "one")].into_iter().collect();
    let text = format!("{small:?}");
    assert!(
        text.contains("one"),
        "Debug of a map shows its entries: {text}"
    );
    let entry = small.get(&1).unwrap();
    let text = format!("{entry:?}");
    assert!(
        text.contains("one"),
        "Debug of a Ref shows its value: {text}"
    );
}

/// Iteration without concurrent writes yields each entry exactly once, for maps of many
/// shapes and sizes (including the sizes where nodes split and collapse).
#[test]
fn iter_yields_each_entry_once() {
    let ctx = Ctx {
        hasher: "",
        seed: 0,
        keys: 0,
        step: 0,
    };
    for n in [0u64, 1, 2, 31, 32, 33, 1_000, 5_000] {
        for (name, hasher) in [
            ("low 8 bits", Masked::LOW_BITS),
            ("low 30 bits constant", Masked::TOP_LEVELS_COLLIDE),
            ("top 4 bits only", Masked::LAST_LEVEL_ONLY),
        ] {
            let map = Hamt::with_hasher(hasher);
            let mut model = HashMap::new();
            for k in 0..n {
                map.insert(k, k * 3);
                model.insert(k, k * 3);
            }
            // Remove a third, so that some nodes have shrunk.
            for k in (0..n).step_by(3) {
                map.remove(&k);
                model.remove(&k);
            }
            let ctx = Ctx {
                hasher: name,
                keys: n,
                ..ctx
            };
            check_contents(&map, &model, ctx);
            let keys: HashSet<u64> = map.iter().map(|e| *e.key()).collect();
            assert_eq!(keys.len(), model.len(), "{ctx}");
        }
    }
}

#[test]
fn inline_sip_hash() {
    all_seeds_inline("inline, SipHash", RandomState::new);
}

#[test]
fn inline_constant_hash() {
    all_seeds_inline("inline, constant", || Masked::CONSTANT);
}

#[test]
fn inline_low_bits_only_hash() {
    all_seeds_inline("inline, low 8 bits", || Masked::LOW_BITS);
}

#[test]
fn inline_top_levels_collide() {
    all_seeds_inline("inline, low 30 bits constant", || {
        Masked::TOP_LEVELS_COLLIDE
    });
}

#[test]
fn inline_last_level_only() {
    all_seeds_inline("inline, top 4 bits only", || Masked::LAST_LEVEL_ONLY);
}
