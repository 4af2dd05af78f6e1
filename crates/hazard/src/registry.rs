//! The process-wide set of hazard records.
//!
//! Records are grouped in [`Block`]s of [`SLOTS`] records. Each thread that uses hazard
//! pointers owns one block for as long as it lives (cached in a thread-local), so taking a
//! record is a bit operation on the block's free mask, which only the owner touches: no
//! allocation, no atomic RMW, and giving a record back needs no thread-local access at all
//! (a guard finds its block from its slot's address). A thread
//! that needs more than [`SLOTS`] hazards at once (a user holding many guards) takes extra
//! single records from a shared overflow list. Blocks and overflow records are never freed:
//! they form a pool whose size is the peak number of threads (and guards) alive at once, and
//! a thread that exits returns its block for the next thread to reuse.
//!
//! A block's position in the list is also its owner's *thread index*, which domains use to
//! find the thread's retired list without hashing.

use crate::sync::{AtomicBool, AtomicPtr, AtomicUsize};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Hazard records per thread block.
pub(crate) const SLOTS: usize = 8;
const _: () =
    assert!(SLOTS * std::mem::size_of::<AtomicPtr<()>>() <= std::mem::align_of::<Block>());

/// One thread's hazard records. (`repr(C, align(64))` with the slots first, filling the first
/// 64 bytes, so that a guard finds the block and the slot's index from the slot's address.)
#[cfg_attr(not(loom), repr(C, align(64)))]
#[cfg_attr(loom, repr(C, align(1024)))] // loom's atomics are larger than a word
pub(crate) struct Block {
    /// The published hazards. Invariant: non-null only while a guard holds the slot.
    pub(crate) slots: [AtomicPtr<()>; SLOTS],
    /// Bit i set: slot i is free. Invariant: read and written only by the thread that owns
    /// the block (ownership passes through `in_use`'s Release/Acquire), hence a plain cell.
    free: Cell<u32>,
    /// Whether a thread owns this block.
    in_use: AtomicBool,
    /// This block's thread index: unique among blocks, dense from 0.
    pub(crate) index: usize,
    /// The next (older) block. Written once before the block is published.
    next: AtomicPtr<Block>,
}

// Safety: `free`, the only field that is not an atomic or immutable, is accessed only by the
// block's owner thread (see its invariant); everything else is shared through atomics.
unsafe impl Sync for Block {}

/// A single hazard record taken from the overflow list. (`repr(C)` with the hazard first, so
/// that a guard can keep just a pointer to the hazard and recover the record from it.)
#[repr(C)]
pub(crate) struct Overflow {
    pub(crate) hazard: AtomicPtr<()>,
    in_use: AtomicBool,
    next: AtomicPtr<Overflow>,
}

/// The process-wide lists.
pub(crate) struct Registry {
    blocks: AtomicPtr<Block>,
    block_count: AtomicUsize,
    overflow: AtomicPtr<Overflow>,
    overflow_count: AtomicUsize,
}

#[cfg(not(loom))]
static REGISTRY: Registry = Registry {
    blocks: AtomicPtr::new(ptr::null_mut()),
    block_count: AtomicUsize::new(0),
    overflow: AtomicPtr::new(ptr::null_mut()),
    overflow_count: AtomicUsize::new(0),
};

#[cfg(loom)]
loom::lazy_static! {
    static ref REGISTRY: Registry = Registry {
        blocks: AtomicPtr::new(ptr::null_mut()),
        block_count: AtomicUsize::new(0),
        overflow: AtomicPtr::new(ptr::null_mut()),
        overflow_count: AtomicUsize::new(0),
    };
}

