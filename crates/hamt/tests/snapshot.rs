//! Snapshots: `Hamt::snapshot` (an independent writable map), `Hamt::read_only_snapshot` (a
//! frozen view), `Snapshot::to_map`, and `Hamt::iter` and `Hamt::clear`, which now go
//! through a snapshot of the root.
//!
//! The concurrency tests port the ideas of Scala's `TrieMap` tests, at the sizes they use,
//! with at most four writing threads (this machine has two cores):
//!
//! - a snapshot of 10,000 keys read back 100 times while four threads write: every read gives
//!   the original contents;
//! - 7,000 snapshots (read-only and writable) taken while writers run, each checked for
//!   internal consistency. The writers keep invariants that hold at every instant, so that a
//!   state that never existed shows: an *interval writer* inserts its keys in increasing
//!   order, then removes them in increasing order (its keys in a snapshot form an interval
//!   `[0, hi)` or `[lo, end)`, all written in the same round); a *chain writer* updates a
//!   chain of keys in order, round after round (along the chain, rounds never increase and
//!   differ by at most one), and keeps pairs where `a` present implies `b` present;
//! - `Hamt::iter` under writes on 25,000 keys: untouched keys exactly once, no key twice,
//!   the writers' invariants hold, and writes made by the iterating thread after `iter()`
//!   returned never show;
//! - parity on 65,000 keys: every key present, each of T threads toggles every key once;
//!   with T even every key ends present, with T odd none; snapshots taken meanwhile are
//!   subsets of the key range whose `len()` equals the number of entries they yield;
//! - 1,500 keys with one hash (a collision list) through snapshots, sequentially against
//!   models and beside concurrent writers;
//! - functional: a read-only snapshot never changes whatever the map does; writable
//!   snapshots and their originals never see each other's writes (snapshots of snapshots,
//!   `to_map`, chains); random operation sequences on families of maps and snapshots
//!   against `BTreeMap` models, with five hashers;
//! - `Snapshot::len` is exact (it equals the entries yielded and the keys found by
//!   `contains_key`), and `clear` is atomic: a concurrent snapshot sees all or nothing of
//!   what a `clear` removed;
//! - keys whose `Hash` or `Drop` panics, and values whose `Drop` panics, while snapshots
//!   share them: the panics propagate, nothing is dropped while a snapshot can still reach
//!   it, and everything is dropped exactly once in the end.
//!
//! Threads are joined explicitly (ThreadSanitizer cannot see `thread::scope`'s implicit
//! wait). Waiting threads are released through `OnDrop`, so that a failing test fails
//! instead of hanging.
#![cfg(not(loom))]

mod common;

use common::{join_all, Masked, OnDrop, Rng};
use concurrent_hamt::{Hamt, Snapshot};
use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Barrier, Once};
use std::thread;

// ---------------------------------------------------------------------------------------
// Values and reading helpers

/// The value of write number `round` to `key`: the key in the high half, so that a value
/// read back says which key it belongs to. Keys stay below 2^32.
fn val(key: u64, round: u64) -> u64 {
    key << 32 | (round & 0xFFFF_FFFF)
}

fn round_of(value: u64) -> u64 {
    value & 0xFFFF_FFFF
}

fn key_of(value: u64) -> u64 {
    value >> 32
}

type Contents = BTreeMap<u64, u64>;

/// A short description of how `found` differs from `expected` (the first few keys), for
/// failure messages that do not print 10,000 entries.
fn diff(found: &Contents, expected: &Contents) -> String {
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, _)| !found.contains_key(k))
        .map(|(k, _)| *k)
        .take(8)
        .collect();
    let extra: Vec<_> = found
        .iter()
        .filter(|(k, _)| !expected.contains_key(k))
        .map(|(k, v)| (*k, *v))
        .take(8)
        .collect();
    let changed: Vec<_> = found
        .iter()
        .filter_map(|(k, v)| match expected.get(k) {
            Some(e) if e != v => Some((*k, *e, *v)),
            _ => None,
        })
        .take(8)
        .collect();
    format!(
        "{} entries found, {} expected; missing (first 8) {missing:?}; unexpected (key, \
         value) {extra:?}; changed (key, expected, found) {changed:#x?}",
        found.len(),
        expected.len()
    )
}

fn assert_same(found: &Contents, expected: &Contents, what: impl Display) {
    assert!(found == expected, "{what}: {}", diff(found, expected));
}

/// Every entry of `snap` by `iter`, checked: no key twice, every value belongs to its key,
/// `len()` (asked before and after, and `is_empty`) agrees with the number of entries
/// yielded, and `get`, `get_key_value` and `contains_key` agree with `iter` on every
/// `probe`-th entry (none when `probe` is 0).
fn read_snapshot<S: BuildHasher + Clone>(
    snap: &Snapshot<u64, u64, S>,
    probe: usize,
    what: impl Display,
) -> Contents {
    let len = snap.len();
    let mut out = Contents::new();
    for (k, v) in snap.iter() {
        assert!(
            out.insert(*k, *v).is_none(),
            "{what}: the snapshot's iter yielded key {k} twice"
        );
        assert_eq!(key_of(*v), *k, "{what}: key {k} holds value {v:#x}");
    }
    assert_eq!(
        len,
        out.len(),
        "{what}: Snapshot::len() differs from the number of entries its iter yields"
    );
    assert_eq!(
        snap.len(),
        len,
        "{what}: Snapshot::len() changed between two calls"
    );
    assert_eq!(snap.is_empty(), len == 0, "{what}: Snapshot::is_empty()");
    if probe > 0 {
        for (k, v) in out.iter().step_by(probe) {
            assert_eq!(snap.get(k), Some(v), "{what}: get({k}) disagrees with iter");
            assert_eq!(
                snap.get_key_value(k),
                Some((k, v)),
                "{what}: get_key_value({k}) disagrees with iter"
            );
            assert!(snap.contains_key(k), "{what}: contains_key({k}) is false");
        }
    }
    out
}

/// Every entry of `map` by `Hamt::iter` (a snapshot taken at the call), checked: no key
/// twice, every value belongs to its key.
fn read_map<S: BuildHasher + Clone>(map: &Hamt<u64, u64, S>, what: impl Display) -> Contents {
    let mut out = Contents::new();
    for e in map.iter() {
        let (k, v) = e.pair();
        assert!(
            out.insert(*k, *v).is_none(),
            "{what}: Hamt::iter yielded key {k} twice"
        );
        assert_eq!(key_of(*v), *k, "{what}: key {k} holds value {v:#x}");
    }
    out
}

/// Checks a map at rest (no write in flight) against `model`: `len`, `iter`, and `get` of
/// every key of `universe`.
fn check_map_at_rest<S: BuildHasher + Clone>(
    map: &Hamt<u64, u64, S>,
    model: &Contents,
    universe: impl IntoIterator<Item = u64>,
    what: impl Display,
) {
    assert_same(&read_map(map, &what), model, format_args!("{what}: iter"));
    assert_eq!(map.len(), model.len(), "{what}: len at rest");
    assert_eq!(map.is_empty(), model.is_empty(), "{what}: is_empty at rest");
    for k in universe {
        assert_eq!(
            map.get(&k).map(|e| *e),
            model.get(&k).copied(),
            "{what}: get({k})"
        );
    }
}

