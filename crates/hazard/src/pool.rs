//! Block pools: memory that reclamation frees, kept for the next allocations of the same size.
//!
//! A data structure whose writes copy nodes (a trie's path copy, say) allocates one block per
//! write and frees one per retired node, many of them in each scan. With the global allocator
//! alone, a scan that frees hundreds of blocks at once overflows its per-thread cache (glibc's
//! tcache keeps seven blocks per size), so most of those frees, and the allocations after
//! them, take the allocator's slow paths. A domain made [`with_block_pool`] keeps, for each
//! thread index, a pool of freed blocks sorted by size class, and serves allocations of the
//! same class from it.
//!
//! # Invariants
//!
//! - A pool holds at most as many blocks as its domain's scan threshold at the time of each
//!   free, and never more than [`CAPACITY`], every one allocated with
//!   [`block_layout`] of its class's size from the global allocator and owned by nobody else:
//!   what a pool holds is as bounded as what a retired list holds (the scan threshold), and
//!   it is memory of this domain alone, not of the thread.
//! - A pool is used only by whoever holds its `busy` flag, taken with an Acquire swap and
//!   given back with a Release store: its owner thread (the thread of its index) while it
//!   allocates or while it scans, and [`Domain::reclaim`](crate::Domain::reclaim) or the
//!   domain's drop while they empty it. Nobody waits for the flag: an allocation that finds it
//!   taken goes to the global allocator, a free to the global allocator, and `reclaim` skips
//!   the pool (it is busy only while some thread is inside an operation on the domain, when
//!   `reclaim` promises nothing about memory anyway).
//! - So `reclaim` with no operation running on other threads (live or exited) leaves every
//!   pool empty, and a domain's memory never depends on what its pools held.
//! - Each scan, before it frees into its thread's pool, trims every class of the pool to as
//!   many blocks as were asked of that class since the previous scan ([`Held::age`]). Writes
//!   that shrink or grow nodes free blocks of one class and allocate the next one down or
//!   up; without the trim a pool fills with the sizes of an earlier phase, which nobody asks
//!   for, refuses the blocks being freed now, and serves little (`benches/examples/
//!   pool_hits.rs`: 0.33 of the allocations of a map's removal at 10^6 keys before the trim,
//!   0.92 after).
//!
//! Reusing a block is no different for the data structure from the allocator handing out the
//! same address again, which it does all the time: a block enters a pool only once the domain
//! has proved that no hazard pointer protects it, exactly where it would have been freed.
//!
//! [`with_block_pool`]: crate::Domain::with_block_pool

use crate::sync::{AtomicBool, UnsafeCell};
use std::alloc::{self, Layout};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::{mem, ptr};

/// Size classes are multiples of this many bytes.
pub const GRAIN: usize = 32;
/// The alignment every block of a class is allocated with (so that any block of a class can
/// serve any layout of it, and be freed with the class's layout): layouts aligned more are
/// not pooled.
pub const BLOCK_ALIGN: usize = 16;
/// Classes: block sizes `GRAIN`, `2 * GRAIN`, ..., `CLASSES * GRAIN` (1 KiB).
pub const CLASSES: usize = 32;
/// Blocks a pool holds at most, whatever its domain's threshold: a pool holds no more blocks
/// than one full retired list (its domain's current scan threshold), and never more than this
/// (the default threshold raised as far as a slow barrier raises it: see
/// [`Domain::stats`](crate::Domain::stats)).
pub const CAPACITY: usize =
    crate::domain::RETIRE_THRESHOLD_MIN << crate::domain::MAX_THRESHOLD_SHIFT;

// A class's count of blocks held fits a `u16`.
const _: () = assert!(CAPACITY <= u16::MAX as usize);

/// The class of a block of `layout` (`size.div_ceil(GRAIN) - 1`), if it has one.
#[inline(always)]
pub(crate) fn class(layout: Layout) -> Option<usize> {
    let c = layout.size().div_ceil(GRAIN);
    (layout.align() <= BLOCK_ALIGN && (1..=CLASSES).contains(&c)).then_some(c - 1)
}

/// The layout of the blocks of class `c`.
#[inline(always)]
fn class_layout(c: usize) -> Layout {
    // Safety: the unchecked constructor's contract: a power-of-two alignment, and a size (at
    // most 1 KiB) that cannot overflow when rounded up to it.
    unsafe { Layout::from_size_align_unchecked((c + 1) * GRAIN, BLOCK_ALIGN) }
}

