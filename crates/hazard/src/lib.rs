//! Hazard pointers with an asymmetric fence, and contention-managed compare-and-swap.
//!
//! This is the memory-reclamation layer of `concurrent-hamt` (the original's `hp` module).
//! A lock-free structure unlinks a node with a CAS, but cannot free it at once: another
//! thread may have read the pointer just before the CAS and be about to dereference it. Hazard
//! pointers (Michael 2004) make such readers announce what they are about to use; a node is
//! freed only once no announcement names it.
//!
//! # Usage
//!
//! ```
//! use hazard::{Domain, HazardPointer};
//! use std::sync::atomic::{AtomicPtr, Ordering::AcqRel};
//!
//! let domain = Domain::new();
//! let cell = AtomicPtr::new(Box::into_raw(Box::new(String::from("first"))));
//!
//! // A reader protects the pointer before dereferencing it.
//! let mut guard = HazardPointer::new(&domain);
//! let p = guard.protect(&cell);
//! // Safety: protected, and writers retire what they unlink into `domain`.
//! assert_eq!(unsafe { &*p }, "first");
//!
//! // A writer swaps in a new value and retires the old one.
//! let old = cell.swap(Box::into_raw(Box::new(String::from("second"))), AcqRel);
//! // Safety: `old` is unlinked, came from `Box::into_raw`, and is retired once.
//! unsafe { domain.retire_box(old) };
//! domain.reclaim();
//! // Still protected, so not freed:
//! assert_eq!(unsafe { &*p }, "first");
//! assert_eq!(domain.stats().pending, 1);
//! drop(guard);
//! assert_eq!(domain.reclaim(), 1);
//! # drop(unsafe { Box::from_raw(cell.into_inner()) });
//! ```
//!
//! # The protocol
//!
//! *Reader* ([`HazardPointer::protect`]): load the source pointer `p`, store `p` into the
//! guard's hazard record (Release), issue the reader's fence, re-load the source (Acquire); if
//! it still holds `p`, `p` is protected, otherwise repeat with the new value.
//!
//! *Writer*: unlink the node from every shared location, then retire it: [`Domain::retire`]
//! (any pointer, with a small record allocated for it), or [`Batch::retire`] for objects that
//! start with a [`Link`] (no allocation, plain stores). A batch is pushed on the thread's
//! retired list in the domain by one CAS (Release) when it is flushed or dropped.
//!
//! *Reclaimer* (a scan, run by whichever thread's list reaches the threshold, or by
//! [`Domain::reclaim`]): take every retired list of the domain (Acquire), issue the
//! reclaimer's fence, read every hazard record of the process (Acquire), and free each taken
//! node that no record names; put the others back.
//!
//! *Why it is safe*: take a reader that dereferences node `n` and a reclaimer that frees it.
//! The reclaimer took `n` from a list, so the unlink of `n` happened before its fence. The two
//! fences order the reader's hazard store and validating load against the reclaimer's unlink
//! and hazard reads: either the reader's fence comes first, and the reclaimer sees the hazard
//! (and keeps `n`); or the reclaimer's comes first, and the reader's validating load sees that
//! the source no longer holds `n` (and retries). A guard that moves on stores with Release,
//! and the reclaimer reads with Acquire, so every access the reader made to `n` happens before
//! `n` is freed.
//!
//! *The fences*: in the fallback both are `fence(SeqCst)`, which is what the loom models
//! check. On Linux the reader's fence is only a compiler barrier and the reclaimer's is
//! `membarrier(PRIVATE_EXPEDITED)`, which executes a full barrier on every running thread of
//! the process; the argument is given in the `fence` module and is why readers pay no
//! hardware fence per protection. See [`Domain::with_fallback_fence`].
//!
//! # Records are process-wide, retired lists per domain
//!
//! There is one set of hazard records per process, grouped in blocks of eight, one block per
//! live thread (cached in a thread-local, so taking a record allocates nothing and issues no
//! atomic read-modify-write). Many domains and many short-lived threads therefore do not
//! multiply records: their number is the peak of threads alive at once (times eight), plus
//! overflow records for threads that hold more than eight guards at once. A thread that exits
//! returns its block for reuse. Records are never freed: they are a pool.
//!
//! A [`Domain`] (one per data structure) holds retired objects: one lock-free list per thread
//! index. The owner pushes (a batch at a time); any scan may take it. There are no
//! thread-local retired lists: a [`Batch`] lives for one operation (on the stack) and is
//! flushed when it ends, so what a thread retired is always in the domain, visible to every
//! scan, and a domain's memory never depends on other threads' history. When a thread exits,
//! its list stays in the domain and the next scan of any thread (or [`Domain::reclaim`], or
//! dropping the domain) frees what it holds: that is the hand-off. Dropping a domain frees
//! everything still retired in it; guards borrow their domain, so none can be alive then.
//!
//! Taking guards: [`HazardPointer::new`] reads one thread-local (this thread's block of
//! records, const-initialised) and flips a bit of the block's free mask; [`HazardPointer::array`]
//! takes several with one thread-local access (folly's `hazptr_array`); dropping a guard
//! clears its hazard and gives the record back without any thread-local access.
//!
//! # Bounded garbage
//!
//! A scan starts when a flush leaves the thread's list at or above the threshold,
//! `max(RETIRE_THRESHOLD_MIN << s, 2 × records)`, where `s` (0 to 3) is set by each scan from
//! the time its `membarrier` took: expensive barriers (an interrupt to every CPU running
//! another thread of the process, 15 us on a small VM) are amortised over more objects, and
//! a thread alone keeps the least threshold (see [`Domain::stats`]). A scan keeps only
//! objects that a hazard names, at most one per record. So with `T` threads retiring, the
//! retired-but-unfreed count stays below `T × (threshold + records)`, plus what users' own
//! live guards pin, the lists of exited threads (freed at the next scan) and the batches of
//! operations in progress (a few objects each). [`Domain::stats`] reports it.
//!
//! # Block pools
//!
//! A domain made [`Domain::with_block_pool`] keeps the blocks its reclaimer frees through
//! [`Batch::free_block`] in a pool per thread index (as many as the current scan threshold,
//! at most [`pool::CAPACITY`], blocks of at most 1 KiB, sorted into 32-byte size classes),
//! and [`Domain::alloc_block`] serves allocations of the same class from the calling thread's
//! pool before the global allocator. A pool is
//! memory of its domain, not of its thread: [`Domain::reclaim`] empties every pool that no
//! thread is using at that moment, and dropping the domain empties them all. See the [`pool`]
//! module for the protocol.
//!
//! # Contention management
//!
//! [`contention`] implements the back-off: the first CAS is never delayed, failures wait
//! exponentially longer (spin hints, then a yield), guided by a per-thread adaptive estimate.
//!
//! # Error policy (as in the original)
//!
//! Outcomes that depend on timing are `Result`s ([`HazardPointer::try_protect`],
//! [`contention::compare_exchange`]); misuse that is deterministic is prevented by types
//! where possible (a guard cannot outlive its domain nor move to another thread), and the
//! remaining contracts are the `# Safety` sections of the unsafe functions.
//!
//! # User code during reclamation
//!
//! A retired object's reclaim function (its `Drop`) runs on whichever thread scans. If it
//! panics, the scan still reclaims everything else it took and then resumes the panic on the
//! scanning thread: nothing is lost or freed twice.

#![cfg_attr(not(test), warn(missing_docs))]

pub mod contention;
mod domain;
mod fence;
mod hazard;
pub mod pool;
mod registry;
mod sync;

pub use domain::{Batch, Domain, Link, Reclaimer, Stats, LINK_KINDS, RETIRE_THRESHOLD_MIN};
pub use hazard::HazardPointer;
pub use registry::thread_index;

/// Whether this process can use the asymmetric fence (Linux `membarrier` with the private
/// expedited command). When false, every domain uses the fallback `fence(SeqCst)`. Setting the
/// environment variable `HAZARD_NO_MEMBARRIER` before the first domain is created forces the
/// fallback.
pub fn asymmetric_fence_available() -> bool {
    fence::asymmetric_available()
}