/// Checks a snapshot against `model`: `len`, `iter`, and `get` of every key of `universe`.
fn check_snapshot<S: BuildHasher + Clone>(
    snap: &Snapshot<u64, u64, S>,
    model: &Contents,
    universe: impl IntoIterator<Item = u64>,
    what: impl Display,
) {
    assert_same(
        &read_snapshot(snap, 1, &what),
        model,
        format_args!("{what}: iter"),
    );
    for k in universe {
        assert_eq!(snap.get(&k), model.get(&k), "{what}: get({k})");
        assert_eq!(
            snap.contains_key(&k),
            model.contains_key(&k),
            "{what}: contains_key({k})"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The writers' invariants

/// An interval writer owns keys `base..base + range`. Round after round (from 1), it inserts
/// them in increasing order with values of that round, then removes them in increasing
/// order. So at every instant its keys present form `[base, hi)` (inserting) or
/// `[lo, base + range)` (removing), all with values of one round.
fn check_interval(state: &Contents, base: u64, range: u64, what: impl Display) {
    let present: Vec<(u64, u64)> = state
        .range(base..base + range)
        .map(|(k, v)| (*k, *v))
        .collect();
    let Some(&(lo, first)) = present.first() else {
        return;
    };
    let (hi, _) = *present.last().unwrap();
    assert_eq!(
        (hi - lo + 1) as usize,
        present.len(),
        "{what}: keys {base}..{}: the keys present are not an interval: {} keys between {lo} \
         and {hi}",
        base + range,
        present.len()
    );
    assert!(
        lo == base || hi == base + range - 1,
        "{what}: keys {base}..{}: the interval present, {lo}..={hi}, touches neither end",
        base + range
    );
    for &(k, v) in &present {
        assert_eq!(
            round_of(v),
            round_of(first),
            "{what}: keys {base}..{}: key {k} holds round {}, key {lo} round {}",
            base + range,
            round_of(v),
            round_of(first)
        );
    }
}

/// A chain writer updates keys `base..base + len` in increasing order, round after round
/// (every key present from round 0 on). So along the chain the rounds never increase, and
/// the first and last differ by at most one.
fn check_chain(state: &Contents, base: u64, len: u64, what: impl Display) {
    let rounds: Vec<u64> = (base..base + len)
        .map(|k| match state.get(&k) {
            Some(v) => round_of(*v),
            None => panic!("{what}: chain key {k} missing"),
        })
        .collect();
    for (i, pair) in rounds.windows(2).enumerate() {
        assert!(
            pair[0] >= pair[1],
            "{what}: chain key {} holds round {} but the later key {} holds round {}",
            base + i as u64,
            pair[0],
            base + i as u64 + 1,
            pair[1]
        );
    }
    assert!(
        rounds[0] - rounds[rounds.len() - 1] <= 1,
        "{what}: chain rounds span {}..={}",
        rounds[rounds.len() - 1],
        rounds[0]
    );
}

/// Pairs `(base + 2j, base + 2j + 1)`: the second is inserted before the first and removed
/// after it, so the first present implies the second present.
fn check_pairs(state: &Contents, base: u64, pairs: u64, what: impl Display) {
    for j in 0..pairs {
        let (a, b) = (base + 2 * j, base + 2 * j + 1);
        assert!(
            !state.contains_key(&a) || state.contains_key(&b),
            "{what}: pair {j}: key {a} present without key {b}"
        );
    }
}

/// Runs an interval writer on `base..base + range` until `stop` is set and at least
/// `min_rounds` rounds are done. `style` varies the operations used (0: `insert` and
/// `remove`; 1: `insert_if_absent`/`update` and `remove_if`/`update`), each result checked.
/// Returns the rounds done.
fn interval_writer<S: BuildHasher>(
    map: &Hamt<u64, u64, S>,
    base: u64,
    range: u64,
    style: u64,
    stop: &AtomicBool,
    min_rounds: u64,
) -> u64 {
    let mut round = 0;
    while round < min_rounds || !stop.load(Acquire) {
        round += 1;
        for k in base..base + range {
            let v = val(k, round);
            if style == 0 {
                assert!(map.insert(k, v).is_none(), "interval key {k} present");
            } else if k % 2 == 0 {
                assert!(map.insert_if_absent(k, v), "interval key {k} present");
            } else {
                let stored = map.update(k, |old| {
                    assert!(old.is_none(), "interval key {k} present");
                    Some(v)
                });
                assert_eq!(stored.map(|e| *e), Some(v));
            }
        }
        for k in base..base + range {
            let v = val(k, round);
            if style == 0 {
                assert_eq!(map.remove(&k).map(|e| *e), Some(v), "interval key {k}");
            } else if k % 2 == 0 {
                assert_eq!(
                    map.remove_if(&k, |old| *old == v).map(|e| *e),
                    Some(v),
                    "interval key {k}"
                );
            } else {
                let stored = map.update(k, |old| {
                    assert_eq!(old, Some(&v), "interval key {k}");
                    None
                });
                assert!(stored.is_none());
            }
        }
    }
    round
}

/// Runs a chain writer (keys `chain..chain + chain_len`, present beforehand with round 0)
/// and keeps pairs at `pairs_base` (inserted in odd rounds, removed in even ones) until
/// `stop` is set and at least `min_rounds` rounds are done.
fn chain_writer<S: BuildHasher>(
    map: &Hamt<u64, u64, S>,
    chain: u64,
    chain_len: u64,
    pairs_base: u64,
    pairs: u64,
    stop: &AtomicBool,
    min_rounds: u64,
) -> u64 {
    let mut round = 0;
    while round < min_rounds || !stop.load(Acquire) {
        round += 1;
        for k in chain..chain + chain_len {
            let (old, new) = (val(k, round - 1), val(k, round));
            if round % 2 == 0 {
                assert_eq!(
                    map.compare_exchange(k, &old, new).ok().map(|e| *e),
                    Some(new),
                    "chain key {k}: compare_exchange from round {}",
                    round - 1
                );
            } else {
                let stored = map.update(k, |v| {
                    assert_eq!(v, Some(&old), "chain key {k}");
                    Some(new)
                });
                assert_eq!(stored.map(|e| *e), Some(new));
            }
        }
        for j in 0..pairs {
            let (a, b) = (pairs_base + 2 * j, pairs_base + 2 * j + 1);
            if round % 2 == 1 {
                assert!(map.insert(b, val(b, round)).is_none(), "pair key {b}");
                assert!(map.insert(a, val(a, round)).is_none(), "pair key {a}");
            } else {
                assert!(map.remove(&a).is_some(), "pair key {a}");
                assert!(map.remove(&b).is_some(), "pair key {b}");
            }
        }
    }
    round
}

// ---------------------------------------------------------------------------------------
// A snapshot re-read while four threads write

/// A snapshot of 10,000 keys taken at rest is read back 100 times (`len`, `iter`, and `get`
/// of every key and of absent ones) while four threads insert, replace, update and remove
/// those keys and 10,000 others, and take snapshots of their own: every read gives exactly
/// the original contents. The same for a writable snapshot that no one writes to, and for a
/// snapshot taken in the middle of the writes (compared with its own first read).
#[test]
fn snapshot_is_unchanged_by_four_writers() {
    const KEYS: u64 = 10_000;
    const WRITERS: u64 = 4;
    const REREADS: usize = 100;
    const MIN_OPS: u64 = 20_000;
    let map: Hamt<u64, u64> = Hamt::new();
    for k in 0..KEYS {
        map.insert(k, val(k, 0));
    }
    let original: Contents = (0..KEYS).map(|k| (k, val(k, 0))).collect();
    let frozen = map.read_only_snapshot();
    let writable = map.snapshot();
    assert_eq!(
        writable.len(),
        KEYS as usize,
        "a writable snapshot's len at rest"
    );
    let stop = AtomicBool::new(false);
    // Everyone starts together, so that the reads overlap the writes.
    let start = Barrier::new(WRITERS as usize + 1);
    let ops: Vec<u64> = thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (map, stop, start) = (&map, &stop, &start);
                s.spawn(move || {
                    start.wait();
                    let mut rng = Rng::new(0x5A00 + w);
                    let mut ops = 0u64;
                    while ops < MIN_OPS || !stop.load(Acquire) {
                        ops += 1;
                        let k = rng.below(2 * KEYS);
                        // Rounds from 1 up: never the original value.
                        let v = val(k, ops * WRITERS + w + 1);
                        match rng.below(8) {
                            0 => drop(map.insert(k, v)),
                            1 => drop(map.remove(&k)),
                            2 => drop(map.update(k, |old| old.map(|o| o + 1))),
                            3 => drop(map.insert_if_absent(k, v)),
                            4 => drop(map.remove_if(&k, |old| round_of(*old) % 2 == 0)),
                            5 => drop(map.compare_exchange(k, &val(k, 0), v)),
                            6 if ops % 64 == 0 => {
                                // Snapshots of their own, to race the root with the others'
                                // writes; one written to.
                                let mine = map.snapshot();
                                drop(mine.insert(k, v));
                                let frozen = map.read_only_snapshot();
                                assert!(frozen.len() <= 2 * KEYS as usize);
                            }
                            _ => {
                                if let Some(e) = map.get(&k) {
                                    assert_eq!(key_of(*e), k, "get({k}) shows {:#x}", *e);
                                }
                            }
                        }
                    }
                    ops
                })
            })
            .collect();
        let release = OnDrop(|| stop.store(true, Release));
        start.wait();
        let mut mid: Option<(Snapshot<u64, u64>, Contents)> = None;
        for read in 0..REREADS {
            let what = format!("read {read} of the snapshot taken at rest");
            assert_same(&read_snapshot(&frozen, 1, &what), &original, &what);
            for k in (KEYS..2 * KEYS).step_by(7) {
                assert!(frozen.get(&k).is_none(), "{what}: absent key {k} found");
            }
            let what = format!("read {read} of the writable snapshot taken at rest");
            assert_same(&read_map(&writable, &what), &original, &what);
            for k in (read as u64 % 10..KEYS).step_by(10) {
                assert_eq!(
                    writable.get(&k).map(|e| *e),
                    Some(val(k, 0)),
                    "{what}: get({k})"
                );
            }
            if read == REREADS / 4 {
                let snap = map.read_only_snapshot();
                let first = read_snapshot(&snap, 1, "first read of a snapshot taken mid-run");
                mid = Some((snap, first));
            }
            if let Some((snap, first)) = &mid {
                let what = format!("read {read} of the snapshot taken mid-run");
                assert_same(&read_snapshot(snap, 3, &what), first, &what);
            }
        }
        drop(release);
        join_all(writers)
    });
    assert!(ops.iter().all(|&n| n >= MIN_OPS));
    assert_same(
        &read_snapshot(&frozen, 1, "after the writers"),
        &original,
        "the snapshot taken at rest, after the writers",
    );
    // Now write to the writable snapshot: neither the frozen one nor the live map sees it.
    let live_before = read_map(&map, "live map at rest");
    for k in 0..KEYS / 2 {
        assert_eq!(writable.remove(&k).map(|e| *e), Some(val(k, 0)));
    }
    let expected: Contents = (KEYS / 2..KEYS).map(|k| (k, val(k, 0))).collect();
    check_map_at_rest(
        &writable,
        &expected,
        0..KEYS,
        "writable snapshot after removals",
    );
    assert_same(
        &read_map(&map, "live map"),
        &live_before,
        "live map after writes to a snapshot",
    );
    assert_same(
        &read_snapshot(&frozen, 0, "frozen"),
        &original,
        "frozen after writes to a snapshot",
    );
}

// ---------------------------------------------------------------------------------------
// 7,000 snapshots, each consistent

/// Key layout of the consistency tests.
const IV_RANGE: u64 = 400;
const IV_BASES: [u64; 2] = [0, 1_000];
const CHAIN: u64 = 2_000;
const CHAIN_LEN: u64 = 64;
const PAIRS_BASE: u64 = 3_000;
const PAIRS: u64 = 32;
/// Keys written only into writable snapshots, never into the live map.
const JUNK: u64 = 9_000_000;

/// Checks every writer invariant on one state; `junk_allowed` for states of writable
/// snapshots that were written to.
fn check_consistent(state: &Contents, junk_allowed: bool, what: impl Display) {
    for base in IV_BASES {
        check_interval(state, base, IV_RANGE, &what);
    }
    check_chain(state, CHAIN, CHAIN_LEN, &what);
    check_pairs(state, PAIRS_BASE, PAIRS, &what);
    let known = |k: u64| {
        IV_BASES.iter().any(|&b| (b..b + IV_RANGE).contains(&k))
            || (CHAIN..CHAIN + CHAIN_LEN).contains(&k)
            || (PAIRS_BASE..PAIRS_BASE + 2 * PAIRS).contains(&k)
            || (junk_allowed && k >= JUNK)
    };
    if let Some(k) = state.keys().find(|&&k| !known(k)) {
        panic!("{what}: unexpected key {k}");
    }
}

