//! Memory accounting with a counting global allocator: nothing leaks, removal returns
//! memory, huge and deep maps drop without recursion, and panicking user code (`Hash`, `Eq`,
//! `Drop`, closures) neither corrupts the map nor leaks it.
//!
//! - (a) Once every clone of a map is dropped and every thread has exited, every byte
//!   allocated since the measurement started is freed.
//! - (b) Removing every key (then `reclaim()`) brings the map back to the bytes of an empty
//!   map.
//! - (c) The same with four threads doing mixed operations at once, and with `clear()`.
//! - (d) Dropping a map of 1,000,000 entries, a deep trie (low-bits-only hasher, cleared
//!   once) and a long collision list (constant hasher) on a 256 KiB stack does not overflow
//!   it, and frees everything. The hazard-record pool does not grow with the data.
//! - (e) A key whose `Hash` or `Eq` panics, values whose `Drop` panics (replaced, removed,
//!   rejected by `insert_if_absent` or `compare_exchange`, cleared, dropped with the map),
//!   and closures that panic (`update`, `remove_if`, `compare_exchange`'s `PartialEq`):
//!   after catching each panic the map holds what it should, no hazard pointer is left
//!   behind, and dropping the map frees everything.
//! - (f) Snapshots: many read-only and writable snapshots (some written to) taken and
//!   dropped while threads write leave nothing behind once every map and snapshot is
//!   dropped; a long-lived snapshot keeps its entries alive (not dropped, still readable)
//!   while the map is cleared and rewritten, and dropping it frees them, back to the bytes
//!   of an empty map; dropping a snapshot of 1,000,000 entries (beside the live map, and as
//!   the last owner) or of a deep trie on a 256 KiB stack does not overflow it; and across
//!   maps and snapshots sharing entries, every key and value is dropped exactly once.
//!
//! # How the counting works
//!
//! The allocator counts only allocations made by *tracked* threads: the test's own thread
//! and the threads it spawns. The test harness's threads run beside the tests (spawning the
//! next test, printing results) and would otherwise add noise to the counts. Each block
//! carries a small header that records whether it was counted, so a counted block is
//! uncounted when freed, whichever thread frees it.
//!
//! Hazard records are a process-wide pool that is never freed (one block of eight per thread
//! alive at once, plus single records for threads holding more than eight guards). Each test
//! therefore first warms the pool, with as many threads as it will run at once and with
//! [`POOL_WARMUP`] guards held at once, then takes its baseline. Tests are serialised by a
//! static mutex. Intentional panics are kept quiet by a panic hook.
#![cfg(not(loom))]

mod common;

use common::{join_all, Masked};
use concurrent_hamt::Hamt;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::{Barrier, Mutex, MutexGuard, Once};
use std::thread;

// ---------------------------------------------------------------------------------------
// The counting allocator

/// Wraps `System`, counting the live bytes and blocks allocated by tracked threads.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Whether this thread's allocations are counted. Const-initialised and without `Drop`,
    /// so reading it never allocates and works during thread exit.
    static TRACKED: Cell<bool> = const { Cell::new(false) };
}

/// Bytes before each block: at least 16, and the block's alignment, so that the block
/// stays aligned. The word just before the block says whether it was counted.
fn header(align: usize) -> usize {
    align.max(16)
}

/// The layout actually requested from `System` for a block of `layout`.
fn outer(layout: Layout) -> Option<Layout> {
    let size = layout.size().checked_add(header(layout.align()))?;
    Layout::from_size_align(size, header(layout.align())).ok()
}

fn count(counted: bool, bytes: isize, blocks: isize) {
    if counted {
        // Relaxed: the tests read the counters at rest, after joining every thread.
        LIVE_BYTES.fetch_add(bytes, Relaxed);
        LIVE_BLOCKS.fetch_add(blocks, Relaxed);
    }
}

impl Counting {
    /// Writes the header of a block just obtained from `System` and returns the user part.
    ///
    /// # Safety
    /// `base` is null or a block of `outer(layout)`.
    unsafe fn finish(base: *mut u8, layout: Layout) -> *mut u8 {
        if base.is_null() {
            return base;
        }
        let counted = TRACKED.with(Cell::get);
        // Safety: the block is `header + size` bytes, so `base + header` is in it (or one
        // past its end when size is 0); `header - 8 >= 8` bytes precede the user part, and
        // the user part is aligned to at least 16, so the flag word is aligned.
        let user = unsafe { base.add(header(layout.align())) };
        // Safety: as above.
        unsafe { user.cast::<usize>().sub(1).write(usize::from(counted)) };
        count(counted, layout.size() as isize, 1);
        user
    }

    /// Whether the block at `user` was counted.
    ///
    /// # Safety
    /// `user` was returned by this allocator and not freed.
    unsafe fn counted(user: *mut u8) -> bool {
        // Safety: `finish` wrote the flag word just before the user part.
        unsafe { user.cast::<usize>().sub(1).read() != 0 }
    }
}

// Safety: every block comes from `System` with a layout at least as large and as aligned as
// the caller's (`outer`), and is returned to it with the same `outer` layout; the user part
// starts `header` bytes in, which keeps the requested alignment.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // Safety: `outer` has a non-zero size (the header).
        unsafe { Self::finish(System.alloc(outer), layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = outer(layout) else {
            return std::ptr::null_mut();
        };
        // Safety: as in `alloc`; the header is overwritten, the user part stays zeroed.
        unsafe { Self::finish(System.alloc_zeroed(outer), layout) }
    }

    unsafe fn dealloc(&self, user: *mut u8, layout: Layout) {
        // Safety: the caller gives a live block of ours with its layout.
        let counted = unsafe { Self::counted(user) };
        count(counted, -(layout.size() as isize), -1);
        let outer = outer(layout).expect("valid when allocated");
        // Safety: `user - header` is the block `System` gave for `outer`.
        unsafe { System.dealloc(user.sub(header(layout.align())), outer) }
    }

    unsafe fn realloc(&self, user: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let h = header(layout.align());
        let outer = outer(layout).expect("valid when allocated");
        let Some(new_outer) = new_size.checked_add(h) else {
            return std::ptr::null_mut();
        };
        // Safety: a live block of ours with its layout (caller's contract).
        let counted = unsafe { Self::counted(user) };
        // Safety: the block `System` gave for `outer`; `realloc` keeps its first bytes,
        // header included, and the alignment.
        let base = unsafe { System.realloc(user.sub(h), outer, new_outer) };
        if base.is_null() {
            return base;
        }
        count(counted, new_size as isize - layout.size() as isize, 0);
        // Safety: the new block is `h + new_size` bytes.
        unsafe { base.add(h) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live (bytes, blocks) allocated by tracked threads.
fn live() -> (isize, isize) {
    (LIVE_BYTES.load(Relaxed), LIVE_BLOCKS.load(Relaxed))
}

fn track_this_thread(on: bool) {
    TRACKED.with(|t| t.set(on));
}

/// Spawns a tracked scoped thread.
fn spawn<'scope, T: Send + 'scope>(
    s: &'scope thread::Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, T> {
    s.spawn(move || {
        track_this_thread(true);
        f()
    })
}

// ---------------------------------------------------------------------------------------
// Measurements

static SERIAL: Mutex<()> = Mutex::new(());

/// Marks the panics the tests cause on purpose; the panic hook keeps them quiet (printing
/// them would also allocate into the harness's capture buffer).
const BOOM: &str = "intentional panic from user code";

/// Guards held at once during the warm-up, to fill the process-wide pool of overflow
/// hazard records before the baseline.
const POOL_WARMUP: usize = 512;

/// A measurement: holds the serialising lock, tracks this thread, and remembers the
/// baseline taken after warming the hazard-record pool.
struct Measure {
    base: (isize, isize),
    _serial: MutexGuard<'static, ()>,
}

impl Measure {
    /// Warms the process-wide pools for `threads` threads alive at once besides this one,
    /// then takes the baseline.
    fn start(threads: usize) -> Measure {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let ours = info.payload().downcast_ref::<&str>() == Some(&BOOM)
                    || info
                        .payload()
                        .downcast_ref::<String>()
                        .is_some_and(|s| s == BOOM);
                if !ours {
                    // A failing test: its message and backtrace are allocated now and freed
                    // by the harness later, which would disturb the next test's counts.
                    track_this_thread(false);
                    default(info);
                }
            }));
        });
        track_this_thread(true);
        {
            let map: Hamt<u64, u64> = Hamt::new();
            map.insert(0, 0);
            // Overflow records for threads that hold many guards at once (a `Ref` each):
            // an iterator over a long collision list holds one per entry (see
            // `hazard_records_do_not_grow_with_the_data`).
            let many: Vec<_> = (0..POOL_WARMUP).map(|_| map.get(&0)).collect();
            drop(many);
            let barrier = Barrier::new(threads);
            thread::scope(|s| {
                let handles = (0..threads)
                    .map(|t| {
                        let (map, barrier) = (&map, &barrier);
                        spawn(s, move || {
                            map.insert(t as u64, 1);
                            let held = map.get(&(t as u64));
                            barrier.wait(); // all alive at once, each holding a hazard
                            drop(held);
                        })
                    })
                    .collect();
                join_all(handles);
            });
            // Warm the panic machinery too.
            let _ = catch_unwind(|| std::panic::panic_any(BOOM));
        }
        Measure {
            base: live(),
            _serial: serial,
        }
    }

    /// Live (bytes, blocks) above the baseline.
    fn above(&self) -> (isize, isize) {
        let (b, n) = live();
        (b - self.base.0, n - self.base.1)
    }

    /// `what` is formatted only on failure: a message built beforehand would itself be a
    /// live allocation.
    fn assert_all_freed(&self, what: impl std::fmt::Display) {
        assert_eq!(
            self.above(),
            (0, 0),
            "{what}: (bytes, blocks) still allocated since the baseline"
        );
    }
}

