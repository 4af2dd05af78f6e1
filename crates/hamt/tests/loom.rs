//! loom models of the trie's CAS steps: insert against remove against contraction (tomb and
//! parent cleaning), on two or three keys that share a subtree, with a concurrent reader;
//! lookups alone against a fold and against a pair pushed down (reader on the spawned
//! thread); and the snapshot steps: a write's GCAS (below the root and at the root) against a
//! concurrent snapshot's root swap, and two snapshots' RDCSS root swaps against an insert.
//! Runs on the hazard crate's fallback fence (see its `fence` module). The maps' domains scan
//! only where a model calls `reclaim` (see `raw::new_domain`): the scan protocol is proven by
//! the hazard crate's models; here one scan per model runs against the trie's operations.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p concurrent-hamt --test loom --release`
#![cfg(loom)]

use concurrent_hamt::{Hamt, Snapshot};
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

/// This thread's CPU time so far, in seconds (Linux): a model runs on one thread, so this is
/// its cost whatever the load of the machine.
fn thread_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Runs a model with room for the many atomic steps of a trie operation (every protection,
/// validation and scan is one).
/// Reports the model's size on stderr: `loom model NAME: bound B, N iterations, T s (CPU C s)` (see
/// `scripts/loom.sh`).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = iterations.clone();
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    let start = std::time::Instant::now();
    let cpu = thread_cpu();
    builder.check(move || {
        // Relaxed: a std atomic outside the model, counting its iterations (all run on
        // this thread, one after another); read once the model is done.
        counter.fetch_add(1, Relaxed);
        f();
    });
    let cpu = match (cpu, thread_cpu()) {
        (Some(a), Some(b)) => format!(" (CPU {:.1} s)", b - a),
        _ => String::new(),
    };
    eprintln!(
        "loom model {}: bound {}, {} iterations, {:.1} s{cpu}",
        std::thread::current().name().unwrap_or("?"),
        builder
            .preemption_bound
            .map_or("none".to_string(), |b| b.to_string()),
        iterations.load(Relaxed),
        start.elapsed().as_secs_f64()
    );
}

