//! Shared helpers for the benchmarks.
//!
//! The `map` benchmark (`benches/map.rs`) uses all of these modules: map adapters
//! ([`maps`], [`hamt`]), the bustle-style workload engine and single-thread loops
//! ([`workload`]), the counting allocator ([`alloc`]) and PNG bar charts ([`plot`]).

pub mod alloc;
pub mod hamt;
pub mod maps;
pub mod plot;
pub mod workload;