impl Drop for Measure {
    fn drop(&mut self) {
        track_this_thread(false);
    }
}

// ---------------------------------------------------------------------------------------
// (a) and (b): sequential

#[test]
fn dropping_every_clone_frees_everything() {
    let m = Measure::start(4);
    let map: Hamt<u64, String> = Hamt::new();
    let clones: Vec<_> = (0..3).map(|_| map.clone()).collect();
    thread::scope(|s| {
        let handles = clones
            .iter()
            .enumerate()
            .map(|(t, clone)| {
                spawn(s, move || {
                    for i in 0..20_000u64 {
                        let k = i * 4 + t as u64;
                        clone.insert(k, format!("value {k}"));
                        if i % 3 == 0 {
                            drop(clone.remove(&k));
                        }
                        if i % 5 == 0 {
                            drop(clone.insert(k, format!("replaced {k}")));
                        }
                    }
                })
            })
            .collect();
        join_all(handles);
    });
    assert!(m.above().0 > 0, "the map holds memory");
    // Garbage is pending and entries are live; the last handle's drop frees all of it.
    drop(map);
    assert!(m.above().0 > 0, "the clones keep the map alive");
    assert!(!clones[0].is_empty());
    drop(clones);
    m.assert_all_freed("after dropping every handle");
}

#[test]
fn removing_every_key_returns_to_an_empty_map() {
    let m = Measure::start(1);
    let map: Hamt<u64, Vec<u8>> = Hamt::new();
    let fresh = m.above();
    // The first write allocates this thread's retired list in the map's reclamation domain
    // (per map, per thread: not per entry). Measure an empty map after one insert/remove.
    map.insert(u64::MAX, vec![1]);
    drop(map.remove(&u64::MAX));
    map.reclaim();
    let empty = m.above();
    assert!(
        empty.0 - fresh.0 <= 4096,
        "the per-thread overhead of a used empty map is small: fresh {fresh:?}, used {empty:?}"
    );
    for round in 0..3 {
        for k in 0..100_000 {
            map.insert(k, vec![0; (k % 7) as usize]);
        }
        assert!(m.above().0 > empty.0 + 100_000 * 8);
        for k in 0..100_000 {
            assert!(map.remove(&k).is_some());
        }
        assert!(map.is_empty());
        map.reclaim();
        assert_eq!(map.stats().pending, 0);
        assert_eq!(
            m.above(),
            empty,
            "round {round}: after removing every key, (bytes, blocks) differ from an empty map"
        );
    }
    drop(map);
    m.assert_all_freed("after dropping the map");
}

// ---------------------------------------------------------------------------------------
// (c): concurrent

const WORKERS: usize = 4;

/// Four threads do mixed operations; after each phase the main thread empties the map
/// (by removing every key, or with `clear`) and checks the bytes against the empty map's.
/// The workers stay alive throughout (parked on a barrier), so that the per-thread retired
/// lists allocated in the first phase are the same ones later.
fn concurrent_phases(use_clear: bool) {
    let m = Measure::start(WORKERS);
    let map: Hamt<u64, Box<[u64; 4]>> = Hamt::new();
    let barrier = Barrier::new(WORKERS + 1);
    const PHASES: usize = 3;
    let results: Vec<(isize, isize)> = thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|t| {
                let (map, barrier) = (&map, &barrier);
                spawn(s, move || {
                    let mut rng = common::Rng::new(31 + t as u64);
                    // Warm-up: one insert and removal each, so that this thread's retired
                    // list exists before the empty map is measured.
                    map.insert(1_000_000 + t as u64, Box::new([0; 4]));
                    drop(map.remove(&(1_000_000 + t as u64)));
                    barrier.wait();
                    for _ in 0..PHASES {
                        barrier.wait(); // start of a phase
                        for i in 0..15_000 {
                            let k = rng.below(4_000);
                            match rng.below(6) {
                                0 | 1 => drop(map.insert(k, Box::new([k; 4]))),
                                2 => drop(map.remove(&k)),
                                3 => drop(map.update(k, |v| v.map(|v| Box::new([v[0] + 1; 4])))),
                                4 => drop(map.remove_if(&k, |v| v[0] % 2 == 0)),
                                _ => {
                                    if let Some(e) = map.get(&k) {
                                        assert!(e.iter().all(|&x| x == e[0]));
                                    }
                                    if i % 1_000 == 0 {
                                        assert!(map.iter().count() <= 4_000);
                                    }
                                }
                            }
                        }
                        barrier.wait(); // end of the phase
                        barrier.wait(); // the main thread has measured
                    }
                })
            })
            .collect();
        // The main thread empties the map later: its retired list must exist too.
        map.insert(u64::MAX, Box::new([0; 4]));
        drop(map.remove(&u64::MAX));
        barrier.wait();
        let mut results = Vec::with_capacity(PHASES + 1); // before measuring
        map.reclaim();
        results.push(m.above());
        for _ in 0..PHASES {
            barrier.wait();
            barrier.wait();
            assert!(!map.is_empty());
            if use_clear {
                map.clear();
            } else {
                let keys: Vec<u64> = map.iter().map(|e| *e.key()).collect();
                for k in keys {
                    assert!(map.remove(&k).is_some());
                }
            }
            assert!(map.is_empty());
            assert_eq!(map.iter().count(), 0);
            map.reclaim();
            assert_eq!(map.stats().pending, 0);
            results.push(m.above());
            barrier.wait();
        }
        join_all(handles);
        results
    });
    let how = if use_clear {
        "clear"
    } else {
        "removing every key"
    };
    for (phase, after) in results[1..].iter().enumerate() {
        assert_eq!(
            *after, results[0],
            "phase {phase}: after {how}, (bytes, blocks) differ from the empty map's"
        );
    }
    drop(results);
    drop(map);
    m.assert_all_freed(how);
}

#[test]
fn concurrent_mixed_operations_then_remove_all() {
    concurrent_phases(false);
}

#[test]
fn concurrent_mixed_operations_then_clear() {
    concurrent_phases(true);
}

// ---------------------------------------------------------------------------------------
// (d): huge and deep maps

/// Builds and drops maps on a thread with a 256 KiB stack.
#[test]
fn dropping_huge_and_deep_maps_does_not_recurse() {
    let m = Measure::start(1);
    thread::scope(|s| {
        let handle = thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn_scoped(s, || {
                track_this_thread(true);
                let map: Hamt<u64, u64> = Hamt::new();
                for k in 0..1_000_000 {
                    map.insert(k, k);
                }
                assert_eq!(map.len(), 1_000_000);
                drop(map);

                // Every pair of keys with equal low bytes goes down all 13 levels.
                let deep = Hamt::with_hasher(Masked::LOW_BITS);
                for k in 0..50_000u64 {
                    deep.insert(k, k);
                }
                assert_eq!(deep.len(), 50_000);
                // Clearing retires everything at once: the cascade must be iterative too.
                let deep2 = deep.clone();
                deep.clear();
                deep.reclaim();
                for k in 0..50_000u64 {
                    deep.insert(k, k);
                }
                drop(deep);
                drop(deep2);

                // One collision list of 10,000 entries.
                let list = Hamt::with_hasher(Masked::CONSTANT);
                for k in 0..10_000u64 {
                    list.insert(k, k);
                }
                assert_eq!(list.get(&1234).map(|e| *e), Some(1234));
                drop(list);
            })
            .unwrap();
        join_all(vec![handle]);
    });
    m.assert_all_freed("after dropping the huge and deep maps");
}

