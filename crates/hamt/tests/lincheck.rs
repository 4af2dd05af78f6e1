//! Linearizability: histories of 2 to 4 threads running mixed operations on a small key set,
//! recorded with invocation and response timestamps and checked against the sequential map
//! model by the `lincheck` crate (a Wing & Gong / Lowe search with memoisation).
//!
//! - **Per key** (`histories_split_per_key`): long histories of `get`, `contains_key`,
//!   `insert`, `insert_if_absent`, `remove`, `remove_if`, `compare_exchange`, `update`, reads
//!   in read-only and in writable snapshots, snapshot contents and `iter` (each projected on
//!   every key), and rare `clear`s, checked split per key (P-compositionality). Every history
//!   runs with one of the four hashers of the trie's tests in turn: SipHash, a constant hash
//!   (one collision list), low bits only (chains through every level), and collisions through
//!   the top six levels.
//! - **Whole map** (`short_histories_with_len_and_snapshots`): short histories, checked
//!   unsplit against a model of the whole map, adding what a per-key split cannot check:
//!   snapshot contents as one atomic observation, a snapshot's exact `len`, and `Hamt::len`
//!   (exact at rest, off by at most the writes in flight).
//! - **The checker can fail** (`checker_rejects_a_non_atomic_compare_exchange`): a test-only
//!   `compare_exchange` made of a `get` and then an `insert` must be caught.
//!
//! Sizes come from the environment (`scripts/lincheck.sh` runs the long version):
//! `LINCHECK_HISTORIES` (per-key histories, default 8), `LINCHECK_OPS` (operations per
//! history, default 20,000), `LINCHECK_SHORT` (unsplit histories, default 300),
//! `LINCHECK_SEED` (default 1). A failure prints the history's seed, hasher and the pending
//! operations at the point where the search got stuck.
#![cfg(not(loom))]

mod common;

use common::{join_all, Masked, Rng};
use concurrent_hamt::Hamt;
use lincheck::map::{
    check_per_key, check_whole, set_len_tolerances, updated, Call, MapOperation, Ret,
};
use lincheck::{Clock, Recorder, Stats};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Which operations a history draws, with weights out of 1000.
#[derive(Clone, Copy)]
enum Mix {
    /// Single-key operations, snapshot reads, snapshot contents, rare clears.
    PerKey,
    /// As `PerKey`, plus `len` and a snapshot's `len`, and clears more often.
    Whole,
    /// Compare-exchanges racing inserts and updates: with `broken`, the non-atomic
    /// compare-exchange of the harness ([`broken_compare_exchange`]) instead of the map's.
    Racing { broken: bool },
}

/// One thread's run: `ops` operations drawn from `mix` on `keys`.
struct Run<'a, S> {
    map: &'a Hamt<u64, u64, S>,
    keys: &'a [u64],
    mix: Mix,
    ops: usize,
    client: usize,
    seed: u64,
}

/// The value a write stores: unique to the writing thread and step, so that a read names
/// the write it saw.
fn fresh(client: usize, step: usize) -> u64 {
    ((client as u64 + 1) << 32) | step as u64
}

