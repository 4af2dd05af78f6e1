//! Concurrency stress: 2 to 8 threads using every operation at once, on disjoint and on
//! shared keys, then checking that the final state is explained by what each thread did.
//!
//! - *Disjoint partitions*: each thread owns the keys `k % threads == t` and checks every
//!   result against its own model, so any lost insert, phantom key or wrong return value
//!   shows at once; at the end the map equals the union of the models.
//! - *Shared keys*: values are tagged `(key, thread, seq)`. Each thread logs, per key, the
//!   absent-to-present and present-to-absent transitions its operations reported and its
//!   last successful write. At the end, for every key, the transitions of all threads sum to
//!   its final presence (0 or 1), a present key holds the *last* value its writer thread
//!   wrote to it, and every value anyone observed was written for that key by someone.
//! - *Counters*: concurrent `update` increments on shared keys sum exactly.
//! - *Readers beside writers*: `get` and `iter` only ever show values written for the key
//!   they are found under; entries no one writes during the run are yielded exactly once by
//!   each `iter`; a counter read twice never goes backwards.
//! - *Refs held across removal*: entries read through `Ref`s stay intact while other threads
//!   remove and replace them and force reclamation, and are freed once released.
//! - *Concurrent clear*: no resurrection, and `len` agrees with `iter` afterwards.
//!
//! Threads are joined explicitly (ThreadSanitizer cannot see `thread::scope`'s implicit
//! wait). Every run is seeded; a failure names the seed.
#![cfg(not(loom))]

mod common;

use common::{join_all, Masked, OnDrop, Rng};
use concurrent_hamt::Hamt;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Barrier;
use std::thread;

/// Checks that the map's `len` agrees with `iter` and no key is yielded twice, and returns
/// the contents. Only meaningful with no write in flight.
fn quiescent_contents<V: Copy, S: BuildHasher>(map: &Hamt<u64, V, S>) -> HashMap<u64, V> {
    let mut out = HashMap::new();
    for e in map.iter() {
        assert!(
            out.insert(*e.key(), *e).is_none(),
            "iter yielded {} twice",
            e.key()
        );
    }
    assert_eq!(map.len(), out.len(), "len disagrees with iter at rest");
    out
}

fn reclaim_all<K, V, S>(map: &Hamt<K, V, S>) {
    map.reclaim();
    let stats = map.stats();
    assert_eq!(stats.pending, 0, "garbage left at rest: {stats:?}");
}

// ---------------------------------------------------------------------------------------
// Disjoint partitions

/// The value of the `seq`-th write to `key`: the key in the high half, so a reader can check
/// that a value belongs to the key it was found under.
fn disjoint_value(key: u64, seq: u64) -> u64 {
    key << 32 | (seq & 0xFFFF_FFFF)
}

fn owns(value: u64, key: u64) -> bool {
    value >> 32 == key
}

fn disjoint_partitions<S: BuildHasher + Send + Sync>(
    hasher: S,
    name: &str,
    threads: u64,
    keys: u64,
    ops: u64,
) {
    let map = Hamt::with_hasher(hasher);
    let models: Vec<HashMap<u64, u64>> = thread::scope(|s| {
        let handles = (0..threads)
            .map(|t| {
                let map = &map;
                s.spawn(move || disjoint_worker(map, name, t, threads, keys, ops))
            })
            .collect();
        join_all(handles)
    });
    let mut expected = HashMap::new();
    for model in models {
        expected.extend(model);
    }
    let found = quiescent_contents(&map);
    let lost: Vec<_> = expected.keys().filter(|k| !found.contains_key(k)).collect();
    let phantom: Vec<_> = found.keys().filter(|k| !expected.contains_key(k)).collect();
    assert!(
        lost.is_empty(),
        "{name}, {threads} threads: lost keys {lost:?}"
    );
    assert!(
        phantom.is_empty(),
        "{name}, {threads} threads: phantom keys {phantom:?}"
    );
    assert!(found == expected, "{name}, {threads} threads: wrong values");
    for (k, v) in &expected {
        assert_eq!(map.get(k).map(|e| *e), Some(*v));
    }
    reclaim_all(&map);
}