/// Hazard records are never freed, so the number an operation takes at once must not grow
/// with the data: iterating or clearing a long collision list must not leave the process
/// with one record per entry. (The warm-up gave the pool `POOL_WARMUP` spare records; a
/// list longer than that shows any per-entry use.)
#[test]
fn hazard_records_do_not_grow_with_the_data() {
    let m = Measure::start(1);
    let records = |map: &Hamt<u64, u64, Masked>| map.stats().records_allocated;
    let map = Hamt::with_hasher(Masked::CONSTANT);
    for k in 0..2_000 {
        map.insert(k, k);
    }
    let before = records(&map);
    assert_eq!(map.iter().count(), 2_000);
    let after_iter = records(&map);
    map.clear();
    let after_clear = records(&map);
    assert_eq!(
        (after_iter, after_clear),
        (before, before),
        "hazard records allocated (never freed) by iterating, then clearing, one collision \
         list of 2,000 entries"
    );
    drop(map);
    m.assert_all_freed("after dropping the map");
}

// ---------------------------------------------------------------------------------------
// (e): user code that panics

/// A key whose `Hash` panics when `hash_bomb` is set, whose `Eq` panics when compared with
/// a key whose `eq_bomb` is set, and whose `Drop` panics when `drop_bomb` is set.
/// Heap-allocated so that leaks show.
#[derive(Debug, Default)]
struct Key {
    id: Box<u64>,
    hash_bomb: bool,
    eq_bomb: bool,
    drop_bomb: bool,
}

impl Key {
    fn new(id: u64) -> Self {
        Key {
            id: Box::new(id),
            ..Key::default()
        }
    }

    fn hash_bomb(id: u64) -> Self {
        Key {
            id: Box::new(id),
            hash_bomb: true,
            ..Key::default()
        }
    }

    fn eq_bomb(id: u64) -> Self {
        Key {
            id: Box::new(id),
            eq_bomb: true,
            ..Key::default()
        }
    }

    fn drop_bomb(id: u64) -> Self {
        Key {
            id: Box::new(id),
            drop_bomb: true,
            ..Key::default()
        }
    }
}

static KEY_BOMBS_DROPPED: AtomicUsize = AtomicUsize::new(0);

impl Drop for Key {
    fn drop(&mut self) {
        if self.drop_bomb {
            KEY_BOMBS_DROPPED.fetch_add(1, Relaxed);
            if !thread::panicking() {
                std::panic::panic_any(BOOM);
            }
        }
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
        if self.eq_bomb || other.eq_bomb {
            std::panic::panic_any(BOOM);
        }
        self.id == other.id
    }
}

impl Eq for Key {}

thread_local! {
    /// When set to n > 0, the n-th `Key::hash` call from now on this thread panics.
    static HASH_COUNTDOWN: Cell<u64> = const { Cell::new(0) };
}

/// A value whose `Drop` panics when `bomb` is set (and which frees its heap part first).
#[derive(Debug)]
struct Value {
    id: Box<u64>,
    bomb: bool,
}

impl Value {
    fn new(id: u64) -> Self {
        Value {
            id: Box::new(id),
            bomb: false,
        }
    }

    /// A value whose `Drop` panics.
    fn bomb(id: u64) -> Self {
        Value {
            id: Box::new(id),
            bomb: true,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        if self.bomb || other.bomb {
            std::panic::panic_any(BOOM);
        }
        self.id == other.id
    }
}

static VALUE_BOMBS_DROPPED: AtomicUsize = AtomicUsize::new(0);

impl Drop for Value {
    fn drop(&mut self) {
        if self.bomb {
            VALUE_BOMBS_DROPPED.fetch_add(1, Relaxed);
            if !thread::panicking() {
                std::panic::panic_any(BOOM);
            }
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

/// Checks that the map holds exactly `expected` (ids of keys and values equal).
fn check_map<S: BuildHasher>(map: &Hamt<Key, Value, S>, expected: &[u64], what: &str) {
    assert_eq!(map.len(), expected.len(), "{what}: len");
    let mut ids: Vec<u64> = map
        .iter()
        .map(|e| {
            assert_eq!(*e.key().id, *e.id, "{what}: entry mixed up");
            *e.id
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, expected, "{what}: contents");
    for &id in expected {
        assert_eq!(
            map.get(&Key::new(id)).map(|e| *e.id),
            Some(id),
            "{what}: get {id}"
        );
    }
}

/// A map of keys and values `0..200`, with the ids it holds.
fn filled<S: BuildHasher>(hasher: S) -> (Hamt<Key, Value, S>, Vec<u64>) {
    let map = Hamt::with_hasher(hasher);
    let expected: Vec<u64> = (0..200).collect();
    for &id in &expected {
        map.insert(Key::new(id), Value::new(id));
    }
    check_map(&map, &expected, "filled");
    (map, expected)
}

/// A filled map and the ids it holds.
type Filled = (Hamt<Key, Value, Masked>, Vec<u64>);

/// Runs `case` with each hasher, measuring leaks around each run.
fn with_hashers(case: fn(&dyn Fn() -> Filled, &str)) {
    for (name, hasher) in [
        ("low 30 bits constant", Masked::TOP_LEVELS_COLLIDE),
        ("constant", Masked::CONSTANT),
        ("low 8 bits", Masked::LOW_BITS),
    ] {
        let m = Measure::start(1);
        VALUE_BOMBS_DROPPED.store(0, Relaxed);
        case(&|| filled(hasher), name);
        m.assert_all_freed(format_args!("{name}: after dropping the map"));
    }
}

#[test]
fn panicking_hash_and_eq() {
    with_hashers(|filled, name| {
        let (map, mut expected) = filled();
        // Hash panics: at the operation's first hash call.
        let bomb = || Key::hash_bomb(7);
        expect_boom("insert", || map.insert(bomb(), Value::new(7)));
        expect_boom("insert_if_absent", || {
            map.insert_if_absent(bomb(), Value::new(7))
        });
        expect_boom("get", || map.get(&bomb()).is_some());
        expect_boom("contains_key", || map.contains_key(&bomb()));
        expect_boom("remove", || map.remove(&bomb()).is_some());
        expect_boom("remove_if", || map.remove_if(&bomb(), |_| true).is_some());
        expect_boom("update", || map.update(bomb(), |_| None).is_some());
        expect_boom("compare_exchange", || {
            map.compare_exchange(bomb(), &Value::new(7), Value::new(8))
                .is_ok()
        });
        check_map(&map, &expected, &format!("{name}: after panicking hashes"));

        // Hash panics at the n-th call from now, whichever call of the operation that is
        // (the map may hash stored keys again, when it splits a leaf say).
        for n in 1..6 {
            for id in [5, 500 + n] {
                HASH_COUNTDOWN.with(|c| c.set(n));
                let result = catch_unwind(AssertUnwindSafe(|| {
                    drop(map.insert(Key::new(id), Value::new(id)));
                    map.get(&Key::new(id)).is_some()
                }));
                HASH_COUNTDOWN.with(|c| c.set(0));
                // The insert either happened or not: look, then check everything else.
                if id > 200 && (result.is_ok() || map.contains_key(&Key::new(id))) {
                    expected.push(id);
                }
                check_map(
                    &map,
                    &expected,
                    &format!("{name}: after hash bomb {n} on {id}"),
                );
            }
        }

        // Eq panics while comparing with a present key.
        let eq_bomb = Key::eq_bomb;
        expect_boom("get, Eq", || map.get(&eq_bomb(3)).is_some());
        expect_boom("remove, Eq", || map.remove(&eq_bomb(3)).is_some());
        expect_boom("insert, Eq", || map.insert(eq_bomb(3), Value::new(3)));
        expect_boom("insert_if_absent, Eq", || {
            map.insert_if_absent(eq_bomb(3), Value::new(3))
        });
        expect_boom("update, Eq", || map.update(eq_bomb(3), |_| None).is_some());
        check_map(&map, &expected, &format!("{name}: after panicking Eq"));
        drop(map);
    });
}

#[test]
fn panicking_closures() {
    with_hashers(|filled, name| {
        let (map, expected) = filled();
        expect_boom("update closure", || {
            map.update(Key::new(10), |_| -> Option<Value> {
                std::panic::panic_any(BOOM)
            })
        });
        expect_boom("update closure on an absent key", || {
            map.update(Key::new(10_000), |_| -> Option<Value> {
                std::panic::panic_any(BOOM)
            })
        });
        expect_boom("remove_if closure", || {
            map.remove_if(&Key::new(11), |_| std::panic::panic_any(BOOM))
                .is_some()
        });
        let mut bomb_value = Value::bomb(12);
        expect_boom("compare_exchange's PartialEq", || {
            map.compare_exchange(Key::new(12), &bomb_value, Value::new(99))
                .is_ok()
        });
        bomb_value.bomb = false;
        drop(bomb_value);
        check_map(
            &map,
            &expected,
            &format!("{name}: after panicking closures"),
        );
        drop(map);
    });
}

/// Replaced and removed values whose `Drop` panics: the drops run at reclamation, on
/// whichever operation scans; the panics are caught wherever they surface.
#[test]
fn panicking_drops_of_replaced_and_removed_values() {
    with_hashers(|filled, name| {
        let (map, mut expected) = filled();
        for id in 30..40 {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                drop(map.insert(Key::new(id), Value::bomb(id)))
            }));
        }
        for id in 30..35 {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                drop(map.insert(Key::new(id), Value::new(id)))
            }));
        }
        for id in 35..40 {
            let _ = catch_unwind(AssertUnwindSafe(|| drop(map.remove(&Key::new(id)))));
            expected.retain(|&e| e != id);
        }
        while catch_unwind(AssertUnwindSafe(|| map.reclaim())).is_err() {}
        assert_eq!(map.stats().pending, 0, "{name}: garbage left after reclaim");
        check_map(&map, &expected, &format!("{name}: after panicking drops"));
        assert_eq!(
            VALUE_BOMBS_DROPPED.load(Relaxed),
            10,
            "{name}: every panicking value is dropped exactly once"
        );
        drop(map);
    });
}