/// A scan of the map's domain while other threads run, on the fallback fence. Under
/// `--cfg hazard_loom_asymmetric` (readers without a fence, as on the membarrier fast path,
/// and a reclaimer fence that loom can model only on the reclaimer's side; see the hazard
/// crate's `fence` module) nothing: a scan concurrent with readers is then outside what the
/// model can prove, and these runs check the trie's own orderings (node contents are loom
/// cells) instead. Everything is still freed, by the final drops after the joins.
fn concurrent_scan(map: &Map) {
    if !cfg!(hazard_loom_asymmetric) {
        map.reclaim();
    }
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
        // One scan, concurrent with the writers (the model's domain scans only when asked).
        concurrent_scan(&map);
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
                thread::spawn(move || {
                    assert_eq!(map.remove(&k).map(|r| r.0), Some(k));
                    if k == B {
                        // A scan concurrent with the other removal.
                        concurrent_scan(&map);
                    }
                })
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

// ---------------------------------------------------------------------------------------
// Snapshots

/// Keys alone in their root slots (2 and 3): writes to them GCAS the root INode's main node.
const D: u64 = 2;
const E: u64 = 3;

type Map = Hamt<u64, Counted, Identity>;

/// The keys of a read-only snapshot, sorted; checks that each value is its key's and that
/// `len` agrees with `iter`.
fn snapshot_keys(snap: &Snapshot<u64, Counted, Identity>) -> Vec<u64> {
    let mut keys: Vec<u64> = snap
        .iter()
        .map(|(k, v)| {
            assert_eq!(v.0, *k, "the snapshot's value of key {k}");
            *k
        })
        .collect();
    keys.sort_unstable();
    assert_eq!(
        snap.len(),
        keys.len(),
        "the snapshot's len against its iter"
    );
    keys
}

/// The keys of a map, sorted (through `Hamt::iter`, itself a snapshot).
fn map_keys(map: &Map) -> Vec<u64> {
    let mut keys: Vec<u64> = map.iter().map(|r| *r.key()).collect();
    keys.sort_unstable();
    keys
}

/// A map holding `keys`, each with its own value.
fn map_of(keys: &[u64], drops: &Arc<AtomicUsize>) -> Map {
    let map = Hamt::with_hasher(Identity);
    for &k in keys {
        map.insert(k, Counted(k, drops.clone()));
    }
    map
}

/// GCAS against a concurrent snapshot: a thread runs `write` on a map holding `before`
/// (leaving `after`, having created `created` values), while the main thread takes a
/// read-only snapshot and reads it twice. The snapshot holds `before` or `after`, the same
/// on every read, also after the join; the map holds `after`; every value is dropped exactly
/// once when the map and the snapshot are dropped (the snapshot last if `snapshot_last`).
/// With `older`, a snapshot taken before the threads start is held throughout (so the
/// write first copies its path out of the older generation) and checked at the end. With
/// `cached`, the map has a level cache whose slots were filled by a lookup of each key (so
/// that the write starts from a cached INode).
fn write_against_snapshot(
    before: &'static [u64],
    write: fn(&Map, &Arc<AtomicUsize>),
    after: &'static [u64],
    created: usize,
    snapshot_last: bool,
    older: bool,
    cached: bool,
) {
    model(move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = if cached {
            let map = cached_map_of(before, &drops);
            for k in before {
                assert!(map.get(k).is_some());
            }
            map
        } else {
            map_of(before, &drops)
        };
        let older = older.then(|| map.read_only_snapshot());
        let writer = {
            let (map, drops) = (map.clone(), drops.clone());
            thread::spawn(move || write(&map, &drops))
        };
        let snap = map.read_only_snapshot();
        let seen = snapshot_keys(&snap);
        assert!(
            seen == before || seen == after,
            "the snapshot holds {seen:?}: neither {before:?} (before the write) nor {after:?}"
        );
        // One scan, concurrent with the write (the model's domain scans only when asked).
        concurrent_scan(&map);
        assert_eq!(
            snapshot_keys(&snap),
            seen,
            "the snapshot changed between two reads"
        );
        writer.join().unwrap();
        assert_eq!(
            snapshot_keys(&snap),
            seen,
            "the snapshot changed after the join"
        );
        assert_eq!(map_keys(&map), after, "the map after the write");
        assert_eq!(map.len(), after.len());
        if snapshot_last {
            drop(map);
            assert_eq!(
                snapshot_keys(&snap),
                seen,
                "the snapshot after the map is dropped"
            );
            drop(snap);
        } else {
            drop(snap);
            assert_eq!(
                map_keys(&map),
                after,
                "the map after the snapshot is dropped"
            );
            drop(map);
        }
        if let Some(older) = older {
            assert_eq!(
                snapshot_keys(&older),
                before,
                "the snapshot taken before the write"
            );
        }
        assert_eq!(
            drops.load(Relaxed),
            before.len() + created,
            "every value dropped exactly once"
        );
    });
}

/// GCAS below the root against a snapshot: A and B share a subtree (a non-root INode);
/// inserting C writes that INode's main node (after copying the path into the new
/// generation, if the snapshot's root swap came first). The snapshot is dropped last.
#[test]
fn gcas_below_the_root_against_a_snapshot() {
    write_against_snapshot(
        &[A, B],
        |map, drops| assert!(map.insert(C, Counted(C, drops.clone())).is_none()),
        &[A, B, C],
        1,
        true,
        false,
        false,
    );
}

/// As above, while an older snapshot holds the subtree: the insert first copies the path
/// into the map's generation (renewing the subtree's INode by a GCAS of the root's main
/// node), racing the new snapshot's root swap. The older snapshot never changes.
#[test]
fn renewal_below_the_root_against_a_snapshot() {
    write_against_snapshot(
        &[A, B],
        |map, drops| assert!(map.insert(C, Counted(C, drops.clone())).is_none()),
        &[A, B, C],
        1,
        true,
        true,
        false,
    );
}

