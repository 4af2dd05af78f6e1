//! `std` or loom atomics, chosen in one place (see the hazard crate's `sync.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicIsize, AtomicPtr, AtomicUsize};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicIsize, AtomicPtr, AtomicUsize};

/// Under loom only, a `fence(SeqCst)` where the real code relies on a `SeqCst` store (or
/// read-modify-write) followed by a `SeqCst` load never being reordered (the
/// store-buffering shape): loom models `SeqCst` accesses no stronger than `AcqRel`, but it
/// models `SeqCst` fences. Outside loom it compiles to nothing.
#[inline(always)]
pub(crate) fn loom_sc_fence() {
    #[cfg(loom)]
    fence(std::sync::atomic::Ordering::SeqCst);
}