/// The key or value that `insert_if_absent` or a failed `compare_exchange` rejects is
/// dropped in the call, and its `Drop` panics. The call found an entry; once the panic is
/// caught, nothing may still protect that entry: removing it and reclaiming must free it.
/// (A hazard pointer left published would pin whatever lives at that address from then
/// on, in any map of the process.)
#[test]
fn panicking_drop_of_a_rejected_key_or_value() {
    with_hashers(|filled, name| {
        let (map, mut expected) = filled();
        KEY_BOMBS_DROPPED.store(0, Relaxed);
        expect_boom("insert_if_absent's rejected value", || {
            map.insert_if_absent(Key::new(20), Value::bomb(20))
        });
        expect_boom("compare_exchange's rejected value", || {
            map.compare_exchange(Key::new(21), &Value::new(0), Value::bomb(21))
                .is_ok()
        });
        expect_boom("insert_if_absent's rejected key", || {
            map.insert_if_absent(Key::drop_bomb(22), Value::new(22))
        });
        expect_boom("compare_exchange's rejected key", || {
            map.compare_exchange(Key::drop_bomb(23), &Value::new(0), Value::new(23))
                .is_ok()
        });
        expect_boom("update's key, left absent", || {
            map.update(Key::drop_bomb(10_000), |_| None).is_some()
        });
        assert_eq!(VALUE_BOMBS_DROPPED.load(Relaxed), 2, "{name}");
        assert_eq!(KEY_BOMBS_DROPPED.load(Relaxed), 3, "{name}");
        check_map(&map, &expected, &format!("{name}: after the panics"));
        for id in 20..24 {
            assert!(map.remove(&Key::new(id)).is_some());
        }
        expected.retain(|&e| !(20..24).contains(&e));
        map.reclaim();
        assert_eq!(
            map.stats().pending,
            0,
            "{name}: a removed entry stays protected after the panicking call returned \
             (a hazard pointer was left behind)"
        );
        check_map(&map, &expected, &format!("{name}: after removing them"));
        drop(map);
    });
}

/// `update` whose closure removes the entry, with a key whose `Drop` panics: the key is
/// dropped in the call, after the removal. Whatever the outcome, the map stays consistent
/// and, once dropped, leaks nothing (the unlinked nodes are still retired).
#[test]
fn panicking_drop_of_the_key_of_an_update_that_removes() {
    with_hashers(|filled, name| {
        let (map, mut expected) = filled();
        for id in [40, 80, 120, 160] {
            expect_boom("update's key", || {
                map.update(Key::drop_bomb(id), |_| None).is_some()
            });
            if !map.contains_key(&Key::new(id)) {
                expected.retain(|&e| e != id);
            }
            check_map(&map, &expected, &format!("{name}: after update({id})"));
        }
        while catch_unwind(AssertUnwindSafe(|| map.reclaim())).is_err() {}
        assert_eq!(map.stats().pending, 0, "{name}: garbage left after reclaim");
        drop(map);
    });
}

/// `clear` of a map holding values whose `Drop` panics: as `HashMap::clear` and
/// `Vec::clear` do, it leaves the map empty even when a drop panics.
#[test]
fn clear_with_panicking_drops() {
    with_hashers(|filled, name| {
        let (map, _) = filled();
        for id in 50..55 {
            drop(map.insert(Key::new(id), Value::bomb(id)));
        }
        let _ = catch_unwind(AssertUnwindSafe(|| map.clear()));
        check_map(&map, &[], &format!("{name}: after a clear that panicked"));
        while catch_unwind(AssertUnwindSafe(|| map.reclaim())).is_err() {}
        assert_eq!(VALUE_BOMBS_DROPPED.load(Relaxed), 5, "{name}");
        check_map(&map, &[], &format!("{name}: after clear and reclaim"));
        drop(map);
    });
}

/// Dropping a map that holds values whose `Drop` panics frees everything else.
#[test]
fn drop_with_panicking_drops() {
    with_hashers(|filled, name| {
        let (map, _) = filled();
        for id in 60..65 {
            drop(map.insert(Key::new(id), Value::bomb(id)));
        }
        let clone = map.clone();
        drop(map); // not the last handle: nothing dropped yet
        expect_boom("dropping the last handle", || drop(clone));
        assert_eq!(VALUE_BOMBS_DROPPED.load(Relaxed), 5, "{name}");
    });
}

/// The counting itself: spawning and joining tracked threads, and the harness's
/// bookkeeping, leave the counts unchanged.
#[test]
fn allocator_counts_balance() {
    let m = Measure::start(2);
    let v = vec![1u8; 1000];
    assert_eq!(m.above(), (1000, 1));
    let mut v2 = Vec::with_capacity(10);
    v2.extend_from_slice(&v);
    drop(v);
    assert_eq!(m.above(), (v2.capacity() as isize, 1));
    drop(v2);
    thread::scope(|s| {
        let handles = (0..2).map(|_| spawn(s, || vec![0u64; 100].len())).collect();
        join_all(handles);
    });
    m.assert_all_freed("after spawning and joining threads");
}

// ---------------------------------------------------------------------------------------
// (f): snapshots

/// Two threads write (insert, replace, update, remove: values with heap parts) while two
/// others take read-only and writable snapshots, read them, write to some of the writable
/// ones (and to `to_map` copies of read-only ones), keep a few alive for a while and drop
/// them. Once every snapshot, copy and the map are dropped, every byte allocated since the
/// baseline is freed.
#[test]
fn snapshots_taken_and_dropped_during_writes_free_everything() {
    const KEYS: u64 = 4_000;
    let m = Measure::start(4);
    let map: Hamt<u64, String> = Hamt::new();
    for k in 0..KEYS / 2 {
        map.insert(k, format!("value {k}"));
    }
    let stop = AtomicBool::new(false);
    let takers_done = AtomicUsize::new(0);
    thread::scope(|s| {
        let mut handles = Vec::new();
        for w in 0..2u64 {
            let (map, stop) = (&map, &stop);
            handles.push(spawn(s, move || {
                let mut rng = common::Rng::new(0x5_0000 + w);
                let mut ops = 0;
                while ops < 20_000 || !stop.load(Acquire) {
                    ops += 1;
                    let k = rng.below(KEYS);
                    match rng.below(4) {
                        0 => drop(map.insert(k, format!("replaced {k} {ops}"))),
                        1 => drop(map.remove(&k)),
                        2 => drop(map.update(k, |v| v.map(|v| format!("{v}+")))),
                        _ => drop(map.insert_if_absent(k, format!("new {k}"))),
                    }
                }
            }));
        }
        for t in 0..2u64 {
            let (map, stop, takers_done) = (&map, &stop, &takers_done);
            handles.push(spawn(s, move || {
                let _done = common::OnDrop(|| {
                    if takers_done.fetch_add(1, AcqRel) + 1 == 2 {
                        stop.store(true, Release);
                    }
                });
                let mut kept = std::collections::VecDeque::new();
                for i in 0..300u64 {
                    let frozen = map.read_only_snapshot();
                    assert_eq!(frozen.iter().count(), frozen.len());
                    let copy = map.snapshot();
                    if i % 2 == 0 {
                        for k in 0..50 {
                            let k = KEYS + t * 1_000 + k;
                            drop(copy.insert(k, format!("own {k}")));
                        }
                        for k in (0..KEYS).step_by(97) {
                            drop(copy.remove(&k));
                        }
                        let of_copy = copy.read_only_snapshot();
                        assert!(of_copy.len() >= 50);
                    }
                    if i % 5 == 0 {
                        let back = frozen.to_map();
                        drop(back.insert(0, "written to a to_map copy".to_string()));
                        drop(back.remove(&1));
                        kept.push_back((Some(frozen), back));
                    } else if i % 3 == 0 {
                        kept.push_back((Some(frozen), copy));
                    } else {
                        kept.push_back((None, copy));
                    }
                    if kept.len() > 4 {
                        drop(kept.pop_front());
                    }
                }
                drop(kept);
            }));
        }
        join_all(handles);
    });
    assert!(m.above().0 > 0, "the map holds memory");
    map.reclaim();
    drop(map);
    m.assert_all_freed("after dropping the map and every snapshot taken during the writes");
}