/// As above with a removal: removing B leaves A alone below the root, so the subtree's
/// INode becomes a tomb and the root's slot is cleaned (GCAS at both levels). The map is
/// dropped last.
#[test]
fn removal_and_contraction_against_a_snapshot() {
    write_against_snapshot(
        &[A, B],
        |map, _| assert_eq!(map.remove(&B).map(|r| r.0), Some(B)),
        &[A],
        0,
        false,
        false,
        false,
    );
}

/// GCAS of the root INode's main node (D has a root slot of its own) against the
/// snapshot's RDCSS on the root pointer. The snapshot is dropped last.
#[test]
fn gcas_at_the_root_against_a_snapshot() {
    write_against_snapshot(
        &[A],
        |map, drops| assert!(map.insert(D, Counted(D, drops.clone())).is_none()),
        &[A, D],
        1,
        true,
        false,
        false,
    );
}

/// RDCSS on the root: one thread takes a writable snapshot and writes E into it, another
/// takes a read-only snapshot, while the main thread inserts D into the map. Each snapshot
/// holds the map before or after the insert (the writable one, plus E, and the same as its
/// first read said); the map never shows E; every value is dropped exactly once once the
/// map and both snapshots are dropped.
#[test]
fn two_snapshots_against_an_insert() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = map_of(&[A], &drops);
        let writable = {
            let (map, drops) = (map.clone(), drops.clone());
            thread::spawn(move || {
                let copy = map.snapshot();
                let had_d = copy.contains_key(&D);
                // A write to the copy, racing the map's insert and the other snapshot (the
                // copy's contents are checked after the join).
                assert!(copy.insert(E, Counted(E, drops)).is_none());
                (copy, had_d)
            })
        };
        let frozen = {
            let map = map.clone();
            thread::spawn(move || {
                let snap = map.read_only_snapshot();
                let seen = snapshot_keys(&snap);
                assert!(
                    seen == [A] || seen == [A, D],
                    "the read-only snapshot holds {seen:?}"
                );
                (snap, seen)
            })
        };
        assert!(map.insert(D, Counted(D, drops.clone())).is_none());
        // One scan, concurrent with the snapshots (the model's domain scans only when asked).
        concurrent_scan(&map);
        let (copy, had_d) = writable.join().unwrap();
        let (snap, seen) = frozen.join().unwrap();
        assert_eq!(map_keys(&map), [A, D], "the map after the insert");
        assert_eq!(snapshot_keys(&snap), seen, "the read-only snapshot changed");
        let expected: &[u64] = if had_d { &[A, D, E] } else { &[A, E] };
        assert_eq!(map_keys(&copy), expected, "the writable snapshot");
        assert_eq!(copy.len(), expected.len(), "the writable snapshot's len");
        drop(map);
        assert_eq!(
            snapshot_keys(&snap),
            seen,
            "the read-only snapshot after the map went"
        );
        drop(copy);
        drop(snap);
        assert_eq!(
            drops.load(Relaxed),
            3,
            "every value (A, D, E) dropped exactly once"
        );
    });
}

// ---------------------------------------------------------------------------------------
// Buckets, folding through the parent, and the inline layout
//
// A slot holds one entry or a pair (a bucket); a third key with the same slot pushes the
// pair down into a new INode, and a removal that leaves a CNode below the root with at most
// two entries and no child makes it a tomb, which the remover folds into the parent it still
// protects. With A, B and C (slot 1 at the root, slots 0, 1, 2 one level down): {A, B} is a
// pair at the root; {A, B, C} a child INode; removing one of the three entombs the child.

/// F shares the root slot of A, B and C, and slot 3 one level down.
const F: u64 = 97;