/// Three writers keep their invariants (two interval writers using different operations, a
/// chain-and-pairs writer) while two threads take 3,500 snapshots each, alternating
/// `read_only_snapshot` and `snapshot`, and check each for consistency: the intervals, the
/// chain, the pairs, no key twice, `len` equal to the entries yielded. Some read-only
/// snapshots are read twice (same contents). Every tenth writable snapshot is written to
/// (one interval removed, junk keys added): its read-only snapshot then holds exactly that
/// change of what it held, and the live map never shows junk.
#[test]
fn seven_thousand_snapshots_are_consistent() {
    const SNAPSHOTS: usize = 7_000;
    const TAKERS: usize = 2;
    let map: Hamt<u64, u64> = Hamt::new();
    for k in CHAIN..CHAIN + CHAIN_LEN {
        map.insert(k, val(k, 0));
    }
    let stop = AtomicBool::new(false);
    let takers_done = AtomicUsize::new(0);
    // Everyone starts together, so that the snapshots overlap the writes.
    let start = Barrier::new(IV_BASES.len() + 1 + TAKERS);
    thread::scope(|s| {
        let mut writers = Vec::new();
        for (style, base) in IV_BASES.into_iter().enumerate() {
            let (map, stop, start) = (&map, &stop, &start);
            writers.push(s.spawn(move || {
                start.wait();
                interval_writer(map, base, IV_RANGE, style as u64, stop, 3)
            }));
        }
        {
            let (map, stop, start) = (&map, &stop, &start);
            writers.push(s.spawn(move || {
                start.wait();
                chain_writer(map, CHAIN, CHAIN_LEN, PAIRS_BASE, PAIRS, stop, 3)
            }));
        }
        let takers: Vec<_> = (0..TAKERS)
            .map(|t| {
                let (map, stop, takers_done, start) = (&map, &stop, &takers_done, &start);
                s.spawn(move || {
                    start.wait();
                    let _done = OnDrop(|| {
                        if takers_done.fetch_add(1, AcqRel) + 1 == TAKERS {
                            stop.store(true, Release);
                        }
                    });
                    let mut rounds_seen = BTreeSet::new();
                    for i in 0..SNAPSHOTS / TAKERS {
                        let what = format!("taker {t}, snapshot {i}");
                        if i % 2 == 0 {
                            let snap = map.read_only_snapshot();
                            let state = read_snapshot(&snap, 16, &what);
                            check_consistent(&state, false, &what);
                            rounds_seen.insert(round_of(state[&CHAIN]));
                            if i % 50 == 0 {
                                let again = read_snapshot(&snap, 1, &what);
                                assert_same(&again, &state, format_args!("{what}, read again"));
                            }
                        } else {
                            let copy = map.snapshot();
                            let state = read_map(&copy, &what);
                            check_consistent(&state, false, &what);
                            if i % 20 == 1 {
                                let junk = JUNK + (t * SNAPSHOTS + i) as u64 * 8;
                                let mut expected = state.clone();
                                for (&k, &v) in state.range(IV_BASES[0]..IV_BASES[0] + IV_RANGE) {
                                    assert_eq!(
                                        copy.remove(&k).map(|e| *e),
                                        Some(v),
                                        "{what}: remove({k}) from the writable snapshot"
                                    );
                                    expected.remove(&k);
                                }
                                for j in junk..junk + 8 {
                                    assert!(copy.insert(j, val(j, 1)).is_none());
                                    expected.insert(j, val(j, 1));
                                }
                                let after = copy.read_only_snapshot();
                                let what = format!("{what}, after writing to it");
                                let found = read_snapshot(&after, 1, &what);
                                assert_same(&found, &expected, &what);
                                check_consistent(&found, true, &what);
                                assert_same(&read_map(&copy, &what), &expected, &what);
                            }
                        }
                    }
                    rounds_seen.len()
                })
            })
            .collect();
        let rounds_seen = join_all(takers);
        let rounds = join_all(writers);
        assert!(rounds.iter().all(|&r| r >= 3));
        // Not a timing assertion on the implementation: only that the test exercised
        // snapshots during the writes (the chain writer ran at least 3 rounds meanwhile or
        // after, and the takers saw some state).
        assert!(rounds_seen.iter().all(|&n| n >= 1));
    });
    let state = read_map(&map, "live map at rest");
    check_consistent(&state, false, "live map at rest");
    assert_eq!(map.len(), state.len(), "len at rest");
}

// ---------------------------------------------------------------------------------------
// Iterators under concurrent writes

/// `Hamt::iter` on 25,000 keys: 12,500 never touched, 12,500 churned by two interval
/// writers. Two iterating threads check each iteration: every untouched key exactly once
/// with its value, no key twice, the writers' intervals consistent. Each iterating thread
/// also writes its own keys *after* `iter()` returned (removes the ones present, inserts new
/// ones) in the middle of the iteration: the iteration still yields every removed one and
/// none of the new ones. Every fifth iteration, a writable snapshot's `iter` is compared
/// with its `read_only_snapshot` (no one writes to it: equal).
#[test]
fn iterators_yield_a_consistent_state() {
    const STABLE: u64 = 12_500;
    const RANGE: u64 = 6_250;
    const BASES: [u64; 2] = [STABLE, STABLE + RANGE];
    const ITERATORS: u64 = 2;
    const ITERATIONS: u64 = 16;
    const OWN: u64 = 50;
    let own_base = |t: u64, generation: u64| 100_000 + t * 1_000 + (generation % 2) * 100;
    let map: Hamt<u64, u64> = Hamt::new();
    for k in 0..STABLE {
        map.insert(k, val(k, 0));
    }
    for t in 0..ITERATORS {
        for k in own_base(t, 0)..own_base(t, 0) + OWN {
            map.insert(k, val(k, 0));
        }
    }
    let stop = AtomicBool::new(false);
    let done = AtomicUsize::new(0);
    // Everyone starts together, so that the iterations overlap the writes.
    let start = Barrier::new(BASES.len() + ITERATORS as usize);
    thread::scope(|s| {
        let writers: Vec<_> = BASES
            .into_iter()
            .enumerate()
            .map(|(style, base)| {
                let (map, stop, start) = (&map, &stop, &start);
                s.spawn(move || {
                    start.wait();
                    interval_writer(map, base, RANGE, style as u64, stop, 1)
                })
            })
            .collect();
        let iterators: Vec<_> = (0..ITERATORS)
            .map(|t| {
                let (map, stop, done, start) = (&map, &stop, &done, &start);
                s.spawn(move || {
                    start.wait();
                    let _done = OnDrop(|| {
                        if done.fetch_add(1, AcqRel) + 1 == ITERATORS as usize {
                            stop.store(true, Release);
                        }
                    });
                    for generation in 0..ITERATIONS {
                        let what = format!("iterating thread {t}, iteration {generation}");
                        let present = own_base(t, generation);
                        let absent = own_base(t, generation + 1);
                        let mut state = Contents::new();
                        for (n, e) in map.iter().enumerate() {
                            let (k, v) = e.pair();
                            assert!(state.insert(*k, *v).is_none(), "{what}: key {k} twice");
                            if n == 5_000 {
                                // Writes after the iterator was made: invisible to it.
                                for k in present..present + OWN {
                                    assert!(map.remove(&k).is_some(), "{what}: own key {k}");
                                }
                                for k in absent..absent + OWN {
                                    assert!(map.insert(k, val(k, 1)).is_none());
                                }
                            }
                        }
                        let stable = state.range(0..STABLE).count();
                        assert_eq!(
                            stable, STABLE as usize,
                            "{what}: untouched keys yielded {stable} times, expected {STABLE}"
                        );
                        for (k, v) in state.range(0..STABLE) {
                            assert_eq!(*v, val(*k, 0), "{what}: untouched key {k}");
                        }
                        for base in BASES {
                            check_interval(&state, base, RANGE, &what);
                        }
                        let own: Vec<u64> = state.range(100_000 + t * 1_000..100_000 + (t + 1) * 1_000).map(|(k, _)| *k).collect();
                        assert_eq!(
                            own,
                            (present..present + OWN).collect::<Vec<_>>(),
                            "{what}: the thread's own keys: those present when iter() \
                             returned, not those it wrote after"
                        );
                        if generation % 5 == 0 {
                            let copy = map.snapshot();
                            let by_iter = read_map(&copy, &what);
                            let by_snapshot = read_snapshot(&copy.read_only_snapshot(), 0, &what);
                            assert_same(
                                &by_iter,
                                &by_snapshot,
                                format_args!("{what}: a writable snapshot's iter against its read-only snapshot"),
                            );
                            for base in BASES {
                                check_interval(&by_iter, base, RANGE, &what);
                            }
                        }
                    }
                })
            })
            .collect();
        join_all(iterators);
        join_all(writers);
    });
    assert_eq!(map.len(), STABLE as usize + (ITERATORS * OWN) as usize);
}

/// Deterministic: `Hamt::iter` yields the map as it was when `iter()` returned, however the
/// map changes while the iterator is held (cleared, refilled, values replaced), even when
/// the iterator is half consumed. Two iterators made at different times yield different
/// states.
#[test]
fn iter_yields_the_map_as_of_the_call() {
    let map: Hamt<u64, u64> = Hamt::new();
    let before: Contents = (0..5_000).map(|k| (k, val(k, 0))).collect();
    for (&k, &v) in &before {
        map.insert(k, v);
    }
    let mut first = map.iter();
    let mut state = Contents::new();
    for e in first.by_ref().take(1_000) {
        state.insert(*e.key(), *e.value());
    }
    map.clear();
    assert!(map.is_empty(), "empty after clear");
    for k in 2_000..7_000 {
        map.insert(k, val(k, 1));
    }
    let after: Contents = (2_000..7_000).map(|k| (k, val(k, 1))).collect();
    let second = map.iter();
    for k in 0..7_000 {
        drop(map.update(k, |v| v.map(|v| v + 1)));
    }
    for e in first {
        assert!(
            state.insert(*e.key(), *e.value()).is_none(),
            "key {} twice",
            e.key()
        );
    }
    assert_same(&state, &before, "an iterator made before clear and refill");
    let state: Contents = second.map(|e| (*e.key(), *e)).collect();
    assert_same(
        &state,
        &after,
        "an iterator made after the refill, before the updates",
    );
}

// ---------------------------------------------------------------------------------------
// Parity