/// Thread `t`'s operations on its own keys, each result checked against its model; plus
/// reads of other threads' keys, checked for plausibility.
fn disjoint_worker<S: BuildHasher>(
    map: &Hamt<u64, u64, S>,
    name: &str,
    t: u64,
    threads: u64,
    keys: u64,
    ops: u64,
) -> HashMap<u64, u64> {
    let seed = 1_000 * threads + t;
    let mut rng = Rng::new(seed);
    let mut model = HashMap::new();
    let own = keys / threads;
    for seq in 0..ops {
        let ctx = || format!("{name}, {threads} threads, thread {t} (seed {seed}), op {seq}");
        let k = rng.below(own) * threads + t;
        let v = disjoint_value(k, seq);
        let present = model.get(&k).copied();
        match rng.below(100) {
            0..=19 => {
                let prev = map.insert(k, v).map(|e| *e);
                assert_eq!(prev, present, "{}: insert {k}", ctx());
                model.insert(k, v);
            }
            20..=29 => {
                assert_eq!(map.insert_if_absent(k, v), present.is_none(), "{}", ctx());
                model.entry(k).or_insert(v);
            }
            30..=44 => {
                let removed = map.remove(&k).map(|e| (*e.key(), *e));
                assert_eq!(removed, present.map(|p| (k, p)), "{}: remove {k}", ctx());
                model.remove(&k);
            }
            45..=51 => {
                let removed = map.remove_if(&k, |x| x % 2 == 0).map(|e| *e);
                let expected = present.filter(|p| p % 2 == 0);
                assert_eq!(removed, expected, "{}: remove_if {k}", ctx());
                if expected.is_some() {
                    model.remove(&k);
                }
            }
            52..=61 => {
                let current = present.unwrap_or(0);
                match (map.compare_exchange(k, &current, v), present) {
                    (Ok(e), Some(_)) => {
                        assert_eq!(*e, v, "{}", ctx());
                        model.insert(k, v);
                    }
                    (Err(None), None) => {}
                    (r, p) => panic!(
                        "{}: compare_exchange on {k} with {p:?} present gave {:?}",
                        ctx(),
                        r.map(|e| *e).map_err(|e| e.map(|e| *e))
                    ),
                }
            }
            62..=71 => {
                let remove = rng.chance(30);
                let new = map
                    .update(k, |old| {
                        assert_eq!(old.copied(), present, "update saw another value");
                        (!remove).then_some(v)
                    })
                    .map(|e| *e);
                assert_eq!(new, (!remove).then_some(v), "{}: update {k}", ctx());
                if remove {
                    model.remove(&k);
                } else {
                    model.insert(k, v);
                }
            }
            72..=86 => {
                assert_eq!(map.get(&k).map(|e| *e), present, "{}: get {k}", ctx());
                assert_eq!(map.contains_key(&k), present.is_some(), "{}", ctx());
            }
            _ => {
                // Someone else's key: whatever is there belongs to that key.
                let other = rng.below(keys);
                if let Some(e) = map.get(&other) {
                    assert_eq!(*e.key(), other, "{}", ctx());
                    assert!(owns(*e, other), "{}: {other} holds {:#x}", ctx(), *e);
                }
            }
        }
    }
    model
}

#[test]
fn disjoint_partitions_sip_hash() {
    for threads in [2, 4, 8] {
        disjoint_partitions(
            RandomState::new(),
            "SipHash",
            threads,
            4_096,
            400_000 / threads,
        );
    }
}

