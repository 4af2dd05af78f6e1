//! INodes, the trie's only mutable cells, and the hint of their main node's bitmaps that
//! lets a reader prefetch the line it wants.

use super::{Head, Main};
use crate::sync::{AtomicPtr, AtomicUsize, Data};
use hazard::Link;
#[cfg(not(loom))]
use std::mem::{align_of, size_of};
#[cfg(not(loom))]
use std::sync::atomic::Ordering::Relaxed;
/// An indirection node.
#[repr(C)]
pub(crate) struct INode {
    /// Chains the INode once retired.
    link: Link,
    /// Main nodes that hold this INode (or the map or snapshot whose root it is, or a map's
    /// level cache). A word of its own, not the link's (as a leaf's count is): the level
    /// cache takes references on INodes it read through a hazard pointer, which may have
    /// been let go and retired meanwhile, and only a count that stays zero once retired
    /// tells that apart ([`acquire_ref_if_live`](super::acquire_ref_if_live)).
    rc: AtomicUsize,
    /// The current main node. Never null. It may hold a main node whose GCAS is pending
    /// (see `raw`), which readers decide before using. Invariant: once it holds a committed
    /// tomb, it never changes again.
    pub(crate) main: AtomicPtr<Main>,
    /// The generation this INode belongs to: only writers of that generation change it.
    gen: Data<u64>,
    /// The bitmaps of the main node last installed here (see [`Hint`]).
    pub(crate) hint: Hint,
}

/// A copy of an INode's main node's bitmaps, kept in the INode's cache line, so that a reader
/// that has loaded the INode can start loading the line of the main node that holds the entry
/// or child it wants *while* the main node's header is still on its way, instead of after
/// (a lookup at the bottom of a large trie waits for one cache miss fewer). Only a hint: it is
/// written with Relaxed stores after each committed GCAS and may be stale or torn; a wrong
/// hint costs one useless prefetch, nothing else. (Not kept under loom: a heuristic, and
/// every atomic access is one more step for the model checker.)
pub(crate) struct Hint {
    /// Data and pair bitmaps.
    #[cfg(not(loom))]
    maps: std::sync::atomic::AtomicU64,
    /// Node bitmap and the number of entries.
    #[cfg(not(loom))]
    nodes: std::sync::atomic::AtomicU64,
}

impl Hint {
    /// The two words of `head`'s hint. (Unused under loom, where hints hold nothing.)
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn of(head: &Head) -> (u64, u64) {
        (
            u64::from(head.datamap) | u64::from(head.pairmap) << 32,
            u64::from(head.nodemap) | (head.ndata() as u64) << 32,
        )
    }

    fn new(m: *mut Main) -> Self {
        #[cfg(not(loom))]
        {
            // Safety: `m` is a live main node (the caller's new INode holds it).
            let (maps, nodes) = Self::of(unsafe { (*m).head() });
            Hint {
                maps: std::sync::atomic::AtomicU64::new(maps),
                nodes: std::sync::atomic::AtomicU64::new(nodes),
            }
        }
        #[cfg(loom)]
        {
            let _ = m;
            Hint {}
        }
    }

    /// Records `m`'s bitmaps (after a GCAS installed `m`).
    #[inline]
    pub(crate) fn set(&self, head: &Head) {
        #[cfg(not(loom))]
        {
            let (maps, nodes) = Self::of(head);
            // Relaxed: a hint (see the type's docs).
            self.maps.store(maps, Relaxed);
            self.nodes.store(nodes, Relaxed);
        }
        #[cfg(loom)]
        let _ = head;
    }

    /// Starts loading the line of main node `m` that holds slot bit `bit`'s entries or child,
    /// according to the hint, for entries of type `T`.
    #[inline(always)]
    pub(crate) fn prefetch<T>(&self, m: *const Main, bit: u32) {
        #[cfg(not(loom))]
        {
            // Relaxed (both): a hint.
            let off = hint_offset::<T>(self.maps.load(Relaxed), || self.nodes.load(Relaxed), bit);
            if let Some(off) = off {
                // A hint only: `wrapping_add`, and a prefetch never faults.
                prefetch(m.cast::<u8>().wrapping_add(off));
            }
        }
        #[cfg(loom)]
        let _ = (m, bit);
    }
}

/// Where slot bit `bit`'s entries or child are in a main node whose hint words (see
/// [`Hint::of`]) are `maps` and `nodes()`, for entries of type `T`; `None` for an empty slot.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn hint_offset<T>(maps: u64, nodes: impl FnOnce() -> u64, bit: u32) -> Option<usize> {
    let (datamap, pairmap) = (maps as u32, (maps >> 32) as u32);
    let below = bit.wrapping_sub(1);
    if datamap & bit != 0 {
        let i = (datamap & below).count_ones() + (pairmap & below).count_ones();
        return Some(Main::data_offset::<T>() + i as usize * size_of::<T>());
    }
    let nodes = nodes();
    let (nodemap, ndata) = (nodes as u32, (nodes >> 32) as usize);
    if nodemap & bit == 0 {
        return None;
    }
    Some(
        (Main::data_offset::<T>() + ndata * size_of::<T>())
            .next_multiple_of(align_of::<*mut INode>())
            + (nodemap & below).count_ones() as usize * size_of::<*mut INode>(),
    )
}

/// Asks the CPU to start loading the cache line at `p` (a hint: no effect on correctness,
/// never faults, whatever the address).
#[inline(always)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // Safety: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl INode {
    /// A fresh INode of generation `gen` holding one reference to `main`.
    pub(crate) fn new(main: *mut Main, gen: u64) -> *mut INode {
        Box::into_raw(Box::new(INode {
            link: Link::new(0),
            rc: AtomicUsize::new(1),
            main: AtomicPtr::new(main),
            gen: Data::new(gen),
            hint: Hint::new(main),
        }))
    }

    /// The reference count.
    #[inline(always)]
    pub(crate) fn rc(&self) -> &AtomicUsize {
        &self.rc
    }

    /// The generation this INode belongs to.
    #[inline(always)]
    pub(crate) fn gen(&self) -> u64 {
        *self.gen.get()
    }
}