/// 65,000 keys, all present at first. Each of `threads` threads toggles every key exactly
/// once (removes it if present, inserts it if absent), half of them through `update`, half
/// through `remove` / `insert_if_absent` retried until one of them acts, each thread in its
/// own order. With an even number of threads every key ends present, with an odd number
/// none. Meanwhile the main thread takes snapshots (alternately read-only and writable):
/// each holds only keys of the range with their values, no key twice, a `len()` equal to the
/// entries yielded, and `contains_key` agreeing with the iteration on sampled keys.
fn parity(threads: u64) {
    const KEYS: u64 = 65_000;
    let value = |k: u64| val(k, 7);
    let map: Hamt<u64, u64> = Hamt::new();
    for k in 0..KEYS {
        map.insert(k, value(k));
    }
    let done = AtomicUsize::new(0);
    let snapshots = thread::scope(|s| {
        let togglers: Vec<_> = (0..threads)
            .map(|t| {
                let (map, done) = (&map, &done);
                s.spawn(move || {
                    let _done = OnDrop(|| {
                        done.fetch_add(1, Release);
                    });
                    let start = t * KEYS / threads;
                    for i in 0..KEYS {
                        // Even threads go up from their start, odd ones down.
                        let k = if t % 2 == 0 {
                            (start + i) % KEYS
                        } else {
                            (start + KEYS - i) % KEYS
                        };
                        if t % 2 == 0 {
                            drop(map.update(k, |v| match v {
                                Some(_) => None,
                                None => Some(value(k)),
                            }));
                        } else {
                            // One of the two takes effect (the other finds the opposite
                            // state and does nothing); retry until one does.
                            loop {
                                if map.remove(&k).is_some() || map.insert_if_absent(k, value(k)) {
                                    break;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        let mut rng = Rng::new(threads);
        let mut taken = 0;
        while done.load(Acquire) < threads as usize || taken < 4 {
            let what = format!("{threads} togglers, snapshot {taken}");
            let state = if taken % 2 == 0 {
                let snap = map.read_only_snapshot();
                let state = read_snapshot(&snap, 97, &what);
                for _ in 0..200 {
                    let k = rng.below(KEYS + 100);
                    assert_eq!(
                        snap.contains_key(&k),
                        state.contains_key(&k),
                        "{what}: contains_key({k}) disagrees with iter"
                    );
                }
                state
            } else {
                let copy = map.snapshot();
                let state = read_map(&copy, &what);
                let frozen = copy.read_only_snapshot();
                assert_eq!(
                    frozen.len(),
                    state.len(),
                    "{what}: the read-only snapshot of an unwritten writable snapshot"
                );
                state
            };
            for (&k, &v) in &state {
                assert!(k < KEYS, "{what}: key {k} out of range");
                assert_eq!(v, value(k), "{what}: key {k}");
            }
            taken += 1;
        }
        join_all(togglers);
        taken
    });
    assert!(snapshots >= 4);
    let expected: Contents = if threads % 2 == 0 {
        (0..KEYS).map(|k| (k, value(k))).collect()
    } else {
        Contents::new()
    };
    check_map_at_rest(
        &map,
        &expected,
        (0..KEYS).step_by(13),
        format_args!("after {threads} toggles of every key"),
    );
    check_snapshot(
        &map.read_only_snapshot(),
        &expected,
        (0..KEYS).step_by(17),
        format_args!("a snapshot after {threads} toggles of every key"),
    );
}

/// See [`parity`]: four threads, every key ends present.
#[test]
fn parity_even_threads_leave_every_key() {
    parity(4);
}

/// See [`parity`]: three threads, no key remains.
#[test]
fn parity_odd_threads_leave_no_key() {
    parity(3);
}

// ---------------------------------------------------------------------------------------
// Colliding hashes

/// 1,500 keys with one hash (a constant hasher: one collision list). Inserting all, then
/// removing every third, replacing every fifth and inserting some back, with read-only and
/// writable snapshots taken at several points; the writable ones are then written to. At
/// the end every snapshot and map holds exactly its model (`len`, `iter`, `get` of every
/// key), and so does each read-only snapshot of a written writable one.
#[test]
fn colliding_hashes_through_snapshots() {
    const KEYS: u64 = 1_500;
    let map = Hamt::with_hasher(Masked::CONSTANT);
    let mut model = Contents::new();
    let mut frozen: Vec<(Snapshot<u64, u64, Masked>, Contents, String)> = Vec::new();
    let mut writable: Vec<(Hamt<u64, u64, Masked>, Contents, String)> = Vec::new();
    let take = |map: &Hamt<u64, u64, Masked>,
                model: &Contents,
                when: &str,
                frozen: &mut Vec<_>,
                writable: &mut Vec<_>| {
        frozen.push((
            map.read_only_snapshot(),
            model.clone(),
            format!("read-only, {when}"),
        ));
        writable.push((map.snapshot(), model.clone(), format!("writable, {when}")));
    };
    take(&map, &model, "empty", &mut frozen, &mut writable);
    for k in 0..KEYS {
        assert!(map.insert(k, val(k, 0)).is_none());
        model.insert(k, val(k, 0));
        if k % 300 == 299 {
            take(
                &map,
                &model,
                &format!("after inserting 0..={k}"),
                &mut frozen,
                &mut writable,
            );
        }
    }
    for k in (0..KEYS).step_by(3) {
        assert_eq!(map.remove(&k).map(|e| *e), Some(val(k, 0)));
        model.remove(&k);
        if k % 600 == 0 {
            take(
                &map,
                &model,
                &format!("removing every third, at {k}"),
                &mut frozen,
                &mut writable,
            );
        }
    }
    for k in (0..KEYS).step_by(5) {
        let stored = map.update(k, |v| v.map(|v| v + 1));
        assert_eq!(stored.map(|e| *e), model.get(&k).map(|v| v + 1));
        if let Some(v) = model.get_mut(&k) {
            *v += 1;
        }
    }
    take(
        &map,
        &model,
        "after the updates",
        &mut frozen,
        &mut writable,
    );
    for k in (0..KEYS).step_by(6) {
        assert!(map.insert_if_absent(k, val(k, 2)));
        model.insert(k, val(k, 2));
    }
    take(
        &map,
        &model,
        "after inserting some back",
        &mut frozen,
        &mut writable,
    );
    // Write to every writable snapshot, differently, and take read-only snapshots of them.
    let mut of_writable = Vec::new();
    for (i, (copy, model, what)) in writable.iter_mut().enumerate() {
        let i = i as u64;
        for k in (i..KEYS + 10).step_by(7) {
            if k % 2 == 0 {
                assert_eq!(
                    copy.remove(&k).map(|e| *e),
                    model.remove(&k),
                    "{what}: remove({k})"
                );
            } else {
                let v = val(k, 100 + i);
                assert_eq!(
                    copy.insert(k, v).map(|e| *e),
                    model.insert(k, v),
                    "{what}: insert({k})"
                );
            }
        }
        of_writable.push((
            copy.read_only_snapshot(),
            model.clone(),
            format!("read-only of {what}"),
        ));
    }
    check_map_at_rest(&map, &model, 0..KEYS + 10, "the live map");
    for (snap, model, what) in frozen.iter().chain(&of_writable) {
        check_snapshot(snap, model, 0..KEYS + 10, what);
    }
    for (copy, model, what) in &writable {
        check_map_at_rest(copy, model, 0..KEYS + 10, what);
    }
}

/// The constant hasher with concurrent writers: an interval writer on 1,500 colliding keys,
/// and a thread that removes and re-inserts one of 20 other colliding keys over and over
/// (the case where the walk of a live collision list could yield a key twice). The main
/// thread takes read-only snapshots and iterates the map: the interval is consistent, no
/// key is yielded twice, `len` equals the entries yielded, and every other key is present
/// with a value of its own.
#[test]
fn colliding_hashes_with_concurrent_writers() {
    const RANGE: u64 = 1_500;
    const FLAPPING: u64 = 20;
    let map = Hamt::with_hasher(Masked::CONSTANT);
    for k in RANGE..RANGE + FLAPPING {
        map.insert(k, val(k, 0));
    }
    let stop = AtomicBool::new(false);
    // Everyone starts together, so that the reads overlap the writes.
    let start = Barrier::new(3);
    thread::scope(|s| {
        let writer = {
            let (map, stop, start) = (&map, &stop, &start);
            s.spawn(move || {
                start.wait();
                interval_writer(map, 0, RANGE, 1, stop, 2)
            })
        };
        let flapper = {
            let (map, stop, start) = (&map, &stop, &start);
            s.spawn(move || {
                start.wait();
                let mut round = 0;
                while round < 2_000 || !stop.load(Acquire) {
                    round += 1;
                    let k = RANGE + round % FLAPPING;
                    assert!(map.remove(&k).is_some(), "flapping key {k}");
                    assert!(map.insert(k, val(k, round)).is_none(), "flapping key {k}");
                }
            })
        };
        let release = OnDrop(|| stop.store(true, Release));
        start.wait();
        for i in 0..300 {
            let what = format!("colliding keys, state {i}");
            let state = if i % 2 == 0 {
                read_snapshot(&map.read_only_snapshot(), 50, &what)
            } else {
                read_map(&map, &what)
            };
            check_interval(&state, 0, RANGE, &what);
            let flapping = state.range(RANGE..).count() as u64;
            assert!(
                flapping + 1 >= FLAPPING && flapping <= FLAPPING,
                "{what}: {flapping} of the {FLAPPING} flapping keys (one at most is absent at a time)"
            );
        }
        drop(release);
        join_all(vec![writer]);
        join_all(vec![flapper]);
    });
    assert_eq!(map.len(), FLAPPING as usize);
}

// ---------------------------------------------------------------------------------------
// Functional: frozen views and independent copies

/// A read-only snapshot keeps its contents whatever the map does afterwards: every write
/// operation, `clear`, `extend`, and writes through another handle and through a writable
/// snapshot. Checked after each step with `get`, `get_key_value`, `contains_key`, `len`,
/// `iter` and `&Snapshot`'s `IntoIterator`.
#[test]
fn read_only_snapshot_never_changes() {
    let mut map: Hamt<u64, u64> = Hamt::new();
    let model: Contents = (0..2_000).map(|k| (k, val(k, 0))).collect();
    for (&k, &v) in &model {
        map.insert(k, v);
    }
    let snap = map.read_only_snapshot();
    let clone = map.clone();
    let check = |step: &str| {
        check_snapshot(&snap, &model, 0..2_100, step);
        let mut n = 0;
        for (k, v) in &snap {
            assert_eq!(model.get(k), Some(v), "{step}: IntoIterator for &Snapshot");
            n += 1;
        }
        assert_eq!(n, model.len(), "{step}: IntoIterator for &Snapshot");
    };
    check("at once");
    for k in 0..500 {
        drop(map.insert(k, val(k, 1)));
    }
    check("after insert (replacing)");
    for k in 2_000..2_100 {
        assert!(map.insert_if_absent(k, val(k, 1)));
    }
    check("after insert_if_absent");
    for k in 500..700 {
        assert!(map.remove(&k).is_some());
    }
    check("after remove");
    for k in 700..900 {
        assert!(map.remove_if(&k, |_| true).is_some());
    }
    check("after remove_if");
    for k in 900..1_000 {
        assert!(map.compare_exchange(k, &val(k, 0), val(k, 2)).is_ok());
    }
    check("after compare_exchange");
    for k in 1_000..1_200 {
        map.update(k, |v| v.map(|v| v + 3));
    }
    for k in 1_200..1_300 {
        map.update(k, |_| None);
    }
    check("after update");
    for k in 1_300..1_400 {
        drop(clone.remove(&k));
    }
    check("after writes through another handle");
    let copy = map.snapshot();
    copy.clear();
    for k in 0..100 {
        copy.insert(k, val(k, 9));
    }
    check("after writes to a writable snapshot");
    map.clear();
    check("after clear");
    map.extend((0..3_000).map(|k| (k, val(k, 5))));
    check("after extend");
    map.reclaim();
    check("after reclaim");
    drop(map);
    drop(clone);
    drop(copy);
    check("after every handle on the map dropped");
}

/// A writable snapshot and its original are independent: each one's writes never show in
/// the other, from either side, and both keep working as ordinary maps (handles made with
/// `Clone` of a writable snapshot share it, not the original).
#[test]
fn writable_snapshot_and_original_are_independent() {
    let map: Hamt<u64, u64> = Hamt::new();
    let mut model: Contents = (0..1_000).map(|k| (k, val(k, 0))).collect();
    for (&k, &v) in &model {
        map.insert(k, v);
    }
    let copy = map.snapshot();
    let copy_handle = copy.clone();
    let mut copy_model = model.clone();
    check_map_at_rest(&copy, &copy_model, 0..1_100, "a fresh writable snapshot");
    // Writes to the original.
    for k in (0..1_000).step_by(2) {
        map.remove(&k);
        model.remove(&k);
    }
    for k in 1_000..1_050 {
        map.insert(k, val(k, 1));
        model.insert(k, val(k, 1));
    }
    check_map_at_rest(
        &copy,
        &copy_model,
        0..1_100,
        "the snapshot after writes to the original",
    );
    // Writes to the snapshot, through both of its handles.
    for k in (1..1_000).step_by(2) {
        copy.update(k, |v| v.map(|v| v + 10));
        *copy_model.get_mut(&k).unwrap() += 10;
    }
    for k in 1_050..1_100 {
        assert!(copy_handle.insert_if_absent(k, val(k, 2)));
        copy_model.insert(k, val(k, 2));
    }
    check_map_at_rest(
        &map,
        &model,
        0..1_100,
        "the original after writes to the snapshot",
    );
    check_map_at_rest(
        &copy,
        &copy_model,
        0..1_100,
        "the snapshot after its own writes",
    );
    check_map_at_rest(
        &copy_handle,
        &copy_model,
        0..1_100,
        "another handle on the snapshot",
    );
    // Clearing one leaves the other.
    copy.clear();
    check_map_at_rest(
        &map,
        &model,
        0..1_100,
        "the original after clearing the snapshot",
    );
    check_map_at_rest(&copy, &Contents::new(), 0..1_100, "the cleared snapshot");
    map.clear();
    model.clear();
    copy.insert(5, val(5, 3));
    check_map_at_rest(
        &copy,
        &Contents::from([(5, val(5, 3))]),
        0..1_100,
        "the snapshot after clearing the original",
    );
    check_map_at_rest(&map, &model, 0..1_100, "the cleared original");
}

/// Snapshots of snapshots: a writable snapshot of a writable snapshot, a read-only snapshot
/// of a writable one, `to_map` of a read-only snapshot (twice: two independent maps), a
/// read-only snapshot of a `to_map`; each written to at each level, each checked at the end.
#[test]
fn snapshots_of_snapshots_and_to_map() {
    let map: Hamt<u64, u64> = (0..500).map(|k| (k, val(k, 0))).collect();
    let m0: Contents = (0..500).map(|k| (k, val(k, 0))).collect();
    let frozen = map.read_only_snapshot();
    let a = frozen.to_map();
    let b = frozen.to_map();
    let mut ma = m0.clone();
    let mut mb = m0.clone();
    assert_eq!(a.len(), 500, "to_map's len");
    for k in 0..100 {
        a.remove(&k);
        ma.remove(&k);
        b.insert(k + 1_000, val(k + 1_000, 1));
        mb.insert(k + 1_000, val(k + 1_000, 1));
    }
    let a_frozen = a.read_only_snapshot();
    let ma_frozen = ma.clone();
    let a2 = a.snapshot();
    let mut ma2 = ma.clone();
    for k in 100..200 {
        a2.update(k, |v| v.map(|v| v + 1));
        *ma2.get_mut(&k).unwrap() += 1;
        a.remove(&k);
        ma.remove(&k);
    }
    let a2_back = a_frozen.to_map();
    a2_back.insert(7, val(7, 7));
    let mut ma2_back = ma_frozen.clone();
    ma2_back.insert(7, val(7, 7));
    map.clear();
    let u = 0..1_200;
    check_snapshot(&frozen, &m0, u.clone(), "the first read-only snapshot");
    check_map_at_rest(&map, &Contents::new(), u.clone(), "the cleared original");
    check_map_at_rest(&a, &ma, u.clone(), "to_map a");
    check_map_at_rest(&b, &mb, u.clone(), "to_map b");
    check_snapshot(&a_frozen, &ma_frozen, u.clone(), "read-only snapshot of a");
    check_map_at_rest(&a2, &ma2, u.clone(), "writable snapshot of a");
    check_map_at_rest(
        &a2_back,
        &ma2_back,
        u.clone(),
        "to_map of the read-only snapshot of a",
    );
    check_snapshot(&b.read_only_snapshot(), &mb, u, "read-only snapshot of b");
}

/// A chain of 40 writable snapshots, each taken from the previous one after a write, with a
/// read-only snapshot at every link; dropped in a scrambled order (middle links first),
/// each checked against its model before and after the others go.
#[test]
fn chains_of_snapshots() {
    const LINKS: usize = 40;
    let first: Hamt<u64, u64> = Hamt::new();
    let mut models = vec![Contents::new()];
    let mut maps = vec![first];
    let mut frozen = Vec::new();
    for i in 0..LINKS {
        let (map, model) = (&maps[i], &mut models[i]);
        for k in (i as u64 * 10)..(i as u64 * 10 + 30) {
            map.insert(k, val(k, i as u64));
            model.insert(k, val(k, i as u64));
        }
        if i >= 2 {
            let k = (i as u64 - 2) * 10;
            map.remove(&k);
            model.remove(&k);
        }
        frozen.push((map.read_only_snapshot(), model.clone()));
        let next = map.snapshot();
        let next_model = model.clone();
        // A write to the older link after the snapshot: not in the newer one.
        map.insert(5_000 + i as u64, val(5_000 + i as u64, 0));
        model.insert(5_000 + i as u64, val(5_000 + i as u64, 0));
        maps.push(next);
        models.push(next_model);
    }
    let universe = || (0..LINKS as u64 * 10 + 30).chain(5_000..5_000 + LINKS as u64);
    let mut order: Vec<usize> = (0..=LINKS).collect();
    let mut rng = Rng::new(40);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut maps: Vec<Option<_>> = maps.into_iter().map(Some).collect();
    let mut frozen: Vec<Option<_>> = frozen.into_iter().map(Some).collect();
    for (step, &i) in order.iter().enumerate() {
        for (j, map) in maps.iter().enumerate() {
            if let Some(map) = map {
                check_map_at_rest(
                    map,
                    &models[j],
                    universe(),
                    format_args!("link {j}, drop step {step}"),
                );
            }
        }
        for (j, snap) in frozen.iter().enumerate() {
            if let Some((snap, model)) = snap {
                check_snapshot(
                    snap,
                    model,
                    universe(),
                    format_args!("read-only link {j}, drop step {step}"),
                );
            }
        }
        maps[i] = None;
        if i < LINKS {
            frozen[i] = None;
        }
    }
}

/// Where a failure of [`family`] happened.
struct Ctx<'a>(&'a str, u64, usize);

impl Display for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, seed {}, step {}", self.0, self.1, self.2)
    }
}

/// Random operations on a family of maps that descend from one another (writable snapshots,
/// `to_map` of read-only snapshots) and on read-only snapshots, each against a `BTreeMap`
/// model: every result compared, every structure compared in full every 500 steps and at
/// the end.
fn family<S: BuildHasher + Clone>(hasher: S, name: &str, seed: u64) {
    const KEYS: u64 = 300;
    const OPS: usize = 6_000;
    const MAX: usize = 8;
    let mut rng = Rng::new(seed);
    let mut maps: Vec<(Hamt<u64, u64, S>, Contents)> =
        vec![(Hamt::with_hasher(hasher), Contents::new())];
    let mut frozen: Vec<(Snapshot<u64, u64, S>, Contents)> = Vec::new();
    let check_all = |maps: &[(Hamt<u64, u64, S>, Contents)],
                     frozen: &[(Snapshot<u64, u64, S>, Contents)],
                     step: usize| {
        for (i, (map, model)) in maps.iter().enumerate() {
            check_map_at_rest(
                map,
                model,
                0..KEYS,
                format_args!("{name}, seed {seed}, step {step}, map {i}"),
            );
        }
        for (i, (snap, model)) in frozen.iter().enumerate() {
            check_snapshot(
                snap,
                model,
                0..KEYS,
                format_args!("{name}, seed {seed}, step {step}, snapshot {i}"),
            );
        }
    };
    for step in 0..OPS {
        let ctx = Ctx(name, seed, step);
        let i = rng.below(maps.len() as u64) as usize;
        let k = rng.below(KEYS);
        let v = val(k, step as u64);
        let dice = rng.below(100);
        let (map, model) = &mut maps[i];
        match dice {
            0..=24 => assert_eq!(
                map.insert(k, v).map(|e| *e),
                model.insert(k, v),
                "{ctx}: insert"
            ),
            25..=39 => assert_eq!(
                map.remove(&k).map(|e| *e),
                model.remove(&k),
                "{ctx}: remove"
            ),
            40..=49 => {
                let stored = map.update(k, |old| match old {
                    Some(o) if o % 3 == 0 => None,
                    Some(o) => Some(o + 1),
                    None => Some(v),
                });
                let expected = match model.get(&k).copied() {
                    Some(o) if o % 3 == 0 => None,
                    Some(o) => Some(o + 1),
                    None => Some(v),
                };
                match expected {
                    Some(e) => model.insert(k, e),
                    None => model.remove(&k),
                };
                assert_eq!(stored.map(|e| *e), expected, "{ctx}: update");
            }
            50..=54 => {
                let inserted = !model.contains_key(&k);
                if inserted {
                    model.insert(k, v);
                }
                assert_eq!(
                    map.insert_if_absent(k, v),
                    inserted,
                    "{ctx}: insert_if_absent"
                );
            }
            55..=59 => {
                let current = match model.get(&k) {
                    Some(&c) if rng.chance(70) => c,
                    _ => v ^ 1,
                };
                let result = map
                    .compare_exchange(k, &current, v)
                    .map(|e| *e)
                    .map_err(|e| e.map(|e| *e));
                let expected = match model.get(&k).copied() {
                    Some(c) if c == current => {
                        model.insert(k, v);
                        Ok(v)
                    }
                    other => Err(other),
                };
                assert_eq!(result, expected, "{ctx}: compare_exchange");
            }
            60..=64 => {
                let removed = map.remove_if(&k, |old| old % 2 == 0).map(|e| *e);
                let expected = match model.get(&k).copied() {
                    Some(o) if o % 2 == 0 => model.remove(&k),
                    _ => None,
                };
                assert_eq!(removed, expected, "{ctx}: remove_if");
            }
            65..=74 => {
                assert_eq!(
                    map.get(&k).map(|e| *e),
                    model.get(&k).copied(),
                    "{ctx}: get"
                );
                assert_eq!(map.len(), model.len(), "{ctx}: len");
            }
            75..=79 => {
                let copy = (map.snapshot(), model.clone());
                if maps.len() < MAX {
                    maps.push(copy);
                } else {
                    let j = rng.below(MAX as u64) as usize;
                    maps[j] = copy;
                }
            }
            80..=85 => {
                let snap = (map.read_only_snapshot(), model.clone());
                if frozen.len() < MAX {
                    frozen.push(snap);
                } else {
                    let j = rng.below(MAX as u64) as usize;
                    frozen[j] = snap;
                }
            }
            86..=88 if !frozen.is_empty() => {
                let j = rng.below(frozen.len() as u64) as usize;
                let copy = (frozen[j].0.to_map(), frozen[j].1.clone());
                if maps.len() < MAX {
                    maps.push(copy);
                } else {
                    let j = rng.below(MAX as u64) as usize;
                    maps[j] = copy;
                }
            }
            89 => {
                map.clear();
                model.clear();
            }
            90..=94 if !frozen.is_empty() => {
                let j = rng.below(frozen.len() as u64) as usize;
                let (snap, model) = &frozen[j];
                assert_eq!(snap.get(&k), model.get(&k), "{ctx}: snapshot {j} get");
                assert_eq!(snap.len(), model.len(), "{ctx}: snapshot {j} len");
            }
            _ => {
                // Drop a structure now and then (the first map stays).
                if maps.len() > 1 && rng.chance(50) {
                    let j = 1 + rng.below(maps.len() as u64 - 1) as usize;
                    maps.swap_remove(j);
                } else if !frozen.is_empty() {
                    let j = rng.below(frozen.len() as u64) as usize;
                    frozen.swap_remove(j);
                }
            }
        }
        if step % 500 == 0 {
            check_all(&maps, &frozen, step);
        }
    }
    check_all(&maps, &frozen, OPS);
}

/// [`family`] with SipHash and the four reshaping hashers (collision lists, deep chains,
/// collisions through the top levels, keys told apart only at the last level).
#[test]
fn random_operations_on_families_of_snapshots() {
    for seed in [1, 2, 3] {
        family(RandomState::new(), "SipHash", seed);
        family(Masked::CONSTANT, "constant", seed);
        family(Masked::LOW_BITS, "low 8 bits", seed);
        family(Masked::TOP_LEVELS_COLLIDE, "low 30 bits constant", seed);
        family(Masked::LAST_LEVEL_ONLY, "top 4 bits only", seed);
    }
}

/// Snapshots of an empty map are empty, stay empty, and their copies are ordinary maps.
#[test]
fn snapshots_of_an_empty_map() {
    let map: Hamt<u64, u64> = Hamt::new();
    let snap = map.read_only_snapshot();
    let copy = map.snapshot();
    map.insert(1, val(1, 0));
    assert!(snap.is_empty(), "a snapshot of an empty map");
    assert_eq!(snap.len(), 0);
    assert_eq!(snap.iter().count(), 0);
    assert!(snap.get(&1).is_none());
    assert!(copy.is_empty(), "a writable snapshot of an empty map");
    assert_eq!(copy.iter().count(), 0);
    let back = snap.to_map();
    back.insert(2, val(2, 0));
    assert_eq!(back.len(), 1);
    assert!(
        snap.is_empty(),
        "to_map's writes do not show in the snapshot"
    );
    assert_eq!(map.len(), 1);
    map.clear();
    let snap2 = map.read_only_snapshot();
    assert!(snap2.is_empty(), "a snapshot of a cleared map");
    assert_eq!(snap2.iter().count(), 0);
}

/// `Snapshot::clone` shares the snapshot: equal contents, and each clone stays readable
/// after the other clones, the map and its other snapshots are dropped. A snapshot and a
/// `Ref` read from the map keep entries alive independently.
#[test]
fn snapshot_clones_and_lifetimes() {
    let map: Hamt<String, Vec<u64>> = Hamt::new();
    for k in 0..300u64 {
        map.insert(format!("key {k}"), vec![k; 3]);
    }
    let held = map.get("key 7").unwrap();
    let snap = map.read_only_snapshot();
    let clones: Vec<_> = (0..3).map(|_| snap.clone()).collect();
    map.remove("key 7");
    map.reclaim();
    assert_eq!(
        *held,
        vec![7; 3],
        "a Ref held across a snapshot and a removal"
    );
    drop(held);
    drop(map);
    drop(snap);
    for (i, c) in clones.iter().enumerate() {
        assert_eq!(c.len(), 300, "clone {i}");
        // `get` by `&str` (Borrow), `get_key_value`.
        assert_eq!(
            c.get("key 7"),
            Some(&vec![7; 3]),
            "clone {i}: get through Borrow<str>"
        );
        assert_eq!(
            c.get_key_value("key 299").map(|(k, v)| (k.as_str(), v[0])),
            Some(("key 299", 299)),
            "clone {i}"
        );
        assert!(!c.contains_key("key 300"));
        let sum: u64 = c.iter().map(|(_, v)| v[0]).sum();
        assert_eq!(sum, (0..300).sum::<u64>(), "clone {i}: iter");
    }
    let map = clones[0].to_map();
    drop(clones);
    assert_eq!(map.len(), 300, "to_map of a snapshot whose clones are gone");
    assert_eq!(map.get("key 42").map(|e| e[0]), Some(42));
}

/// `Snapshot` is `Send` and `Sync` when its keys and values are, and can be shared by
/// reference between threads and moved to another thread.
#[test]
fn snapshots_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Snapshot<u64, String>>();
    check::<Snapshot<String, Vec<u8>, Masked>>();
    let map: Hamt<u64, u64> = (0..100).map(|k| (k, val(k, 0))).collect();
    let snap = map.read_only_snapshot();
    let moved = snap.clone();
    let handle = thread::spawn(move || moved.iter().count());
    assert_eq!(handle.join().unwrap(), 100);
    thread::scope(|s| {
        let handles = (0..2).map(|_| s.spawn(|| snap.get(&50).copied())).collect();
        assert_eq!(join_all(handles), [Some(val(50, 0)); 2]);
    });
}

// ---------------------------------------------------------------------------------------
// len and clear

/// `Snapshot::len` is exact under concurrent writes: for read-only snapshots taken while
/// three threads churn 4,000 keys, `len()` asked repeatedly (the cached fast path) equals
/// the number of entries `iter` yields and the number of keys of the universe for which
/// `contains_key` holds. A writable snapshot taken during the writes has an exact `len()`
/// too (no write is in flight on it), before and after writes of its own.
#[test]
fn snapshot_len_is_exact() {
    const KEYS: u64 = 4_000;
    const WRITERS: u64 = 3;
    let map: Hamt<u64, u64> = Hamt::new();
    for k in (0..KEYS).step_by(2) {
        map.insert(k, val(k, 0));
    }
    let stop = AtomicBool::new(false);
    // Everyone starts together, so that the snapshots overlap the writes.
    let start = Barrier::new(WRITERS as usize + 1);
    thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (map, stop, start) = (&map, &stop, &start);
                s.spawn(move || {
                    start.wait();
                    let mut rng = Rng::new(0x1E4 + w);
                    let mut ops = 0;
                    while ops < 30_000 || !stop.load(Acquire) {
                        ops += 1;
                        let k = rng.below(KEYS);
                        if rng.chance(55) {
                            drop(map.insert(k, val(k, ops)));
                        } else {
                            drop(map.remove(&k));
                        }
                    }
                })
            })
            .collect();
        let release = OnDrop(|| stop.store(true, Release));
        start.wait();
        for i in 0..200 {
            let what = format!("snapshot {i}");
            if i % 4 == 3 {
                let copy = map.snapshot();
                let mut state = read_map(&copy, &what);
                assert_eq!(
                    copy.len(),
                    state.len(),
                    "{what}: len of a writable snapshot taken during writes (none in flight on it)"
                );
                for k in KEYS..KEYS + 10 {
                    copy.insert(k, val(k, 0));
                    state.insert(k, val(k, 0));
                }
                if let Some(&k) = state.keys().next() {
                    copy.remove(&k);
                    state.remove(&k);
                }
                assert_eq!(copy.len(), state.len(), "{what}: after its own writes");
                assert_eq!(read_map(&copy, &what).len(), state.len());
                continue;
            }
            let snap = map.read_only_snapshot();
            let lens: Vec<usize> = (0..5).map(|_| snap.len()).collect();
            let state = read_snapshot(&snap, 0, &what);
            let found = (0..KEYS).filter(|k| snap.contains_key(k)).count();
            assert!(
                lens.iter().all(|&n| n == state.len()),
                "{what}: len() gave {lens:?}, iter {} entries",
                state.len()
            );
            assert_eq!(found, state.len(), "{what}: contains_key count");
            assert_eq!(snap.len(), lens[0], "{what}: len() after iterating");
        }
        drop(release);
        join_all(writers);
    });
    let state = read_map(&map, "at rest");
    assert_eq!(map.len(), state.len(), "Hamt::len at rest");
    assert_eq!(
        map.read_only_snapshot().len(),
        state.len(),
        "Snapshot::len at rest"
    );
}

