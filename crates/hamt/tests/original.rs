//! The original (2014) project's tests, ported: 50,000 keys per thread, run on one thread
//! and on eight.
//!
//! - insert every key, then find every key (with `insert` and, as the original's insert
//!   did, with `insert_if_absent`);
//! - remove every key: none is found afterwards and the map is empty;
//! - interleaved: each thread alternately inserts and removes its own keys; the final
//!   contents are exactly the keys that were inserted last.
//!
//! Thread `t` owns keys `t * KEYS .. (t + 1) * KEYS`; the value of key `k` is `!k`, so a
//! value read back also says which key it belongs to.
#![cfg(not(loom))]

mod common;

use common::join_all;
use concurrent_hamt::Hamt;
use std::thread;

const KEYS: u64 = 50_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Insert {
    /// `insert`: insert or replace, returning the previous entry.
    Replace,
    /// `insert_if_absent`: the original's semantics.
    IfAbsent,
}

fn keys(thread: u64) -> impl Iterator<Item = u64> {
    thread * KEYS..(thread + 1) * KEYS
}

fn value_of(key: u64) -> u64 {
    !key
}

/// Runs `f(thread)` on `threads` threads at once (on the caller's thread when there is
/// one), joining them explicitly.
fn on_threads(threads: u64, f: impl Fn(u64) + Sync) {
    if threads == 1 {
        return f(0);
    }
    thread::scope(|s| {
        let f = &f;
        let handles = (0..threads).map(|t| s.spawn(move || f(t))).collect();
        join_all(handles);
    });
}

fn insert_all(map: &Hamt<u64, u64>, thread: u64, how: Insert) {
    for k in keys(thread) {
        match how {
            Insert::Replace => {
                let prev = map.insert(k, value_of(k));
                assert!(prev.is_none(), "key {k} was already present: {prev:?}");
            }
            Insert::IfAbsent => {
                assert!(
                    map.insert_if_absent(k, value_of(k)),
                    "key {k} already present"
                );
            }
        }
    }
}

fn find_all(map: &Hamt<u64, u64>, thread: u64) {
    for k in keys(thread) {
        let entry = map.get(&k).unwrap_or_else(|| panic!("key {k} not found"));
        assert_eq!((*entry.key(), *entry), (k, value_of(k)));
        assert!(map.contains_key(&k));
    }
}

fn remove_all(map: &Hamt<u64, u64>, thread: u64) {
    for k in keys(thread) {
        let removed = map
            .remove(&k)
            .unwrap_or_else(|| panic!("key {k} not removed"));
        assert_eq!((*removed.key(), *removed.value()), (k, value_of(k)));
        drop(removed);
        assert!(map.get(&k).is_none(), "key {k} found after its removal");
    }
}

fn insert_then_find(threads: u64, how: Insert) {
    let map = Hamt::new();
    on_threads(threads, |t| insert_all(&map, t, how));
    assert_eq!(map.len(), (threads * KEYS) as usize);
    on_threads(threads, |t| find_all(&map, t));
    // Keys nobody inserted are absent.
    for k in threads * KEYS..threads * KEYS + 1_000 {
        assert!(map.get(&k).is_none());
    }
    // A second insert of a present key does not insert it again.
    if how == Insert::IfAbsent {
        on_threads(threads, |t| {
            for k in keys(t).step_by(97) {
                assert!(!map.insert_if_absent(k, 0), "key {k} inserted twice");
                assert_eq!(*map.get(&k).unwrap(), value_of(k), "value of {k} replaced");
            }
        });
    }
    assert_eq!(map.len(), (threads * KEYS) as usize);
}

fn remove_everything(threads: u64, how: Insert) {
    let map = Hamt::new();
    on_threads(threads, |t| insert_all(&map, t, how));
    on_threads(threads, |t| remove_all(&map, t));
    on_threads(threads, |t| {
        for k in keys(t) {
            assert!(map.get(&k).is_none(), "key {k} found after remove-all");
            assert!(map.remove(&k).is_none(), "key {k} removed twice");
        }
    });
    assert_eq!(map.len(), 0);
    assert!(map.is_empty());
    assert_eq!(map.iter().count(), 0);
    map.reclaim();
    assert_eq!(map.stats().pending, 0, "garbage left after remove-all");
}

/// Each thread walks its keys: insert key `i`, and after every odd `i` remove key `i - 1`.
/// At the end exactly the odd-indexed keys are present.
fn interleaved(threads: u64, how: Insert) {
    let map = Hamt::new();
    on_threads(threads, |t| {
        let base = t * KEYS;
        for i in 0..KEYS {
            let k = base + i;
            match how {
                Insert::Replace => assert!(map.insert(k, value_of(k)).is_none()),
                Insert::IfAbsent => assert!(map.insert_if_absent(k, value_of(k))),
            }
            if i % 2 == 1 {
                let gone = k - 1;
                let removed = map.remove(&gone).expect("the previous key is present");
                assert_eq!(*removed, value_of(gone));
                drop(removed);
                assert!(map.get(&gone).is_none());
                assert_eq!(*map.get(&k).expect("just inserted"), value_of(k));
            }
        }
    });
    assert_eq!(map.len(), (threads * KEYS / 2) as usize);
    on_threads(threads, |t| {
        for i in 0..KEYS {
            let k = t * KEYS + i;
            let found = map.get(&k).map(|e| *e);
            let expected = (i % 2 == 1).then(|| value_of(k));
            assert_eq!(found, expected, "key {k}");
        }
    });
    let mut present: Vec<u64> = map.iter().map(|e| *e.key()).collect();
    present.sort_unstable();
    let expected: Vec<u64> = (0..threads * KEYS).filter(|k| k % 2 == 1).collect();
    assert!(
        present == expected,
        "iter does not yield exactly the odd keys"
    );
}

#[test]
fn sequential_insert_then_find() {
    insert_then_find(1, Insert::Replace);
}

#[test]
fn sequential_insert_if_absent_then_find() {
    insert_then_find(1, Insert::IfAbsent);
}

#[test]
fn sequential_remove_all() {
    remove_everything(1, Insert::Replace);
}

#[test]
fn sequential_interleaved_insert_and_remove() {
    interleaved(1, Insert::IfAbsent);
}

#[test]
fn parallel_insert_then_find() {
    insert_then_find(8, Insert::Replace);
}

#[test]
fn parallel_insert_if_absent_then_find() {
    insert_then_find(8, Insert::IfAbsent);
}

#[test]
fn parallel_remove_all() {
    remove_everything(8, Insert::IfAbsent);
}

#[test]
fn parallel_interleaved_insert_and_remove() {
    interleaved(8, Insert::Replace);
}
