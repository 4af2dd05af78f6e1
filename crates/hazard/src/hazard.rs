//! The reader side: a guard that owns one hazard record.

use crate::fence;
use crate::registry::{local_block, registry, Block, Overflow};
use crate::sync::AtomicPtr;
use crate::Domain;
use std::fmt;
use std::marker::PhantomData;
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Tag bit of a guard's word: the domain uses the asymmetric fence.
const ASYMMETRIC: usize = 1;
/// Tag bit of a guard's word: the slot is an overflow record's (not in this thread's block).
const OVERFLOW: usize = 2;
const TAGS: usize = ASYMMETRIC | OVERFLOW;
const _: () = assert!(std::mem::align_of::<AtomicPtr<()>>() > TAGS);

/// A hazard pointer: while it protects a pointer, no [`Domain`] frees the object behind it.
///
/// The guard owns one hazard record for its whole life (the original's `ProtectedPointer`).
/// Re-pointing it ([`protect`](Self::protect) again, on another source) is how a traversal
/// moves hand over hand; [`swap`](Self::swap) exchanges the protections of two guards.
/// Creating a guard is cheap (one thread-local load and a bit operation for the first eight
/// guards of a thread, a walk of a shared list beyond that; [`array`](Self::array) takes
/// several with one thread-local access); dropping it clears the protection and gives the
/// record back without a thread-local access.
///
/// The guard borrows its domain, so the domain cannot be dropped while it exists:
///
/// ```compile_fail
/// let domain = hazard::Domain::new();
/// let guard = hazard::HazardPointer::new(&domain);
/// drop(domain); // error: `domain` is still borrowed by `guard`
/// drop(guard);
/// ```
///
/// A guard is tied to the thread that created it (its record belongs to that thread):
///
/// ```compile_fail
/// let domain = hazard::Domain::new();
/// let guard = hazard::HazardPointer::new(&domain);
/// std::thread::scope(|s| { s.spawn(move || drop(guard)); }); // error: not `Send`
/// ```
pub struct HazardPointer<'domain> {
    /// The record's hazard (a slot of this thread's block, or an overflow record's `hazard`,
    /// both `'static`), tagged [`ASYMMETRIC`] and [`OVERFLOW`]. One word: guards are moved
    /// around on traversal paths, and a wider guard built field by field is copied with wide
    /// loads that the store buffer cannot forward (a stall of tens of cycles per copy). A
    /// block slot's index is its address's offset in its 64-byte-aligned block.
    word: usize,
    _domain: PhantomData<&'domain Domain>,
    /// Not `Send`: a thread-block slot must be returned to its own thread's free mask.
    _not_send: PhantomData<*mut ()>,
}

impl<'domain> HazardPointer<'domain> {
    /// A guard protecting nothing, for objects retired into `domain`.
    #[inline]
    pub fn new(domain: &'domain Domain) -> Self {
        let asymmetric = domain.asymmetric();
        match local_block().and_then(|b| b.take_slot().map(|i| (b, i))) {
            Some((block, i)) => Self::in_block(block, i, asymmetric),
            None => Self::overflow(asymmetric),
        }
    }

    #[inline(always)]
    fn in_block(block: &'static Block, i: usize, asymmetric: bool) -> Self {
        Self::of_word(&block.slots[i] as *const AtomicPtr<()> as usize | usize::from(asymmetric))
    }

    #[cold]
    fn overflow(asymmetric: bool) -> Self {
        let slot = &registry().acquire_overflow().hazard as *const AtomicPtr<()> as usize;
        Self::of_word(slot | OVERFLOW | usize::from(asymmetric))
    }

    #[inline(always)]
    fn of_word(word: usize) -> Self {
        HazardPointer {
            word,
            _domain: PhantomData,
            _not_send: PhantomData,
        }
    }

    /// `N` guards at once, with one thread-local access (folly's `hazptr_array`): a data
    /// structure's traversal typically needs several (the node, its parent and a child).
    /// Beyond this thread's free records they come from the shared overflow pool.
    #[inline(always)]
    pub fn array<const N: usize>(domain: &'domain Domain) -> [Self; N] {
        let asymmetric = domain.asymmetric();
        let mut out = std::mem::MaybeUninit::<[Self; N]>::uninit();
        let first = out.as_mut_ptr().cast::<Self>();
        match local_block() {
            Some(block) => {
                let mut free = block.free();
                for k in 0..N {
                    let guard = if free == 0 {
                        Self::overflow(asymmetric)
                    } else {
                        let i = free.trailing_zeros() as usize;
                        free &= free - 1;
                        Self::in_block(block, i, asymmetric)
                    };
                    // Safety: `k < N`, inside `out`; each element is written once.
                    unsafe { first.add(k).write(guard) };
                }
                block.set_free(free);
            }
            None => {
                for k in 0..N {
                    // Safety: as above.
                    unsafe { first.add(k).write(Self::overflow(asymmetric)) };
                }
            }
        }
        // Safety: every element was written above (nothing in between can panic: taking an
        // overflow record allocates, and allocation failure aborts).
        unsafe { out.assume_init() }
    }