#[test]
fn disjoint_partitions_colliding_hashes() {
    // Threads' keys share nodes down six levels, share collision lists, or all share one.
    for threads in [2, 4, 8] {
        let ops = 160_000 / threads;
        disjoint_partitions(
            Masked::TOP_LEVELS_COLLIDE,
            "low 30 bits constant",
            threads,
            4_096,
            ops,
        );
        disjoint_partitions(Masked::LOW_BITS, "low 8 bits", threads, 2_048, ops);
        disjoint_partitions(Masked::CONSTANT, "constant", threads, 64, ops / 4);
    }
}

// ---------------------------------------------------------------------------------------
// Shared keys

/// A value tagged with the key it was written for, the writing thread and its sequence
/// number.
fn tag(key: u64, thread: u64, seq: u64) -> u64 {
    key << 40 | thread << 32 | seq
}

fn untag(value: u64) -> (u64, u64, u64) {
    (value >> 40, (value >> 32) & 0xFF, value & 0xFFFF_FFFF)
}

/// What one thread did to the shared keys.
#[derive(Default)]
struct Log {
    /// Per key: absent-to-present transitions minus present-to-absent ones, as reported by
    /// the operations' results.
    delta: HashMap<u64, i64>,
    /// Per key: the last value this thread successfully wrote.
    last_write: HashMap<u64, u64>,
    /// Every value this thread successfully wrote.
    written: HashSet<u64>,
    /// Every (key, value) this thread saw in the map.
    observed: Vec<(u64, u64)>,
}

impl Log {
    fn appeared(&mut self, k: u64) {
        *self.delta.entry(k).or_default() += 1;
    }
    fn vanished(&mut self, k: u64) {
        *self.delta.entry(k).or_default() -= 1;
    }
    fn wrote(&mut self, k: u64, v: u64) {
        self.last_write.insert(k, v);
        self.written.insert(v);
    }
    fn saw(&mut self, k: u64, v: u64) {
        self.observed.push((k, v));
    }
}

fn shared_worker<S: BuildHasher>(
    map: &Hamt<u64, u64, S>,
    t: u64,
    seed: u64,
    keys: u64,
    ops: u64,
) -> Log {
    let mut rng = Rng::new(seed);
    let mut log = Log::default();
    // The last value this thread saw per key: a good guess for compare_exchange.
    let mut guess: HashMap<u64, u64> = HashMap::new();
    for seq in 0..ops {
        let k = rng.below(keys);
        let v = tag(k, t, seq);
        match rng.below(100) {
            0..=17 => match map.insert(k, v) {
                Some(prev) => log.saw(k, *prev),
                None => log.appeared(k),
            },
            18..=27 => {
                if map.insert_if_absent(k, v) {
                    log.appeared(k);
                } else {
                    continue; // no write
                }
            }
            28..=42 => {
                if let Some(e) = map.remove(&k) {
                    assert_eq!(*e.key(), k);
                    log.saw(k, *e);
                    log.vanished(k);
                }
                continue;
            }
            43..=49 => {
                let mut seen = Vec::new();
                let removed = map.remove_if(&k, |x| {
                    seen.push(*x);
                    x % 3 != 0
                });
                for x in seen {
                    log.saw(k, x);
                }
                if let Some(e) = removed {
                    assert!(*e % 3 != 0, "remove_if removed a value its predicate kept");
                    log.saw(k, *e);
                    log.vanished(k);
                }
                continue;
            }
            50..=61 => {
                let current = guess.get(&k).copied().unwrap_or(0);
                match map.compare_exchange(k, &current, v) {
                    Ok(e) => assert_eq!(*e, v),
                    Err(Some(e)) => {
                        log.saw(k, *e);
                        guess.insert(k, *e);
                        continue;
                    }
                    Err(None) => continue,
                }
            }
            62..=79 => {
                let remove = rng.chance(35);
                let mut last_input = None;
                let mut calls = 0;
                let new = map.update(k, |old| {
                    calls += 1;
                    last_input = Some(old.copied());
                    (!remove).then_some(v)
                });
                assert!(calls >= 1);
                let old = last_input.unwrap();
                if let Some(o) = old {
                    log.saw(k, o);
                }
                match (new.map(|e| *e), remove, old) {
                    (Some(n), false, old) => {
                        assert_eq!(n, v, "update returned another value");
                        if old.is_none() {
                            log.appeared(k);
                        }
                    }
                    (None, true, Some(_)) => {
                        log.vanished(k);
                        continue;
                    }
                    (None, true, None) => continue,
                    (new, remove, old) => {
                        panic!("update: closure gave {remove}/{old:?}, result {new:?}")
                    }
                }
            }
            _ => {
                if let Some(e) = map.get(&k) {
                    log.saw(k, *e);
                    guess.insert(k, *e);
                }
                continue;
            }
        }
        log.wrote(k, v);
    }
    log
}

