//! The O(1) entry count: one counter per thread, written only by its thread.
//!
//! A write adds its delta (+1, -1) to its own thread's slot with a plain load and store: no
//! atomic read-modify-write, and no cache line shared with another writer. `len` sums the
//! slots. Slots are indexed by the hazard crate's thread index ([`hazard::thread_index`]),
//! which is unique among live threads and passes from an exited thread to a later one with a
//! happens-before edge, so a slot always has one writer at a time and the sum of all slots is
//! the net count of every write that finished. A thread whose thread-locals are already gone
//! (a write from another thread-local's destructor) adds to a shared slot with an RMW.
//!
//! Exactness: once every write has finished and its thread's last store happens before the
//! reader (a join, a barrier, a channel), `len` is exact. While writes run, it is off by the
//! writes in flight (a sum read slot by slot may even see a removal before the insertion it
//! removed; callers clamp at zero).

use crate::sync::{AtomicIsize, AtomicPtr};
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Slots in the first segment; segment `s` holds `BASE << s`.
const BASE: usize = 4;
/// Enough segments for any thread index (as in the hazard crate's retired-list table; under
/// loom, three).
const SEGMENTS: usize = if cfg!(loom) { 3 } else { 28 };

/// One thread's count, on its own cache line.
#[repr(align(64))]
struct Slot(AtomicIsize);

pub(crate) struct Counter {
    /// Segments of slots, allocated on the first write by a thread whose index falls in
    /// them (so a new map, or a writable snapshot, allocates nothing until written).
    segments: [AtomicPtr<Slot>; SEGMENTS],
    /// For writes by threads whose thread-locals are gone.
    orphans: AtomicIsize,
}

/// Where thread index `index` lives: (segment, offset).
fn locate(index: usize) -> (usize, usize) {
    let x = index / BASE + 1;
    let seg = (usize::BITS - 1 - x.leading_zeros()) as usize;
    (seg, index - BASE * ((1 << seg) - 1))
}

fn segment_len(seg: usize) -> usize {
    BASE << seg
}

impl Counter {
    pub(crate) fn new() -> Self {
        Counter {
            segments: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            orphans: AtomicIsize::new(0),
        }
    }

    /// Adds `delta` to this thread's count.
    #[inline]
    pub(crate) fn add(&self, delta: isize) {
        let Some(index) = hazard::thread_index() else {
            // Relaxed: a count, read as a sum; several threads may add here.
            self.orphans.fetch_add(delta, Relaxed);
            return;
        };
        let slot = self.slot(index);
        // Relaxed load and store, no RMW: only this thread writes its slot (the index passes
        // between threads with a happens-before edge, see the module docs); `sum` reads it.
        slot.0.store(slot.0.load(Relaxed) + delta, Relaxed);
    }

    #[inline]
    fn slot(&self, index: usize) -> &Slot {
        let (seg, off) = locate(index);
        if seg >= SEGMENTS {
            unreachable!("thread index {index} beyond the counter's table");
        }
        // Acquire: pairs with the Release CAS in `alloc_segment`.
        let mut p = self.segments[seg].load(Acquire);
        if p.is_null() {
            p = self.alloc_segment(seg);
        }
        // Safety: a published segment holds `segment_len(seg)` slots and lives as long as the
        // counter; `off < segment_len(seg)` by `locate`.
        unsafe { &*p.add(off) }
    }

    #[cold]
    fn alloc_segment(&self, seg: usize) -> *mut Slot {
        let fresh: Box<[Slot]> = (0..segment_len(seg))
            .map(|_| Slot(AtomicIsize::new(0)))
            .collect();
        let fresh = Box::into_raw(fresh).cast::<Slot>();
        // AcqRel: Release publishes the zeroed slots; Acquire (on failure) sees the winner's.
        match self.segments[seg].compare_exchange(ptr::null_mut(), fresh, Release, Acquire) {
            Ok(_) => fresh,
            Err(winner) => {
                // Safety: allocated above as a boxed slice of this length, never published.
                drop(unsafe {
                    Box::from_raw(ptr::slice_from_raw_parts_mut(fresh, segment_len(seg)))
                });
                winner
            }
        }
    }

    /// The signed sum of the slots: exact when no write is in flight (see the module docs).
    pub(crate) fn sum(&self) -> isize {
        // Relaxed: see `add`.
        let mut n = self.orphans.load(Relaxed);
        for (seg, p) in self.segments.iter().enumerate() {
            // Acquire: as in `slot`.
            let p = p.load(Acquire);
            if !p.is_null() {
                // Safety: as in `slot`.
                let slots = unsafe { std::slice::from_raw_parts(p, segment_len(seg)) };
                n += slots.iter().map(|s| s.0.load(Relaxed)).sum::<isize>();
            }
        }
        n
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        for (seg, p) in self.segments.iter().enumerate() {
            // Relaxed: `&mut self`.
            let p = p.load(Relaxed);
            if !p.is_null() {
                // Safety: allocated in `alloc_segment` as a boxed slice of this length; ours.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, segment_len(seg))) });
            }
        }
    }
}