/// A pair pushed down by a third key while another thread removes one of the pair and a
/// reader looks up the other: the reader always finds B; the end state is {B, C}; every
/// value is dropped once.
#[test]
fn pair_pushed_down_against_a_removal() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = map_of(&[A, B], &drops);
        let inserter = {
            let (map, drops) = (map.clone(), drops.clone());
            thread::spawn(move || {
                assert!(map.insert(C, Counted(C, drops)).is_none());
            })
        };
        let remover = {
            let map = map.clone();
            thread::spawn(move || {
                assert_eq!(map.remove(&A).map(|r| r.0), Some(A));
            })
        };
        assert_eq!(map.get(&B).map(|r| r.0), Some(B), "B is never lost");
        concurrent_scan(&map);
        inserter.join().unwrap();
        remover.join().unwrap();
        assert_eq!(map_keys(&map), [B, C]);
        assert_eq!(map.len(), 2);
        drop(map);
        assert_eq!(drops.load(Relaxed), 3, "every value dropped exactly once");
    });
}

/// A removal entombs the child INode of {A, B, C} and folds it into the root (through the
/// parent the remover still protects), while another thread inserts F into the same subtree:
/// F lands in the child before the fold, or in the root's pair after it (pushing it down
/// again). The end state is {A, B, F}; every value is dropped once.
#[test]
fn fold_through_the_parent_against_an_insert() {
    insert_of_f_against_removal_of_c(|drops| map_of(&[A, B, C], drops));
}

/// On the map `make` builds of {A, B, C}: a spawned thread inserts F while the main thread
/// removes C (entombing the child INode of the three, which the removal folds). The end state
/// is {A, B, F}; every value is dropped once.
fn insert_of_f_against_removal_of_c(make: fn(&Arc<AtomicUsize>) -> Map) {
    model(move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = make(&drops);
        let inserter = {
            let (map, drops) = (map.clone(), drops.clone());
            thread::spawn(move || {
                assert!(map.insert(F, Counted(F, drops)).is_none());
            })
        };
        assert_eq!(map.remove(&C).map(|r| r.0), Some(C));
        concurrent_scan(&map);
        inserter.join().unwrap();
        assert_eq!(map_keys(&map), [A, B, F]);
        assert_eq!(map.len(), 3);
        assert!(map.get(&C).is_none());
        drop(map);
        assert_eq!(drops.load(Relaxed), 4, "every value dropped exactly once");
    });
}

/// The inline layout: a `Ref` to an entry stored in a main node protects that node. A reader
/// holds a `Ref` to A while a writer replaces A, pushes the pair {A, B} down (inserting C) and
/// scans: the `Ref` reads A's value of the moment it was taken (the node it points into is
/// not freed under it: loom checks the node's contents against its free); the map ends with
/// the new value.
///
/// The reader is the spawned thread and the writer the main thread, which loom runs first:
/// loom 0.7 keeps one last access per atomic for its partial-order reduction, so when the
/// thread that runs first only loads an INode's `main` and the other then loads it itself
/// before its CAS, the race between the first thread's load and the CAS is forgotten and the
/// order "CAS, then the first thread's load" is never run (tokio-rs/loom#392). With the
/// reader second, loom runs its lookup both before and after each of the writer's CASes.
/// RELIABILITY.md lists which models this shaped.
#[test]
fn inline_ref_protects_its_main_node() {
    use concurrent_hamt::Inline;
    model(|| {
        let map: Hamt<u64, u64, Identity, Inline> = Hamt::with_layout(Identity);
        map.insert(A, 10);
        map.insert(B, 20);
        let reader = {
            let map = map.clone();
            thread::spawn(move || {
                let r = map.get(&A).expect("A is present");
                let seen = *r;
                assert!(seen == 10 || seen == 11, "read {seen}");
                if !cfg!(hazard_loom_asymmetric) {
                    map.reclaim(); // concurrent with the writer, while `r` is held
                }
                assert_eq!(*r, seen, "a Ref never changes");
                seen
            })
        };
        assert_eq!(map.insert(A, 11).map(|r| *r), Some(10));
        assert!(map.insert(C, 30).is_none());
        if !cfg!(hazard_loom_asymmetric) {
            map.reclaim(); // the writer's scan, while the reader may hold its `Ref`
        }
        let seen = reader.join().unwrap();
        assert!(seen == 10 || seen == 11);
        map.reclaim();
        assert_eq!(map.get(&A).map(|r| *r), Some(11));
        assert_eq!(map.get(&C).map(|r| *r), Some(30));
        assert_eq!(map.len(), 3);
    });
}