pub(crate) fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    /// Takes a free block, or allocates one. The caller owns it until `release_block`.
    fn acquire_block(&'static self) -> &'static Block {
        // Acquire: pairs with the Release CAS that published each block, so its fields
        // (index, next) are visible.
        let mut p = self.blocks.load(Acquire);
        // Safety: blocks are never freed, and every pointer in the list was published by a
        // Release CAS (or written before one) that our Acquire loads pair with.
        while let Some(block) = unsafe { p.as_ref() } {
            // Relaxed pre-check (skips the RMW on busy blocks); Acquire on success: pairs
            // with the Release store in `Local::drop`, so the previous owner's last writes
            // (its slots set to null) happen before ours.
            if !block.in_use.load(Relaxed)
                && block
                    .in_use
                    .compare_exchange(false, true, Acquire, Relaxed)
                    .is_ok()
            {
                return block;
            }
            // Acquire: pairs with the Relaxed store of `next` made before the Release
            // publication of `block`, which our earlier Acquire load synchronised with.
            p = block.next.load(Acquire);
        }
        let block = Box::leak(Box::new(Block {
            slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            free: Cell::new(ALL_FREE),
            in_use: AtomicBool::new(true),
            // Relaxed: only uniqueness matters, which the RMW guarantees.
            index: self.block_count.fetch_add(1, Relaxed),
            next: AtomicPtr::new(ptr::null_mut()),
        }));
        let mut head = self.blocks.load(Relaxed);
        loop {
            // Relaxed: published by the Release CAS below.
            block.next.store(head, Relaxed);
            // Release: publishes the block's fields to readers that Acquire-load the head.
            match self
                .blocks
                .compare_exchange_weak(head, block, Release, Relaxed)
            {
                Ok(_) => return block,
                Err(h) => head = h,
            }
        }
    }

    /// Takes a free overflow record, or allocates one.
    pub(crate) fn acquire_overflow(&'static self) -> &'static Overflow {
        // Acquire: as in `acquire_block`.
        let mut p = self.overflow.load(Acquire);
        // Safety: overflow records are never freed and were published by a Release CAS.
        while let Some(rec) = unsafe { p.as_ref() } {
            // Relaxed pre-check; Acquire on success: pairs with the Release store in
            // `release_overflow`.
            if !rec.in_use.load(Relaxed)
                && rec
                    .in_use
                    .compare_exchange(false, true, Acquire, Relaxed)
                    .is_ok()
            {
                return rec;
            }
            p = rec.next.load(Acquire); // Acquire: as in `acquire_block`.
        }
        let rec = Box::leak(Box::new(Overflow {
            hazard: AtomicPtr::new(ptr::null_mut()),
            in_use: AtomicBool::new(true),
            next: AtomicPtr::new(ptr::null_mut()),
        }));
        self.overflow_count.fetch_add(1, Relaxed); // Relaxed: a statistic.
        let mut head = self.overflow.load(Relaxed);
        loop {
            // Relaxed: published by the Release CAS below.
            rec.next.store(head, Relaxed);
            // Release: publishes the record to readers that Acquire-load the head.
            match self
                .overflow
                .compare_exchange_weak(head, rec, Release, Relaxed)
            {
                Ok(_) => return rec,
                Err(h) => head = h,
            }
        }
    }

    pub(crate) fn release_overflow(&self, rec: &Overflow) {
        // Release: the guard's accesses to the object happen before a reclaimer's Acquire
        // load that sees null.
        rec.hazard.store(ptr::null_mut(), Release);
        // Release: pairs with the Acquire CAS in `acquire_overflow`.
        rec.in_use.store(false, Release);
    }

    /// Appends every published hazard to `out` (unsorted, may contain duplicates).
    ///
    /// Called by a reclaimer after its heavy barrier.
    pub(crate) fn collect_hazards(&self, out: &mut Vec<*mut ()>) {
        // Acquire: as in `acquire_block`.
        let mut p = self.blocks.load(Acquire);
        // Safety: blocks are never freed.
        while let Some(block) = unsafe { p.as_ref() } {
            for slot in &block.slots {
                // Acquire: pairs with the Release stores of guards (publication and reset),
                // so a guard's reads of an object it no longer protects happen before we
                // free that object.
                let h = slot.load(Acquire);
                if !h.is_null() {
                    out.push(h);
                }
            }
            p = block.next.load(Acquire); // Acquire: as in `acquire_block`.
        }
        // Acquire: as in `acquire_overflow`.
        let mut p = self.overflow.load(Acquire);
        // Safety: overflow records are never freed.
        while let Some(rec) = unsafe { p.as_ref() } {
            let h = rec.hazard.load(Acquire); // Acquire: as for block slots above.
            if !h.is_null() {
                out.push(h);
            }
            p = rec.next.load(Acquire); // Acquire: as in `acquire_overflow`.
        }
    }

    /// Total hazard records allocated in this process.
    pub(crate) fn records_allocated(&self) -> usize {
        // Relaxed: statistics.
        self.block_count.load(Relaxed) * SLOTS + self.overflow_count.load(Relaxed)
    }

    /// Hazard records currently owned by a thread (its block) or held by an overflow guard.
    pub(crate) fn records_in_use(&self) -> usize {
        let mut n = 0;
        // Acquire: as in `acquire_block`.
        let mut p = self.blocks.load(Acquire);
        // Safety: blocks are never freed.
        while let Some(block) = unsafe { p.as_ref() } {
            n += SLOTS * usize::from(block.in_use.load(Relaxed)); // Relaxed: a statistic.
            p = block.next.load(Acquire); // Acquire: as in `acquire_block`.
        }
        // Acquire: as in `acquire_overflow`.
        let mut p = self.overflow.load(Acquire);
        // Safety: overflow records are never freed.
        while let Some(rec) = unsafe { p.as_ref() } {
            n += usize::from(rec.in_use.load(Relaxed)); // Relaxed: a statistic.
            p = rec.next.load(Acquire); // Acquire: as in `acquire_overflow`.
        }
        n
    }
}

const ALL_FREE: u32 = (1 << SLOTS) - 1;

impl Block {
    /// Takes a free slot. Only the owner thread calls this.
    #[inline]
    pub(crate) fn take_slot(&self) -> Option<usize> {
        let free = self.free.get();
        if free == 0 {
            return None;
        }
        let i = free.trailing_zeros() as usize;
        self.free.set(free & !(1 << i));
        Some(i)
    }

    /// The free mask (bit i set: slot i is free). Only the owner thread calls this.
    #[inline(always)]
    pub(crate) fn free(&self) -> u32 {
        self.free.get()
    }

    /// Sets the free mask after taking slots. Only the owner thread calls this.
    #[inline(always)]
    pub(crate) fn set_free(&self, free: u32) {
        self.free.set(free);
    }

    /// Gives slot `i` back. Only the owner thread calls this (a guard is not `Send`).
    #[inline]
    pub(crate) fn give_slot(&self, i: usize) {
        self.free.set(self.free.get() | (1 << i));
    }

    /// The block holding `slot`, and the slot's index in it.
    ///
    /// # Safety
    /// 1. `slot` is one of the `slots` of some block.
    #[inline(always)]
    pub(crate) unsafe fn of_slot(slot: &'static AtomicPtr<()>) -> (&'static Block, usize) {
        let addr = slot as *const AtomicPtr<()> as usize;
        let base = addr & !(std::mem::align_of::<Block>() - 1);
        let index = (addr - base) / std::mem::size_of::<AtomicPtr<()>>();
        // Safety: 1; `Block` is `repr(C, align(64))` with `slots` first, within the first 64
        // bytes, so the block starts at the slot's address rounded down to 64; blocks are
        // never freed.
        (unsafe { &*(base as *const Block) }, index)
    }
}

/// This thread's ownership of its block: created on the thread's first use of hazard
/// pointers, dropped at thread exit (the hand-off).
pub(crate) struct Local {
    pub(crate) block: &'static Block,
}

impl Local {
    fn new() -> Self {
        Local {
            block: registry().acquire_block(),
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        CURRENT.with(|c| c.set(GONE));
        // A guard that outlives this thread-local (held by another thread-local destroyed
        // later) keeps its slot; the block then stays owned forever rather than be handed to
        // a thread that would reuse a busy slot.
        if self.block.free.get() == ALL_FREE {
            // Release: pairs with the Acquire CAS in `acquire_block` of the next owner. (Not
            // through the registry: under loom it may already be gone when the main thread's
            // locals are destroyed; blocks are never freed.)
            self.block.in_use.store(false, Release);
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    /// This thread's block, or null before the first use, or [`GONE`] once `LOCAL` was
    /// destroyed. Const-initialised without a destructor, so reading it is one load.
    static CURRENT: Cell<*const Block> = const { Cell::new(ptr::null()) };
    /// The owner of this thread's block (its destructor is the hand-off).
    static LOCAL: Local = Local::new();
}

#[cfg(loom)]
loom::thread_local! {
    static LOCAL: Local = Local::new();
}

/// [`CURRENT`] once this thread's locals are being destroyed.
#[cfg(not(loom))]
const GONE: *const Block = std::ptr::dangling();

/// This thread's block (taken on first use), or `None` while thread-locals are being
/// destroyed.
#[inline(always)]
pub(crate) fn local_block() -> Option<&'static Block> {
    #[cfg(not(loom))]
    {
        let b = CURRENT.with(Cell::get);
        if !b.is_null() && b != GONE {
            // Safety: set from a `&'static Block` by `local_block_slow`.
            return Some(unsafe { &*b });
        }
        local_block_slow(b)
    }
    #[cfg(loom)]
    {
        LOCAL.try_with(|l| l.block).ok()
    }
}

#[cfg(not(loom))]
#[cold]
#[inline(never)]
fn local_block_slow(current: *const Block) -> Option<&'static Block> {
    if current == GONE {
        return None;
    }
    let block = LOCAL.try_with(|l| l.block).ok()?;
    CURRENT.with(|c| c.set(block));
    Some(block)
}

/// This thread's index (its block's), or `None` while its thread-locals are being destroyed.
///
/// Unique among live threads and dense from 0; an exited thread's index passes to a later
/// thread, and everything the exited thread did happens before the next owner's first use
/// (the block's hand-off is a Release store and an Acquire CAS).
#[inline]
pub fn thread_index() -> Option<usize> {
    local_block().map(|b| b.index)
}
