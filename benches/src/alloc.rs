//! A counting global allocator for memory measurements.
//!
//! A bench binary installs it with
//! `#[global_allocator] static A: benches::alloc::Counting = benches::alloc::Counting;`.
//! Counting is **off** until [`enable`] is called, and then costs one relaxed load per
//! allocation; the `map` benchmark only enables it in the child processes that measure memory,
//! never while measuring throughput.
//!
//! Two sizes are kept for every live block:
//! - *requested*: the `Layout::size()` the program asked for;
//! - *malloc*: what the block really occupies in glibc's heap, `malloc_usable_size(p) + 8`
//!   (usable size plus the 8-byte chunk header). This includes rounding to 16 bytes and so
//!   shows the real per-allocation overhead of node-per-entry designs. Very large blocks that
//!   glibc serves with `mmap` are counted the same way (usable + 8), close enough at the scale
//!   measured here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

/// The counting allocator; forwards to [`System`].
pub struct Counting;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LIVE_REQUESTED: AtomicIsize = AtomicIsize::new(0);
static LIVE_MALLOC: AtomicIsize = AtomicIsize::new(0);
static LIVE_BLOCKS: AtomicIsize = AtomicIsize::new(0);
static PEAK_REQUESTED: AtomicIsize = AtomicIsize::new(0);

/// A snapshot of the counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    /// Live bytes as requested by the program.
    pub requested: isize,
    /// Live bytes as occupied in the malloc heap (usable size + chunk header).
    pub malloc: isize,
    /// Live allocations.
    pub blocks: isize,
    /// Peak of `requested` since the last [`reset_peak`].
    pub peak_requested: isize,
}

/// Start counting. Blocks allocated before this are never counted, so freeing them later makes
/// the counters drift: measure differences over a window with no such frees.
pub fn enable() {
    ENABLED.store(true, Relaxed);
}

/// Whether counting is on.
pub fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

/// Current counters.
pub fn snapshot() -> Snapshot {
    Snapshot {
        requested: LIVE_REQUESTED.load(Relaxed),
        malloc: LIVE_MALLOC.load(Relaxed),
        blocks: LIVE_BLOCKS.load(Relaxed),
        peak_requested: PEAK_REQUESTED.load(Relaxed),
    }
}

/// Set the peak to the current live size.
pub fn reset_peak() {
    PEAK_REQUESTED.store(LIVE_REQUESTED.load(Relaxed), Relaxed);
}

#[inline]
fn block_size(p: *mut u8) -> isize {
    // SAFETY: `p` is a live block from glibc's malloc family (System on Linux uses malloc,
    // posix_memalign or aligned_alloc, all of which malloc_usable_size accepts).
    unsafe { libc::malloc_usable_size(p.cast()) as isize + 8 }
}

#[cold]
fn count_alloc(p: *mut u8, size: usize) {
    let now = LIVE_REQUESTED.fetch_add(size as isize, Relaxed) + size as isize;
    PEAK_REQUESTED.fetch_max(now, Relaxed);
    LIVE_MALLOC.fetch_add(block_size(p), Relaxed);
    LIVE_BLOCKS.fetch_add(1, Relaxed);
}

#[cold]
fn count_free(p: *mut u8, size: usize) {
    LIVE_REQUESTED.fetch_sub(size as isize, Relaxed);
    LIVE_MALLOC.fetch_sub(block_size(p), Relaxed);
    LIVE_BLOCKS.fetch_sub(1, Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the
// bookkeeping only reads the returned block (malloc_usable_size) and never touches its memory.
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && ENABLED.load(Relaxed) {
            count_alloc(p, layout.size());
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && ENABLED.load(Relaxed) {
            count_alloc(p, layout.size());
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ENABLED.load(Relaxed) {
            count_free(ptr, layout.size());
        }
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let on = ENABLED.load(Relaxed);
        if on {
            count_free(ptr, layout.size());
        }
        // SAFETY: forwarded contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if on {
            if p.is_null() {
                // The old block is still live.
                count_alloc(ptr, layout.size());
            } else {
                count_alloc(p, new_size);
            }
        }
        p
    }
}
