//! The trie's nodes, how they are built, and how they are freed.
//!
//! - [`INode`]: an indirection node. Its `main` pointer is the only mutable field in the
//!   trie; every update is one CAS of some INode's `main`.
//! - [`Main`]: an immutable main node, one allocation of a 48-byte header and two arrays: the
//!   entries, then the child INodes. It is of one of three kinds:
//!   - *CNode*: a branch node of one level (5 bits of the hash, 32 slots), CHAMP-style
//!     (Steindorfer and Vinju 2015): a *data* bitmap says which slots hold entries, a *node*
//!     bitmap which hold a child INode, and a *pair* bitmap which of the data slots hold two
//!     entries instead of one (a *bucket*: two keys whose hashes agree on this level's bits
//!     stay here instead of getting a level of their own). Entries are stored in slot order,
//!     children after them in slot order; an entry's index is the popcount of the data and
//!     pair bitmaps below its slot, a child's the popcount of the node bitmap.
//!   - *Tomb*: a CNode below the root left with at most two entries and no child (the
//!     original's `Deleted*` states). Its INode is frozen; the parent folds the entries into
//!     its own slot (as one entry or a pair), which is the canonical form after deletes: a
//!     CNode below the root always holds a child or at least three entries.
//!   - *List*: a collision list, below the last level, for keys whose 64-bit hashes are equal.
//! - Entries: with the [`Leaves`](crate::layout::Leaves) layout a pointer to a [`Leaf`] (key,
//!   value, hash, a separate allocation shared by pointer between successive copies of the
//!   main nodes above it: keys and values are never cloned); with
//!   [`Inline`](crate::layout::Inline), a [`Pair`] of key and value stored in the array
//!   itself and copied bit for bit with the node (see the `layout` module for why that is
//!   only for `Plain` types).
//!
//! # Ownership: counted references, and generations that skip the counting
//!
//! Snapshots share subtrees between maps, so a node may have several parents: a main node
//! several INodes (a snapshot's new root, or a renewed INode, points to the same main node as
//! the old one), an INode or a leaf several main nodes (copies made across generations keep
//! the children of the original). Every node therefore counts its parents (`rc`): a leaf the
//! main nodes that hold it, an INode the main nodes that hold it, a main node the INodes
//! whose committed main node it is (plus the references that maps and snapshots hold on
//! roots). A node whose count reaches zero is retired, and when it is reclaimed it releases
//! the references it holds in turn ([`reclaim_node`], kinds [`MAIN_FULL`](reclaim::MAIN_FULL), [`INODE_FULL`](reclaim::INODE_FULL)).
//! Inline entries are not counted: they live and die with the main node that holds them.
//!
//! Counting every kept child on every copy would put up to 32 atomic increments on each
//! write. Generations avoid it: every INode and main node carries the generation it was
//! created in, and a writer works only on INodes of its map's current generation (it renews
//! older ones first). A main node whose generation equals its INode's was created for that
//! INode and has never been shared (sharing a main node always means a new INode of a *new*
//! generation pointing to it). Replacing such a main node `m` by `m2` therefore *hands over*
//! the references of the children `m2` keeps: no count changes; `m` is retired bare
//! ([`MAIN_BARE`]: its own allocation only), and the writer releases the children `m2`
//! dropped. Only a copy across generations (`m.gen != inode.gen`) counts the children it
//! keeps, and releases `m`'s reference instead of retiring it. A leaf that a tomb's fold moves
//! up into the parent is always counted (the tomb keeps its own reference until it is
//! reclaimed), so that a tomb's leaves live as long as the tomb: a reader that protects a
//! tomb may read them without another validation. Leaves carry no generation: a writer that
//! unlinks a leaf from a never-shared main node reads its count, and a count of one is its own
//! (see [`release_unlinked_leaf`]).
//!
//! # Files
//!
//! - `entry`: leaves, inline pairs, and the [`EntryOps`] that the trie's code is generic over.
//! - `inode`: INodes and their bitmap hints.
//! - `main`: main nodes: the header, where the arrays lie, allocation and freeing.
//! - `build`: the copies of a main node that writes make (each returns a new node).
//! - `reclaim`: what freeing a retired node does, reference releases, and freeing a whole tree.

mod build;
mod entry;
mod inode;
mod main;
mod reclaim;

pub(crate) use build::free_unpublished;
pub(crate) use entry::{acquire_entry, release_entry, E};
pub use entry::{EntryOps, Leaf, LeafPtr, Pair};
#[cfg(not(loom))]
pub(crate) use inode::{hint_offset, Hint};
pub(crate) use inode::{prefetch, INode};
pub(crate) use main::{is_committed, Head, Kind, Main, FAILED};
pub(crate) use reclaim::{
    free_tree, reclaim_node, release, release_main, release_unlinked_leaf, DESC, LEAF, MAIN_BARE,
};

use crate::sync::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};

/// A generation: snapshots start new ones. Process-wide and increasing, so that generations
/// of maps that share nodes never collide, and a node reached from a root of generation `g`
/// has a generation of at most `g`.
pub(crate) fn fresh_gen() -> u64 {
    // Relaxed: only uniqueness and monotonicity per counter matter. (A `std` atomic even
    // under loom: it is a value source, not a synchronisation point.)
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Relaxed)
}

/// Takes one counted reference to a node that a protected, validated parent (or a frozen
/// snapshot) holds, so its count is at least one and cannot reach zero meanwhile.
#[inline]
pub(crate) fn acquire_ref(rc: &AtomicUsize, n: usize) {
    // Relaxed: the node is kept alive by the parent's reference, as with `Arc::clone`; the
    // new reference is published by the Release CAS that installs its holder.
    rc.fetch_add(n, Relaxed);
}

/// Takes `n` references to a node whose count may be falling to zero concurrently (a node
/// read through a hazard pointer, whose last holder may have let go): fails, instead of
/// resurrecting it, if the count is zero.
pub(crate) fn acquire_ref_if_live(rc: &AtomicUsize, n: usize) -> bool {
    // Relaxed: as in `acquire_ref`; the CAS only adds to a count that is not zero.
    let mut c = rc.load(Relaxed);
    loop {
        if c == 0 {
            return false;
        }
        match rc.compare_exchange_weak(c, c + n, Relaxed, Relaxed) {
            Ok(_) => return true,
            Err(now) => c = now,
        }
    }
}

/// Drops one counted reference; true when it was the last.
#[inline]
pub(crate) fn drop_ref(rc: &AtomicUsize) -> bool {
    // AcqRel: Release orders our uses of the node before its reclamation; Acquire (for the
    // thread that takes the count to zero) orders every other holder's uses before it (the
    // `Arc` protocol).
    rc.fetch_sub(1, AcqRel) == 1
}

/// Bits of the hash consumed per level.
pub(crate) const BITS: u32 = 5;
/// Levels at or past this use collision lists (all 64 bits consumed).
pub(crate) const MAX_LEVEL: u32 = 64;

/// The slot of `hash` at `level` (a multiple of [`BITS`] below [`MAX_LEVEL`]).
#[inline(always)]
pub(crate) fn slot(hash: u64, level: u32) -> u32 {
    ((hash >> level) & 31) as u32
}

/// The slot bit of `hash` at `level`.
#[inline(always)]
pub(crate) fn slot_bit(hash: u64, level: u32) -> u32 {
    1 << slot(hash, level)
}

/// Entries of a slot's bucket at most: a third key with the same slot gets a child INode.
pub(crate) const PAIR: usize = 2;
