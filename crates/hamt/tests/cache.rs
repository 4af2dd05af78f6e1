//! The level cache (a table of the INodes three levels below the root that lookups in large
//! maps start from): lookups through it agree with a model whatever writes, folds, snapshots
//! and `clear` did to the trie since a slot was filled, alone and under concurrent writers.
//!
//! The maps here get their table from the first deep lookup (`with_level_cache_from(_, 0)`),
//! so that moderate sizes exercise it; `scripts/test.sh` also runs every test of the crate
//! with `--cfg hamt_cache_always` (a table one level below the root in every map).
#![cfg(not(loom))]

mod common;

use common::Rng;
use concurrent_hamt::{Hamt, Inline};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::{Arc, Barrier};
use std::thread;

const N: u64 = 60_000;

fn cached_map() -> Hamt<u64, u64, RandomState, Inline> {
    Hamt::with_level_cache_from(RandomState::new(), 0)
}

/// Fills the map with `k -> k * 10` and reads every key twice (the first pass fills the
/// table, the second reads through it); returns the filled slots.
fn fill_and_read(map: &Hamt<u64, u64, RandomState, Inline>) -> usize {
    for k in 0..N {
        assert!(map.insert(k, k * 10).is_none());
    }
    for _ in 0..2 {
        for k in 0..N {
            assert_eq!(map.get(&k).map(|v| *v), Some(k * 10), "key {k}");
        }
    }
    map.level_cache_filled().expect("a table")
}

#[test]
fn large_maps_get_a_table_and_small_ones_do_not() {
    let small: Hamt<u64, u64> = Hamt::new();
    for k in 0..1_000 {
        small.insert(k, k);
        assert_eq!(small.get(&k).map(|v| *v), Some(k));
    }
    if !cfg!(hamt_cache_always) {
        assert_eq!(
            small.level_cache_filled(),
            None,
            "no table for 1,000 entries"
        );
    }
    // The default threshold: 2^16 entries.
    let large: Hamt<u64, u64> = Hamt::new();
    for k in 0..100_000 {
        large.insert(k, k);
    }
    // The table comes with the first sampled lookup (one in 64, by hash bits) that goes below
    // the cached depth, and at 10^5 entries few keys are that deep (a few sampled ones per
    // pass, with a random hasher): one pass may allocate it late, or not at all (a run in
    // about a hundred did). Three passes: the first allocates it, a later one fills it.
    for _ in 0..3 {
        for k in 0..100_000 {
            assert_eq!(large.get(&k).map(|v| *v), Some(k));
        }
    }
    let filled = large
        .level_cache_filled()
        .expect("a table for 100,000 entries");
    // 2^15 slots (32 in `hamt_cache_always` builds); at 10^5 entries about 59 % of the paths
    // have an INode at the cached depth (those of three keys or more: 3.05 keys per path;
    // 19,270-19,344 filled in three runs).
    let slots = if cfg!(hamt_cache_always) { 32 } else { 1 << 15 };
    assert!(filled > slots / 2, "most paths cached: {filled} of {slots}");
}

#[test]
fn reads_through_the_table_see_every_later_write() {
    let map = cached_map();
    let filled = fill_and_read(&map);
    assert!(filled > 0, "the table was filled");
    // Replace, remove (folding subtrees at the cached depth and above), re-insert.
    for k in 0..N {
        match k % 3 {
            0 => assert_eq!(map.insert(k, k + 1).map(|v| *v), Some(k * 10)),
            1 => assert_eq!(map.remove(&k).map(|v| *v), Some(k * 10)),
            _ => {}
        }
    }
    for k in 0..N {
        let want = match k % 3 {
            0 => Some(k + 1),
            1 => None,
            _ => Some(k * 10),
        };
        assert_eq!(map.get(&k).map(|v| *v), want, "key {k}");
    }
    // Remove almost everything: most cached INodes are folded away.
    for k in (0..N).filter(|k| k % 3 != 1 && k % 97 != 0) {
        assert!(map.remove(&k).is_some());
    }
    for k in 0..N {
        let present = k % 3 != 1 && k % 97 == 0;
        assert_eq!(map.get(&k).is_some(), present, "key {k}");
    }
    for k in 0..N {
        map.insert(k, k);
    }
    for k in 0..N {
        assert_eq!(map.get(&k).map(|v| *v), Some(k), "key {k}");
    }
    map.clear();
    assert_eq!(map.level_cache_filled(), Some(0), "clear empties the table");
    for k in 0..N {
        assert!(map.get(&k).is_none());
    }
}

