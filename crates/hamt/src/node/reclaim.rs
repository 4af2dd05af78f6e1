//! Reclamation: the kinds of retired node and what freeing each does (releasing the
//! references it holds, which may retire more), and freeing a whole tree at a map's drop.

use super::{drop_ref, release_entry, EntryOps, INode, Leaf, Main};
use crate::sync::AtomicUsize;
use hazard::{Batch, Link};
use std::sync::atomic::Ordering::{Acquire, Relaxed};
/// A main node retired bare: its own allocation only (its children were handed over to its
/// replacement, or released by the writer that unlinked it).
pub(crate) const MAIN_BARE: usize = 0;
/// A main node whose count reached zero: releases its reference on each child.
pub(crate) const MAIN_FULL: usize = 1;
/// An INode whose count reached zero: releases its main node's reference.
pub(crate) const INODE_FULL: usize = 2;
/// A leaf: drops its key and value.
pub(crate) const LEAF: usize = 4;
/// An RDCSS descriptor (see `raw`).
pub(crate) const DESC: usize = 5;

/// Frees a retired node of a trie of `K` and `V` with entries `T` (the domain's reclaimer).
/// Children that reach zero are retired in turn into `batch` (a cascade goes through the
/// domain's lists, never through recursion).
///
/// # Safety
/// `hazard::Batch::retire`'s contract: `link` is a node of this trie, retired once with
/// `kind`, that no reader protects any more.
pub(crate) unsafe fn reclaim_node<K, V, T: EntryOps<K, V>>(
    link: *mut Link,
    kind: usize,
    batch: &mut Batch<'_>,
) {
    // Each kind is retired, for a node of the matching allocation, only by the code that
    // documents it above: our caller's contract then makes the node ours.
    match kind {
        // Safety: a main node from `Main::alloc`, ours; `batch` is of the map's domain.
        MAIN_BARE => unsafe { Main::recycle::<T>(link.cast(), batch) },
        MAIN_FULL => {
            let m = link.cast::<Main>();
            // Safety: a main node, ours.
            let a = unsafe { &*m }.arrays::<T>();
            for &e in a.data {
                // Safety: a counted main node holds one reference on each of its entries.
                unsafe { release_entry::<K, V, T>(e, batch) };
            }
            for &i in a.nodes {
                // Safety: ... and on each of its children.
                unsafe { release(i, batch) };
            }
            // Safety: ours, from `Main::alloc`; `batch` is of the map's domain.
            unsafe { Main::recycle::<T>(m, batch) }
        }
        INODE_FULL => {
            // Safety: an INode from `INode::new`, ours.
            let inode = unsafe { Box::from_raw(link.cast::<INode>()) };
            // Relaxed: the retiring thread's Release push and the scanner's Acquire take
            // order this. No GCAS is pending on it: an installer decides its GCAS, and
            // restores the INode, before it lets go of its protection.
            let main = inode.main.load(Relaxed);
            // Safety: the INode held one reference on its main node.
            unsafe { release_main(main, batch) };
        }
        // Safety: a leaf from `Box::into_raw`, ours.
        LEAF => drop(unsafe { Box::from_raw(link.cast::<Leaf<K, V>>()) }),
        // Safety: a descriptor from `Box::into_raw`, ours.
        DESC => unsafe { crate::raw::free_desc(link) },
        _ => unreachable!("unknown node kind {kind}"),
    }
}

/// Drops one counted reference on a child INode; retires it if that was the last.
///
/// # Safety
/// 1. The caller owns one counted reference on `inode`, and gives it up; if it is the last,
///    the INode is unreachable (no holder is left to reach it through).
pub(crate) unsafe fn release(inode: *mut INode, batch: &mut Batch<'_>) {
    // Safety: 1.
    if drop_ref(unsafe { (*inode).rc() }) {
        // Safety: 1.
        unsafe { batch.retire(inode.cast(), INODE_FULL) };
    }
}

/// Drops one counted reference on a main node; retires it (to release its children when
/// reclaimed) if that was the last.
///
/// # Safety
/// As [`release`], for a main node.
pub(crate) unsafe fn release_main(m: *mut Main, batch: &mut Batch<'_>) {
    // Safety: the caller's reference keeps it alive.
    if drop_ref(unsafe { &(*m).rc }) {
        // Safety: the last reference: unreachable, retired once (by us).
        unsafe { batch.retire(m.cast(), MAIN_FULL) };
    }
}

