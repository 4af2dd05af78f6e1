//! Differential fuzzing: the input is a sequence of operations on several maps (handles that
//! share a map, writable snapshots) and read-only snapshots, run on the trie and on
//! `std::collections::HashMap` models side by side; every result is compared, and at the end
//! of the input every map and snapshot is compared in full.
//!
//! The first byte picks one of the four hashers of the trie's tests (SipHash with fixed keys,
//! so that a crash reproduces; a constant hash; low bits only; collisions through the top six
//! levels); then each operation takes three bytes: what, which key (256 keys), a value or a
//! choice. Every 10,000 operations run (over all inputs of the process), the count goes to stderr as
//! `map_model ops: N` (scripts/fuzz.sh reports it).
#![no_main]

#[path = "../../crates/hamt/tests/common/mod.rs"]
#[allow(dead_code, unused_imports)]
mod common;

use common::Masked;
use concurrent_hamt::{Hamt, Snapshot};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// SipHash with `DefaultHasher`'s fixed keys, unmasked.
const SIP_HASH: Masked = Masked { keep: !0, fixed: 0 };
const HASHERS: [Masked; 4] = [
    SIP_HASH,
    Masked::CONSTANT,
    Masked::LOW_BITS,
    Masked::TOP_LEVELS_COLLIDE,
];

type Map = Hamt<u32, u64, Masked>;
type Model = HashMap<u32, u64>;

/// Operations run over all inputs of this process.
static OPS: AtomicU64 = AtomicU64::new(0);

fn count_op() {
    // Relaxed: a statistic of this one thread.
    let n = OPS.fetch_add(1, Relaxed) + 1;
    if n % 10_000 == 0 {
        eprintln!("map_model ops: {n}");
    }
}

/// The maps: handles, each on one of the models (handles made by `clone` share a model).
struct World {
    handles: Vec<(Map, usize)>,
    models: Vec<Model>,
    snapshots: Vec<(Snapshot<u32, u64, Masked>, Model)>,
}

fn contents(map: &Map) -> Model {
    let mut seen = Model::new();
    for r in map.iter() {
        assert!(
            seen.insert(*r.key(), *r.value()).is_none(),
            "iter yielded {} twice",
            r.key()
        );
    }
    seen
}

fn snapshot_contents(snap: &Snapshot<u32, u64, Masked>) -> Model {
    let mut seen = Model::new();
    for (k, v) in snap.iter() {
        assert!(
            seen.insert(*k, *v).is_none(),
            "snapshot iter yielded {k} twice"
        );
    }
    seen
}

impl World {
    fn check_all(&self) {
        for (map, m) in &self.handles {
            assert_eq!(&contents(map), &self.models[*m], "a map against its model");
            assert_eq!(map.len(), self.models[*m].len(), "len at rest");
        }
        for (snap, model) in &self.snapshots {
            assert_eq!(
                &snapshot_contents(snap),
                model,
                "a snapshot against its model"
            );
            assert_eq!(snap.len(), model.len(), "snapshot len");
        }
    }

