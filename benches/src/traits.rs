//! The two interfaces the workload engine drives: [`ConcMap`] (a concurrent map used through
//! `&self`) and [`SeqMap`] (a map used from one thread). They live in their own file, with no
//! dependency, so that the standalone baseline runner (`benches/baseline/runner.rs`, built by
//! `benches/baseline.sh` outside the workspace) can include this file and `workload.rs` with
//! `#[path]` and drive two versions of the trie with exactly the same engine. The adapters
//! are in `maps.rs` (peers) and `hamt.rs` (ours); `maps` re-exports both traits.

/// A concurrent `u64 -> u64` map under test.
pub trait ConcMap: Send + Sync + Sized + 'static {
    /// Name used in tables and plots.
    const NAME: &'static str;
    /// Whether the map has a constructor taking a capacity hint.
    const TAKES_HINT: bool;
    /// A new empty map; `hint` is `Some(capacity)` only if `TAKES_HINT`.
    fn create(hint: Option<usize>) -> Self;
    /// Look `k` up, returning a copy of its value.
    fn get(&self, k: u64) -> Option<u64>;
    /// Insert or replace; `true` if `k` was absent.
    fn insert(&self, k: u64, v: u64) -> bool;
    /// Remove; `true` if `k` was present.
    fn remove(&self, k: u64) -> bool;
    /// Add 1 to the value of `k` if present; `true` if it was.
    fn update(&self, k: u64) -> bool;
}

/// A single-threaded map for the ns/op table: either `std::collections::HashMap` used
/// directly (`&mut self`), or any [`ConcMap`] through `&self`.
pub trait SeqMap: Sized {
    /// Name used in tables.
    const NAME: &'static str;
    /// A new empty map (no capacity hint).
    fn create() -> Self;
    /// Look up.
    fn get(&mut self, k: u64) -> Option<u64>;
    /// Insert or replace; `true` if new.
    fn insert(&mut self, k: u64, v: u64) -> bool;
    /// Remove; `true` if present.
    fn remove(&mut self, k: u64) -> bool;
}
