//! loom models of the trie's CAS steps: insert against remove against contraction (tomb and
//! parent cleaning), on two or three keys that share a subtree, with a concurrent reader.
//! Runs on the hazard crate's fallback fence (see its `fence` module).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p concurrent-hamt --test loom --release`
#![cfg(loom)]

use concurrent_hamt::Hamt;
use loom::sync::atomic::AtomicUsize;
use loom::sync::Arc;
use loom::thread;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering::Relaxed;

/// Hashes a `u64` key to itself, so that the models place keys in chosen slots.
#[derive(Clone, Copy, Default)]
struct Identity;

struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl BuildHasher for Identity {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

/// Runs a model with room for the many atomic steps of a trie operation (every protection,
/// validation and scan is one).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    builder.check(f);
}

/// A value that counts its drops, to check that nothing is freed twice or leaked.
struct Counted(u64, Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Relaxed);
    }
}

// Keys 1, 33 and 65 share slot 1 at the root and part at the next level (slots 0, 1, 2).
const A: u64 = 1;
const B: u64 = 33;
const C: u64 = 65;

/// Removing B leaves A alone below the root: its CNode becomes a tomb, and the root's slot is
/// folded back to the leaf A, while another thread inserts C into the same subtree and a
/// reader looks A up. A is always found; the end state is {A, C}; every value is dropped once.
#[test]
fn insert_against_remove_and_contraction() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map: Hamt<u64, Counted, Identity> = Hamt::with_hasher(Identity);
        map.insert(A, Counted(10, drops.clone()));
        map.insert(B, Counted(20, drops.clone()));
        let remover = {
            let map = map.clone();
            thread::spawn(move || {
                assert_eq!(map.remove(&B).map(|r| r.0), Some(20));
            })
        };
        let inserter = {
            let (map, drops) = (map.clone(), drops.clone());
            thread::spawn(move || {
                assert!(map.insert(C, Counted(30, drops)).is_none());
            })
        };
        assert_eq!(map.get(&A).map(|r| r.0), Some(10), "A is never lost");
        remover.join().unwrap();
        inserter.join().unwrap();
        let mut keys: Vec<u64> = map.iter().map(|r| *r.key()).collect();
        keys.sort_unstable();
        assert_eq!(keys, [A, C]);
        assert_eq!(map.len(), 2);
        assert!(map.get(&B).is_none());
        drop(map);
        assert_eq!(drops.load(Relaxed), 3, "every value dropped exactly once");
    });
}

/// Two removals race to contract the same subtree (each may find the other's tomb and fold
/// it); the survivor stays.
#[test]
fn concurrent_removals_contract_once() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map: Hamt<u64, Counted, Identity> = Hamt::with_hasher(Identity);
        for k in [A, B, C] {
            map.insert(k, Counted(k, drops.clone()));
        }
        let removers: Vec<_> = [B, C]
            .into_iter()
            .map(|k| {
                let map = map.clone();
                thread::spawn(move || assert_eq!(map.remove(&k).map(|r| r.0), Some(k)))
            })
            .collect();
        for r in removers {
            r.join().unwrap();
        }
        assert_eq!(map.iter().map(|r| *r.key()).collect::<Vec<_>>(), [A]);
        assert_eq!(map.len(), 1);
        drop(map);
        assert_eq!(drops.load(Relaxed), 3);
    });
}

/// Concurrent read-modify-writes on one key never lose an increment.
#[test]
fn updates_on_one_key_sum_exactly() {
    model(|| {
        let map: Hamt<u64, u64, Identity> = Hamt::with_hasher(Identity);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let map = map.clone();
                thread::spawn(move || {
                    map.update(A, |v| Some(v.copied().unwrap_or(0) + 1));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(map.get(&A).map(|r| *r), Some(2));
    });
}
