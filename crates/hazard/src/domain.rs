//! The reclaimer side: retired lists, batches, scans and statistics.
//!
//! # Retired objects are linked through themselves
//!
//! An object retired with [`Batch::retire`] starts with a [`Link`], a word that the domain
//! uses, once the object is retired, to chain it into a list: no record is allocated per
//! retire. The word holds the next object's address and, in its three low bits, the object's
//! *kind* (objects are at least 8-aligned), which tells the domain's [`Reclaimer`] how to free
//! it. (Before retirement the word is the owner's: the trie keeps reference counts in it.)
//! [`Domain::retire`] (any pointer, any function) allocates a small record that is itself such
//! an object, of the reserved kind [`BOXED`].
//!
//! # Batches: no atomic read-modify-write per retire
//!
//! A [`Batch`] is a chain built by one thread with plain (Relaxed) stores to the retired
//! objects' links, usually on the stack of one data-structure operation. Flushing it is one
//! CAS that pushes the whole chain onto the thread's list in the domain (one lock-free stack
//! per thread index, which any scan may take). A batch is flushed when it is dropped, so an
//! operation leaves nothing in thread-owned storage when it returns: whatever it retired is
//! visible to every thread's scan (and to [`Domain::reclaim`]) from then on, and a map's
//! memory never depends on what other threads do or did. Dropping the domain frees what its
//! lists hold; there are no thread-local lists to adopt at thread exit: an exited thread's list
//! stays in the domain under its index, and the next scan (or the next owner of the index, or
//! the domain's drop) takes it. That is the hand-off.

use crate::fence;
use crate::pool::{self, Held, Pool};
use crate::registry::{local_block, registry};
use crate::sync::{thread_local, AtomicPtr, AtomicU64, AtomicUsize, LOOM};
use crossbeam_utils::CachePadded;
use std::alloc::Layout;
use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Instant;

/// A scan starts once a thread's retired list holds this many objects, or twice the number
/// of hazard records in the process if that is larger (so that a scan frees at least half of
/// what it looks at).
pub const RETIRE_THRESHOLD_MIN: usize = if LOOM { 2 } else { 256 };

/// How far a slow barrier raises a domain's scan threshold: up to `2^MAX_THRESHOLD_SHIFT`
/// times its least threshold.
///
/// A scan in the asymmetric mode costs one `membarrier`, whose price depends on the machine
/// and on what runs: about 0.2 us when no other thread of the process is running, an
/// inter-processor interrupt to each CPU that runs one otherwise, which took 15 us on the
/// 2-vCPU VM this crate is measured on (`cargo run --release -p benches --example
/// scan_cost`). With the threshold fixed, a write-heavy map on two threads lost 8-25 % of its
/// throughput to those interrupts; a threshold fixed higher instead costs single-threaded
/// writes as much, because the blocks a larger scan frees are reused later and colder. So
/// each scan times its barrier and sets the domain's threshold for the next ones to the least
/// `min << s` (`s <= MAX_THRESHOLD_SHIFT`) whose barrier cost per retired object stays under
/// [`BARRIER_BUDGET_NS`].
pub(crate) const MAX_THRESHOLD_SHIFT: u32 = 3;

/// The barrier time per retired object that [`MAX_THRESHOLD_SHIFT`]'s rule aims under.
pub(crate) const BARRIER_BUDGET_NS: u64 = 8;

/// The threshold shift for a barrier that took `ns` nanoseconds, at least threshold `min`:
/// the least `s <= MAX_THRESHOLD_SHIFT` with `ns <= BARRIER_BUDGET_NS * (min << s)`.
fn threshold_shift_for(ns: u64, min: usize) -> u32 {
    let per_scan = BARRIER_BUDGET_NS.saturating_mul(min as u64).max(1);
    (0..MAX_THRESHOLD_SHIFT)
        .find(|&s| ns <= per_scan.saturating_mul(1 << s))
        .unwrap_or(MAX_THRESHOLD_SHIFT)
}

/// Thread slots in the first segment of a domain's retired-list table; segment `s` holds
/// `BASE << s` slots.
const BASE: usize = 4;
/// Enough segments for `BASE * (2^SEGMENTS - 1)` thread indexes, over 2^29 even on 32 bits.
/// (Under loom, which runs at most a handful of threads, three: every segment a scan visits
/// is one more atomic load for the model checker to interleave.)
const SEGMENTS: usize = if LOOM { 3 } else { 28 };

/// Kinds a [`Reclaimer`] may be given: `0..LINK_KINDS`.
pub const LINK_KINDS: usize = 7;
/// The kind of the records that [`Domain::retire`] allocates (reclaimed by the domain itself).
const BOXED: usize = 7;
/// The low bits of a retired link's word: its object's kind.
const KIND_MASK: usize = 7;

thread_local! {
    /// Whether this thread is inside [`Domain::scan`] (of any domain). (Not `const`-initialised:
    /// loom's `thread_local!` does not take that form.)
    #[allow(clippy::missing_const_for_thread_local)]
    static SCANNING: Cell<bool> = Cell::new(false);
}