/// Drops of [`Tracked`] values, per generation.
static TRACKED_DROPS: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// A value with a heap part that counts its drops per generation.
struct Tracked {
    generation: usize,
    text: String,
}

impl Tracked {
    fn new(key: u64, generation: usize) -> Self {
        Tracked {
            generation,
            text: format!("generation {generation} of key {key:>6}"),
        }
    }

    fn is(&self, key: u64, generation: usize) -> bool {
        self.generation == generation
            && self.text == format!("generation {generation} of key {key:>6}")
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        TRACKED_DROPS[self.generation].fetch_add(1, Relaxed);
    }
}

/// A read-only snapshot of 20,000 entries keeps them alive while the map is cleared,
/// reclaimed and filled again with new values: none of its values is dropped, all stay
/// readable and intact, and the bytes they hold stay allocated. Dropping the snapshot
/// drops each of them once; clearing the map then brings the bytes back to those of an
/// empty map (measured after snapshots had been taken and dropped and the map cleared, so
/// that state kept by the map for snapshots and clears counts in both).
#[test]
fn a_long_lived_snapshot_keeps_its_entries_alive() {
    const N: u64 = 20_000;
    let m = Measure::start(1);
    for d in &TRACKED_DROPS {
        d.store(0, Relaxed);
    }
    let map: Hamt<u64, Tracked> = Hamt::new();
    // An empty map after one write, one removal, snapshots and a clear.
    map.insert(u64::MAX, Tracked::new(0, 1));
    drop(map.read_only_snapshot());
    drop(map.snapshot());
    drop(map.remove(&u64::MAX));
    map.clear();
    map.reclaim();
    let empty = m.above();
    TRACKED_DROPS[1].store(0, Relaxed);
    for k in 0..N {
        map.insert(k, Tracked::new(k, 0));
    }
    let snap = map.read_only_snapshot();
    map.clear();
    map.reclaim();
    assert!(map.is_empty());
    assert_eq!(
        TRACKED_DROPS[0].load(Relaxed),
        0,
        "values dropped while a snapshot holds them"
    );
    let text_bytes = (N as usize * format!("generation 0 of key {:>6}", 0).len()) as isize;
    assert!(
        m.above().0 - empty.0 >= text_bytes,
        "the snapshot's entries are not all allocated any more"
    );
    for k in 0..N {
        map.insert(k, Tracked::new(k, 1));
    }
    assert_eq!(snap.len(), N as usize);
    for k in 0..N {
        assert!(
            snap.get(&k).is_some_and(|v| v.is(k, 0)),
            "the snapshot's value of key {k} changed or went"
        );
        assert!(map.get(&k).is_some_and(|v| v.is(k, 1)));
    }
    assert_eq!(TRACKED_DROPS[0].load(Relaxed), 0);
    drop(snap);
    map.reclaim();
    assert_eq!(
        TRACKED_DROPS[0].load(Relaxed),
        N as usize,
        "the snapshot's values once it is dropped (and the map reclaimed)"
    );
    assert_eq!(
        TRACKED_DROPS[1].load(Relaxed),
        0,
        "the map's current values"
    );
    map.clear();
    map.reclaim();
    assert_eq!(map.stats().pending, 0);
    assert_eq!(TRACKED_DROPS[1].load(Relaxed), N as usize);
    assert_eq!(
        m.above(),
        empty,
        "after dropping the snapshot and clearing the map, (bytes, blocks) differ from the \
         empty map's"
    );
    drop(map);
    m.assert_all_freed("after dropping the map");
}

/// On a thread with a 256 KiB stack: snapshots of a map of 1,000,000 entries are dropped
/// while the live map still shares their nodes (a read-only one, and a writable one after
/// the two diverged), and as the last owner (after the map is dropped); the same for a
/// `to_map` copy and for a deep trie (low-bits-only hasher). No overflow, and everything is
/// freed.
#[test]
fn dropping_huge_snapshots_does_not_recurse() {
    let m = Measure::start(1);
    thread::scope(|s| {
        let handle = thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn_scoped(s, || {
                track_this_thread(true);
                let map: Hamt<u64, u64> = Hamt::new();
                for k in 0..1_000_000 {
                    map.insert(k, k);
                }
                let frozen = map.read_only_snapshot();
                let copy = map.snapshot();
                for k in (0..1_000_000).step_by(3) {
                    drop(map.remove(&k));
                }
                for k in (1..1_000_000).step_by(3) {
                    drop(copy.insert(k, k + 1));
                }
                assert_eq!(frozen.len(), 1_000_000);
                drop(frozen); // beside the live map and the copy
                drop(copy); // diverged from the live map
                map.reclaim();
                let last = map.read_only_snapshot();
                let back = last.to_map();
                drop(map);
                assert_eq!(last.get(&2), Some(&2));
                drop(last); // beside the to_map copy
                assert_eq!(back.len(), 1_000_000 - 333_334);
                drop(back); // the last owner

                let map = Hamt::with_hasher(Masked::LOW_BITS);
                for k in 0..50_000u64 {
                    map.insert(k, k);
                }
                let frozen = map.read_only_snapshot();
                let copy = map.snapshot();
                map.clear();
                drop(map);
                drop(copy);
                assert_eq!(frozen.len(), 50_000);
                drop(frozen); // the last owner of a deep trie
            })
            .unwrap();
        join_all(vec![handle]);
    });
    m.assert_all_freed("after dropping the huge snapshots");
}

/// Capacity of the per-instance drop counters of [`Counted`] keys and values.
const INSTANCES: usize = 1 << 20;

static INSTANCE_DROPS: [AtomicU8; INSTANCES] = [const { AtomicU8::new(0) }; INSTANCES];
static NEXT_INSTANCE: AtomicUsize = AtomicUsize::new(0);

/// A key or value (equal and hashed by `id` only) that knows its instance number: its drop
/// is counted per instance, so that a double drop or a leak names the instance. It owns a
/// heap part, so that leaks also show in the bytes.
#[derive(Debug)]
struct Counted {
    id: Box<u64>,
    instance: usize,
}