#[test]
fn the_table_never_shows_a_snapshots_generation_to_the_map() {
    let map = cached_map();
    fill_and_read(&map);
    let snap = map.read_only_snapshot();
    let copy = map.snapshot();
    // Every slot now holds an INode of the generation before the snapshots.
    for k in 0..N {
        map.insert(k, k + 1);
    }
    for k in (0..N).step_by(2) {
        copy.insert(k, k + 2);
    }
    for round in 0..2 {
        for k in 0..N {
            assert_eq!(
                map.get(&k).map(|v| *v),
                Some(k + 1),
                "map, key {k}, round {round}"
            );
            let c = if k % 2 == 0 { k + 2 } else { k * 10 };
            assert_eq!(
                copy.get(&k).map(|v| *v),
                Some(c),
                "copy, key {k}, round {round}"
            );
            assert_eq!(snap.get(&k).copied(), Some(k * 10), "snapshot, key {k}");
        }
    }
    // A snapshot after the map's table was refilled in the new generation.
    let snap2 = map.read_only_snapshot();
    for k in 0..N {
        assert!(map.remove(&k).is_some());
    }
    for k in 0..N {
        assert!(map.get(&k).is_none(), "key {k} removed");
        assert_eq!(snap2.get(&k).copied(), Some(k + 1));
    }
    assert!(map.is_empty());
}

/// Writers churn two key sets (so that subtrees at the cached depth are created and folded
/// again and again), one thread takes snapshots and clears nothing, readers check a set of
/// keys nobody writes (always found, with their value) and that churned keys show only
/// values written for them.
#[test]
fn concurrent_readers_through_the_table() {
    let map = Arc::new(cached_map());
    const STABLE: u64 = 20_000;
    for k in 0..STABLE {
        map.insert(k, k * 10);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(5));
    let mut handles = Vec::new();
    for w in 0..2u64 {
        let (map, stop, start) = (map.clone(), stop.clone(), start.clone());
        handles.push(thread::spawn(move || {
            let mut rng = Rng::new(0x5eed + w);
            start.wait();
            let mut rounds = 0;
            while !stop.load(Relaxed) || rounds < 3 {
                // Keys of this writer: STABLE + 2i + w.
                for i in 0..10_000 {
                    let k = STABLE + 2 * i + w;
                    map.insert(k, k * 10 + rng.below(10));
                }
                for i in 0..10_000 {
                    let k = STABLE + 2 * i + w;
                    assert!(map.remove(&k).is_some(), "writer {w}: key {k} present");
                }
                rounds += 1;
            }
        }));
    }
    {
        let (map, stop, start) = (map.clone(), stop.clone(), start.clone());
        handles.push(thread::spawn(move || {
            start.wait();
            while !stop.load(Relaxed) {
                let snap = map.read_only_snapshot();
                assert!(snap.len() >= STABLE as usize);
                thread::yield_now();
            }
        }));
    }
    for r in 0..2u64 {
        let (map, start) = (map.clone(), start.clone());
        handles.push(thread::spawn(move || {
            let mut rng = Rng::new(0xbeef + r);
            start.wait();
            for _ in 0..400_000 {
                let k = rng.below(STABLE + 20_000);
                match map.get(&k).map(|v| *v) {
                    Some(v) if k < STABLE => assert_eq!(v, k * 10, "stable key {k}"),
                    None if k < STABLE => panic!("stable key {k} lost"),
                    Some(v) => assert_eq!(v / 10, k, "churned key {k}: value {v}"),
                    None => {}
                }
            }
        }));
    }
    let readers = handles.split_off(3);
    let join = |hs: Vec<thread::JoinHandle<()>>| {
        for h in hs {
            if let Err(payload) = h.join() {
                std::panic::resume_unwind(payload);
            }
        }
    };
    join(readers);
    stop.store(true, Relaxed);
    join(handles);
    for k in 0..STABLE + 20_000 {
        assert_eq!(map.get(&k).is_some(), k < STABLE, "key {k} at the end");
    }
}

/// Random operations against a `HashMap`, reads most of all, with snapshots and clears.
#[test]
fn random_operations_against_a_model() {
    let mut rng = Rng::new(42);
    let map = cached_map();
    let mut model: HashMap<u64, u64> = HashMap::new();
    let keys = 40_000;
    for step in 0..600_000u64 {
        let k = rng.below(keys);
        match rng.below(100) {
            0..=59 => assert_eq!(map.get(&k).map(|v| *v), model.get(&k).copied(), "get {k}"),
            60..=79 => assert_eq!(
                map.insert(k, step).map(|v| *v),
                model.insert(k, step),
                "insert {k}"
            ),
            80..=98 => assert_eq!(map.remove(&k).map(|v| *v), model.remove(&k), "remove {k}"),
            _ => {
                if rng.chance(2) {
                    map.clear();
                    model.clear();
                } else {
                    let snap = map.read_only_snapshot();
                    assert_eq!(snap.len(), model.len());
                }
            }
        }
    }
    assert_eq!(map.len(), model.len());
    for (k, v) in &model {
        assert_eq!(map.get(k).map(|v| *v), Some(*v));
    }
}