fn shared_keys<S: BuildHasher + Send + Sync>(
    hasher: S,
    name: &str,
    threads: u64,
    keys: u64,
    ops: u64,
) {
    let map = Hamt::with_hasher(hasher);
    let logs: Vec<Log> = thread::scope(|s| {
        let handles = (0..threads)
            .map(|t| {
                let map = &map;
                s.spawn(move || shared_worker(map, t, 77 * threads + t, keys, ops))
            })
            .collect();
        join_all(handles)
    });
    let ctx = format!("{name}, {threads} threads (seeds 77 * {threads} + thread)");
    let found = quiescent_contents(&map);
    let written: HashSet<u64> = logs
        .iter()
        .flat_map(|l| l.written.iter().copied())
        .collect();
    for k in 0..keys {
        let delta: i64 = logs
            .iter()
            .map(|l| l.delta.get(&k).copied().unwrap_or(0))
            .sum();
        let present = found.get(&k).copied();
        assert_eq!(
            delta,
            i64::from(present.is_some()),
            "{ctx}: key {k}: the threads' transitions sum to {delta}, but the key is {present:?}"
        );
        if let Some(v) = present {
            let (key, t, seq) = untag(v);
            assert_eq!(key, k, "{ctx}: key {k} holds a value written for key {key}");
            assert!(
                written.contains(&v),
                "{ctx}: key {k} holds {v:#x}, never written"
            );
            let last = logs[t as usize].last_write.get(&k).copied();
            assert_eq!(
                last,
                Some(v),
                "{ctx}: key {k} holds thread {t}'s write #{seq}, but that thread wrote to it \
                 again later"
            );
        }
    }
    for (t, log) in logs.iter().enumerate() {
        for &(k, v) in &log.observed {
            assert_eq!(
                untag(v).0,
                k,
                "{ctx}: thread {t} saw under key {k} a value for another key"
            );
            assert!(
                written.contains(&v),
                "{ctx}: thread {t} saw {v:#x} under {k}, never written"
            );
        }
    }
    reclaim_all(&map);
}

#[test]
fn shared_keys_final_state_is_explained_by_logs() {
    for threads in [2, 4, 8] {
        let ops = 240_000 / threads;
        shared_keys(RandomState::new(), "SipHash", threads, 64, ops);
        shared_keys(RandomState::new(), "SipHash", threads, 1_024, ops);
    }
}

