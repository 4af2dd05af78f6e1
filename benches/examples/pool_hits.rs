//! How often a map's writes go to the global allocator, phase by phase (the block pools'
//! misses; see `crates/hazard/src/pool.rs`).
//!
//! `cargo run --release -p benches --example pool_hits [entries...]` fills a `u64 -> u64`
//! map with `entries` keys (default 1000, 65536 and 1000000), rewrites each key once (a
//! remove and an insert), then removes every key, and prints the calls to the global
//! allocator (allocations and frees) per write of each phase. A write that the pools serve
//! makes none: the node it copies comes from its thread's pool, and the node it retires
//! goes back there once a scan frees it.

use concurrent_hamt::Hamt;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counts calls; forwards to [`System`].
struct Calls;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);

// Safety: forwards every call to `System` unchanged.
unsafe impl GlobalAlloc for Calls {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Relaxed: a statistic, read by this thread.
        ALLOCS.fetch_add(1, Relaxed);
        // Safety: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // Relaxed: as above.
        FREES.fetch_add(1, Relaxed);
        // Safety: the caller's contract, passed on.
        unsafe { System.dealloc(p, layout) }
    }
}

#[global_allocator]
static GLOBAL: Calls = Calls;

/// A key of the scrambled sequence.
fn key(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Runs `f` and prints the allocator calls it made per write (`writes` of them).
fn phase(name: &str, n: u64, writes: u64, f: impl FnOnce()) {
    let (a, d) = (ALLOCS.load(Relaxed), FREES.load(Relaxed));
    f();
    let (a, d) = (ALLOCS.load(Relaxed) - a, FREES.load(Relaxed) - d);
    println!(
        "{n:>8} keys  {name:<8} {:>5.3} allocations, {:>5.3} frees per write",
        a as f64 / writes as f64,
        d as f64 / writes as f64
    );
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("entries: a number"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1000, 65536, 1_000_000]
    } else {
        sizes
    };
    for n in sizes {
        let map: Hamt<u64, u64> = Hamt::new();
        // (A permutation of 0..n when n is a power of two; any order otherwise.)
        let order = |j: u64| key(j) % n;
        phase("fill", n, n, || {
            for i in 0..n {
                map.insert(key(i), i);
            }
        });
        phase("rewrite", n, 2 * n, || {
            for j in 0..n {
                let i = order(j);
                map.remove(&key(i));
                map.insert(key(i), i);
            }
        });
        phase("remove", n, n, || {
            for i in 0..n {
                map.remove(&key(i));
            }
        });
        assert!(map.is_empty());
    }
}
