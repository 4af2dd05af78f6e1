//! A lock-free concurrent hash map: a hash array mapped trie (the Ctrie of Prokopec, Bronson,
//! Bagwell and Odersky, 2012) whose memory is reclaimed with hazard pointers.
//!
//! # Usage
//!
//! ```
//! use concurrent_hamt::Hamt;
//!
//! let map: Hamt<u64, String> = Hamt::new();
//! std::thread::scope(|s| {
//!     for t in 0..4 {
//!         let map = map.clone(); // a handle on the same map
//!         s.spawn(move || {
//!             for i in 0..1000 {
//!                 map.insert(t * 1000 + i, format!("value {i}"));
//!             }
//!         });
//!     }
//! });
//! assert_eq!(map.len(), 4000);
//! let entry = map.get(&2001).unwrap(); // a `Ref`: no clone of the value
//! assert_eq!(entry.as_str(), "value 1");
//! assert_eq!(map.remove(&2001).unwrap().as_str(), "value 1");
//! ```
//!
//! [`Hamt`] is a handle: cloning it shares the map, and the map is freed when the last handle
//! is dropped. Reads return a [`Ref`], which keeps the entry alive (under a hazard pointer)
//! while you hold it, even if another thread removes or replaces it meanwhile.
//!
//! # Layouts: entries in leaves, or inline
//!
//! `Hamt<K, V>` keeps each entry in a leaf allocation of its own, which works for every key
//! and value type. For plain data (integers, floats, `bool`, `char`, arrays and tuples of
//! them, and user types marked [`Plain`]) the map can store entries inline in the trie's
//! nodes instead: `Hamt<K, V, S, Inline>`. Lookups then read the entry from the node they
//! already loaded (one dependent memory access fewer), inserts allocate one block instead of
//! two, and memory per entry drops (about 16 bytes plus the node's share for `u64 -> u64`,
//! against about 48 with leaves). The API and every guarantee are the same.
//!
//! ```
//! use concurrent_hamt::{Hamt, Inline};
//! use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
//!
//! let counts: Hamt<u64, u64, _, Inline> = Hamt::default(); // plain values: inline
//! counts.insert(7, 1);
//! counts.update(7, |v| v.map(|v| v + 1));
//! assert_eq!(*counts.get(&7).unwrap(), 2);
//!
//! let live: Hamt<u64, AtomicU64> = Hamt::new(); // interior mutability: leaves
//! live.insert(7, AtomicU64::new(0));
//! live.get(&7).unwrap().fetch_add(1, Relaxed); // in place, seen by every reader
//! assert_eq!(live.get(&7).unwrap().load(Relaxed), 1);
//! ```
//!
//! Why inline needs `Plain`: a node is copied bit for bit by every write below it, so an
//! inline entry must lose nothing when copied and forgotten (no drop glue) and must not be
//! changed in place (no interior mutability: a write through a `Ref` would go to one copy
//! and be lost at the next). Stable Rust cannot check either in generic code, hence the
//! `unsafe` marker trait and the explicit type parameter; see the [`layout`] module.
//!
//! # Operations
//!
//! | operation | returns |
//! |---|---|
//! | [`get`](Hamt::get), [`contains_key`](Hamt::contains_key) | the entry / whether present |
//! | [`insert`](Hamt::insert) | the previous entry (insert or replace) |
//! | [`insert_if_absent`](Hamt::insert_if_absent) | whether it inserted |
//! | [`remove`](Hamt::remove), [`remove_if`](Hamt::remove_if) | the removed entry |
//! | [`compare_exchange`](Hamt::compare_exchange) | `Ok(new entry)` or `Err(present entry)` |
//! | [`update`](Hamt::update) | the entry stored (closure may run more than once) |
//! | [`len`](Hamt::len), [`is_empty`](Hamt::is_empty) | O(1) count, exact at rest |
//! | [`iter`](Hamt::iter) | the entries as of the call (a read-only snapshot) |
//! | [`clear`](Hamt::clear) | atomic removal of everything |
//! | [`read_only_snapshot`](Hamt::read_only_snapshot) | a frozen [`Snapshot`], O(1), exact `len` |
//! | [`snapshot`](Hamt::snapshot) | an independent writable copy, O(1) |
//!
//! Every write is one compare-and-swap of an indirection node's pointer (committed by a
//! second one, see [Snapshots](#snapshots)), retried (after an adaptive back-off) when another
//! thread wins; no operation ever takes a lock or waits for another thread.
//!
//! # Consistency
//!
//! - **Single-key operations are linearizable.** Each `get`, `insert`, `insert_if_absent`,
//!   `remove`, `remove_if`, `compare_exchange` and `update` takes effect at one instant (its
//!   successful CAS, or for a read or a no-op, the read of the node that decided it), between
//!   its call and its return. A `get` that follows a completed `insert` sees it.
//! - **`update` and `remove_if` closures** see the value current at some instant and may run
//!   several times (once per lost race); only the last run's result is applied, atomically
//!   with respect to that value.
//! - **`len`** is a sum of per-thread counters, exact whenever no write is in flight and
//!   otherwise off by at most the writes in flight. For an exact count under concurrent writes
//!   take a [`read_only_snapshot`](Hamt::read_only_snapshot): its [`len`](Snapshot::len) is
//!   exact.
//! - **Snapshots, `iter` and `clear` are linearizable too**: a snapshot (and the one `iter`
//!   takes) holds exactly the entries present at one instant between the call and its
//!   return, so two entries changed together by another thread are seen both old or both
//!   new; `clear` removes everything present at one instant. The order of iteration is the
//!   hash order.
//!
//! # Memory
//!
//! Removed and replaced nodes are retired to the map's hazard-pointer domain and freed once no
//! reader protects them: automatically, once a thread has retired some hundreds of nodes
//! (each write hands what it retired to the domain before it returns, so nothing waits in
//! thread-local storage), or at once with [`Hamt::reclaim`]. Retired-but-unfreed nodes stay bounded (see
//! [`ReclaimStats`]); removal contracts the trie, so memory shrinks as keys go, down to the
//! empty map's size. Dropping the last handle frees everything, iteratively (no recursion, so
//! no stack overflow on large or deep tries).
//!
//! Main nodes (up to 1 KiB) are allocated in 32-byte size classes, and those a scan frees are
//! kept in a pool of the scanning thread in the map's domain (as many blocks per thread index
//! as the scan threshold, 256 to 2,048: the same order as the retired-node bound), for the next writes of that thread to
//! reuse instead of calling the allocator. [`Hamt::reclaim`] empties the pools along with the
//! retired lists (those of threads inside an operation on the map at that moment excepted),
//! so the map's memory after `reclaim` does not depend on what its pools held.
//!
//! Snapshots and the map share nodes; a shared node is freed when the last map or snapshot
//! that reaches it lets go (see [Snapshots](#snapshots)).
//!
//! **On which thread `Drop` runs**: a key or value removed or replaced by a write is dropped by
//! whichever thread's scan finds it unprotected (often a later writer on another thread, or
//! the thread that calls `reclaim`); values still in the map when the last handle is dropped
//! are dropped by that thread. (Inline entries have no `Drop`.) This is why `Hamt` is `Send`/`Sync` only when `K` and `V` are
//! `Send + Sync`.
//!
//! # Snapshots
//!
//! [`Hamt::read_only_snapshot`] and [`Hamt::snapshot`] are the Ctrie's O(1) snapshots: they
//! never copy the map and never block writers. Each map has a *generation* (its root's);
//! taking a snapshot swaps the root for a new one of a new generation that shares the old
//! root's contents (an RDCSS: the swap happens only if the root's contents did not change
//! meanwhile). From then on the nodes of the old generation are frozen: a write that reaches
//! one first copies it into the new generation (one node per level on its path, once), and a
//! write that was about to change an old node when the snapshot happened fails and retries
//! (each write is a GCAS: it commits only if the root's generation is still the one it
//! started in).
//!
//! **Costs.**
//! - Taking a snapshot: one or two small allocations and a few atomic operations, whatever
//!   the size (see `BENCHMARKS.md` for measured latencies).
//! - The writes that follow pay for it: the first write below each shared node copies it
//!   (its entries and children, counting each kept leaf and child once). A snapshot followed by random writes
//!   copies the top of the trie quickly, and then each write copies its remaining path.
//!   Taking a snapshot on a hot path (or calling `iter` in a loop) keeps writers copying.
//! - Reads of the live map are not slowed by snapshots; reads of a snapshot are cheaper than
//!   the map's (no hazard pointer per node, no retries).
//! - With no snapshot ever taken, the machinery costs every write a second CAS (the GCAS
//!   commit) and a few loads; every node carries a generation and a reference count, and
//!   nodes are shared without counting while they stay in one generation.
//! - [`Snapshot::len`] is exact: the first call counts the entries, caching subtree sizes in
//!   the frozen nodes, which later snapshots share; later calls are O(1).
//!
//! **Consistency.** A snapshot never changes after it is taken; a writable snapshot and its
//! origin are independent maps from then on (writes to either never show in the other), and
//! either can be snapshotted again. Iterating a snapshot yields exactly its entries, once
//! each.
//!
//! **Memory.** Nodes that several generations reach are reference-counted (a node counts the
//! nodes that hold it); nodes that stay inside one generation are handed from copy to copy
//! without touching counts, so the common path pays nothing for the sharing. A shared node is
//! retired when its count reaches zero, and freed once no reader protects it. So a snapshot
//! keeps alive every entry it holds, including entries the map has since removed or
//! replaced: a long-lived snapshot of a map that is rewritten holds a second copy of the
//! data, until it is dropped. The [`Snapshot`] iterator and `get` return plain references
//! that live as long as the snapshot. Dropping every map and snapshot frees everything.
//!
//! ```
//! use concurrent_hamt::Hamt;
//!
//! let map: Hamt<u32, u32> = (0..100).map(|i| (i, i)).collect();
//! let frozen = map.read_only_snapshot();
//! let copy = map.snapshot();
//! map.clear();
//! copy.insert(100, 100);
//! assert_eq!((map.len(), frozen.len(), copy.len()), (0, 100, 101));
//! assert_eq!(frozen.iter().map(|(k, _)| *k).sum::<u32>(), (0..100).sum());
//! ```
//!
//! # Error policy
//!
//! As in the original: misuse that is deterministic panics (and is documented), outcomes that
//! depend on timing are values (`compare_exchange` returns `Err` with the entry it found;
//! `insert_if_absent` returns `false`). User code is not trusted: if a key's `Hash` or `Eq`,
//! a closure, or a `Drop` panics, the panic propagates to the caller and the map stays
//! consistent (no write is half-done: a write is one CAS, made after all user code of that
//! attempt ran) and leaks nothing. A panicking `Drop` during reclamation is caught, the rest
//! of the scan completes, and the panic then resumes on the scanning thread.
//!
//! # Hashing
//!
//! Keyed SipHash (`std`'s `RandomState`) by default, any [`BuildHasher`] through
//! [`Hamt::with_hasher`]. The trie consumes 5 bits of the 64-bit hash per level (13 levels);
//! keys whose whole hash is equal share a collision list below the last level. So a hasher
//! that returns a constant still gives correct results, in linear time.
//!
//! # Mapping from the original (2014) API
//!
//! | original `HAMT` | here |
//! |---|---|
//! | `search(key) -> Option<V>` (a clone) | [`get`](Hamt::get) `-> Option<Ref>` (no clone) |
//! | `insert(key, value)` (no overwrite) | [`insert_if_absent`](Hamt::insert_if_absent); [`insert`](Hamt::insert) overwrites |
//! | `remove(key) -> bool` | [`remove`](Hamt::remove)`(&key).is_some()` |
//! | `clone()` shares the structure | [`Clone`] shares the structure |
//! | `hp::ProtectedPointer`, `Hp::replace` | the `hazard` crate: `HazardPointer`, `contention::compare_exchange` |
//!
//! # Performance notes
//!
//! A lookup walks about log32(n) levels, each an indirection node and a main node (plus the
//! leaf, with the `Leaves` layout): a few dependent memory accesses more than a flat hash
//! table, and one hazard-pointer publication per node, which costs a store and a compiler
//! barrier on Linux (the reclaimer pays with `membarrier`; elsewhere each protection is a full
//! fence). A `membarrier` that must interrupt other CPUs running the process's threads is
//! slow (15 us on a small VM, against 0.2 us alone), so each scan times its barrier and the
//! map's scan threshold rises with it (up to 8 times), amortising it over more retired nodes.
//! A slot holds up to two entries before it gets a level of its own, so the bottom
//! level is dense and most removals shrink a node instead of contracting the trie. Indexing a
//! node takes a few popcounts: on x86-64 the lookup and write paths are compiled twice and the
//! `popcnt` version is chosen at run time when the CPU has it. Writes copy one main node per
//! update (its entries and child pointers), retire the old one into a per-operation batch
//! (no atomic read-modify-write per retired node), and count the map's size in a per-thread
//! counter (no shared counter). In exchange for the levels: no resize pauses, memory that
//! shrinks on removal, O(1) snapshots, no locks. Iteration walks the frozen trie depth first
//! and keeps the memory system one child ahead: before it enters a child it starts loading
//! the next child's main node and the INode after that, and on entering a node, its first
//! leaves. Figures against other maps are in the repository's `BENCHMARKS.md`.
//!
//! **Level cache.** Once a map holds 2^16 entries or more and its lookups go deeper than
//! three levels, it gets a table of the indirection nodes three levels below the root, one
//! per path (2^15 slots of 32 bytes, 1 MiB, kept until the map is dropped), and lookups and writes start
//! there: three levels fewer to walk (after Prokopec's Cache-Tries, PPoPP 2018, simplified to
//! one fixed depth, filled by the operations that walk past it). A cached node is used only
//! while it belongs to the map's current generation and has not been folded away, so the cache
//! never changes what an operation reads or where a write lands; after a snapshot or `clear`
//! operations walk from the root again until they have refilled it. Only lookups allocate the
//! table, so a map that is only ever written (or emptied and refilled without being read) does
//! not get one. A slot keeps no node the trie has let go of (folds, renewals and `clear` empty
//! theirs), so memory still shrinks as keys go. Beside its node, a slot keeps the address and
//! bitmaps of that node's main node as the last lookup saw them, so that a lookup starts
//! loading the main node, and the line of its entry, together with the node itself: one
//! cache miss fewer in a row in a large map, for 24 bytes more per slot.
//!
//! [`BuildHasher`]: std::hash::BuildHasher

#![cfg_attr(not(test), warn(missing_docs))]

mod count;
pub mod layout;
mod map;
mod node;
mod raw;
mod snapshot;
mod sync;

/// Reclamation counters of a map, from [`Hamt::stats`]: nodes retired, reclaimed and pending,
/// and the process-wide hazard records.
///
/// Bound: with `T` threads writing, `pending` stays below `T × (threshold + records)` plus
/// what live [`Ref`]s and iterators pin.
pub use hazard::Stats as ReclaimStats;
pub use layout::{Inline, Leaves, Plain};
pub use map::{Hamt, Ref};
pub use snapshot::{Iter, Snapshot, SnapshotIter};