impl Counted {
    fn new(id: u64) -> Self {
        let instance = NEXT_INSTANCE.fetch_add(1, Relaxed);
        assert!(instance < INSTANCES, "more instances than counters");
        Counted {
            id: Box::new(id),
            instance,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        INSTANCE_DROPS[self.instance].fetch_add(1, Relaxed);
    }
}

impl Hash for Counted {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl PartialEq for Counted {
    fn eq(&self, other: &Counted) -> bool {
        self.id == other.id
    }
}

impl Eq for Counted {}

/// Checks that every instance created since the counters were reset was dropped exactly
/// once; reports the first few that were not.
fn assert_each_dropped_once(what: &str) {
    let created = NEXT_INSTANCE.load(Relaxed);
    let wrong: Vec<(usize, u8)> = (0..created)
        .map(|i| (i, INSTANCE_DROPS[i].load(Relaxed)))
        .filter(|&(_, n)| n != 1)
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: of {created} keys and values, (instance, drops) not dropped exactly once: \
         {wrong:?}"
    );
}

/// Keys and values shared by a map, its read-only and writable snapshots, `to_map` copies
/// and snapshots of those, then written differently in each (replaced, removed, rejected by
/// `insert_if_absent` and `compare_exchange`, made by `update` closures that may run more
/// than once, cleared), first sequentially, then by three threads at once (one writing the
/// map, one a writable snapshot, one taking and dropping snapshots of both). Once
/// everything is dropped, in a scrambled order, every key and value instance was dropped
/// exactly once and every byte is freed.
#[test]
fn keys_and_values_shared_by_snapshots_are_dropped_once() {
    const N: u64 = 5_000;
    let m = Measure::start(3);
    for c in INSTANCE_DROPS.iter().take(NEXT_INSTANCE.load(Relaxed)) {
        c.store(0, Relaxed);
    }
    NEXT_INSTANCE.store(0, Relaxed);
    let c = Counted::new;
    let map: Hamt<Counted, Counted> = Hamt::new();
    for id in 0..N {
        map.insert(c(id), c(id));
    }
    let frozen = map.read_only_snapshot();
    let copy = map.snapshot();
    for id in 0..1_000 {
        drop(map.insert(c(id), c(id + 1)));
    }
    for id in 1_000..2_000 {
        drop(map.remove(&c(id)));
    }
    for id in 2_000..3_000 {
        drop(copy.remove(&c(id)));
    }
    for id in 3_000..4_000 {
        drop(copy.update(c(id), |_| Some(c(0))));
    }
    for id in 4_000..4_100 {
        assert!(!copy.insert_if_absent(c(id), c(id)));
        assert!(map.compare_exchange(c(id), &c(12345), c(id)).is_err());
        assert!(map.insert_if_absent(c(N + id), c(id)));
    }
    let of_copy = copy.read_only_snapshot();
    let back = frozen.to_map();
    back.clear();
    for id in 0..100 {
        drop(back.insert(c(id), c(id)));
    }
    let copy_of_copy = copy.snapshot();
    for id in 0..N {
        drop(copy_of_copy.update(c(id), |v| v.and_then(|v| (*v.id % 2 == 0).then(|| c(1)))));
    }

    // Concurrently.
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let map_writer = {
            let (map, stop) = (&map, &stop);
            spawn(s, move || {
                let mut rng = common::Rng::new(71);
                let mut ops = 0;
                // Bounded: each operation makes two instances.
                while ops < 20_000 || (ops < 150_000 && !stop.load(Acquire)) {
                    ops += 1;
                    let id = rng.below(2 * N);
                    match rng.below(3) {
                        0 => drop(map.insert(c(id), c(id))),
                        1 => drop(map.remove(&c(id))),
                        _ => drop(map.update(c(id), |v| v.map(|_| c(id + 1)))),
                    }
                }
            })
        };
        let copy_writer = {
            let (copy, stop) = (&copy, &stop);
            spawn(s, move || {
                let mut rng = common::Rng::new(72);
                let mut ops = 0;
                while ops < 20_000 || (ops < 150_000 && !stop.load(Acquire)) {
                    ops += 1;
                    let id = rng.below(2 * N);
                    if rng.chance(50) {
                        drop(copy.insert(c(id), c(id)));
                    } else {
                        drop(copy.remove(&c(id)));
                    }
                }
            })
        };
        let taker = {
            let (map, copy, stop) = (&map, &copy, &stop);
            spawn(s, move || {
                let _done = common::OnDrop(|| stop.store(true, Release));
                let mut held = Vec::new();
                for i in 0..200 {
                    let snap = if i % 2 == 0 {
                        map.read_only_snapshot()
                    } else {
                        copy.read_only_snapshot()
                    };
                    assert_eq!(snap.iter().count(), snap.len());
                    let writable = map.snapshot();
                    drop(writable.remove(&c(i)));
                    drop(writable.insert(c(i), c(i)));
                    if i % 10 == 0 {
                        held.push((snap, writable));
                    }
                }
                held
            })
        };
        let held = join_all(vec![taker]);
        join_all(vec![map_writer, copy_writer]);
        drop(held);
    });
    // Drop everything in a scrambled order, the map not last.
    drop(copy);
    drop(frozen);
    drop(map);
    drop(of_copy);
    drop(back);
    drop(copy_of_copy);
    assert_each_dropped_once("after dropping every map and snapshot");
    m.assert_all_freed("after dropping every map and snapshot");
}

// ---------------------------------------------------------------------------------------
// (g) Hostile and extreme input

/// 5,000 keys whose 64-bit hashes are all equal (and, with a low-bits-only hasher, 5,000 keys
/// on 256 hashes): every operation is correct, and the trie stops at its last level, 13
/// levels of branch nodes for the 64 bits and then one collision list, instead of growing
/// with the number of keys.
#[test]
fn five_thousand_keys_with_one_full_hash() {
    let m = Measure::start(1);
    for (name, hasher) in [
        ("constant", Masked::CONSTANT),
        ("low bits", Masked::LOW_BITS),
    ] {
        let map: Hamt<u64, u64, Masked> = Hamt::with_hasher(hasher);
        for k in 0..5_000 {
            assert!(map.insert_if_absent(k, k * 3), "{name}: insert {k}");
        }
        assert!(!map.insert_if_absent(17, 0));
        assert_eq!(map.len(), 5_000);
        for k in 0..5_000 {
            assert_eq!(map.get(&k).map(|r| *r), Some(k * 3), "{name}: get {k}");
        }
        assert!(map.get(&5_000).is_none());
        assert_eq!(*map.compare_exchange(9, &27, 1).unwrap(), 1);
        assert_eq!(*map.insert(9, 27).unwrap(), 1);
        let snap = map.read_only_snapshot();
        assert_eq!(snap.len(), 5_000);
        assert_eq!(
            snap.depth(),
            14,
            "{name}: 13 levels of branch nodes for 64 bits of hash, then a collision list"
        );
        for k in (0..5_000).step_by(2) {
            assert_eq!(
                map.remove(&k).map(|r| *r),
                Some(k * 3),
                "{name}: remove {k}"
            );
        }
        for k in 0..5_000 {
            let expected = (k % 2 == 1).then_some(k * 3);
            assert_eq!(
                map.get(&k).map(|r| *r),
                expected,
                "{name}: get {k} after removals"
            );
            assert_eq!(
                snap.get(&k),
                Some(&(k * 3)),
                "{name}: the snapshot keeps {k}"
            );
        }
        let mut keys: Vec<u64> = map.iter().map(|r| *r.key()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            (1..5_000).step_by(2).collect::<Vec<_>>(),
            "{name}: iter"
        );
        assert!(map.read_only_snapshot().depth() <= 14);
    }
    m.assert_all_freed("after dropping the maps");
}

/// A sum that depends on every byte and its position.
fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b))
}

/// A 1 MiB key with a 64 MiB value: stored without a copy (the map keeps the allocations it
/// was given), found through an equal key, read back intact from the map and a snapshot,
/// removed, and freed.
#[test]
fn a_64_mib_value_and_a_1_mib_key_round_trip() {
    let m = Measure::start(1);
    {
        let key: Vec<u8> = (0..1usize << 20).map(|i| (i * 7 % 251) as u8).collect();
        let value: Vec<u8> = (0..64usize << 20).map(|i| (i % 253) as u8).collect();
        let (key_sum, value_sum) = (checksum(&key), checksum(&value));
        let (key_at, value_at) = (key.as_ptr(), value.as_ptr());
        // An equal key in another allocation: lookups compare contents.
        let probe = key.clone();
        let map: Hamt<Vec<u8>, Vec<u8>> = Hamt::new();
        let before = m.above().0;
        assert!(map.insert(key, value).is_none());
        assert!(
            m.above().0 - before < 4096,
            "the insert copied the key or the value: {} bytes more",
            m.above().0 - before
        );
        let r = map.get(&probe).expect("found through an equal key");
        assert_eq!((r.key().as_ptr(), r.value().as_ptr()), (key_at, value_at));
        assert_eq!(r.value().len(), 64 << 20);
        assert_eq!(
            (checksum(r.key()), checksum(r.value())),
            (key_sum, value_sum)
        );
        drop(r);
        let snap = map.read_only_snapshot();
        assert_eq!(snap.get(&probe).map(|v| v.as_ptr()), Some(value_at));
        let removed = map.remove(&probe).expect("removed");
        assert_eq!(checksum(removed.value()), value_sum);
        drop(removed);
        assert!(map.is_empty());
        // The snapshot still holds it; once dropped, the 65 MiB go.
        assert_eq!(snap.get(&probe).map(|v| checksum(v)), Some(value_sum));
        drop(snap);
        map.reclaim();
        assert_eq!(map.stats().pending, 0);
        assert!(
            m.above().0 < (1 << 20) + 64 * 1024,
            "the value and the key are freed: {} bytes live (the 1 MiB probe among them)",
            m.above().0
        );
    }
    m.assert_all_freed("after dropping the map");
}

