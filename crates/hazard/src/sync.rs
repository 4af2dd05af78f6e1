//! The one place that chooses between `std` and loom primitives, so that the same protocol code
//! runs under the loom model checker (`RUSTFLAGS="--cfg loom"`) with small thresholds.

#[cfg(loom)]
pub(crate) use loom::{
    hint::spin_loop,
    sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize},
    thread::yield_now,
    thread_local,
};

#[cfg(not(loom))]
pub(crate) use std::{
    hint::spin_loop,
    sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize},
    thread::yield_now,
    thread_local,
};

/// Whether this build runs under loom (thresholds shrink so that models reclaim in few steps).
pub(crate) const LOOM: bool = cfg!(loom);
