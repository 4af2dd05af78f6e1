//! Contention management for compare-and-swap, after Dice, Hendler and Mirsky,
//! "Lightweight Contention Management for Efficient Compare-and-Swap Operations" (2013).
//!
//! A CAS that fails means another thread changed the location between our read and our
//! write. Retrying at once mostly fails again on a hot location and keeps the cache line
//! bouncing; waiting a little lets the winner finish. The rules here:
//!
//! - The first attempt is never delayed: [`compare_exchange`] waits only *after* a failure,
//!   before it returns the `Err` that makes the caller retry.
//! - Each thread keeps an adaptive failure estimate (as the original did): a failure raises
//!   it by one, a success lowers it by one. The wait after a failure is `2^estimate`
//!   spin-loop hints while the estimate is at most [`SPIN_LEVELS`]; above that the thread
//!   yields its time slice instead. Consecutive failures thus wait exponentially longer, and
//!   a thread that keeps winning forgets its past contention gradually.
//! - Nothing ever sleeps: the longest wait is one `yield_now`.

use crate::sync::{spin_loop, thread_local, yield_now, AtomicPtr, LOOM};
use std::cell::Cell;
use std::sync::atomic::Ordering;

/// Failure levels that spin (`2^level` hints); levels above yield.
pub const SPIN_LEVELS: u32 = if LOOM { 1 } else { 7 };
/// The estimate never exceeds this.
pub const MAX_LEVEL: u32 = SPIN_LEVELS + 3;

thread_local! {
    // Not `const { .. }`: loom's `thread_local!` does not accept that form.
    #[allow(clippy::missing_const_for_thread_local)]
    static ESTIMATE: Cell<u32> = Cell::new(0);
}

/// This thread's current failure estimate (0 when it has not met contention lately).
pub fn estimate() -> u32 {
    ESTIMATE.try_with(Cell::get).unwrap_or(0)
}

/// Records a successful CAS: lowers this thread's estimate by one.
#[inline]
pub fn succeeded() {
    let _ = ESTIMATE.try_with(|e| e.set(e.get().saturating_sub(1)));
}

/// Records a failed CAS and waits before the caller's next attempt: exponentially more
/// spins as the estimate grows, then a yield.
#[inline]
pub fn failed() {
    let level = ESTIMATE
        .try_with(|e| {
            let level = (e.get() + 1).min(MAX_LEVEL);
            e.set(level);
            level
        })
        .unwrap_or(MAX_LEVEL);
    back_off(level);
}

fn back_off(level: u32) {
    if level <= SPIN_LEVELS {
        for _ in 0..(1u32 << level) {
            spin_loop();
        }
    } else {
        yield_now();
    }
}

/// `AtomicPtr::compare_exchange` under contention management: on success lowers the
/// thread's estimate; on failure raises it and backs off before returning `Err(found)`.
///
/// Orderings are the caller's, as for `AtomicPtr::compare_exchange`.
///
/// ```
/// use hazard::contention;
/// use std::sync::atomic::{AtomicPtr, Ordering::{AcqRel, Acquire}};
///
/// let (mut a, mut b) = (1, 2);
/// let (pa, pb) = (&mut a as *mut i32, &mut b as *mut i32);
/// let cell = AtomicPtr::new(pa);
/// // Expecting the wrong value fails (and backs off) and reports what is there.
/// assert_eq!(contention::compare_exchange(&cell, pb, pb, AcqRel, Acquire), Err(pa));
/// assert!(contention::estimate() > 0);
/// assert_eq!(contention::compare_exchange(&cell, pa, pb, AcqRel, Acquire), Ok(pa));
/// assert_eq!(cell.load(Acquire), pb);
/// ```
#[inline]
pub fn compare_exchange<T>(
    atomic: &AtomicPtr<T>,
    current: *mut T,
    new: *mut T,
    success: Ordering,
    failure: Ordering,
) -> Result<*mut T, *mut T> {
    match atomic.compare_exchange(current, new, success, failure) {
        Ok(prev) => {
            succeeded();
            Ok(prev)
        }
        Err(found) => {
            failed();
            Err(found)
        }
    }
}