impl<S: BuildHasher + Clone> Run<'_, S> {
    fn go(self, clock: &Clock, ready: &AtomicUsize, threads: usize) -> Vec<MapOperation> {
        let Run {
            map,
            keys,
            mix,
            ops,
            client,
            seed,
        } = self;
        let mut rng = Rng::new(seed);
        let mut rec = Recorder::new(clock, client);
        // The last value this thread saw for each key: what its compare-exchanges expect.
        let mut last: HashMap<u64, u64> = HashMap::new();
        // Start together: every thread running before the first operation, so that the
        // histories are concurrent from the start. Relaxed: a rendezvous only; the threads'
        // accesses to the map are ordered by the map.
        ready.fetch_add(1, Relaxed);
        while ready.load(Relaxed) < threads {
            std::hint::spin_loop();
        }
        for step in 0..ops {
            let k = keys[rng.below(keys.len() as u64) as usize];
            let v = fresh(client, step);
            let current = last.get(&k).copied().unwrap_or(v);
            let r = rng.below(1000);
            let call = match (mix, r) {
                (Mix::Racing { broken: true }, 0..=399) => {
                    let out = rec.record(
                        Call::CompareExchange {
                            key: k,
                            current,
                            new: v,
                        },
                        |_| broken_compare_exchange(map, k, current, v),
                    );
                    note(&mut last, k, out);
                    continue;
                }
                (Mix::Racing { .. }, 0..=399) => Call::CompareExchange {
                    key: k,
                    current,
                    new: v,
                },
                (Mix::Racing { .. }, 400..=699) => Call::Insert(k, v),
                (Mix::Racing { .. }, _) => Call::Update {
                    key: k,
                    delta: 1 + rng.below(3),
                },
                (_, 0..=169) => Call::Get(k),
                (_, 170..=219) => Call::ContainsKey(k),
                (_, 220..=359) => Call::Insert(k, v),
                (_, 360..=439) => Call::InsertIfAbsent(k, v),
                (_, 440..=539) => Call::Remove(k),
                (_, 540..=579) => Call::RemoveIf {
                    key: k,
                    expected: current,
                },
                (_, 580..=739) => Call::CompareExchange {
                    key: k,
                    current,
                    new: v,
                },
                (_, 740..=879) => Call::Update {
                    key: k,
                    delta: 1 + rng.below(3),
                },
                (_, 880..=919) => Call::SnapshotGet(k),
                (_, 920..=939) => Call::CopyGet(k),
                (_, 940..=959) => Call::Contents,
                (Mix::Whole, 960..=974) => Call::SnapshotLen,
                (Mix::Whole, 975..=992) => Call::Len { tolerance: 0 },
                (Mix::Whole, _) => Call::Clear,
                (_, 960..=961) => Call::Clear,
                (_, _) => Call::Get(k),
            };
            let out = rec.record(call, |call| apply(map, call, r % 2 == 0));
            note(&mut last, k, out);
        }
        rec.into_ops()
    }
}

/// Remembers the value a result shows for `k`.
fn note(last: &mut HashMap<u64, u64>, k: u64, out: &Ret) {
    let seen = match *out {
        Ret::Value(Some(v)) | Ret::Exchanged(Ok(v)) | Ret::Exchanged(Err(Some(v))) => v,
        _ => return,
    };
    last.insert(k, seen);
}

/// Runs `call` on the map. `alt` picks between two ways of doing the same thing where there
/// are two (`iter` or a snapshot's iterator for `Contents`).
fn apply<S: BuildHasher + Clone>(map: &Hamt<u64, u64, S>, call: &Call, alt: bool) -> Ret {
    match *call {
        Call::Get(k) => Ret::Value(map.get(&k).map(|r| *r)),
        Call::ContainsKey(k) => Ret::Bool(map.contains_key(&k)),
        Call::Insert(k, v) => Ret::Value(map.insert(k, v).map(|r| *r)),
        Call::InsertIfAbsent(k, v) => Ret::Bool(map.insert_if_absent(k, v)),
        Call::Remove(k) => Ret::Value(map.remove(&k).map(|r| *r)),
        Call::RemoveIf { key, expected } => {
            Ret::Value(map.remove_if(&key, |v| *v == expected).map(|r| *r))
        }
        Call::CompareExchange { key, current, new } => Ret::Exchanged(
            map.compare_exchange(key, &current, new)
                .map(|r| *r)
                .map_err(|e| e.map(|r| *r)),
        ),
        Call::Update { key, delta } => {
            Ret::Value(map.update(key, |v| updated(v.copied(), delta)).map(|r| *r))
        }
        Call::SnapshotGet(k) => Ret::Value(map.read_only_snapshot().get(&k).copied()),
        Call::CopyGet(k) => {
            let copy = map.snapshot();
            let seen = copy.get(&k).map(|r| *r);
            // A write to the copy must never show in the map (no history writes this value).
            copy.insert(k, u64::MAX);
            Ret::Value(seen)
        }
        Call::Clear => {
            map.clear();
            Ret::Unit
        }
        Call::Contents => {
            let mut entries: Vec<(u64, u64)> = if alt {
                map.iter().map(|r| (*r.key(), *r.value())).collect()
            } else {
                map.read_only_snapshot()
                    .iter()
                    .map(|(k, v)| (*k, *v))
                    .collect()
            };
            entries.sort_unstable();
            Ret::Entries(entries)
        }
        Call::SnapshotLen => Ret::Count(map.read_only_snapshot().len()),
        Call::Len { .. } => Ret::Count(map.len()),
    }
}