/// `clear` is atomic. A clearer thread, for 150 rounds, inserts keys `0..2,000` in
/// increasing order (values of that round) and then clears the map; meanwhile an inserter
/// thread inserts keys from 100,000 up, in increasing order. So at every instant the batch
/// keys present are `0..n` of one round, and the inserter's keys present are an interval
/// (those inserted since the last clear). A clear that removed entries one by one would
/// show other sets. The main thread checks read-only snapshots and iterations (every state
/// also has a `len` equal to its entries) until the clearer is done. At rest, a snapshot
/// taken before a `clear` keeps everything, and the map is empty.
#[test]
fn clear_is_atomic_for_snapshots() {
    const BATCH: u64 = 2_000;
    const FROM: u64 = 100_000;
    const ROUNDS: u64 = 150;
    let map: Hamt<u64, u64> = Hamt::new();
    // Set when the clearer is done (or failed), and by the main thread if it fails.
    let stop = AtomicBool::new(false);
    let start = Barrier::new(3);
    let states = thread::scope(|s| {
        let clearer = {
            let (map, stop, start) = (&map, &stop, &start);
            s.spawn(move || {
                let _done = OnDrop(|| stop.store(true, Release));
                start.wait();
                for round in 1..=ROUNDS {
                    for k in 0..BATCH {
                        drop(map.insert(k, val(k, round)));
                    }
                    map.clear();
                }
            })
        };
        let inserter = {
            let (map, stop, start) = (&map, &stop, &start);
            s.spawn(move || {
                start.wait();
                let mut k = FROM;
                while !stop.load(Acquire) {
                    assert!(map.insert(k, val(k, 0)).is_none(), "inserter key {k}");
                    k += 1;
                }
            })
        };
        let release = OnDrop(|| stop.store(true, Release));
        start.wait();
        let mut i = 0;
        while i < 400 || !stop.load(Acquire) {
            i += 1;
            let what = format!("state {i} during clears");
            let state = if i % 2 == 0 {
                read_snapshot(&map.read_only_snapshot(), 0, &what)
            } else {
                read_map(&map, &what)
            };
            let batch: Vec<(u64, u64)> = state.range(0..BATCH).map(|(k, v)| (*k, *v)).collect();
            if let Some(&(last, v0)) = batch.last() {
                assert_eq!(
                    last as usize + 1,
                    batch.len(),
                    "{what}: the batch keys present are not a prefix 0..n: {} keys up to {last}",
                    batch.len()
                );
                assert!(
                    batch.iter().all(|&(_, v)| round_of(v) == round_of(v0)),
                    "{what}: batch keys of several rounds"
                );
            }
            let others: Vec<u64> = state.range(FROM..).map(|(k, _)| *k).collect();
            if let (Some(first), Some(last)) = (others.first(), others.last()) {
                assert_eq!(
                    (last - first + 1) as usize,
                    others.len(),
                    "{what}: the inserter's keys present are not an interval: {} keys in {first}..={last}",
                    others.len()
                );
            }
            assert_eq!(
                state.len(),
                batch.len() + others.len(),
                "{what}: unexpected keys"
            );
        }
        drop(release);
        join_all(vec![clearer]);
        join_all(vec![inserter]);
        i
    });
    assert!(states >= 400);
    // At rest.
    let model: Contents = (0..BATCH).map(|k| (k, val(k, 1))).collect();
    map.clear();
    for (&k, &v) in &model {
        map.insert(k, v);
    }
    let before = map.read_only_snapshot();
    let copy = map.snapshot();
    map.clear();
    assert!(map.is_empty(), "is_empty after clear");
    assert_eq!(map.len(), 0, "len after clear");
    assert_eq!(map.iter().count(), 0, "iter after clear");
    assert!(map.get(&0).is_none(), "get after clear");
    check_snapshot(
        &before,
        &model,
        0..BATCH + 10,
        "a snapshot taken before clear",
    );
    check_map_at_rest(
        &copy,
        &model,
        0..BATCH + 10,
        "a writable snapshot taken before clear",
    );
    assert_same(
        &read_snapshot(&map.read_only_snapshot(), 1, "after"),
        &Contents::new(),
        "a snapshot after clear",
    );
}