/// The layout a block for `layout` is allocated and freed with: its class's, for layouts that
/// have a class (at most 1 KiB, aligned at most [`BLOCK_ALIGN`]); `layout` itself otherwise.
#[inline(always)]
pub fn block_layout(layout: Layout) -> Layout {
    class(layout).map_or(layout, class_layout)
}

/// Allocates a block for `layout` from the global allocator, with [`block_layout`] (null if
/// the allocator fails).
///
/// # Safety
/// `layout` has a non-zero size.
#[inline]
pub unsafe fn alloc_block(layout: Layout) -> *mut u8 {
    // Safety: non-zero size (the caller's), and rounding keeps it so.
    unsafe { alloc::alloc(block_layout(layout)) }
}

/// Frees a block that [`alloc_block`] or a domain's
/// [`alloc_block`](crate::Domain::alloc_block) returned for `layout`, to the global allocator.
///
/// # Safety
/// 1. `p` came from one of those for this `layout`, and is not used after this call.
#[inline]
pub unsafe fn dealloc_block(p: *mut u8, layout: Layout) {
    // Safety: 1. allocated with this very layout.
    unsafe { alloc::dealloc(p, block_layout(layout)) }
}

/// Gives `p` to `held` if it holds fewer than `capacity` blocks (and `layout` has a class),
/// else frees it to the global allocator.
///
/// # Safety
/// As [`dealloc_block`].
#[inline]
pub(crate) unsafe fn give_or_dealloc(
    held: Option<&mut Held<'_>>,
    p: *mut u8,
    layout: Layout,
    capacity: usize,
) {
    if let (Some(held), Some(c)) = (held, class(layout)) {
        // Safety: 1; allocated with its class's layout (`block_layout`).
        if unsafe { held.give(p, c, capacity) } {
            return;
        }
    }
    // Safety: 1.
    unsafe { dealloc_block(p, layout) }
}

/// A free block's first word, while it is in a pool: the next block of its class.
struct Free {
    next: *mut Free,
}

struct Lists {
    heads: [*mut Free; CLASSES],
    /// Blocks held in each class (at most [`CAPACITY`], which a `u16` holds: checked above).
    counts: [u16; CLASSES],
    /// Blocks asked of each class (served or not) since the last [`Held::age`].
    takes: [u16; CLASSES],
    held: usize,
}

/// One thread index's pool in one domain.
pub(crate) struct Pool {
    busy: AtomicBool,
    lists: UnsafeCell<Lists>,
}

// Safety: the lists are touched only by the holder of `busy` (module invariants), and they
// hold blocks of plain memory, owned by the pool.
unsafe impl Send for Pool {}
// Safety: as above.
unsafe impl Sync for Pool {}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            busy: AtomicBool::new(false),
            lists: UnsafeCell::new(Lists {
                heads: [ptr::null_mut(); CLASSES],
                counts: [0; CLASSES],
                takes: [0; CLASSES],
                held: 0,
            }),
        }
    }
}

/// A pool taken (its `busy` flag held) until dropped.
pub(crate) struct Held<'a>(&'a Pool);

impl Pool {
    /// Takes the pool if nobody holds it.
    #[inline]
    pub(crate) fn try_hold(&self) -> Option<Held<'_>> {
        // Acquire: pairs with the Release store in `Held::drop` by the previous holder, whose
        // changes to the lists (and to the blocks' first words) we then see. (`then`, not
        // `then_some`: a `Held` built and dropped on failure would release the holder's flag.)
        (!self.busy.swap(true, Acquire)).then(|| Held(self))
    }
}