/// The deliberately broken operation: a `compare_exchange` made of a `get` and then an
/// `insert`, with a pause between them that widens the window in which another writer can
/// slip in. Test-only: it shows that the checker catches a non-atomic operation.
fn broken_compare_exchange<S: BuildHasher + Clone>(
    map: &Hamt<u64, u64, S>,
    key: u64,
    current: u64,
    new: u64,
) -> Ret {
    let present = map.get(&key).map(|r| *r);
    if present != Some(current) {
        return Ret::Exchanged(Err(present));
    }
    for _ in 0..64 {
        std::hint::spin_loop();
    }
    std::thread::yield_now();
    map.insert(key, new);
    Ret::Exchanged(Ok(new))
}

/// Runs one history: `threads` threads of `ops` operations each on a fresh map.
fn record<S: BuildHasher + Clone + Send + Sync>(
    hasher: S,
    threads: usize,
    ops: usize,
    keys: &[u64],
    mix: Mix,
    seed: u64,
) -> Vec<MapOperation> {
    let map: Hamt<u64, u64, S> = Hamt::with_hasher(hasher);
    let clock = Clock::new();
    let ready = AtomicUsize::new(0);
    let logs = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|client| {
                let run = Run {
                    map: &map,
                    keys,
                    mix,
                    ops,
                    client,
                    seed: seed.wrapping_mul(31).wrapping_add(client as u64),
                };
                let (clock, ready) = (&clock, &ready);
                s.spawn(move || run.go(clock, ready, threads))
            })
            .collect();
        join_all(handles)
    });
    let mut history: Vec<MapOperation> = logs.into_iter().flatten().collect();
    set_len_tolerances(&mut history, keys.len());
    history
}

/// The hashers each history runs with, in turn.
const HASHERS: [&str; 4] = ["SipHash", "constant", "low bits", "top levels collide"];

/// Records a history with hasher number `h` (see [`HASHERS`]).
fn record_with(
    h: usize,
    threads: usize,
    ops: usize,
    keys: &[u64],
    mix: Mix,
    seed: u64,
) -> Vec<MapOperation> {
    match h % 4 {
        0 => record(RandomState::new(), threads, ops, keys, mix, seed),
        1 => record(Masked::CONSTANT, threads, ops, keys, mix, seed),
        2 => record(Masked::LOW_BITS, threads, ops, keys, mix, seed),
        _ => record(Masked::TOP_LEVELS_COLLIDE, threads, ops, keys, mix, seed),
    }
}

/// Keys 0..n spread apart, so that with the masking hashers they still differ.
fn key_set(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * 7 + 1).collect()
}