// Lookups against the two structural changes, with the reader on the spawned thread (loom
// runs the main thread first: see `inline_ref_protects_its_main_node` and tokio-rs/loom#392).
// The older models above that race a lookup against these changes run it on the main thread,
// where loom 0.7 does not reorder it after the writer's CAS; these two give the lookup alone
// the second thread, with one writer, so that it runs before, between and after each of the
// writer's steps.

/// A lookup of B while the main thread removes C from the child INode of {A, B, C}: the child
/// becomes a tomb, which the remover folds into the root as the pair {A, B}, then scans. B is
/// found whichever node the lookup meets (the child, its tomb, or the root's pair), and no
/// node it reads is freed under it.
#[test]
fn lookup_against_a_fold() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = map_of(&[A, B, C], &drops);
        let reader = {
            let map = map.clone();
            thread::spawn(move || {
                assert_eq!(map.get(&B).map(|r| r.0), Some(B), "B is never lost");
            })
        };
        assert_eq!(map.remove(&C).map(|r| r.0), Some(C));
        concurrent_scan(&map);
        reader.join().unwrap();
        assert_eq!(map_keys(&map), [A, B]);
        drop(map);
        assert_eq!(drops.load(Relaxed), 3, "every value dropped exactly once");
    });
}

/// A lookup of B while the main thread inserts C, pushing the root's pair {A, B} down into a
/// new child INode, then scans. B is found in the root's pair or in the child, and the root
/// main node the lookup may still read is not freed under it.
#[test]
fn lookup_against_a_pair_pushed_down() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = map_of(&[A, B], &drops);
        let reader = {
            let map = map.clone();
            thread::spawn(move || {
                assert_eq!(map.get(&B).map(|r| r.0), Some(B), "B is never lost");
            })
        };
        assert!(map.insert(C, Counted(C, drops.clone())).is_none());
        concurrent_scan(&map);
        reader.join().unwrap();
        assert_eq!(map_keys(&map), [A, B, C]);
        drop(map);
        assert_eq!(drops.load(Relaxed), 3, "every value dropped exactly once");
    });
}

// The level cache (`raw/cache.rs`): under loom its table caches the INodes one level below
// the root, so that {A, B, C}'s child INode is cached in slot 1. Readers on the spawned
// thread, as above.

/// A map holding `keys`, with a level cache from the start.
fn cached_map_of(keys: &[u64], drops: &Arc<AtomicUsize>) -> Map {
    let map: Map = Hamt::with_level_cache_from(Identity, 0);
    for &k in keys {
        map.insert(k, Counted(k, drops.clone()));
    }
    map
}

/// {A, B, C} with a level cache whose slot 1 holds their child INode (a lookup of B filled it).
fn cached_abc_with_its_slot_filled(drops: &Arc<AtomicUsize>) -> Map {
    let map = cached_map_of(&[A, B, C], drops);
    assert_eq!(map.get(&B).map(|r| r.0), Some(B));
    map
}

/// A thread that looks B up twice (while the main thread replaces it with `1000 + B`): B is
/// found both times, with its old or new value, and never the old after the new.
fn spawn_reader_of_b_twice(map: &Map) -> thread::JoinHandle<()> {
    let map = map.clone();
    thread::spawn(move || {
        let first = map.get(&B).map(|r| r.0).expect("B is never lost");
        let second = map.get(&B).map(|r| r.0).expect("B is never lost");
        assert!(first == B || first == 1000 + B, "read {first}");
        assert!(
            !(first == 1000 + B && second == B),
            "went back to the old value"
        );
    })
}

/// A thread that replaces B with `1000 + B` and then reads its own write.
fn spawn_replace_b_and_read_it(map: &Map, drops: &Arc<AtomicUsize>) -> thread::JoinHandle<()> {
    let (map, drops) = (map.clone(), drops.clone());
    thread::spawn(move || {
        assert_eq!(
            map.insert(B, Counted(1000 + B, drops)).map(|r| r.0),
            Some(B)
        );
        assert_eq!(
            map.get(&B).map(|r| r.0),
            Some(1000 + B),
            "reads its own write"
        );
    })
}