#[test]
fn shared_keys_with_colliding_hashes() {
    for threads in [2, 4, 8] {
        let ops = 80_000 / threads;
        shared_keys(Masked::CONSTANT, "constant", threads, 32, ops);
        shared_keys(Masked::LOW_BITS, "low 8 bits", threads, 512, ops);
        shared_keys(
            Masked::TOP_LEVELS_COLLIDE,
            "low 30 bits constant",
            threads,
            256,
            ops,
        );
        shared_keys(
            Masked::LAST_LEVEL_ONLY,
            "top 4 bits only",
            threads,
            128,
            ops,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Counters

fn counters<S: BuildHasher + Send + Sync>(hasher: S, name: &str, threads: u64, per_thread: u64) {
    const KEYS: u64 = 16;
    let map = Hamt::with_hasher(hasher);
    let done = AtomicBool::new(false);
    let counts: Vec<Vec<u64>> = thread::scope(|s| {
        // A reader: a counter read twice never goes backwards.
        let reader = s.spawn(|| {
            let mut last = [0u64; KEYS as usize];
            let mut rounds = 0u64;
            while !done.load(Acquire) || rounds < 10 {
                for k in 0..KEYS {
                    let now = map.get(&k).map_or(0, |e| *e);
                    assert!(now >= last[k as usize], "{name}: counter {k} went back");
                    last[k as usize] = now;
                }
                let total: u64 = map.iter().map(|e| *e).sum();
                assert!(
                    total <= threads * per_thread,
                    "{name}: more increments than made"
                );
                rounds += 1;
            }
        });
        let handles = (0..threads)
            .map(|t| {
                let map = &map;
                s.spawn(move || {
                    let mut rng = Rng::new(500 + t);
                    let mut mine = vec![0u64; KEYS as usize];
                    let mut last_seen = vec![0u64; KEYS as usize];
                    for _ in 0..per_thread {
                        let k = rng.below(KEYS);
                        let new = map
                            .update(k, |old| Some(old.map_or(1, |o| o + 1)))
                            .expect("an increment leaves the key present");
                        assert!(
                            *new > last_seen[k as usize],
                            "{name}: counter {k} went back"
                        );
                        last_seen[k as usize] = *new;
                        mine[k as usize] += 1;
                    }
                    mine
                })
            })
            .collect();
        let release_reader = OnDrop(|| done.store(true, Release));
        let counts = join_all(handles);
        drop(release_reader);
        reader.join().unwrap();
        counts
    });
    let mut total = 0;
    for k in 0..KEYS {
        let expected: u64 = counts.iter().map(|c| c[k as usize]).sum();
        let got = map.get(&k).map_or(0, |e| *e);
        assert_eq!(got, expected, "{name}, {threads} threads: counter {k}");
        total += got;
    }
    assert_eq!(total, threads * per_thread, "{name}: increments lost");
    reclaim_all(&map);
}

#[test]
fn update_increments_sum_exactly() {
    counters(RandomState::new(), "SipHash", 4, 10_000);
    counters(RandomState::new(), "SipHash", 8, 10_000);
    counters(Masked::CONSTANT, "constant", 4, 10_000);
    counters(Masked::LAST_LEVEL_ONLY, "top 4 bits only", 2, 10_000);
}

// ---------------------------------------------------------------------------------------
// Readers beside writers

/// Writers churn keys `STABLE..STABLE + churn` with values that encode the key (and are
/// unique: writer and sequence number); the keys `0..STABLE` are written before and never
/// touched during the run. Readers check every value they see, and that each `iter` yields
/// every stable entry exactly once and no entry twice (as `Iter` documents). A churned key
/// may be yielded twice with two different values: the entry was replaced while the
/// iteration ran, and both entries were present at some point of it.
fn readers_beside_writers<S: BuildHasher + Send + Sync>(hasher: S, name: &str, churn: u64) {
    const STABLE: u64 = 300;
    const WRITERS: u64 = 2;
    const READERS: u64 = 2;
    const OPS: u64 = 60_000;
    let map = Hamt::with_hasher(hasher);
    for k in 0..STABLE {
        map.insert(k, disjoint_value(k, 0));
    }
    let writers_done = AtomicUsize::new(0);
    thread::scope(|s| {
        let mut handles = Vec::new();
        for w in 0..WRITERS {
            let (map, writers_done) = (&map, &writers_done);
            handles.push(s.spawn(move || {
                let _done = OnDrop(|| {
                    writers_done.fetch_add(1, Release);
                });
                let mut rng = Rng::new(900 + w);
                for seq in 1..=OPS {
                    let k = STABLE + rng.below(churn);
                    let v = disjoint_value(k, seq * WRITERS + w);
                    match rng.below(5) {
                        0 => drop(map.insert(k, v)),
                        1 => drop(map.remove(&k)),
                        2 => drop(map.update(k, |old| old.map_or(Some(v), |_| None))),
                        3 => {
                            let guess = disjoint_value(k, (seq - 1) * WRITERS + w);
                            drop(map.compare_exchange(k, &guess, v))
                        }
                        _ => drop(map.insert_if_absent(k, v)),
                    }
                }
            }));
        }
        for r in 0..READERS {
            let (map, writers_done) = (&map, &writers_done);
            handles.push(s.spawn(move || {
                let mut rng = Rng::new(950 + r);
                let mut iterations = 0;
                while writers_done.load(Acquire) < WRITERS as usize || iterations < 3 {
                    for _ in 0..200 {
                        let k = rng.below(STABLE + churn);
                        if let Some(e) = map.get(&k) {
                            assert_eq!(*e.key(), k, "{name}: get returned another key");
                            assert!(owns(*e, k), "{name}: key {k} shows value {:#x}", *e);
                        } else {
                            assert!(k >= STABLE, "{name}: stable key {k} not found by get");
                        }
                    }
                    let mut seen = HashSet::new();
                    let mut stable_seen = 0;
                    for e in map.iter() {
                        let (k, v) = (*e.key(), *e);
                        assert!(owns(v, k), "{name}: iter: key {k} shows value {v:#x}");
                        assert!(
                            seen.insert((k, v)),
                            "{name}: one iter yielded the entry ({k}, {v:#x}) twice"
                        );
                        stable_seen += usize::from(k < STABLE);
                    }
                    assert_eq!(
                        stable_seen, STABLE as usize,
                        "{name}: an iter during writes did not yield each untouched entry once"
                    );
                    iterations += 1;
                }
            }));
        }
        join_all(handles);
    });
    for k in 0..STABLE {
        assert_eq!(map.get(&k).map(|e| *e), Some(disjoint_value(k, 0)));
    }
    quiescent_contents(&map);
    reclaim_all(&map);
}

#[test]
fn readers_see_only_written_values() {
    readers_beside_writers(RandomState::new(), "SipHash", 2_000);
    readers_beside_writers(Masked::TOP_LEVELS_COLLIDE, "low 30 bits constant", 2_000);
    readers_beside_writers(Masked::LOW_BITS, "low 8 bits", 1_000);
    readers_beside_writers(Masked::CONSTANT, "constant", 50);
}

// ---------------------------------------------------------------------------------------
// Refs held across concurrent removal

static PAYLOAD_DROPS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// A heap-owning value that knows its key and counts its drops per generation.
struct Payload {
    key: u64,
    generation: usize,
    text: String,
}

impl Payload {
    fn new(key: u64, generation: usize) -> Self {
        Payload {
            key,
            generation,
            text: format!("generation {generation} of key {key}"),
        }
    }

    /// Whether this is the intact value written as `generation` of `key`.
    fn is(&self, key: u64, generation: usize) -> bool {
        (self.key, self.generation) == (key, generation)
            && self.text == format!("generation {generation} of key {key}")
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        PAYLOAD_DROPS[self.generation].fetch_add(1, Relaxed);
    }
}

fn refs_survive_removal<S: BuildHasher + Send + Sync>(hasher: S, name: &str) {
    const KEYS: u64 = 1_000;
    const HOLDERS: u64 = 2;
    const REMOVERS: u64 = 2;
    for d in &PAYLOAD_DROPS {
        d.store(0, Relaxed);
    }
    let map = Hamt::with_hasher(hasher);
    for k in 0..KEYS {
        map.insert(k, Payload::new(k, 0));
    }
    // Phases: 1. holders have their refs; 2. removers are done; 3. holders released theirs.
    // Nobody panics between barriers (that would leave the others waiting): failures are
    // collected and asserted after the join.
    let barrier = Barrier::new((HOLDERS + REMOVERS) as usize);
    let failures: Vec<String> = thread::scope(|s| {
        let mut handles = Vec::new();
        for h in 0..HOLDERS {
            let (map, barrier) = (&map, &barrier);
            handles.push(s.spawn(move || {
                let mut failures = Vec::new();
                let refs: Vec<_> = (h..KEYS)
                    .step_by(HOLDERS as usize)
                    .filter_map(|k| match map.get(&k) {
                        Some(r) => Some((k, r)),
                        None => {
                            failures.push(format!("key {k} absent before removal"));
                            None
                        }
                    })
                    .collect();
                barrier.wait();
                barrier.wait();
                let dropped = PAYLOAD_DROPS[0].load(Relaxed);
                if dropped != 0 {
                    failures.push(format!("{dropped} removed values freed while held"));
                }
                for (k, r) in &refs {
                    if *r.key() != *k || !r.is(*k, 0) {
                        failures.push(format!("the held ref of key {k} changed"));
                    }
                    if !map.get(k).is_some_and(|e| e.is(*k, 1)) {
                        failures.push(format!("key {k} does not hold its replacement"));
                    }
                }
                drop(refs);
                barrier.wait();
                failures
            }));
        }
        for r in 0..REMOVERS {
            let (map, barrier) = (&map, &barrier);
            handles.push(s.spawn(move || {
                let mut failures = Vec::new();
                barrier.wait();
                for k in (r..KEYS).step_by(REMOVERS as usize) {
                    match map.remove(&k) {
                        Some(removed) if removed.is(k, 0) => {}
                        Some(_) => failures.push(format!("remove({k}) returned another value")),
                        None => failures.push(format!("remove({k}) found nothing")),
                    }
                    if map.insert(k, Payload::new(k, 1)).is_some() {
                        failures.push(format!("key {k} present after its removal"));
                    }
                    if k % 64 == 0 {
                        map.reclaim();
                    }
                }
                map.reclaim();
                barrier.wait();
                barrier.wait();
                failures
            }));
        }
        join_all(handles).concat()
    });
    assert!(failures.is_empty(), "{name}: {failures:#?}");
    map.reclaim();
    assert_eq!(
        PAYLOAD_DROPS[0].load(Relaxed),
        KEYS as usize,
        "{name}: removed values not freed once released"
    );
    assert_eq!(PAYLOAD_DROPS[1].load(Relaxed), 0);
    assert_eq!(map.stats().pending, 0);
    drop(map);
    assert_eq!(
        PAYLOAD_DROPS[1].load(Relaxed),
        KEYS as usize,
        "{name}: drop frees all"
    );
}

#[test]
fn refs_held_across_concurrent_removal() {
    // Serialised by running both in one test: they share the drop counters.
    refs_survive_removal(RandomState::new(), "SipHash");
    refs_survive_removal(Masked::CONSTANT, "constant");
    refs_survive_removal(Masked::LOW_BITS, "low 8 bits");
}

/// The entries returned by `insert` (the replaced one), `remove`, `update` and
/// `compare_exchange` stay readable while other threads replace them and reclaim.
#[test]
fn returned_refs_survive_replacement() {
    const KEYS: u64 = 64;
    const ROUNDS: u64 = 10_000;
    let map: Hamt<u64, String> = Hamt::new();
    let text = |k: u64, round: u64| format!("{k}:{round}");
    let done = AtomicBool::new(false);
    thread::scope(|s| {
        let churner = s.spawn(|| {
            let mut rng = Rng::new(4242);
            while !done.load(Acquire) {
                let k = rng.below(KEYS);
                drop(map.insert(k, text(k, u64::MAX)));
                if rng.chance(10) {
                    map.reclaim();
                }
            }
        });
        let checker = s.spawn(|| {
            let _done = OnDrop(|| done.store(true, Release));
            let mut rng = Rng::new(4343);
            for round in 0..ROUNDS {
                let k = rng.below(KEYS);
                let mine = text(k, round);
                // Whatever these return, they must stay intact while other threads churn.
                let prev = map.insert(k, mine.clone());
                let now = map.update(k, |_| Some(text(k, round + ROUNDS)));
                let removed = map.remove(&k);
                let cas = map.compare_exchange(k, &String::new(), String::new());
                map.reclaim();
                for r in prev.iter().chain(&now).chain(&removed) {
                    assert_eq!(*r.key(), k);
                    let (key, _) = r.split_once(':').expect("a well-formed value");
                    assert_eq!(key, k.to_string(), "a ref shows another key's value");
                }
                if let Ok(r) | Err(Some(r)) = &cas {
                    assert!(r.is_empty() || r.starts_with(&format!("{k}:")));
                }
            }
        });
        join_all(vec![checker, churner]);
    });
    map.reclaim();
    assert_eq!(map.stats().pending, 0);
}

// ---------------------------------------------------------------------------------------
// Concurrent clear

/// Writers own disjoint keys and log their last action per key; a third thread clears the
/// map repeatedly. A key whose writer last removed it must be absent (clear must not bring
/// it back), a present key must hold its writer's last value, and `len` must agree with
/// `iter` afterwards.
#[test]
fn clear_during_writes() {
    const WRITERS: u64 = 3;
    const KEYS: u64 = 3_000;
    const OPS: u64 = 60_000;
    let map = Hamt::new();
    let writers_done = AtomicUsize::new(0);
    let logs: Vec<HashMap<u64, Option<u64>>> = thread::scope(|s| {
        let clearer = s.spawn(|| {
            let mut clears = 0;
            while writers_done.load(Acquire) < WRITERS as usize || clears < 3 {
                map.clear();
                clears += 1;
            }
        });
        let writers = (0..WRITERS)
            .map(|w| {
                let (map, writers_done) = (&map, &writers_done);
                s.spawn(move || {
                    let _done = OnDrop(|| {
                        writers_done.fetch_add(1, Release);
                    });
                    let mut rng = Rng::new(7_000 + w);
                    let mut last = HashMap::new();
                    for seq in 0..OPS {
                        let k = rng.below(KEYS / WRITERS) * WRITERS + w;
                        if rng.chance(60) {
                            let v = disjoint_value(k, seq);
                            drop(map.insert(k, v));
                            last.insert(k, Some(v));
                        } else {
                            drop(map.remove(&k));
                            last.insert(k, None);
                        }
                    }
                    last
                })
            })
            .collect();
        let logs = join_all(writers);
        clearer.join().unwrap();
        logs
    });
    let found = quiescent_contents(&map);
    for log in &logs {
        for (k, last) in log {
            match (last, found.get(k)) {
                (None, Some(v)) => panic!("key {k} resurrected with {v:#x} after its removal"),
                (Some(v), Some(f)) => assert_eq!(v, f, "key {k} holds an older value"),
                _ => {}
            }
        }
    }
    for k in found.keys() {
        assert!(logs.iter().any(|l| l.contains_key(k)), "phantom key {k}");
    }
    map.clear();
    assert!(map.is_empty());
    assert_eq!(map.iter().count(), 0);
    reclaim_all(&map);
}

#[test]
fn maps_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Hamt<u64, String>>();
    check::<Hamt<String, Vec<u8>, Masked>>();
    // A clone moved to another thread shares the map.
    let map: Hamt<u64, u64> = Hamt::new();
    let clone = map.clone();
    thread::spawn(move || assert!(clone.insert(1, 2).is_none()))
        .join()
        .unwrap();
    assert_eq!(map.get(&1).map(|e| *e), Some(2));
}