#[test]
fn histories_split_per_key() {
    let histories = env("LINCHECK_HISTORIES", 8);
    let total_ops = env("LINCHECK_OPS", 20_000) as usize;
    let seed0 = env("LINCHECK_SEED", 1);
    let started = Instant::now();
    let mut stats = Stats::default();
    let (mut record_time, mut check_time) = (0.0, 0.0);
    let mut concurrent = 0.0;
    for h in 0..histories {
        let seed = seed0.wrapping_add(h);
        let threads = 2 + (h % 3) as usize;
        let keys = key_set([2, 4, 8, 16][(h / 3 % 4) as usize]);
        let hasher = (h % 4) as usize;
        let t = Instant::now();
        let history = record_with(
            hasher,
            threads,
            total_ops / threads,
            &keys,
            Mix::PerKey,
            seed,
        );
        record_time += t.elapsed().as_secs_f64();
        concurrent += overlapping_fraction(&history);
        let t = Instant::now();
        match check_per_key(&history, &keys) {
            Ok(s) => stats += s,
            Err(f) => panic!(
                "history {h} (seed {seed}, {threads} threads, {} keys, hasher {}): {f}",
                keys.len(),
                HASHERS[hasher]
            ),
        }
        check_time += t.elapsed().as_secs_f64();
    }
    eprintln!(
        "lincheck per key: {histories} histories x {total_ops} operations ({} parts, {} checked \
         operations, {} search steps; {:.0}% of operations overlap another thread's); \
         recording {record_time:.1} s, checking {check_time:.1} s, total {:.1} s",
        stats.partitions,
        stats.operations,
        stats.steps,
        100.0 * concurrent / histories.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    assert!(stats.operations as u64 >= histories * (total_ops as u64 / 2));
}

#[test]
fn short_histories_with_len_and_snapshots() {
    let histories = env("LINCHECK_SHORT", 300);
    let seed0 = env("LINCHECK_SEED", 1);
    let started = Instant::now();
    let mut stats = Stats::default();
    let mut concurrent = 0usize;
    for h in 0..histories {
        let seed = seed0.wrapping_add(1_000_000 + h);
        let threads = 2 + (h % 3) as usize;
        let keys = key_set(3);
        let hasher = (h % 4) as usize;
        let history = record_with(hasher, threads, 40 / threads * 2, &keys, Mix::Whole, seed);
        concurrent += overlapping_pairs(&history);
        match check_whole(&history) {
            Ok(s) => stats += s,
            Err(f) => panic!(
                "short history {h} (seed {seed}, {threads} threads, hasher {}): {f}",
                HASHERS[hasher]
            ),
        }
    }
    eprintln!(
        "lincheck whole map: {histories} histories ({} operations, {} search steps, {concurrent} \
         overlapping pairs of operations), {:.1} s",
        stats.operations,
        stats.steps,
        started.elapsed().as_secs_f64()
    );
    // The histories must actually be concurrent, or the check proves little.
    assert!(
        concurrent > histories as usize,
        "{concurrent} overlapping pairs"
    );
}

/// The fraction of operations whose interval overlaps an operation of another thread.
fn overlapping_fraction(history: &[MapOperation]) -> f64 {
    let mut by_call: Vec<&MapOperation> = history.iter().collect();
    by_call.sort_unstable_by_key(|o| o.call);
    // An operation overlaps another thread's if one of a different client is running when it
    // is invoked, or is invoked before it returns; sweep in invocation order.
    let mut overlapping = vec![false; by_call.len()];
    for i in 0..by_call.len() {
        let a = by_call[i];
        for j in i + 1..by_call.len() {
            let b = by_call[j];
            if b.call > a.ret {
                break;
            }
            if a.client != b.client {
                overlapping[i] = true;
                overlapping[j] = true;
            }
        }
    }
    overlapping.iter().filter(|&&o| o).count() as f64 / by_call.len().max(1) as f64
}

/// Pairs of operations of different threads whose intervals overlap.
fn overlapping_pairs(history: &[MapOperation]) -> usize {
    let mut n = 0;
    for (i, a) in history.iter().enumerate() {
        for b in &history[i + 1..] {
            if a.client != b.client && a.call < b.ret && b.call < a.ret {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn checker_rejects_a_non_atomic_compare_exchange() {
    // Histories on two keys, where three threads race the broken compare-exchange with
    // inserts and updates; the checker must reject one. The race needs another write to land
    // between the get and the insert, which the pause in the broken operation makes likely: a
    // few histories suffice (the cap is generous, for a loaded machine).
    let keys = key_set(2);
    let mut caught = None;
    for h in 0..200u64 {
        let history = record_with(
            h as usize,
            3,
            2_000,
            &keys,
            Mix::Racing { broken: true },
            7_000 + h,
        );
        if let Err(f) = check_per_key(&history, &keys) {
            caught = Some((h + 1, f));
            break;
        }
    }
    let (tried, failure) =
        caught.expect("the checker accepted 200 histories with a non-atomic compare_exchange");
    assert!(!failure.budget_exhausted, "{failure}");
    eprintln!("lincheck: the non-atomic compare_exchange was caught in history {tried}: {failure}");
    // The same workload with the map's own compare_exchange passes.
    for h in 0..tried.min(20) {
        let history = record_with(
            h as usize,
            3,
            2_000,
            &keys,
            Mix::Racing { broken: false },
            7_000 + h,
        );
        if let Err(f) = check_per_key(&history, &keys) {
            panic!("history {h} with the real compare_exchange: {f}");
        }
    }
}
