//! `std` or loom atomics, chosen in one place (see the hazard crate's `sync.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicIsize, AtomicPtr};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicIsize, AtomicPtr};