/// Marks this thread as scanning until dropped (restoring the previous state, so that nested
/// scans of other domains behave).
struct ScanGuard(bool);

impl ScanGuard {
    fn enter() -> Self {
        ScanGuard(SCANNING.with(|s| s.replace(true)))
    }
}

impl Drop for ScanGuard {
    fn drop(&mut self) {
        let previous = self.0;
        SCANNING.with(|s| s.set(previous));
    }
}

/// The first word of an object that can be retired without an allocation
/// ([`Batch::retire`]).
///
/// Until the object is retired, the word is its owner's to use as an atomic counter (through
/// [`word`](Self::word)); from the retire on, it belongs to the domain, which stores in it the
/// next retired object's address and the object's kind. `align(8)` leaves three low bits for
/// the kind, on 32-bit targets too.
#[repr(C, align(8))]
pub struct Link(AtomicUsize);

impl Link {
    /// A link whose word starts at `word`.
    pub fn new(word: usize) -> Self {
        Link(AtomicUsize::new(word))
    }

    /// The word, for the owner's use before the object is retired.
    #[inline(always)]
    pub fn word(&self) -> &AtomicUsize {
        &self.0
    }

    /// Sets the retired object's chain word: `next` (a link or null) and `kind`.
    ///
    /// # Safety
    /// 1. `link` is a retired object's link owned by the caller (its batch, or a list the
    ///    caller took), and the object is alive.
    #[inline(always)]
    unsafe fn chain(link: *mut Link, next: *mut Link, kind: usize) {
        // Relaxed: the chain is private to its owner; it is published to a scanner by the
        // Release CAS of `RetiredList::push`, and taken with an Acquire swap.
        // Safety: 1.
        unsafe { (*link).0.store(next as usize | kind, Relaxed) };
    }

    /// A retired object's chain word: (next link, kind).
    ///
    /// # Safety
    /// As [`chain`](Self::chain).
    #[inline(always)]
    unsafe fn unchain(link: *mut Link) -> (*mut Link, usize) {
        // Relaxed: as in `chain`. Safety: 1.
        let word = unsafe { (*link).0.load(Relaxed) };
        ((word & !KIND_MASK) as *mut Link, word & KIND_MASK)
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Link").field(&self.0.load(Relaxed)).finish()
    }
}

