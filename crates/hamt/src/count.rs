//! The O(1) entry count: striped counters, so that writers on different threads do not
//! contend on one cache line.

use crate::sync::AtomicIsize;
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::sync::atomic::AtomicUsize;
use std::sync::OnceLock;
use std::sync::atomic::Ordering::Relaxed;

pub(crate) struct Counter {
    /// Allocated on the first `add`: a writable snapshot makes a new counter, and a 512-byte
    /// cache-aligned allocation made right after a burst of writes can take glibc's malloc
    /// as long as the whole snapshot (it sorts the chunks the writes freed).
    stripes: OnceLock<Box<[CachePadded<AtomicIsize>]>>,
}

thread_local! {
    /// This thread's stripe choice, assigned round-robin on first use.
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    STRIPE
        .try_with(|s| {
            if s.get() == usize::MAX {
                // Relaxed: only distinctness matters.
                s.set(NEXT.fetch_add(1, Relaxed));
            }
            s.get()
        })
        .unwrap_or(0)
}

impl Counter {
    pub(crate) fn new() -> Self {
        let counter = Counter {
            stripes: OnceLock::new(),
        };
        if cfg!(loom) {
            // Under loom, no lazy initialisation (a `OnceLock` racing inside a model could
            // block an OS thread that loom has parked).
            counter.stripes();
        }
        counter
    }

    /// The stripes, allocated on first use.
    #[inline]
    fn stripes(&self) -> &[CachePadded<AtomicIsize>] {
        self.stripes.get_or_init(|| {
            // Twice the parallelism, rounded to a power of two, at most 64: few collisions
            // between threads, and a small map stays small (a stripe is a cache line).
            // Asked once per process: `available_parallelism` reads cgroup files.
            static STRIPES: OnceLock<usize> = OnceLock::new();
            let n = *STRIPES.get_or_init(|| {
                std::thread::available_parallelism()
                    .map_or(4, |n| n.get() * 2)
                    .next_power_of_two()
                    .min(64)
            });
            (0..n)
                .map(|_| CachePadded::new(AtomicIsize::new(0)))
                .collect()
        })
    }

    #[inline]
    pub(crate) fn add(&self, delta: isize) {
        let stripes = self.stripes();
        let i = stripe_index() & (stripes.len() - 1);
        // Relaxed: a count, read as a sum; `len` documents that it is exact only at rest.
        stripes[i].fetch_add(delta, Relaxed);
    }

    /// The signed sum of the stripes: exact when no write is in flight. A sum taken while
    /// writers run may be briefly off (or even negative, when a removal's stripe is read
    /// before the insertion's).
    pub(crate) fn sum(&self) -> isize {
        // Relaxed: see `add`. (Never added to: no stripes yet, 0.)
        self.stripes
            .get()
            .map_or(0, |stripes| stripes.iter().map(|s| s.load(Relaxed)).sum())
    }
}