    fn step(&mut self, what: u8, key: u8, arg: u8) {
        count_op();
        let h = (arg as usize) % self.handles.len();
        let (map, m) = (&self.handles[h].0, self.handles[h].1);
        let model = &mut self.models[m];
        let k = u32::from(key);
        let v = u64::from(arg);
        let present = model.get(&k).copied();
        match what % 20 {
            0 | 1 => {
                let got = map.get(&k);
                if let Some(r) = &got {
                    assert_eq!(*r.key(), k, "get returned another key");
                }
                assert_eq!(got.map(|r| *r), present, "get({k})");
            }
            2 => assert_eq!(map.contains_key(&k), present.is_some(), "contains_key({k})"),
            3 | 4 => {
                assert_eq!(map.insert(k, v).map(|r| *r), present, "insert({k}, {v})");
                model.insert(k, v);
            }
            5 => {
                assert_eq!(
                    map.insert_if_absent(k, v),
                    present.is_none(),
                    "insert_if_absent({k})"
                );
                model.entry(k).or_insert(v);
            }
            6 => {
                assert_eq!(map.remove(&k).map(|r| *r), present, "remove({k})");
                model.remove(&k);
            }
            7 => {
                let removed = map.remove_if(&k, |x| x % 2 == v % 2).map(|r| *r);
                let expected = present.filter(|x| x % 2 == v % 2);
                assert_eq!(removed, expected, "remove_if({k})");
                if expected.is_some() {
                    model.remove(&k);
                }
            }
            8 | 9 => {
                // Expect the present value half the time, so that exchanges succeed.
                let current = if arg % 2 == 0 {
                    present.unwrap_or(v)
                } else {
                    v
                };
                let got = map.compare_exchange(k, &current, v + 1000);
                match (got, present) {
                    (Ok(r), Some(p)) if p == current => {
                        assert_eq!(*r, v + 1000);
                        model.insert(k, v + 1000);
                    }
                    (Err(found), p) if p != Some(current) => {
                        assert_eq!(found.map(|r| *r), p, "compare_exchange's Err({k})")
                    }
                    (got, p) => panic!(
                        "compare_exchange({k}, {current}): {:?} with {p:?} present",
                        got.map(|r| *r).map_err(|e| e.map(|r| *r))
                    ),
                }
            }
            10 | 11 => {
                // Add, or remove when the sum is a multiple of 4 (as lincheck's `updated`).
                let f = |x: Option<&u64>| lincheck::map::updated(x.copied(), v);
                let stored = map.update(k, f).map(|r| *r);
                let expected = lincheck::map::updated(present, v);
                assert_eq!(stored, expected, "update({k})");
                match expected {
                    Some(n) => model.insert(k, n),
                    None => model.remove(&k),
                };
            }
            12 => {
                assert_eq!(map.len(), model.len(), "len");
                assert_eq!(map.is_empty(), model.is_empty(), "is_empty");
            }
            13 => assert_eq!(&contents(map), &*model, "iter"),
            14 => {
                if arg < 16 {
                    map.clear();
                    // Every handle on this model sees it.
                    model.clear();
                } else {
                    // Grow: a run of inserts (deeper tries), compared at the end (counted as
                    // one operation).
                    for i in 0..u32::from(arg % 64) {
                        let kk = k.wrapping_add(i * 257);
                        map.insert(kk, u64::from(i));
                        model.insert(kk, u64::from(i));
                    }
                }
            }
            15 => {
                if self.snapshots.len() < 8 {
                    let snap = map.read_only_snapshot();
                    self.snapshots.push((snap, model.clone()));
                } else {
                    self.snapshots.remove(usize::from(arg) % 8);
                }
            }
            16 => {
                if self.handles.len() < 8 {
                    let copy = if arg % 2 == 0 {
                        map.snapshot()
                    } else {
                        // Through a read-only snapshot's `to_map`.
                        map.read_only_snapshot().to_map()
                    };
                    let copied = model.clone();
                    self.models.push(copied);
                    self.handles.push((copy, self.models.len() - 1));
                } else {
                    self.handles.remove(h);
                }
            }
            17 => {
                if self.handles.len() < 8 {
                    let clone = map.clone();
                    self.handles.push((clone, m));
                } else if self.handles.len() > 1 {
                    self.handles.swap_remove(h);
                }
            }
            18 => {
                if let Some((snap, model)) = self.snapshots.get(usize::from(arg) % 8) {
                    assert_eq!(snap.get(&k), model.get(&k), "snapshot get({k})");
                    assert_eq!(snap.contains_key(&k), model.contains_key(&k));
                    if arg % 4 == 0 {
                        assert_eq!(snap.len(), model.len(), "snapshot len");
                    }
                }
            }
            _ => {
                map.reclaim();
                let stats = map.stats();
                assert!(stats.reclaimed <= stats.retired, "{stats:?}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&h, ops)) = data.split_first() else {
        return;
    };
    let mut world = World {
        handles: vec![(Hamt::with_hasher(HASHERS[usize::from(h % 4)]), 0)],
        models: vec![Model::new()],
        snapshots: Vec::new(),
    };
    for op in ops.chunks_exact(3) {
        world.step(op[0], op[1], op[2]);
    }
    world.check_all();
});