/// 10^6 entries inserted, then cleared: the reclamation counters balance and the map is back
/// to the bytes of an empty map (one that has been written once).
#[test]
fn a_million_entries_inserted_then_cleared_return_their_memory() {
    let m = Measure::start(1);
    let map: Hamt<u64, u64> = Hamt::new();
    // An empty map after one write: its counter stripes and this thread's retired list in
    // the map's domain exist from the first write on (see
    // `removing_every_key_returns_to_an_empty_map`).
    map.insert(u64::MAX, 0);
    drop(map.remove(&u64::MAX));
    map.reclaim();
    let empty = m.above();
    for k in 0..1_000_000 {
        map.insert(k, k);
    }
    assert_eq!(map.len(), 1_000_000);
    let full = m.above();
    assert!(
        full.0 - empty.0 > 1_000_000 * 32,
        "{full:?} against {empty:?}"
    );
    map.clear();
    assert!(map.is_empty());
    assert!(map.get(&123).is_none());
    map.reclaim();
    let stats = map.stats();
    assert_eq!(stats.pending, 0, "{stats:?}");
    assert_eq!(stats.retired, stats.reclaimed);
    assert!(
        stats.retired >= 1_000_000,
        "the cleared nodes went through the domain: {stats:?}"
    );
    assert_eq!(
        m.above(),
        empty,
        "after clear: (bytes, blocks) against the empty map's"
    );
    drop(map);
    m.assert_all_freed("after dropping the map");
}

// ---------------------------------------------------------------------------------------
// (h): the inline layout (entries stored in the trie's nodes, `Hamt<_, _, _, Inline>`)
//
// The tests above use the default layout (entries in leaves). These run the same checks on
// maps whose entries are copied bit for bit with their nodes: everything is freed, removal
// and `clear` bring memory back to the empty map's, huge and deep maps and snapshots drop on
// a small stack. (Keys and values of the inline layout have no drop glue, so there is no
// drop count to check: `Plain` types cannot count their drops.)

use concurrent_hamt::Inline;
use std::hash::RandomState;

type InlineMap<K, V, S = RandomState> = Hamt<K, V, S, Inline>;

/// (a) for the inline layout.
#[test]
fn inline_dropping_every_clone_frees_everything() {
    let m = Measure::start(4);
    let map: InlineMap<u64, [u64; 3]> = Hamt::default();
    let clones: Vec<_> = (0..3).map(|_| map.clone()).collect();
    thread::scope(|s| {
        let handles = clones
            .iter()
            .enumerate()
            .map(|(t, clone)| {
                spawn(s, move || {
                    for i in 0..20_000u64 {
                        let k = i * 4 + t as u64;
                        clone.insert(k, [k; 3]);
                        if i % 3 == 0 {
                            assert_eq!(clone.remove(&k).map(|v| v[0]), Some(k));
                        }
                        if i % 5 == 0 {
                            drop(clone.insert(k, [k + 1; 3]));
                        }
                        if i % 7 == 0 {
                            drop(clone.update(k, |v| v.map(|v| [v[0], v[1] + 1, v[2]])));
                        }
                    }
                })
            })
            .collect();
        join_all(handles);
    });
    assert!(m.above().0 > 0, "the map holds memory");
    drop(map);
    assert!(m.above().0 > 0, "the clones keep the map alive");
    assert!(!clones[0].is_empty());
    drop(clones);
    m.assert_all_freed("inline: after dropping every handle");
}

/// (b) for the inline layout.
#[test]
fn inline_removing_every_key_returns_to_an_empty_map() {
    let m = Measure::start(1);
    let map: InlineMap<u64, (u32, u64)> = Hamt::default();
    let fresh = m.above();
    map.insert(u64::MAX, (1, 1));
    drop(map.remove(&u64::MAX));
    map.reclaim();
    let empty = m.above();
    assert!(
        empty.0 - fresh.0 <= 4096,
        "the per-thread overhead of a used empty map is small: fresh {fresh:?}, used {empty:?}"
    );
    for round in 0..3 {
        for k in 0..100_000 {
            map.insert(k, (k as u32, k));
        }
        assert!(m.above().0 > empty.0 + 100_000 * 8);
        for k in 0..100_000 {
            assert_eq!(map.remove(&k).map(|v| v.1), Some(k));
        }
        assert!(map.is_empty());
        map.reclaim();
        assert_eq!(map.stats().pending, 0);
        assert_eq!(
            m.above(),
            empty,
            "inline, round {round}: after removing every key, (bytes, blocks) differ from an \
             empty map"
        );
    }
    drop(map);
    m.assert_all_freed("inline: after dropping the map");
}

/// The block pools (`hazard::pool`): the blocks that the removals' scans kept for reuse are
/// memory of the map, counted until `reclaim` frees them, whichever thread's pool holds them
/// (here the main thread's and a worker's, parked alive while the main thread reclaims).
#[test]
fn pooled_blocks_are_the_maps_memory_until_reclaim() {
    let m = Measure::start(2);
    let map: InlineMap<u64, u64> = Hamt::default();
    let (touched, written, resume) = (Barrier::new(2), Barrier::new(2), Barrier::new(2));
    let seen = thread::scope(|s| {
        let worker = spawn(s, || {
            // The worker's per-thread state in the map (its retired list, its count), before
            // the empty map is measured.
            map.insert(u64::MAX, 1);
            drop(map.remove(&u64::MAX));
            touched.wait();
            touched.wait();
            for k in 0..20_000 {
                map.insert(k, k);
            }
            for k in 0..10_000 {
                assert!(map.remove(&k).is_some());
            }
            written.wait();
            resume.wait();
        });
        touched.wait();
        map.insert(u64::MAX, 1);
        drop(map.remove(&u64::MAX));
        map.reclaim();
        let empty = m.above();
        touched.wait();
        written.wait();
        for k in 10_000..20_000 {
            assert!(map.remove(&k).is_some());
        }
        // (Checked after the worker is released, so that a failure does not leave it parked.)
        let before = (map.is_empty(), map.stats().pooled, m.above());
        map.reclaim();
        let after = (map.stats(), m.above());
        resume.wait();
        worker.join().unwrap();
        (empty, before, after)
    });
    let (empty, (is_empty, pooled, bytes), (stats, after)) = seen;
    assert!(is_empty);
    assert!(pooled > 0, "the removals' scans kept blocks for reuse");
    assert!(
        bytes.0 > empty.0,
        "pooled blocks are counted as the map's memory"
    );
    assert_eq!(
        (stats.pending, stats.pooled),
        (0, 0),
        "reclaim empties every idle pool"
    );
    assert_eq!(after, empty, "after reclaim, the bytes of an empty map");
    drop(map);
    m.assert_all_freed("after dropping the map");
}

/// (c) for the inline layout: four threads of mixed operations, then the map emptied by
/// removing every key or with `clear`, three times; memory back to the empty map's each time.
fn inline_concurrent_phases(use_clear: bool) {
    let m = Measure::start(WORKERS);
    let map: InlineMap<u64, [u64; 4]> = Hamt::default();
    let barrier = Barrier::new(WORKERS + 1);
    const PHASES: usize = 3;
    let results: Vec<(isize, isize)> = thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|t| {
                let (map, barrier) = (&map, &barrier);
                spawn(s, move || {
                    let mut rng = common::Rng::new(131 + t as u64);
                    map.insert(1_000_000 + t as u64, [0; 4]);
                    drop(map.remove(&(1_000_000 + t as u64)));
                    barrier.wait();
                    for _ in 0..PHASES {
                        barrier.wait();
                        for i in 0..15_000 {
                            let k = rng.below(4_000);
                            match rng.below(6) {
                                0 | 1 => drop(map.insert(k, [k; 4])),
                                2 => drop(map.remove(&k)),
                                3 => drop(map.update(k, |v| v.map(|v| [v[0] + 1; 4]))),
                                4 => drop(map.remove_if(&k, |v| v[0] % 2 == 0)),
                                _ => {
                                    if let Some(e) = map.get(&k) {
                                        assert!(e.iter().all(|&x| x == e[0]));
                                    }
                                    if i % 1_000 == 0 {
                                        assert!(map.iter().count() <= 4_000);
                                    }
                                }
                            }
                        }
                        barrier.wait();
                        barrier.wait();
                    }
                })
            })
            .collect();
        map.insert(u64::MAX, [0; 4]);
        drop(map.remove(&u64::MAX));
        barrier.wait();
        let mut results = Vec::with_capacity(PHASES + 1);
        map.reclaim();
        results.push(m.above());
        for _ in 0..PHASES {
            barrier.wait();
            barrier.wait();
            assert!(!map.is_empty());
            if use_clear {
                map.clear();
            } else {
                let keys: Vec<u64> = map.iter().map(|e| *e.key()).collect();
                for k in keys {
                    assert!(map.remove(&k).is_some());
                }
            }
            assert!(map.is_empty());
            assert_eq!(map.iter().count(), 0);
            map.reclaim();
            assert_eq!(map.stats().pending, 0);
            results.push(m.above());
            barrier.wait();
        }
        join_all(handles);
        results
    });
    for (phase, after) in results[1..].iter().enumerate() {
        assert_eq!(
            *after, results[0],
            "inline, phase {phase} (clear: {use_clear}): (bytes, blocks) differ from the empty \
             map's"
        );
    }
    drop(results);
    drop(map);
    m.assert_all_freed("inline: concurrent phases");
}