/// Releases an entry that a writer has just unlinked from a never-shared main node (it owned
/// that main node's reference on it). Nothing for inline entries.
///
/// A leaf's count of one is then the writer's own, and nobody can add to it: references are
/// only added by copies of a main node that holds the leaf, the only such node is the one
/// just unlinked, and that node was never shared, so every copy of it is a hand-over (no
/// count). So the common case, a leaf in one generation only, costs a load instead of an
/// atomic read-modify-write.
///
/// # Safety
/// As [`release`], and the main node unlinked held the entry as a hand-over chain of
/// never-shared main nodes (its generation was its INode's).
pub(crate) unsafe fn release_unlinked_leaf<K, V, T: EntryOps<K, V>>(e: T, batch: &mut Batch<'_>) {
    if T::INLINE {
        return;
    }
    let leaf = e.leaf();
    // Acquire: pairs with the AcqRel decrement of a holder that let go of the leaf (a
    // snapshot's main node reclaimed meanwhile), so its uses come before ours.
    // Safety: our reference keeps it alive.
    if unsafe { (*leaf).rc().load(Acquire) } == 1 {
        // Safety: the last reference, ours: unreachable, retired once.
        unsafe { batch.retire(leaf.cast(), LEAF) };
    } else {
        // Safety: the caller's contract.
        unsafe { release_entry::<K, V, T>(e, batch) };
    }
}

/// A node of a trie being freed by [`free_tree`].
enum Item {
    INode(*mut INode),
    Main(*mut Main),
}

/// Frees what `root` alone keeps alive, without hazard pointers, iteratively (no recursion,
/// so a deep or huge trie cannot overflow the stack): drops the reference on `root`, and on
/// each node whose count reaches zero frees it and drops the references it held. Nodes that
/// other holders still count (snapshots sharing them, retired nodes not yet reclaimed) stay.
/// Leaves are dropped (running `K`'s and `V`'s `Drop`); if one panics, the rest is still freed
/// and the first panic resumes afterwards.
///
/// # Safety
/// 1. The caller owns one reference on `root`.
/// 2. No other thread can hold or take a reference or a hazard pointer on any node below
///    `root` (the last handle of the last map of its domain is being dropped), so counts can
///    be read and written without atomic read-modify-writes.
pub(crate) unsafe fn free_tree<K, V, T: EntryOps<K, V>>(root: *mut INode) {
    /// Drops one reference; true when it was the last. 2: no concurrent access.
    fn last(rc: &AtomicUsize) -> bool {
        // Relaxed: exclusive access (2).
        let c = rc.load(Relaxed);
        rc.store(c - 1, Relaxed);
        c == 1
    }
    let mut panic = None;
    let mut stack = vec![Item::INode(root)];
    while let Some(item) = stack.pop() {
        match item {
            Item::INode(i) => {
                // Safety: 1, 2: a counted INode, ours alone now.
                if last(unsafe { (*i).rc() }) {
                    // Safety: 2; INodes come from `INode::new`.
                    let inode = unsafe { Box::from_raw(i) };
                    stack.push(Item::Main(inode.main.load(Relaxed))); // Relaxed: 2.
                }
            }
            Item::Main(m) => {
                // Safety: 1, 2.
                let main = unsafe { &*m };
                if last(&main.rc) {
                    let a = main.arrays::<T>();
                    if !T::INLINE {
                        for &e in a.data {
                            let leaf = e.leaf();
                            // Safety: 1, 2.
                            if last(unsafe { (*leaf).rc() }) {
                                // Safety: 2; the last reference; from `Box::into_raw`.
                                let leaf = unsafe { Box::from_raw(leaf) };
                                let dropped =
                                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                        drop(leaf)
                                    }));
                                if let Err(p) = dropped {
                                    panic.get_or_insert(p);
                                }
                            }
                        }
                    }
                    stack.extend(a.nodes.iter().map(|&i| Item::INode(i)));
                    // Safety: 2; no longer referenced.
                    unsafe { Main::free::<T>(m) };
                }
            }
        }
    }
    if let Some(p) = panic {
        if !std::thread::panicking() {
            std::panic::resume_unwind(p);
        }
    }
}