/// A lookup that fills the cache with the child INode of {A, B, C} while the main thread
/// removes C, which entombs that child and folds it into the root: B is found, and the
/// table does not keep the folded INode (the filler or the folder empties the slot: the
/// store-buffering fences of `install` and `evict`).
#[test]
fn cache_filled_against_a_fold() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = cached_map_of(&[A, B, C], &drops);
        let reader = {
            let map = map.clone();
            thread::spawn(move || {
                assert_eq!(map.get(&B).map(|r| r.0), Some(B), "B is never lost");
            })
        };
        assert_eq!(map.remove(&C).map(|r| r.0), Some(C));
        concurrent_scan(&map);
        reader.join().unwrap();
        assert_eq!(
            map.level_cache_filled(),
            Some(0),
            "no folded INode in the table"
        );
        assert_eq!(map_keys(&map), [A, B]);
        drop(map);
        assert_eq!(drops.load(Relaxed), 3, "every value dropped exactly once");
    });
}

/// A lookup that starts from the cached child INode of {A, B, C} while the main thread
/// removes C (a tomb, folded into the root), then replaces B: the lookup finds B (the old
/// value or the new), never reads a freed node, and a second lookup never goes back to the
/// old value once it saw the new one.
#[test]
fn cached_lookup_against_a_fold_and_a_write() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = cached_abc_with_its_slot_filled(&drops);
        assert_eq!(map.level_cache_filled(), Some(1));
        let reader = spawn_reader_of_b_twice(&map);
        assert_eq!(map.remove(&C).map(|r| r.0), Some(C));
        assert_eq!(
            map.insert(B, Counted(1000 + B, drops.clone())).map(|r| r.0),
            Some(B)
        );
        concurrent_scan(&map);
        reader.join().unwrap();
        assert_eq!(map.get(&B).map(|r| r.0), Some(1000 + B));
        drop(map);
        assert_eq!(drops.load(Relaxed), 4, "every value dropped exactly once");
    });
}

/// A lookup that fills the cache while the main thread clears the map: the lookup sees B or
/// nothing, and the table does not keep the old trie (`clear` or the filler empties it).
/// On the fallback fence only: `clear` scans at once, and a scan concurrent with an unfenced
/// reader is outside what the unfenced suite can model (see `concurrent_scan`; the same
/// model without the cache fails there too).
#[test]
fn cache_filled_against_clear() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = cached_map_of(&[A, B, C], &drops);
        let reader = {
            let map = map.clone();
            thread::spawn(move || {
                let r = map.get(&B).map(|r| r.0);
                assert!(r.is_none() || r == Some(B), "read {r:?}");
            })
        };
        map.clear();
        concurrent_scan(&map);
        reader.join().unwrap();
        assert_eq!(
            map.level_cache_filled(),
            Some(0),
            "no old INode in the table"
        );
        assert!(map.get(&B).is_none());
        map.reclaim();
        assert_eq!(
            drops.load(Relaxed),
            3,
            "the old trie is freed while the map lives"
        );
        drop(map);
    });
}

/// A lookup from the cached child INode while the main thread takes a read-only snapshot
/// and then replaces B (which renews the child into the new generation): the map's second
/// lookup never goes back to the old value, and the snapshot keeps it.
#[test]
fn cached_lookup_against_a_snapshot_and_a_write() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = cached_abc_with_its_slot_filled(&drops);
        let reader = spawn_reader_of_b_twice(&map);
        let snap = map.read_only_snapshot();
        assert_eq!(
            map.insert(B, Counted(1000 + B, drops.clone())).map(|r| r.0),
            Some(B)
        );
        concurrent_scan(&map);
        reader.join().unwrap();
        assert_eq!(map.get(&B).map(|r| r.0), Some(1000 + B));
        assert_eq!(snap.get(&B).map(|v| v.0), Some(B));
        drop(snap);
        drop(map);
        assert_eq!(drops.load(Relaxed), 4, "every value dropped exactly once");
    });
}