/// How a domain frees the objects retired with [`Batch::retire`]: called once per object,
/// with its link and the kind it was retired with, on whichever thread scans (or drops the
/// domain). Objects that freeing it releases in turn are retired into `batch` (they are
/// queued for a later scan, never reclaimed recursively).
pub type Reclaimer = unsafe fn(link: *mut Link, kind: usize, batch: &mut Batch<'_>);

/// The record [`Domain::retire`] allocates: an object of kind [`BOXED`].
#[repr(C)]
struct Boxed {
    link: Link,
    ptr: *mut (),
    reclaim: unsafe fn(*mut (), &Domain),
}

/// One thread index's retired list in one domain: a lock-free stack of links. Its owner
/// pushes (one batch at a time); any scanning thread may take the whole list.
///
/// Its length is `retired - reclaimed` (objects in the list or being scanned from it), so the
/// owner's flush does one atomic read-modify-write (the push) and plain loads and stores for
/// the rest.
#[derive(Default)]
struct RetiredList {
    head: AtomicPtr<Link>,
    /// Objects ever retired here. Written only by the thread that owns this list's index
    /// (ownership passes between threads through the registry's Release/Acquire hand-off),
    /// except for the orphans' list, which every writer updates with an RMW.
    retired: AtomicU64,
    /// Objects taken from here and reclaimed (by any scanning thread).
    reclaimed: AtomicU64,
}

impl RetiredList {
    /// Objects in the list or being scanned from it.
    fn len(&self) -> u64 {
        // Relaxed: a heuristic for the threshold; `reclaimed` is read second, so a concurrent
        // scan can only make the result larger than the truth, never wrap.
        let retired = self.retired.load(Relaxed);
        retired.saturating_sub(self.reclaimed.load(Relaxed))
    }

    /// Pushes the chain `first..=last` (linked through their words).
    ///
    /// # Safety
    /// 1. `first..=last` is a valid chain of retired objects owned by the caller.
    unsafe fn push(&self, first: *mut Link, last: *mut Link) {
        // Safety: 1.
        let (_, last_kind) = unsafe { Link::unchain(last) };
        // Relaxed: a first guess for the CAS below, which publishes with Release.
        let mut head = self.head.load(Relaxed);
        loop {
            // Safety: 1. `last` is owned by the caller and not yet published.
            unsafe { Link::chain(last, head, last_kind) };
            // Release: publishes the chain (its words, and everything this thread did before
            // retiring the objects, including unlinking them) to the scanner's Acquire swap
            // in `take`.
            match self
                .head
                .compare_exchange_weak(head, first, Release, Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    fn take(&self) -> *mut Link {
        // Relaxed: a hint that skips the RMW on an empty list; an object pushed meanwhile
        // waits for the next scan.
        if self.head.load(Relaxed).is_null() {
            return ptr::null_mut();
        }
        // Acquire: pairs with the Release CAS in `push`.
        self.head.swap(ptr::null_mut(), Acquire)
    }
}

/// Objects retired by one thread, not yet handed to the domain: a chain built with plain
/// stores, pushed onto the thread's list with one CAS by [`flush`](Self::flush) (or when
/// the batch is dropped). See the module documentation.
///
/// ```
/// use hazard::{Batch, Domain, Link};
///
/// #[repr(C)]
/// struct Node { link: Link, value: u64 }
///
/// // Safety: called once per retired `Node`, which came from `Box::into_raw`.
/// unsafe fn reclaim(link: *mut Link, _kind: usize, _: &mut Batch<'_>) {
///     drop(unsafe { Box::from_raw(link.cast::<Node>()) });
/// }
///
/// let domain = Domain::new().with_reclaimer(reclaim);
/// let mut batch = Batch::new(&domain);
/// for value in 0..3 {
///     let node = Box::into_raw(Box::new(Node { link: Link::new(0), value }));
///     // Safety: never shared; retired once; `Node` starts with its link.
///     unsafe { batch.retire(node.cast(), 0) };
/// }
/// assert_eq!(domain.stats().pending, 0, "not flushed yet");
/// drop(batch);
/// assert_eq!(domain.stats().pending, 3);
/// assert_eq!(domain.reclaim(), 3);
/// ```
pub struct Batch<'d> {
    domain: &'d Domain,
    /// This thread's block pool, held while a scan frees into it (see `holding_pool`), and
    /// how many blocks it may keep (the domain's threshold when the scan took it).
    pool: Option<(Held<'d>, usize)>,
    /// The chain's first link (null when empty) and last.
    first: *mut Link,
    last: *mut Link,
    len: u64,
}

impl<'d> Batch<'d> {
    /// An empty batch for `domain`.
    #[inline]
    pub fn new(domain: &'d Domain) -> Self {
        Batch {
            domain,
            pool: None,
            first: ptr::null_mut(),
            last: ptr::null_mut(),
            len: 0,
        }
    }

    /// An empty batch that holds this thread's block pool in `domain` (if the domain pools
    /// blocks and nobody else holds it) until dropped, so that the blocks a scan frees with
    /// [`free_block`](Self::free_block) go to the pool without taking it block by block.
    fn holding_pool(domain: &'d Domain) -> Self {
        let mut batch = Self::new(domain);
        batch.pool = domain.own_pool().map(|mut held| {
            held.age();
            (held, domain.pool_capacity())
        });
        batch
    }

    /// Frees a block that [`Domain::alloc_block`] returned for `layout`: into this thread's
    /// pool in the domain while it has room, else to the global allocator. (A reclaimer frees
    /// the blocks of the objects it reclaims through its batch.)
    ///
    /// # Safety
    /// 1. `p` came from [`Domain::alloc_block`] (of this domain) or [`pool::alloc_block`]
    ///    for `layout`, and is not used after this call.
    #[inline]
    pub unsafe fn free_block(&mut self, p: *mut u8, layout: Layout) {
        match self.pool.as_mut() {
            // Safety: 1.
            Some((held, capacity)) => unsafe {
                pool::give_or_dealloc(Some(held), p, layout, *capacity)
            },
            // Safety: 1.
            None => unsafe { self.domain.free_block(p, layout) },
        }
    }

    /// The domain this batch retires into.
    #[inline]
    pub fn domain(&self) -> &'d Domain {
        self.domain
    }

    /// Adds the object starting at `link` to the batch: once flushed, the domain's
    /// [`Reclaimer`] frees it (called with `kind`) when no hazard pointer protects it. Plain
    /// stores only.
    ///
    /// # Safety
    /// 1. As [`Domain::retire`]'s requirements 1, 2 and 4, for the object whose address is
    ///    `link` (the link is the object's first field, and readers protect that address).
    /// 2. The domain has a reclaimer ([`Domain::with_reclaimer`]) that frees such an object
    ///    when given `kind`, once, on any thread (so what it drops must be `Send`), and
    ///    `kind < LINK_KINDS`.
    #[inline]
    pub unsafe fn retire(&mut self, link: *mut Link, kind: usize) {
        debug_assert!(kind < LINK_KINDS, "kind {kind} out of range");
        // Safety: 1. retired now, so the word is ours.
        unsafe { Link::chain(link, self.first, kind) };
        if self.first.is_null() {
            self.last = link;
        }
        self.first = link;
        self.len += 1;
    }

    /// Retires a record for `ptr` (as [`Domain::retire`], without pushing yet).
    ///
    /// # Safety
    /// As [`Domain::retire`].
    unsafe fn retire_boxed(&mut self, ptr: *mut (), reclaim: unsafe fn(*mut (), &Domain)) {
        let record = Box::into_raw(Box::new(Boxed {
            link: Link::new(0),
            ptr,
            reclaim,
        }));
        // Safety: the record is fresh and ours; it starts with its link; `BOXED` records are
        // reclaimed by the domain itself.
        unsafe { Link::chain(record.cast(), self.first, BOXED) };
        if self.first.is_null() {
            self.last = record.cast();
        }
        self.first = record.cast();
        self.len += 1;
    }

    /// Objects in the batch.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hands the batch to the domain (one CAS), then scans if this thread's list reached the
    /// threshold (and this thread is not already scanning).
    #[inline]
    pub fn flush(&mut self) {
        if !self.first.is_null() {
            self.push(true);
        }
    }

    /// Hands the batch to the domain without ever scanning.
    #[inline]
    pub fn flush_without_scan(&mut self) {
        if !self.first.is_null() {
            self.push(false);
        }
    }

    fn push(&mut self, may_scan: bool) {
        let (first, last, len) = (self.first, self.last, self.len);
        self.first = ptr::null_mut();
        self.last = ptr::null_mut();
        self.len = 0;
        // Counted before the push, so that a scan that takes and frees the objects at once
        // never sees more reclaimed than retired.
        let list = self.domain.count_retired(len);
        // Safety: the chain is ours (built by `retire`), linked first..=last.
        unsafe { list.push(first, last) };
        if may_scan && list.len() >= self.domain.threshold() as u64 && !SCANNING.with(Cell::get) {
            self.domain.scan();
        }
    }
}

impl Drop for Batch<'_> {
    #[inline]
    fn drop(&mut self) {
        self.flush();
    }
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch").field("len", &self.len).finish()
    }
}

/// A set of objects retired by one data structure (one map), and the rules to free them.
///
/// Hazard records are process-wide (see the crate documentation); a domain holds the
/// retired objects of its structure, one list per thread index, and counts them. Dropping a
/// domain reclaims every object still retired in it. Guards borrow the domain, so it cannot
/// be dropped while one exists.
pub struct Domain {
    segments: [AtomicPtr<Slot>; SEGMENTS],
    /// For objects retired by a thread whose thread-locals are already destroyed.
    orphans: CachePadded<RetiredList>,
    asymmetric: bool,
    /// The least scan threshold (see [`RETIRE_THRESHOLD_MIN`]).
    threshold_min: usize,
    /// The current threshold is `threshold_min << threshold_shift` (see
    /// [`MAX_THRESHOLD_SHIFT`]). A heuristic, set by each asymmetric scan from its barrier's
    /// time: Relaxed, and a plain `std` atomic even under loom (where it stays zero).
    threshold_shift: std::sync::atomic::AtomicU32,
    /// Frees the objects retired with [`Batch::retire`].
    reclaimer: Option<Reclaimer>,
    /// Whether freed blocks go to per-thread pools ([`Domain::with_block_pool`]).
    pooled: bool,
}

/// What a domain keeps per thread index: the retired list, and the block pool.
#[derive(Default)]
struct Slot {
    list: CachePadded<RetiredList>,
    pool: CachePadded<Pool>,
}

/// A snapshot of a domain's counters, from [`Domain::stats`].
///
/// Counters are read one after another while other threads may be retiring, so under
/// concurrent use they are approximate; when no thread is using the domain they are exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Objects retired into this domain so far.
    pub retired: u64,
    /// Of those, objects reclaimed (freed) so far.
    pub reclaimed: u64,
    /// Retired and not yet freed: `retired - reclaimed`.
    pub pending: u64,
    /// Hazard records allocated in the whole process (they are shared by all domains).
    pub records_allocated: usize,
    /// Hazard records of the process currently owned by a live thread or an overflow guard.
    pub records_in_use: usize,
    /// The current scan threshold per retired list: the domain's least threshold
    /// ([`RETIRE_THRESHOLD_MIN`] or [`Domain::with_retire_threshold`]'s), times 1, 2, 4 or 8
    /// as the last scan's barrier was slow (asymmetric mode only: a `membarrier` that had to
    /// interrupt other CPUs), and at least twice the records.
    pub threshold: usize,
    /// The most the threshold can be raised to: 8 times the least one (or twice the records,
    /// if more). The bound on `pending` in [`Domain::stats`] holds with this.
    pub threshold_max: usize,
    /// Freed blocks kept in the domain's pools for reuse (memory of the domain, not garbage;
    /// [`Domain::reclaim`] frees them). Pools busy at the time are not counted.
    pub pooled: usize,
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

impl Domain {
    /// A domain that uses the asymmetric fence where the system offers it (Linux
    /// `membarrier`), and the fallback fence elsewhere.
    pub fn new() -> Self {
        Self::with_mode(fence::asymmetric_available())
    }

    /// A domain whose readers issue a full `fence(SeqCst)` per protection, whatever the
    /// system offers. Slower for readers; for comparison and for testing the fallback.
    pub fn with_fallback_fence() -> Self {
        Self::with_mode(false)
    }

    fn with_mode(asymmetric: bool) -> Self {
        Domain {
            segments: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            orphans: CachePadded::new(RetiredList::default()),
            asymmetric,
            threshold_min: RETIRE_THRESHOLD_MIN,
            threshold_shift: std::sync::atomic::AtomicU32::new(0),
            reclaimer: None,
            pooled: false,
        }
    }

    /// A domain (with the system's fence mode) whose threads scan once their retired list
    /// holds `min` objects (or twice the number of hazard records, if more), instead of
    /// [`RETIRE_THRESHOLD_MIN`]. A larger threshold batches more work per scan and leaves
    /// more garbage; `usize::MAX` leaves reclamation to [`reclaim`](Self::reclaim) and to
    /// dropping the domain (data structures' loom models use it, so that scans happen where
    /// the model puts them rather than after every other retire).
    pub fn with_retire_threshold(min: usize) -> Self {
        let mut domain = Self::new();
        domain.threshold_min = min.max(1);
        domain
    }

    /// This domain, freeing the objects retired with [`Batch::retire`] with `reclaimer`.
    pub fn with_reclaimer(mut self, reclaimer: Reclaimer) -> Self {
        self.reclaimer = Some(reclaimer);
        self
    }

    /// This domain, keeping the blocks that reclamation frees through
    /// [`Batch::free_block`] in per-thread pools for [`alloc_block`](Self::alloc_block) (see
    /// the [`pool`] module). [`reclaim`](Self::reclaim) empties the pools.
    pub fn with_block_pool(mut self) -> Self {
        self.pooled = true;
        self
    }

    /// A block for `layout` (non-zero size): from this thread's pool in the domain if it holds
    /// one of the same size class, else from the global allocator (allocated with
    /// [`pool::block_layout`]). Null if the allocator fails. Free it with
    /// [`Batch::free_block`], [`free_block`](Self::free_block) or [`pool::dealloc_block`].
    #[inline]
    pub fn alloc_block(&self, layout: Layout) -> *mut u8 {
        if let Some(c) = pool::class(layout) {
            if let Some(mut held) = self.own_pool() {
                let p = held.take(c);
                if !p.is_null() {
                    return p;
                }
            }
        }
        // Safety: a non-zero size (our contract).
        unsafe { pool::alloc_block(layout) }
    }

    /// Frees a block from [`alloc_block`](Self::alloc_block): into this thread's pool if it
    /// has room (and nobody else holds it), else to the global allocator.
    ///
    /// # Safety
    /// As [`Batch::free_block`].
    pub unsafe fn free_block(&self, p: *mut u8, layout: Layout) {
        let mut held = pool::class(layout).and_then(|_| self.own_pool());
        // Safety: 1.
        unsafe { pool::give_or_dealloc(held.as_mut(), p, layout, self.pool_capacity()) }
    }

    /// This thread's pool, taken, if the domain pools blocks and nobody else holds it.
    #[inline]
    fn own_pool(&self) -> Option<Held<'_>> {
        if !self.pooled {
            return None;
        }
        self.slot(local_block()?.index).pool.try_hold()
    }

    /// Empties every pool nobody holds; returns the blocks freed.
    fn drain_pools(&self) -> usize {
        let mut n = 0;
        if !self.pooled {
            // (Nothing is ever pooled: no step for the model checker either.)
            return 0;
        }
        self.for_each_slot(|slot| {
            if let Some(mut held) = slot.pool.try_hold() {
                n += held.drain();
            }
        });
        n
    }

    /// Whether this domain's readers rely on the reclaimer's `membarrier`.
    pub fn asymmetric(&self) -> bool {
        self.asymmetric
    }

    fn list(&self, index: usize) -> &RetiredList {
        &self.slot(index).list
    }

    #[inline]
    fn slot(&self, index: usize) -> &Slot {
        let (seg, off) = locate(index);
        // Acquire: pairs with the Release CAS in `alloc_segment`.
        let mut p = self.segments[seg].load(Acquire);
        if p.is_null() {
            p = self.alloc_segment(seg);
        }
        // Safety: `p` points to a live segment of `segment_len(seg)` slots (segments live
        // as long as the domain), and `off < segment_len(seg)` by `locate`.
        unsafe { &*p.add(off) }
    }

    #[cold]
    fn alloc_segment(&self, seg: usize) -> *mut Slot {
        let fresh: Box<[Slot]> = (0..segment_len(seg)).map(|_| Slot::default()).collect();
        let fresh = Box::into_raw(fresh).cast::<Slot>();
        // AcqRel: Release publishes the new lists; Acquire (on failure) sees the winner's.
        match self.segments[seg].compare_exchange(ptr::null_mut(), fresh, Release, Acquire) {
            Ok(_) => fresh,
            Err(winner) => {
                // Safety: `fresh` came from `Box::into_raw` of a slice of this length above
                // and was never published.
                drop(unsafe {
                    Box::from_raw(ptr::slice_from_raw_parts_mut(fresh, segment_len(seg)))
                });
                winner
            }
        }
    }

    /// Every list that exists (orphans first).
    fn for_each_list<'a>(&'a self, mut f: impl FnMut(&'a RetiredList)) {
        f(&self.orphans);
        self.for_each_slot(|slot| f(&slot.list));
    }

    /// Every slot that exists.
    fn for_each_slot<'a>(&'a self, mut f: impl FnMut(&'a Slot)) {
        for (seg, p) in self.segments.iter().enumerate() {
            let p = p.load(Acquire); // Acquire: as in `slot`.
            if !p.is_null() {
                // Safety: a published segment holds `segment_len(seg)` slots and lives as
                // long as the domain.
                let slots = unsafe { std::slice::from_raw_parts(p, segment_len(seg)) };
                slots.iter().for_each(&mut f);
            }
        }
    }

    /// The current scan threshold: the least one raised by the last asymmetric scan's barrier
    /// time (see [`MAX_THRESHOLD_SHIFT`]), and at least twice the records.
    fn threshold(&self) -> usize {
        // Relaxed: a heuristic (see the field).
        self.threshold_at(self.threshold_shift.load(Relaxed))
    }

    /// The threshold at shift `shift`: `threshold_min << shift`, and at least twice the
    /// records (under loom, `threshold_min`).
    fn threshold_at(&self, shift: u32) -> usize {
        if LOOM {
            self.threshold_min
        } else {
            (self.threshold_min.saturating_mul(1 << shift)).max(2 * registry().records_allocated())
        }
    }

    /// The most [`threshold`](Self::threshold) can be.
    fn threshold_max(&self) -> usize {
        self.threshold_at(MAX_THRESHOLD_SHIFT)
    }

    /// How many blocks a pool of this domain keeps: as many as a full retired list holds.
    #[inline]
    fn pool_capacity(&self) -> usize {
        self.threshold()
    }

    /// Counts `n` objects about to be pushed by this thread; returns its list.
    fn count_retired(&self, n: u64) -> &RetiredList {
        match local_block() {
            Some(block) => {
                let list = self.list(block.index);
                // Relaxed load and store, no RMW: only this thread writes its list's `retired`
                // (see `RetiredList`); scans read it as a statistic and a heuristic.
                list.retired.store(list.retired.load(Relaxed) + n, Relaxed);
                list
            }
            None => {
                // Relaxed: a statistic; several threads may retire here at once.
                self.orphans.retired.fetch_add(n, Relaxed);
                &self.orphans
            }
        }
    }

    /// Hands `ptr` to the domain: `reclaim(ptr, domain)` runs once no hazard pointer
    /// protects it (on whichever thread scans), or when the domain is dropped. Allocates a
    /// small record (for many objects, [`Batch::retire`] links them through themselves).
    ///
    /// `reclaim` may itself retire further objects into the same domain (to release children
    /// of a reclaimed node, say): they are queued, not reclaimed recursively.
    ///
    /// # Safety
    /// 1. `ptr` is no longer reachable by readers that have not protected it already: it was
    ///    unlinked from every shared location before this call.
    /// 2. `ptr` is retired once, and nothing else frees it.
    /// 3. `reclaim(ptr, _)` is sound to call once, on any thread, after every guard of this
    ///    domain that protected `ptr` has moved on (so what it drops must be `Send`).
    /// 4. Readers protect `ptr` only through guards of this domain.
    pub unsafe fn retire(&self, ptr: *mut (), reclaim: unsafe fn(*mut (), &Domain)) {
        let mut batch = Batch::new(self);
        // Safety: our caller's contract.
        unsafe { batch.retire_boxed(ptr, reclaim) };
        batch.flush();
    }

    /// Like [`retire`](Self::retire), but never scans: the object waits for the next scan
    /// (started by a later retire that reaches the threshold, by [`reclaim`](Self::reclaim),
    /// or by dropping the domain). For latency-sensitive paths that retire one small object
    /// and should not pay for a whole scan.
    ///
    /// # Safety
    /// As [`retire`](Self::retire).
    pub unsafe fn retire_without_scan(&self, ptr: *mut (), reclaim: unsafe fn(*mut (), &Domain)) {
        let mut batch = Batch::new(self);
        // Safety: our caller's contract.
        unsafe { batch.retire_boxed(ptr, reclaim) };
        batch.flush_without_scan();
    }

    /// Retires a `Box`ed value: it is dropped and freed once unprotected.
    ///
    /// # Safety
    /// `ptr` comes from `Box::into_raw`, and requirements 1, 2 and 4 of
    /// [`retire`](Self::retire) hold.
    pub unsafe fn retire_box<T: Send>(&self, ptr: *mut T) {
        unsafe fn reclaim_box<T>(p: *mut (), _: &Domain) {
            // Safety: `retire_box`'s caller gave a pointer from `Box::into_raw`, reclaimed
            // once.
            drop(unsafe { Box::from_raw(p.cast::<T>()) });
        }
        // Safety: 1, 2 and 4 are our caller's; 3 holds because `T: Send` and the box is
        // freed once.
        unsafe { self.retire(ptr.cast(), reclaim_box::<T>) }
    }

    /// Frees every retired object that no hazard pointer protects, including those retired
    /// by threads that have exited, and repeats while reclaiming retires more (cascades).
    /// Returns how many objects were reclaimed.
    ///
    /// Scans also happen on their own when a thread's list reaches the threshold; this call is
    /// for tests, for shutdown, and for returning memory after a burst of removals.
    pub fn reclaim(&self) -> usize {
        let mut total = 0;
        loop {
            let n = self.scan();
            total += n;
            if n == 0 {
                // What the scans put in pools goes back to the allocator too.
                self.drain_pools();
                return total;
            }
        }
    }

    /// The address readers protect for the retired object at `link`.
    ///
    /// # Safety
    /// 1. `link` is a retired object of kind `kind`, owned by the caller.
    #[inline]
    unsafe fn object(link: *mut Link, kind: usize) -> *mut () {
        if kind == BOXED {
            // Safety: 1. a `Boxed` record.
            unsafe { (*link.cast::<Boxed>()).ptr }
        } else {
            link.cast()
        }
    }

    /// Frees the retired object at `link`, catching a panic from user code into `panic`.
    ///
    /// # Safety
    /// 1. `link` is a retired object of kind `kind`, owned by the caller, that no hazard
    ///    pointer protects any more (or no guard of this domain exists).
    unsafe fn free(
        &self,
        link: *mut Link,
        kind: usize,
        cascade: &mut Batch<'_>,
        panic: &mut Option<Box<dyn Any + Send>>,
    ) {
        let result = if kind == BOXED {
            // Safety: 1. allocated by `retire_boxed`.
            let record = unsafe { Box::from_raw(link.cast::<Boxed>()) };
            // Safety: 1; `retire`'s requirements 1-4.
            catch_unwind(AssertUnwindSafe(|| unsafe {
                (record.reclaim)(record.ptr, self)
            }))
        } else {
            let reclaimer = self
                .reclaimer
                .expect("an object was retired through a batch into a domain with no reclaimer");
            // Safety: 1; `Batch::retire`'s requirements.
            catch_unwind(AssertUnwindSafe(|| unsafe {
                reclaimer(link, kind, cascade)
            }))
        };
        if let Err(payload) = result {
            panic.get_or_insert(payload);
        }
    }

    /// One pass: takes every list, frees what is unprotected, puts the rest back.
    ///
    /// Objects that reclaiming retires in turn (cascades) are queued for the next scan: a
    /// retire during a scan never starts a nested one (on this thread), so a cascade of any
    /// length uses constant stack.
    fn scan(&self) -> usize {
        let _scanning = ScanGuard::enter();
        // 1. Take the lists *before* the barrier: everything taken was unlinked before its
        //    Release push, hence before our Acquire take, hence before the barrier.
        let mut taken: Vec<(&RetiredList, *mut Link)> = Vec::new();
        self.for_each_list(|list| {
            let head = list.take();
            if !head.is_null() {
                taken.push((list, head));
            }
        });
        if taken.is_empty() {
            return 0;
        }
        // 2. The reclaimer's side of the fence: a reader either published its hazard before
        //    this point (we see it below) or validates after it (and sees the unlink).
        //    Timed (not under loom) to set the threshold of the next scans: see
        //    `MAX_THRESHOLD_SHIFT`.
        let start = (self.asymmetric && !LOOM).then(Instant::now);
        fence::heavy(self.asymmetric);
        if let Some(start) = start {
            let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            // Relaxed: a heuristic (see the field).
            self.threshold_shift
                .store(threshold_shift_for(ns, self.threshold_min), Relaxed);
        }
        // 3. Every published hazard.
        let mut hazards = Vec::new();
        registry().collect_hazards(&mut hazards);
        hazards.sort_unstable();
        // 4. Free the unprotected, return the rest to their lists.
        let mut panic: Option<Box<dyn Any + Send>> = None;
        // The reclaimer frees blocks through it: into this thread's pool, held for the scan.
        let mut cascade = Batch::holding_pool(self);
        let mut freed_total = 0;
        for (list, mut link) in taken {
            let (mut kept_first, mut kept_last) = (ptr::null_mut::<Link>(), ptr::null_mut());
            let mut freed = 0u64;
            while !link.is_null() {
                // Safety: we own every object of a taken list; the Acquire swap made their
                // words (and contents) visible.
                let (next, kind) = unsafe { Link::unchain(link) };
                // Safety: as above.
                let object = unsafe { Self::object(link, kind) };
                if hazards.binary_search(&object).is_ok() {
                    // Safety: we own it; the kept chain is private until pushed.
                    unsafe { Link::chain(link, kept_first, kind) };
                    if kept_first.is_null() {
                        kept_last = link;
                    }
                    kept_first = link;
                } else {
                    // Safety: unlinked before being retired (before the barrier), unprotected
                    // after it, reclaimed once.
                    unsafe { self.free(link, kind, &mut cascade, &mut panic) };
                    freed += 1;
                }
                link = next;
            }
            if !kept_first.is_null() {
                // Safety: the kept chain is ours and linked first..=last.
                unsafe { list.push(kept_first, kept_last) };
            }
            // Relaxed: statistics and the threshold heuristic.
            list.reclaimed.fetch_add(freed, Relaxed);
            freed_total += freed as usize;
        }
        // What the reclaimers released waits for the next scan (`reclaim` loops).
        cascade.flush_without_scan();
        if let Some(payload) = panic {
            // Every object was processed; now let the user's panic continue (unless this
            // thread is already unwinding, say a retire in a `Drop` run by another panic:
            // a second panic would abort, so this one is dropped).
            if !std::thread::panicking() {
                resume_unwind(payload);
            }
        }
        freed_total
    }

    /// The domain's counters; see [`Stats`].
    ///
    /// Bound: with `T` threads retiring into the domain, `pending` stays at most
    /// `T × (threshold_max + records_allocated)` plus the lists of threads that exited (at most
    /// one threshold each, freed by the next scan of any thread), plus the objects that
    /// reclaiming queues in turn, plus the batches of operations in progress. Objects
    /// protected by guards the user holds stay pending until released.
    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            records_allocated: registry().records_allocated(),
            records_in_use: registry().records_in_use(),
            threshold: self.threshold(),
            threshold_max: self.threshold_max(),
            ..Stats::default()
        };
        self.for_each_list(|list| {
            s.retired += list.retired.load(Relaxed); // Relaxed: statistics.
            s.reclaimed += list.reclaimed.load(Relaxed);
        });
        if self.pooled {
            self.for_each_slot(|slot| {
                if let Some(held) = slot.pool.try_hold() {
                    s.pooled += held.held();
                }
            });
        }
        s.pending = s.retired.saturating_sub(s.reclaimed);
        s
    }
}

