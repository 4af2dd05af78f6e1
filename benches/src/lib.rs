//! Shared helpers for the benchmarks.
//!
//! The `map` benchmark (`benches/map.rs`) uses all of these modules: map adapters
//! ([`maps`], [`hamt`], behind the interfaces of [`traits`]), the bustle-style workload engine
//! and single-thread loops ([`workload`]), the counting allocator ([`alloc`]), PNG bar charts
//! ([`plot`]) and the run description ([`report`]). The `snapshot` benchmark uses
//! [`workload`]'s keys and [`report`]. `traits`, `workload` and `report` are also compiled
//! into the standalone baseline runner (`benches/baseline/runner.rs`, see
//! `benches/baseline.sh`), so they must not depend on anything but `std` and `libc`.

pub mod alloc;
pub mod hamt;
pub mod maps;
pub mod plot;
pub mod report;
pub mod traits;
pub mod workload;