// ---------------------------------------------------------------------------------------
// Panicking user code while snapshots share entries

/// Marks the panics the test causes on purpose; the panic hook keeps them quiet.
const BOOM: &str = "intentional panic from user code (snapshot tests)";

fn quiet_intentional_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&BOOM) {
                default(info);
            }
        }));
    });
}

/// Runs `f` until it returns without panicking with [`BOOM`] (other panics go on).
fn past_booms<R>(mut f: impl FnMut() -> R) -> R {
    loop {
        match catch_unwind(AssertUnwindSafe(&mut f)) {
            Ok(r) => return r,
            Err(payload) if payload.downcast_ref::<&str>() == Some(&BOOM) => {}
            Err(payload) => resume_unwind(payload),
        }
    }
}

/// Runs `f`, which must panic with [`BOOM`].
fn expect_boom<R>(what: &str, f: impl FnOnce() -> R) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("{what}: expected a panic"),
        Err(payload) => assert!(
            payload.downcast_ref::<&str>() == Some(&BOOM),
            "{what}: panicked with something else"
        ),
    }
}

thread_local! {
    /// When set to n > 0, the n-th `Key::hash` call from now on this thread panics.
    static HASH_COUNTDOWN: Cell<u64> = const { Cell::new(0) };
}

/// Drop counts per id, of keys and of values.
struct Drops {
    keys: Vec<AtomicUsize>,
    values: Vec<AtomicUsize>,
}