#[test]
fn inline_concurrent_mixed_operations_then_remove_all() {
    inline_concurrent_phases(false);
}

#[test]
fn inline_concurrent_mixed_operations_then_clear() {
    inline_concurrent_phases(true);
}

/// (d) for the inline layout.
#[test]
fn inline_dropping_huge_and_deep_maps_does_not_recurse() {
    let m = Measure::start(1);
    thread::scope(|s| {
        let handle = thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn_scoped(s, || {
                track_this_thread(true);
                let map: InlineMap<u64, u64> = Hamt::default();
                for k in 0..1_000_000 {
                    map.insert(k, k);
                }
                assert_eq!(map.len(), 1_000_000);
                drop(map);

                let deep: InlineMap<u64, u64, Masked> = Hamt::with_layout(Masked::LOW_BITS);
                for k in 0..50_000u64 {
                    deep.insert(k, k);
                }
                assert_eq!(deep.len(), 50_000);
                let deep2 = deep.clone();
                deep.clear();
                deep.reclaim();
                for k in 0..50_000u64 {
                    deep.insert(k, k);
                }
                drop(deep);
                drop(deep2);

                let list: InlineMap<u64, u64, Masked> = Hamt::with_layout(Masked::CONSTANT);
                for k in 0..10_000u64 {
                    list.insert(k, k);
                }
                assert_eq!(list.get(&1234).map(|e| *e), Some(1234));
                drop(list);
            })
            .unwrap();
        join_all(vec![handle]);
    });
    m.assert_all_freed("inline: after dropping the huge and deep maps");
}

/// (f) for the inline layout: snapshots taken, written and dropped while threads write.
#[test]
fn inline_snapshots_taken_and_dropped_during_writes_free_everything() {
    const KEYS: u64 = 4_000;
    let m = Measure::start(4);
    let map: InlineMap<u64, (u64, u64)> = Hamt::default();
    for k in 0..KEYS / 2 {
        map.insert(k, (k, 0));
    }
    let stop = AtomicBool::new(false);
    let takers_done = AtomicUsize::new(0);
    thread::scope(|s| {
        let mut handles = Vec::new();
        for w in 0..2u64 {
            let (map, stop) = (&map, &stop);
            handles.push(spawn(s, move || {
                let mut rng = common::Rng::new(0x6_0000 + w);
                let mut ops = 0;
                while ops < 20_000 || !stop.load(Acquire) {
                    ops += 1;
                    let k = rng.below(KEYS);
                    match rng.below(4) {
                        0 => drop(map.insert(k, (k, ops))),
                        1 => drop(map.remove(&k)),
                        2 => drop(map.update(k, |v| v.map(|v| (v.0, v.1 + 1)))),
                        _ => drop(map.insert_if_absent(k, (k, 0))),
                    }
                }
            }));
        }
        for t in 0..2u64 {
            let (map, stop, takers_done) = (&map, &stop, &takers_done);
            handles.push(spawn(s, move || {
                let _done = common::OnDrop(|| {
                    if takers_done.fetch_add(1, AcqRel) + 1 == 2 {
                        stop.store(true, Release);
                    }
                });
                let mut kept = std::collections::VecDeque::new();
                for i in 0..300u64 {
                    let frozen = map.read_only_snapshot();
                    assert_eq!(frozen.iter().count(), frozen.len());
                    assert!(frozen.iter().all(|(k, v)| v.0 == *k));
                    let copy = map.snapshot();
                    if i % 2 == 0 {
                        for k in 0..50 {
                            let k = KEYS + t * 1_000 + k;
                            drop(copy.insert(k, (k, 1)));
                        }
                        for k in (0..KEYS).step_by(97) {
                            drop(copy.remove(&k));
                        }
                        assert!(copy.read_only_snapshot().len() >= 50);
                    }
                    if i % 5 == 0 {
                        let back = frozen.to_map();
                        drop(back.insert(0, (0, 7)));
                        drop(back.remove(&1));
                        kept.push_back((Some(frozen), back));
                    } else if i % 3 == 0 {
                        kept.push_back((Some(frozen), copy));
                    } else {
                        kept.push_back((None, copy));
                    }
                    if kept.len() > 4 {
                        drop(kept.pop_front());
                    }
                }
                drop(kept);
            }));
        }
        join_all(handles);
    });
    assert!(m.above().0 > 0, "the map holds memory");
    map.reclaim();
    drop(map);
    m.assert_all_freed("inline: after dropping the map and every snapshot");
}

/// (f) for the inline layout: dropping huge and deep snapshots on a small stack.
#[test]
fn inline_dropping_huge_snapshots_does_not_recurse() {
    let m = Measure::start(1);
    thread::scope(|s| {
        let handle = thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn_scoped(s, || {
                track_this_thread(true);
                let map: InlineMap<u64, u64> = Hamt::default();
                for k in 0..1_000_000 {
                    map.insert(k, k);
                }
                let frozen = map.read_only_snapshot();
                let copy = map.snapshot();
                for k in (0..1_000_000).step_by(3) {
                    drop(map.remove(&k));
                }
                for k in (1..1_000_000).step_by(3) {
                    drop(copy.insert(k, k + 1));
                }
                assert_eq!(frozen.len(), 1_000_000);
                drop(frozen);
                drop(copy);
                map.reclaim();
                let last = map.read_only_snapshot();
                let back = last.to_map();
                drop(map);
                assert_eq!(last.get(&2), Some(&2));
                drop(last);
                assert_eq!(back.len(), 1_000_000 - 333_334);
                drop(back);

                let map: InlineMap<u64, u64, Masked> = Hamt::with_layout(Masked::LOW_BITS);
                for k in 0..50_000u64 {
                    map.insert(k, k);
                }
                let frozen = map.read_only_snapshot();
                let copy = map.snapshot();
                map.clear();
                drop(map);
                drop(copy);
                assert_eq!(frozen.len(), 50_000);
                drop(frozen);
            })
            .unwrap();
        join_all(vec![handle]);
    });
    m.assert_all_freed("inline: after dropping the huge snapshots");
}

// ---------------------------------------------------------------------------------------
// (i): the level cache (the table of the INodes three levels below the root that lookups in
// large maps start from): once the keys are gone, by removal or `clear`, the table keeps no
// node alive, and the map's memory is the empty map's (table included).

fn level_cache_round_trips<S: BuildHasher + Clone>(hasher: S, what: &str) {
    let m = Measure::start(1);
    // A table from the start (threshold 0), so that the empty map's memory includes it.
    let map: InlineMap<u64, u64, S> = Hamt::with_level_cache_from(hasher, 0);
    map.insert(u64::MAX, 1);
    drop(map.remove(&u64::MAX));
    map.reclaim();
    let empty = m.above();
    let slots = if cfg!(hamt_cache_always) { 32 } else { 1 << 15 };
    for round in 0..4 {
        for k in 0..100_000 {
            map.insert(k, k);
        }
        for k in 0..100_000 {
            assert_eq!(map.get(&k).map(|v| *v), Some(k));
        }
        let filled = map.level_cache_filled().expect("a table");
        assert!(
            filled > slots / 2,
            "{what}: the lookups filled the table ({filled})"
        );
        if round == 3 {
            // A snapshot held while the map is rewritten: the renewed INodes replace the
            // cached ones, which the snapshot keeps until it goes.
            let snap = map.read_only_snapshot();
            for k in 0..100_000 {
                map.insert(k, k + 1);
            }
            for k in 0..100_000 {
                assert_eq!(map.get(&k).map(|v| *v), Some(k + 1));
            }
            assert_eq!(snap.len(), 100_000);
            drop(snap);
        }
        if round % 2 == 0 {
            for k in 0..100_000 {
                assert!(map.remove(&k).is_some());
            }
        } else {
            map.clear();
        }
        map.reclaim();
        assert_eq!(map.stats().pending, 0);
        assert_eq!(
            map.level_cache_filled(),
            Some(0),
            "{what}, round {round}: the table keeps no INode"
        );
        assert_eq!(
            m.above(),
            empty,
            "{what}, round {round}: (bytes, blocks) differ from the empty map's"
        );
    }
    drop(map);
    m.assert_all_freed(format_args!("{what}: after dropping the map"));
}

#[test]
fn the_level_cache_keeps_nothing_once_the_keys_are_gone() {
    level_cache_round_trips(RandomState::new(), "random hashes");
}