impl Default for Domain {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Domain")
            .field("asymmetric", &self.asymmetric)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for Domain {
    /// Reclaims every object still retired, without consulting hazards: no guard of this
    /// domain exists (they borrow it), so none protects its objects.
    fn drop(&mut self) {
        let mut panic: Option<Box<dyn Any + Send>> = None;
        loop {
            let mut lists = Vec::new();
            self.for_each_list(|list| {
                let head = list.take();
                if !head.is_null() {
                    lists.push((list, head));
                }
            });
            if lists.is_empty() {
                break;
            }
            let mut cascade = Batch::new(self);
            for (list, mut link) in lists {
                let mut freed = 0;
                while !link.is_null() {
                    // Safety: we own the taken chain.
                    let (next, kind) = unsafe { Link::unchain(link) };
                    // Safety: `retire`'s contract; no guard of this domain is alive.
                    unsafe { self.free(link, kind, &mut cascade, &mut panic) };
                    freed += 1;
                    link = next;
                }
                // Relaxed: statistics.
                list.reclaimed.fetch_add(freed, Relaxed);
            }
            cascade.flush_without_scan();
        }
        // Nobody else holds a pool now (`&mut self`): this empties every one.
        self.drain_pools();
        for (seg, p) in self.segments.iter().enumerate() {
            let p = p.load(Acquire); // Acquire: as in `slot`.
            if !p.is_null() {
                // Safety: allocated in `alloc_segment` as a boxed slice of this length; no one
                // else can reach it now that we have `&mut self`.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, segment_len(seg))) });
            }
        }
        if let Some(payload) = panic {
            if !std::thread::panicking() {
                resume_unwind(payload);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_indexes_densely() {
        let mut expected = (0, 0);
        for index in 0..10_000 {
            let (seg, off) = locate(index);
            assert_eq!((seg, off), expected, "index {index}");
            assert!(off < segment_len(seg));
            expected = if off + 1 == segment_len(seg) {
                (seg + 1, 0)
            } else {
                (seg, off + 1)
            };
        }
    }

    /// The threshold rule of `MAX_THRESHOLD_SHIFT`: a barrier within the budget at the least
    /// threshold keeps it; each doubling of the barrier's time past that doubles the
    /// threshold, up to the cap; degenerate thresholds neither overflow nor divide by zero.
    #[test]
    fn slow_barriers_raise_the_threshold_up_to_the_cap() {
        let min = 256;
        let budget = BARRIER_BUDGET_NS * min as u64; // 2048 ns at the least threshold
        assert_eq!(threshold_shift_for(0, min), 0);
        assert_eq!(
            threshold_shift_for(180, min),
            0,
            "a lone thread's membarrier"
        );
        assert_eq!(threshold_shift_for(budget, min), 0);
        assert_eq!(threshold_shift_for(budget + 1, min), 1);
        assert_eq!(threshold_shift_for(2 * budget, min), 1);
        assert_eq!(threshold_shift_for(2 * budget + 1, min), 2);
        assert_eq!(
            threshold_shift_for(15_000, min),
            3,
            "an interrupt on a small VM"
        );
        assert_eq!(threshold_shift_for(u64::MAX, min), MAX_THRESHOLD_SHIFT);
        assert_eq!(
            threshold_shift_for(u64::MAX, usize::MAX),
            0,
            "no raise past a threshold of all"
        );
        assert_eq!(threshold_shift_for(1_000_000, usize::MAX), 0);
        assert_eq!(
            threshold_shift_for(1, 0),
            0,
            "a zero threshold is taken as one"
        );
        assert_eq!(threshold_shift_for(2, 0), 1);
    }
}