const IDS: usize = 1_024;

impl Drops {
    fn new() -> Arc<Drops> {
        Arc::new(Drops {
            keys: (0..IDS).map(|_| AtomicUsize::new(0)).collect(),
            values: (0..IDS).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    fn keys(&self, ids: impl IntoIterator<Item = u64>) -> Vec<usize> {
        ids.into_iter()
            .map(|i| self.keys[i as usize].load(Relaxed))
            .collect()
    }

    fn values(&self, ids: impl IntoIterator<Item = u64>) -> Vec<usize> {
        ids.into_iter()
            .map(|i| self.values[i as usize].load(Relaxed))
            .collect()
    }
}

/// A key whose `Hash` panics when `hash_bomb` is set (or by the thread's countdown) and
/// whose `Drop` panics when `drop_bomb` is set; its drops are counted (probe keys, made
/// only to look entries up, are not).
struct Key {
    id: u64,
    hash_bomb: bool,
    drop_bomb: bool,
    drops: Option<Arc<Drops>>,
}

impl Key {
    fn new(id: u64, drop_bomb: bool, drops: &Arc<Drops>) -> Key {
        Key {
            id,
            hash_bomb: false,
            drop_bomb,
            drops: Some(drops.clone()),
        }
    }

    fn probe(id: u64) -> Key {
        Key {
            id,
            hash_bomb: false,
            drop_bomb: false,
            drops: None,
        }
    }

    fn hash_bomb(id: u64) -> Key {
        Key {
            id,
            hash_bomb: true,
            drop_bomb: false,
            drops: None,
        }
    }

    /// This key, with a `Hash` that panics.
    fn with_hash_bomb(mut self) -> Key {
        self.hash_bomb = true;
        self
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.hash_bomb || HASH_COUNTDOWN.with(|c| c.replace(c.get().saturating_sub(1)) == 1) {
            std::panic::panic_any(BOOM);
        }
        self.id.hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.id == other.id
    }
}

impl Eq for Key {}

impl Drop for Key {
    fn drop(&mut self) {
        if let Some(d) = &self.drops {
            d.keys[self.id as usize].fetch_add(1, Relaxed);
        }
        if self.drop_bomb && !thread::panicking() {
            std::panic::panic_any(BOOM);
        }
    }
}

/// A value whose `Drop` panics when `bomb` is set; its drops are counted per id.
struct Value {
    id: u64,
    bomb: bool,
    drops: Arc<Drops>,
}

impl Drop for Value {
    fn drop(&mut self) {
        self.drops.values[self.id as usize].fetch_add(1, Relaxed);
        if self.bomb && !thread::panicking() {
            std::panic::panic_any(BOOM);
        }
    }
}

/// Checks that `ids` are exactly the entries reachable through `get` of the probe keys
/// `0..IDS` in a snapshot (value ids equal key ids).
fn check_ids<S: BuildHasher + Clone>(
    snap: &Snapshot<Key, Value, S>,
    ids: &BTreeSet<u64>,
    what: &str,
) {
    let found: BTreeSet<u64> = snap
        .iter()
        .map(|(k, v)| {
            assert_eq!(k.id, v.id, "{what}: entry mixed up");
            k.id
        })
        .collect();
    assert!(found == *ids, "{what}: holds {found:?}, expected {ids:?}");
    assert_eq!(snap.len(), ids.len(), "{what}: len");
    for id in 0..IDS as u64 {
        assert_eq!(
            snap.get(&Key::probe(id)).map(|v| v.id),
            ids.get(&id).copied(),
            "{what}: get({id})"
        );
    }
}

fn check_map_ids<S: BuildHasher + Clone>(
    map: &Hamt<Key, Value, S>,
    ids: &BTreeSet<u64>,
    what: &str,
) {
    check_ids(&map.read_only_snapshot(), ids, what);
    assert_eq!(map.len(), ids.len(), "{what}: Hamt::len");
}

/// Keys whose `Hash` panics, and keys and values whose `Drop` panics, in a map with a
/// read-only and a writable snapshot sharing its entries. Hash panics (on `get`,
/// `contains_key`, `get_key_value` of the snapshot; on writes to the map and to the
/// writable snapshot; at the n-th hash of an operation) propagate and leave all three
/// unchanged. Entries removed from the map, or cleared from the writable snapshot, are not
/// dropped while a snapshot still holds them (it still reads them); once the last holder
/// goes, each panicking key and value is dropped exactly once, as is every other key and
/// value created, and the panics surface without corrupting anything.
fn panicking_user_code<S: BuildHasher + Clone>(hasher: S, name: &str) {
    quiet_intentional_panics();
    let drops = Drops::new();
    let value = |id: u64, bomb: bool| Value {
        id,
        bomb,
        drops: drops.clone(),
    };
    let map: Hamt<Key, Value, S> = Hamt::with_hasher(hasher);
    let mut ids: BTreeSet<u64> = BTreeSet::new();
    let mut created: BTreeSet<u64> = BTreeSet::new();
    for id in 0..100 {
        map.insert(Key::new(id, false, &drops), value(id, false));
        ids.insert(id);
        created.insert(id);
    }
    let bombs = 100..110u64;
    for id in bombs.clone() {
        map.insert(Key::new(id, true, &drops), value(id, true));
        ids.insert(id);
        created.insert(id);
    }
    let frozen = map.read_only_snapshot();
    let writable = map.snapshot();
    let frozen_ids = ids.clone();
    let mut writable_ids = ids.clone();

    // Hashes that panic.
    expect_boom("Snapshot::get", || frozen.get(&Key::hash_bomb(5)).is_some());
    expect_boom("Snapshot::contains_key", || {
        frozen.contains_key(&Key::hash_bomb(5))
    });
    expect_boom("Snapshot::get_key_value", || {
        frozen.get_key_value(&Key::hash_bomb(5)).is_some()
    });
    created.insert(200);
    expect_boom("insert into the map", || {
        map.insert(
            Key::new(200, false, &drops).with_hash_bomb(),
            value(200, false),
        )
        .is_some()
    });
    created.insert(201);
    expect_boom("insert into the writable snapshot", || {
        writable
            .insert(
                Key::new(201, false, &drops).with_hash_bomb(),
                value(201, false),
            )
            .is_some()
    });
    expect_boom("remove from the writable snapshot", || {
        writable.remove(&Key::hash_bomb(5)).is_some()
    });
    for n in 1..4u64 {
        let id = 300 + n;
        created.insert(id);
        HASH_COUNTDOWN.with(|c| c.set(n));
        let result = catch_unwind(AssertUnwindSafe(|| {
            drop(writable.insert(Key::new(id, false, &drops), value(id, false)));
        }));
        HASH_COUNTDOWN.with(|c| c.set(0));
        if result.is_ok() || writable.contains_key(&Key::probe(id)) {
            writable_ids.insert(id);
        }
    }
    check_map_ids(&map, &ids, &format!("{name}: the map after hash panics"));
    check_ids(
        &frozen,
        &frozen_ids,
        &format!("{name}: the read-only snapshot after hash panics"),
    );
    check_map_ids(
        &writable,
        &writable_ids,
        &format!("{name}: the writable snapshot after hash panics"),
    );
    assert_eq!(
        drops.keys([200, 201]),
        [1, 1],
        "{name}: keys of inserts whose hash panicked"
    );
    assert_eq!(
        drops.values([200, 201]),
        [1, 1],
        "{name}: values of inserts whose hash panicked"
    );

    // Remove the panicking entries from the map: the snapshots still hold them.
    for id in bombs.clone() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(map.remove(&Key::probe(id)))));
        ids.remove(&id);
    }
    while catch_unwind(AssertUnwindSafe(|| map.reclaim())).is_err() {}
    assert_eq!(
        (drops.keys(bombs.clone()), drops.values(bombs.clone())),
        (vec![0; 10], vec![0; 10]),
        "{name}: entries removed from the map were dropped while snapshots still hold them"
    );
    check_ids(
        &frozen,
        &frozen_ids,
        &format!("{name}: the read-only snapshot after removals from the map"),
    );
    // Clear the writable snapshot: the read-only one still holds them.
    let _ = catch_unwind(AssertUnwindSafe(|| writable.clear()));
    while catch_unwind(AssertUnwindSafe(|| writable.reclaim())).is_err() {}
    check_map_ids(
        &writable,
        &BTreeSet::new(),
        &format!("{name}: the cleared writable snapshot"),
    );
    assert_eq!(
        (drops.keys(bombs.clone()), drops.values(bombs.clone())),
        (vec![0; 10], vec![0; 10]),
        "{name}: entries cleared from a writable snapshot were dropped while a read-only \
         snapshot still holds them"
    );
    check_ids(
        &frozen,
        &frozen_ids,
        &format!("{name}: the read-only snapshot after the writable one was cleared"),
    );
    check_map_ids(
        &map,
        &ids,
        &format!("{name}: the map after clearing its writable snapshot"),
    );
    // Drop the snapshots: the panicking entries go now (the panics may surface here or at
    // the next reclamation).
    let _ = catch_unwind(AssertUnwindSafe(|| drop(writable)));
    let _ = catch_unwind(AssertUnwindSafe(|| drop(frozen)));
    while catch_unwind(AssertUnwindSafe(|| map.reclaim())).is_err() {}
    assert_eq!(
        (drops.keys(bombs.clone()), drops.values(bombs.clone())),
        (vec![1; 10], vec![1; 10]),
        "{name}: drops of the panicking keys and values once no one holds them"
    );
    check_map_ids(
        &map,
        &ids,
        &format!("{name}: the map after its snapshots were dropped"),
    );
    // The writable snapshot's own entries went with it.
    let own: Vec<u64> = writable_ids
        .iter()
        .copied()
        .filter(|id| *id > 300)
        .collect();
    assert_eq!(
        drops.keys(own.clone()),
        vec![1; own.len()],
        "{name}: keys written only to the writable snapshot"
    );
    drop(map);
    let created: Vec<u64> = created.into_iter().collect();
    assert_eq!(
        (drops.keys(created.clone()), drops.values(created.clone())),
        (vec![1; created.len()], vec![1; created.len()]),
        "{name}: every key and value dropped exactly once in the end (ids {created:?})"
    );
}