impl Held<'_> {
    /// A block of `layout`'s class, if the pool has one. (The caller knows `layout` has one.)
    #[inline]
    pub(crate) fn take(&mut self, c: usize) -> *mut u8 {
        self.0.lists.with_mut(|l| {
            // Safety: we hold the pool; `c < CLASSES` (from `class`).
            let l = unsafe { &mut *l };
            let head = l.heads[c];
            if !head.is_null() {
                // Safety: a block in the pool, ours while we hold it; its first word is the
                // next block of the class.
                l.heads[c] = unsafe { (*head).next };
                l.counts[c] -= 1;
                l.held -= 1;
            }
            l.takes[c] = l.takes[c].saturating_add(1);
            head.cast()
        })
    }

    /// Keeps `p` (of class `c`) if the pool holds fewer than `capacity` blocks (and fewer than
    /// [`CAPACITY`]); false if not (`p` untouched).
    ///
    /// # Safety
    /// 1. `p` was allocated with `block_layout` of class `c`, is ours, and is not used after.
    #[inline]
    pub(crate) unsafe fn give(&mut self, p: *mut u8, c: usize, capacity: usize) -> bool {
        self.0.lists.with_mut(|l| {
            // Safety: we hold the pool.
            let l = unsafe { &mut *l };
            if l.held >= capacity.min(CAPACITY) {
                return false;
            }
            let f = p.cast::<Free>();
            // Safety: 1. the block is at least GRAIN bytes, BLOCK_ALIGN-aligned: a pointer
            // fits at its start.
            unsafe { f.write(Free { next: l.heads[c] }) };
            l.heads[c] = f;
            l.counts[c] += 1;
            l.held += 1;
            true
        })
    }

    /// Keeps, in each class, at most as many blocks as were asked of that class since the
    /// last call (the most recently freed ones, which are likelier in cache), and frees the
    /// rest. A scan calls it before freeing into the pool (see the module docs).
    pub(crate) fn age(&mut self) {
        self.0.lists.with_mut(|l| {
            // Safety: we hold the pool.
            let l = unsafe { &mut *l };
            for c in 0..CLASSES {
                let keep = l.takes[c];
                if l.counts[c] <= keep {
                    continue;
                }
                // The link to cut: the head, or the `keep`-th block's first word.
                let mut cut: *mut *mut Free = &mut l.heads[c];
                for _ in 0..keep {
                    // Safety: `keep` < the class's count, so the block exists: pooled, ours
                    // while we hold the pool.
                    cut = unsafe { &mut (**cut).next };
                }
                // Safety: as above; the rest of the list, unlinked, is ours to free.
                let mut f = unsafe { mem::replace(&mut *cut, ptr::null_mut()) };
                while !f.is_null() {
                    // Safety: a pooled block, unlisted, ours; read its link before freeing it.
                    let next = unsafe { (*f).next };
                    // Safety: allocated with its class's layout (invariant), ours.
                    unsafe { alloc::dealloc(f.cast(), class_layout(c)) };
                    f = next;
                }
                l.held -= usize::from(l.counts[c] - keep);
                l.counts[c] = keep;
            }
            l.takes = [0; CLASSES];
        })
    }

    /// Frees every block the pool holds; returns how many.
    pub(crate) fn drain(&mut self) -> usize {
        self.0.lists.with_mut(|l| {
            // Safety: we hold the pool.
            let l = unsafe { &mut *l };
            let n = l.held;
            for (c, head) in l.heads.iter_mut().enumerate() {
                let mut f = std::mem::replace(head, ptr::null_mut());
                while !f.is_null() {
                    // Safety: a pooled block, ours; read its link before freeing it.
                    let next = unsafe { (*f).next };
                    // Safety: allocated with its class's layout (invariant), ours.
                    unsafe { alloc::dealloc(f.cast(), class_layout(c)) };
                    f = next;
                }
            }
            l.counts = [0; CLASSES];
            l.held = 0;
            n
        })
    }

    /// Blocks held.
    pub(crate) fn held(&self) -> usize {
        // Safety: we hold the pool.
        self.0.lists.with_mut(|l| unsafe { (*l).held })
    }
}

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release: publishes our changes to the lists to the next holder (see `try_hold`).
        self.0.busy.store(false, Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_failed_hold_leaves_the_holder_holding() {
        let pool = Pool::default();
        let held = pool.try_hold().expect("a free pool can be held");
        assert!(
            pool.try_hold().is_none(),
            "a held pool cannot be held again"
        );
        assert!(
            pool.try_hold().is_none(),
            "a failed attempt must not have released the holder's flag"
        );
        drop(held);
        assert!(pool.try_hold().is_some(), "released on drop");
    }

    #[test]
    fn classes_and_layouts() {
        let l = |size, align| Layout::from_size_align(size, align).unwrap();
        assert_eq!(block_layout(l(1, 1)), l(GRAIN, BLOCK_ALIGN));
        assert_eq!(block_layout(l(GRAIN + 8, 8)), l(2 * GRAIN, BLOCK_ALIGN));
        assert_eq!(
            block_layout(l(CLASSES * GRAIN, 16)),
            l(CLASSES * GRAIN, BLOCK_ALIGN)
        );
        // Too large, or aligned more than a class's blocks: not pooled, layout unchanged.
        assert_eq!(
            block_layout(l(CLASSES * GRAIN + 1, 8)),
            l(CLASSES * GRAIN + 1, 8)
        );
        assert_eq!(block_layout(l(64, 64)), l(64, 64));
        assert_eq!(class(l(64, 64)), None);
        assert_eq!(class(l(GRAIN, 8)), Some(0));
        assert_eq!(class(l(GRAIN + 1, 8)), Some(1));
    }

    #[test]
    fn age_keeps_per_class_what_was_asked_since_the_last_age() {
        let pool = Pool::default();
        let layout = |c: usize| Layout::from_size_align((c + 1) * GRAIN, 8).unwrap();
        let mut held = pool.try_hold().unwrap();
        let give = |held: &mut Held<'_>, c: usize, n: usize| -> Vec<*mut u8> {
            (0..n)
                .map(|_| {
                    // Safety: non-zero size.
                    let b = unsafe { alloc_block(layout(c)) };
                    assert_eq!(class(layout(c)), Some(c));
                    // Safety: allocated for class `c`'s layout, ours.
                    assert!(unsafe { held.give(b, c, usize::MAX) });
                    b
                })
                .collect()
        };
        let take = |held: &mut Held<'_>, c: usize| -> *mut u8 {
            let b = held.take(c);
            if !b.is_null() {
                // Safety: a block of class `c` from the pool, ours now.
                unsafe { dealloc_block(b, layout(c)) };
            }
            b
        };
        // Class 3 asked for 5 times (served twice, then missed), class 7 never.
        let first = give(&mut held, 3, 2);
        assert_eq!(take(&mut held, 3), first[1]);
        assert_eq!(take(&mut held, 3), first[0]);
        for _ in 0..3 {
            assert!(take(&mut held, 3).is_null());
        }
        let second = give(&mut held, 3, 8);
        give(&mut held, 7, 4);
        assert_eq!(held.held(), 12);
        held.age();
        // Class 7 emptied; class 3 keeps 5 blocks, the last ones given.
        assert_eq!(held.held(), 5);
        assert!(take(&mut held, 7).is_null());
        for i in 0..5 {
            assert_eq!(
                take(&mut held, 3),
                second[7 - i],
                "most recently given first"
            );
        }
        assert!(take(&mut held, 3).is_null());
        assert_eq!(held.held(), 0);
        // Six asks of class 3 since the last age: three blocks given now are all kept.
        give(&mut held, 3, 3);
        held.age();
        assert_eq!(held.held(), 3);
        // No asks since: all freed.
        held.age();
        assert_eq!(held.held(), 0);
        assert_eq!(held.drain(), 0);
    }

    #[test]
    fn give_take_drain() {
        let pool = Pool::default();
        let layout = Layout::from_size_align(100, 8).unwrap();
        let c = class(layout).unwrap();
        let mut held = pool.try_hold().unwrap();
        assert!(held.take(c).is_null(), "an empty pool has nothing to give");
        // Safety: non-zero size.
        let blocks: Vec<*mut u8> = (0..CAPACITY + 3)
            .map(|_| unsafe { alloc_block(layout) })
            .collect();
        let mut kept = 0;
        for &b in &blocks {
            // Safety: allocated for `layout`, of class `c`, ours.
            if unsafe { held.give(b, c, usize::MAX) } {
                kept += 1;
            } else {
                // Safety: as above; the pool did not keep it.
                unsafe { dealloc_block(b, layout) };
            }
        }
        assert_eq!(kept, CAPACITY, "the pool keeps at most CAPACITY blocks");
        assert_eq!(held.held(), CAPACITY);
        // Last in, first out, and only from the class asked for.
        assert_eq!(held.take(c), blocks[CAPACITY - 1]);
        assert!(held.take(c + 1).is_null());
        assert_eq!(held.held(), CAPACITY - 1);
        assert_eq!(held.drain(), CAPACITY - 1);
        assert_eq!(held.held(), 0);
        assert!(held.take(c).is_null());
        // A smaller capacity (the domain's current threshold) stops it sooner.
        // Safety: non-zero size.
        let (a, b) = unsafe { (alloc_block(layout), alloc_block(layout)) };
        // Safety: allocated for `layout`, of class `c`, ours.
        assert!(unsafe { held.give(a, c, 1) });
        // Safety: as above.
        assert!(!unsafe { held.give(b, c, 1) }, "full at a capacity of one");
        // Safety: as above; the pool did not keep it.
        unsafe { dealloc_block(b, layout) };
        assert_eq!(held.drain(), 1);
        // Safety: taken from the pool above, ours.
        unsafe { dealloc_block(blocks[CAPACITY - 1], layout) };
    }
}