/// The lookup's own tomb check on a cached INode (the evictions alone do not cover it): the
/// main thread removes C, entombing the cached child of {A, B, C} and folding it into the
/// root, then empties the slot; the other thread replaces B and reads it back. Between the
/// fold and the eviction the slot still holds the entombed child, and a lookup that read the
/// tomb as the live node would return B's old value after its own thread replaced it.
#[test]
fn cached_tomb_against_a_write_then_a_read() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = cached_abc_with_its_slot_filled(&drops);
        let writer = spawn_replace_b_and_read_it(&map, &drops);
        assert_eq!(map.remove(&C).map(|r| r.0), Some(C));
        concurrent_scan(&map);
        writer.join().unwrap();
        assert_eq!(map.get(&B).map(|r| r.0), Some(1000 + B));
        drop(map);
        assert_eq!(drops.load(Relaxed), 4, "every value dropped exactly once");
    });
}

/// The lookup's own generation check on a cached INode: the main thread takes a read-only
/// snapshot and replaces A, which renews the cached child of {A, B, C} into the new
/// generation and then empties the slot; the other thread replaces B and reads it back.
/// Between the renewal and the eviction the slot still holds the old child, now frozen in
/// the snapshot's generation; a lookup that used it would miss its own thread's write.
#[test]
fn cached_old_generation_against_a_write_then_a_read() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let map = cached_abc_with_its_slot_filled(&drops);
        let writer = spawn_replace_b_and_read_it(&map, &drops);
        let snap = map.read_only_snapshot();
        assert_eq!(
            map.insert(A, Counted(1000 + A, drops.clone())).map(|r| r.0),
            Some(A)
        );
        concurrent_scan(&map);
        writer.join().unwrap();
        assert_eq!(map.get(&B).map(|r| r.0), Some(1000 + B));
        let b = snap.get(&B).map(|v| v.0);
        assert!(
            b == Some(B) || b == Some(1000 + B),
            "the snapshot's B: {b:?}"
        );
        assert_eq!(snap.get(&A).map(|v| v.0), Some(A));
        drop(snap);
        drop(map);
        assert_eq!(drops.load(Relaxed), 5, "every value dropped exactly once");
    });
}

// Writes from the level cache: a write whose path's slot holds an INode of its root's
// generation starts there (`raw/write.rs`); its GCAS commits only while that INode is on the
// trie (not folded) and the root is the one the write read.

/// Two writes that start from the cached child INode of {A, B, C}: the spawned thread
/// inserts F into it while the main thread removes C, which entombs it (the remover has no
/// parent in its cursor, so it folds the tomb by a walk from the root). F lands in the child
/// before the tomb, or (its GCAS failing on the tomb, which sends it to the root) in the
/// root's pair after the fold. The end state is {A, B, F}; every value is dropped once.
#[test]
fn cached_writes_against_a_fold() {
    insert_of_f_against_removal_of_c(cached_abc_with_its_slot_filled);
}

/// An insert from the cached child INode against a snapshot's root swap: its GCAS on the
/// cached INode commits only if the root is still the one it read; otherwise it renews the
/// path into the new generation (the cached INode is then of an older one, and not used).
/// The snapshot holds the map before or after the insert.
#[test]
fn cached_gcas_against_a_snapshot() {
    write_against_snapshot(
        &[A, B, C],
        |map, drops| assert!(map.insert(F, Counted(F, drops.clone())).is_none()),
        &[A, B, C, F],
        1,
        true,
        false,
        true,
    );
}

/// A removal from the cached child INode that entombs it, against a snapshot's root swap:
/// the tomb's fold (a walk from the root) runs in whichever generation the write read.
#[test]
fn cached_removal_against_a_snapshot() {
    write_against_snapshot(
        &[A, B, C],
        |map, _| assert_eq!(map.remove(&C).map(|r| r.0), Some(C)),
        &[A, B],
        0,
        false,
        false,
        true,
    );
}