/// See [`panicking_user_code`]; with SipHash and with a constant hasher (one collision
/// list).
#[test]
fn panicking_hash_and_drop_while_snapshots_share_entries() {
    panicking_user_code(RandomState::new(), "SipHash");
    panicking_user_code(Masked::CONSTANT, "constant");
}

/// Values whose `Drop` panics, removed by two threads while a third takes snapshots that it
/// reads and drops: the panics are caught on whichever thread they surface, and in the end
/// every value was dropped exactly once and the map holds the rest.
#[test]
fn panicking_drops_under_concurrent_snapshots() {
    quiet_intentional_panics();
    const N: u64 = 800;
    let drops = Drops::new();
    let map: Hamt<Key, Value> = Hamt::new();
    for id in 0..N {
        map.insert(
            Key::new(id, false, &drops),
            Value {
                id,
                bomb: id % 4 == 0,
                drops: drops.clone(),
            },
        );
    }
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let removers: Vec<_> = (0..2u64)
            .map(|t| {
                let map = &map;
                s.spawn(move || {
                    for id in (t..N / 2).step_by(2) {
                        let _ =
                            catch_unwind(AssertUnwindSafe(|| drop(map.remove(&Key::probe(id)))));
                    }
                    while catch_unwind(AssertUnwindSafe(|| map.reclaim())).is_err() {}
                })
            })
            .collect();
        let taker = {
            let (map, stop) = (&map, &stop);
            s.spawn(move || {
                let mut n = 0;
                while n < 50 || !stop.load(Acquire) {
                    n += 1;
                    // Any call here that retires may run a scan, and a scan frees what every
                    // thread retired: the removers' bombs can go off in any of them.
                    let snap = past_booms(|| map.read_only_snapshot());
                    let (count, len) = past_booms(|| {
                        (
                            snap.iter().filter(|(k, v)| k.id == v.id).count(),
                            snap.len(),
                        )
                    });
                    assert_eq!(count, len, "entries mixed up, or len inexact");
                    assert!(
                        past_booms(|| (N / 2..N).all(|id| snap.contains_key(&Key::probe(id)))),
                        "a key no one removes is missing from a snapshot"
                    );
                    let copy = past_booms(|| map.snapshot());
                    let last = Key::probe(N - 1);
                    // A bomb may go off before the removal takes effect or after it: retry
                    // while the key is still there (no one else writes to `copy`).
                    let removed = loop {
                        match catch_unwind(AssertUnwindSafe(|| copy.remove(&last).is_some())) {
                            Ok(removed) => break removed,
                            Err(payload) if payload.downcast_ref::<&str>() != Some(&BOOM) => {
                                resume_unwind(payload)
                            }
                            Err(_) if !past_booms(|| copy.contains_key(&last)) => break true,
                            Err(_) => {}
                        }
                    };
                    assert!(removed, "a copy lost a key no one removes");
                    // The last holder of removed values may be either: their drops (some
                    // panicking) may run here.
                    let _ = catch_unwind(AssertUnwindSafe(|| drop(snap)));
                    let _ = catch_unwind(AssertUnwindSafe(|| drop(copy)));
                }
            })
        };
        join_all(removers);
        stop.store(true, Release);
        join_all(vec![taker]);
    });
    while catch_unwind(AssertUnwindSafe(|| map.reclaim())).is_err() {}
    let rest: BTreeSet<u64> = (N / 2..N).collect();
    check_map_ids(&map, &rest, "after concurrent removals beside snapshots");
    assert_eq!(
        drops.values(0..N / 2),
        vec![1; N as usize / 2],
        "removed values dropped once"
    );
    assert_eq!(
        drops.keys(0..N / 2),
        vec![1; N as usize / 2],
        "removed keys dropped once"
    );
    let _ = catch_unwind(AssertUnwindSafe(|| drop(map)));
    assert_eq!(
        drops.values(0..N),
        vec![1; N as usize],
        "every value dropped once"
    );
    assert_eq!(
        drops.keys(0..N),
        vec![1; N as usize],
        "every key dropped once"
    );
}