    #[inline(always)]
    fn slot(&self) -> &'static AtomicPtr<()> {
        // Safety: the untagged word is the address of a `'static` hazard slot (`new`).
        unsafe { &*((self.word & !TAGS) as *const AtomicPtr<()>) }
    }

    /// Loads `src` and protects the pointer it holds, retrying until the protection is
    /// validated (the source still holds the published pointer). Returns that pointer, which
    /// may be null.
    ///
    /// The returned pointer may be dereferenced until this guard protects something else or
    /// is dropped, provided that whoever removes it from `src` retires it into this guard's
    /// domain (and only after removing it).
    #[inline]
    pub fn protect<T>(&mut self, src: &AtomicPtr<T>) -> *mut T {
        // Relaxed: a first guess, validated below before it is returned.
        let mut p = src.load(Relaxed);
        loop {
            match self.try_protect(p, src) {
                Ok(p) => return p,
                Err(now) => p = now,
            }
        }
    }

    /// Publishes `ptr` and checks that `src` still holds it: `Ok(ptr)` means `ptr` is
    /// protected (as in [`protect`](Self::protect)); `Err(current)` gives what `src` holds
    /// now, and the guard protects nothing useful.
    #[inline]
    pub fn try_protect<T>(&mut self, ptr: *mut T, src: &AtomicPtr<T>) -> Result<*mut T, *mut T> {
        self.publish(ptr);
        // Acquire: pairs with the Release store or CAS that made `src` point to this object,
        // so the object's contents are visible to the caller.
        let now = src.load(Acquire);
        if now == ptr {
            Ok(ptr)
        } else {
            Err(now)
        }
    }

    /// Publishes `ptr` as this guard's hazard and issues the reader's side of the fence, but
    /// does not validate: the caller must afterwards re-read, with `Acquire`, some location
    /// that proves `ptr` was still reachable (not yet retired) after this call, and must not
    /// dereference `ptr` until that check passes. The trie uses this to validate a child
    /// against its parent's current main node rather than against the slot it came from.
    #[inline]
    pub fn publish<T>(&mut self, ptr: *mut T) {
        // Release: a reclaimer that Acquire-loads this value also sees every access this
        // thread made under the guard's previous protection, so it may free that object.
        self.slot().store(ptr.cast(), Release);
        // The reader's side of the asymmetric fence: orders the store above before the
        // caller's validating load (pairs with the reclaimer's heavy barrier).
        fence::light(self.word & ASYMMETRIC != 0);
    }

    /// Clears the protection.
    #[inline]
    pub fn reset(&mut self) {
        // Release: this thread's accesses to the protected object happen before a
        // reclaimer's Acquire load that sees null (and then frees the object).
        self.slot().store(ptr::null_mut(), Release);
    }

    /// The pointer currently published (null when none).
    #[inline]
    pub fn protected(&self) -> *mut () {
        // Relaxed: only this thread stores to the slot.
        self.slot().load(Relaxed)
    }

    /// Exchanges the protections (and records) of two guards of the same domain, as the
    /// original's `swap` did for hand-over-hand traversal. No protection lapses.
    #[inline]
    pub fn swap(&mut self, other: &mut HazardPointer<'domain>) {
        std::mem::swap(self, other);
    }
}

impl Drop for HazardPointer<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.word & OVERFLOW != 0 {
            drop_overflow(self.slot());
        } else {
            // Release: as in `reset`.
            self.slot().store(ptr::null_mut(), Release);
            // Safety: a non-overflow guard's slot is a slot of a block owned by this thread
            // (guards are not `Send`). If this thread's locals are already gone, the block
            // stays owned forever (see `Local::drop`) and the bit is simply not reused.
            let (block, i) = unsafe { Block::of_slot(self.slot()) };
            block.give_slot(i);
        }
    }
}

#[cold]
fn drop_overflow(slot: &'static AtomicPtr<()>) {
    // Safety: `Overflow` is `repr(C)` with `hazard` first, and overflow records are never
    // freed, so the slot's address is the record's.
    let rec = unsafe { &*(slot as *const AtomicPtr<()>).cast::<Overflow>() };
    registry().release_overflow(rec);
}

impl fmt::Debug for HazardPointer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HazardPointer")
            .field("protected", &self.protected())
            .finish()
    }
}
