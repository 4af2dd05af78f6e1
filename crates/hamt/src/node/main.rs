//! Main nodes: the header (kind, bitmaps, generation, GCAS state), where the entry and
//! child arrays lie, and how a node is allocated, freed and read. The copies that writes
//! make are in `build`.

use super::INode;
use crate::sync::{AtomicPtr, AtomicUsize, Data};
use hazard::{Batch, Domain, Link};
use std::alloc::{self, Layout};
use std::mem::{align_of, size_of};
use std::ptr;
use std::sync::atomic::Ordering::Relaxed;
/// Kinds of main node, in the top two bits of [`Head::meta`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    CNode = 0,
    Tomb = 1,
    List = 2,
}

const LEN_MASK: u32 = (1 << 30) - 1;

/// Tag bit of [`Main::prev`] when the GCAS it records has failed (the paper's `FailedNode`,
/// without an allocation). Main nodes are 8-aligned.
pub(crate) const FAILED: usize = 1;
/// Tag bit of [`Main::prev`] of a committed main node that caches the size of its (frozen)
/// subtree in the bits above the tags: the field is otherwise null once committed, so the
/// cache costs no space.
pub(crate) const SIZED: usize = 2;
const _: () = assert!(std::mem::align_of::<Main>() > (FAILED | SIZED));

/// Whether a [`Main::prev`] value says "committed" (null, or a cached size).
#[inline(always)]
pub(crate) fn is_committed(prev: *mut Main) -> bool {
    prev.is_null() || prev as usize & SIZED != 0
}

/// An immutable main node: this header, then its entries, then its children (see the module
/// docs).
#[repr(C)]
pub(crate) struct Main {
    /// Chains the node once retired. (Its own word: a retired main node's count may still be
    /// read, see `acquire_ref_if_live`.)
    link: Link,
    /// The immutable part of the header. It also stands for the arrays that follow (under
    /// loom, reading them is a read of `head`: see [`Data`]); they are written right after
    /// it, before the node is published.
    head: Data<Head>,
    /// GCAS state: null once committed (and for nodes never installed by a GCAS); the main
    /// node this one replaces while the GCAS is pending; that pointer tagged [`FAILED`] once
    /// it failed. A committed frozen node may cache its subtree's size here instead of null
    /// (tagged [`SIZED`], see [`Main::cached_size`]).
    pub(crate) prev: AtomicPtr<Main>,
    /// INodes whose committed main node this is (see the module docs).
    pub(crate) rc: AtomicUsize,
    arrays: [u64; 0],
}

/// The immutable fields of a main node's header.
#[derive(Clone, Copy)]
pub(crate) struct Head {
    /// CNode: the slots holding entries. Others: 0.
    pub(crate) datamap: u32,
    /// CNode: the slots holding a child INode. Others: 0.
    pub(crate) nodemap: u32,
    /// CNode: the data slots holding two entries. Others: 0.
    pub(crate) pairmap: u32,
    /// Kind (top two bits) and the number of entries (also for CNodes, where the bitmaps say
    /// it too: it places the children's array without two popcounts).
    meta: u32,
    /// The generation of the INode it was created for (see the module docs).
    gen: u64,
}

impl Head {
    #[inline(always)]
    pub(crate) fn kind(&self) -> Kind {
        match self.meta >> 30 {
            0 => Kind::CNode,
            1 => Kind::Tomb,
            _ => Kind::List,
        }
    }

    /// Entries in the node.
    #[inline(always)]
    pub(crate) fn ndata(&self) -> usize {
        (self.meta & LEN_MASK) as usize
    }

    /// Children in the node.
    #[inline(always)]
    pub(crate) fn nnodes(&self) -> usize {
        self.nodemap.count_ones() as usize
    }

    /// The index of the first entry of slot bit `bit` (present or not).
    #[inline(always)]
    pub(crate) fn data_index(&self, bit: u32) -> usize {
        let below = bit - 1;
        ((self.datamap & below).count_ones() + (self.pairmap & below).count_ones()) as usize
    }

    /// The number of entries in slot bit `bit` (a data slot): one, or two for a pair.
    #[inline(always)]
    pub(crate) fn run(&self, bit: u32) -> usize {
        1 + usize::from(self.pairmap & bit != 0)
    }

    /// The index of the child of slot bit `bit` (present or not).
    #[inline(always)]
    pub(crate) fn child_index(&self, bit: u32) -> usize {
        (self.nodemap & (bit - 1)).count_ones() as usize
    }
}

/// Where a main node's arrays live, for entries of type `T`.
struct Shape {
    layout: Layout,
    /// Offsets from the start of the node.
    data: usize,
    nodes: usize,
}

#[inline(always)]
fn shape<T>(ndata: usize, nnodes: usize) -> Shape {
    let base = Layout::new::<Main>();
    let (l, data) = base
        .extend(Layout::array::<T>(ndata).expect("main node size overflows"))
        .expect("main node size overflows");
    let (l, nodes) = l
        .extend(Layout::array::<*mut INode>(nnodes).expect("main node size overflows"))
        .expect("main node size overflows");
    Shape {
        layout: l.pad_to_align(),
        data,
        nodes,
    }
}

/// A main node's arrays, as slices of entries of type `T` and of children.
pub(crate) struct Arrays<'a, T> {
    pub(crate) data: &'a [T],
    pub(crate) nodes: &'a [*mut INode],
}

impl Main {
    /// Allocates a main node and copies its arrays from the chunks given (`data` entries in
    /// order, then `nodes`). Inlined, so that each builder's copies are specialised for
    /// its chunks (their number is known at each call site).
    #[inline(always)]
    pub(super) fn alloc<T: Copy>(
        kind: Kind,
        gen: u64,
        maps: [u32; 3],
        data: &[&[T]],
        nodes: &[&[*mut INode]],
        d: &Domain,
    ) -> *mut Main {
        let ndata: usize = data.iter().map(|c| c.len()).sum();
        let nnodes: usize = nodes.iter().map(|c| c.len()).sum();
        assert!(ndata <= LEN_MASK as usize, "collision list too long");
        let shape = shape::<T>(ndata, nnodes);
        // (The layout has a non-zero size: the header.)
        let p = d.alloc_block(shape.layout).cast::<Main>();
        if p.is_null() {
            alloc::handle_alloc_error(hazard::pool::block_layout(shape.layout));
        }
        let [datamap, nodemap, pairmap] = maps;
        if kind == Kind::CNode {
            debug_assert_eq!(datamap & nodemap, 0);
            debug_assert_eq!(pairmap & !datamap, 0);
            debug_assert_eq!(
                (datamap.count_ones() + pairmap.count_ones()) as usize,
                ndata
            );
            debug_assert_eq!(nodemap.count_ones() as usize, nnodes);
        }
        // Safety: `p` is a fresh allocation of `shape.layout`, which holds the header and the
        // two arrays at the offsets computed with it; we write each element exactly once
        // before anyone can read the node.
        unsafe {
            p.write(Main {
                link: Link::new(0),
                head: Data::new(Head {
                    datamap,
                    nodemap,
                    pairmap,
                    meta: (kind as u32) << 30 | ndata as u32,
                    gen,
                }),
                prev: AtomicPtr::new(ptr::null_mut()),
                rc: AtomicUsize::new(1),
                arrays: [],
            });
            let mut d = p.cast::<u8>().add(shape.data).cast::<T>();
            for chunk in data {
                ptr::copy_nonoverlapping(chunk.as_ptr(), d, chunk.len());
                d = d.add(chunk.len());
            }
            let mut n = p.cast::<u8>().add(shape.nodes).cast::<*mut INode>();
            for chunk in nodes {
                ptr::copy_nonoverlapping(chunk.as_ptr(), n, chunk.len());
                n = n.add(chunk.len());
            }
        }
        p
    }

    /// Frees a main node (and nothing it points to).
    ///
    /// # Safety
    /// 1. `p` came from [`Main::alloc`] with entries of type `T`, and is freed once, when no
    ///    thread can read it.
    pub(crate) unsafe fn free<T>(p: *mut Main) {
        // Safety: 1.
        let layout = unsafe { Self::unmake::<T>(p) };
        // Safety: 1. allocated for this layout.
        unsafe { hazard::pool::dealloc_block(p.cast(), layout) };
    }

    /// Frees a main node (and nothing it points to) through `batch`: into this thread's block
    /// pool in the map's domain if it has room (see `hazard::pool`).
    ///
    /// # Safety
    /// As [`free`](Self::free); `batch` is of the map's domain.
    pub(crate) unsafe fn recycle<T>(p: *mut Main, batch: &mut Batch<'_>) {
        // Safety: 1.
        let layout = unsafe { Self::unmake::<T>(p) };
        // Safety: 1. allocated for this layout, by the domain's `alloc_block`.
        unsafe { batch.free_block(p.cast(), layout) };
    }

    /// Drops a main node's header in place and returns the layout it was allocated for.
    ///
    /// # Safety
    /// As [`free`](Self::free); the block is freed right after.
    unsafe fn unmake<T>(p: *mut Main) -> Layout {
        // Safety: 1. `p` is a live main node.
        let head = unsafe { *(*p).head() };
        let shape = shape::<T>(head.ndata(), head.nnodes());
        // Safety: 1. ours alone; the header's fields are dropped once (a no-op outside loom,
        // where no field has drop glue; under loom, the write access that checks that every
        // reader is done, see `Data`). The arrays own nothing.
        unsafe { ptr::drop_in_place(p) };
        shape.layout
    }

    /// The immutable header.
    #[inline(always)]
    pub(crate) fn head(&self) -> &Head {
        self.head.get()
    }

    #[inline(always)]
    pub(crate) fn kind(&self) -> Kind {
        self.head().kind()
    }

    /// The generation of the INode it was created for (see the module docs).
    #[inline(always)]
    pub(crate) fn gen(&self) -> u64 {
        self.head().gen
    }

    /// The offset of the entries from the start of a main node with entries of type `T`.
    #[inline(always)]
    pub(crate) const fn data_offset<T>() -> usize {
        size_of::<Main>().next_multiple_of(align_of::<T>())
    }

    /// The first entry (of type `T`, the node's layout's).
    #[inline(always)]
    pub(crate) fn data_ptr<T>(&self) -> *const T {
        // Safety: the offset is inside the node's allocation (one past the header when there
        // is no entry), as `shape` laid it out.
        unsafe {
            (self as *const Main)
                .cast::<u8>()
                .add(Self::data_offset::<T>())
                .cast()
        }
    }

    /// The offset of the children from the start of a main node with `ndata` entries of
    /// type `T`.
    #[inline(always)]
    pub(crate) const fn nodes_offset<T>(ndata: usize) -> usize {
        (Self::data_offset::<T>() + ndata * size_of::<T>())
            .next_multiple_of(align_of::<*mut INode>())
    }

    /// The first child, after `ndata` entries of type `T`.
    #[inline(always)]
    pub(crate) fn nodes_ptr<T>(&self, ndata: usize) -> *const *mut INode {
        // Safety: as in `data_ptr`: `shape` placed the children there.
        unsafe {
            (self as *const Main)
                .cast::<u8>()
                .add(Self::nodes_offset::<T>(ndata))
                .cast()
        }
    }

    /// The arrays, for entries of type `T` (the node's layout's).
    #[inline(always)]
    pub(crate) fn arrays<T>(&self) -> Arrays<'_, T> {
        let head = self.head();
        let (ndata, nnodes) = (head.ndata(), head.nnodes());
        // Safety: `alloc` wrote `ndata` entries and `nnodes` children at these places, and
        // they never change.
        unsafe {
            Arrays {
                data: std::slice::from_raw_parts(self.data_ptr::<T>(), ndata),
                nodes: std::slice::from_raw_parts(self.nodes_ptr::<T>(ndata), nnodes),
            }
        }
    }

    /// A pointer to entry `i` (for references that live as long as the node).
    #[inline(always)]
    pub(crate) fn entry_ptr<T>(&self, i: usize) -> *const T {
        &self.arrays::<T>().data[i]
    }

    /// An empty CNode (a root).
    pub(crate) fn empty_cnode<T: Copy>(gen: u64, d: &Domain) -> *mut Main {
        Self::alloc::<T>(Kind::CNode, gen, [0; 3], &[], &[], d)
    }

    /// A tomb holding `entries` (at most [`PAIR`](super::PAIR)).
    pub(crate) fn tomb<T: Copy>(entries: &[&[T]], gen: u64, d: &Domain) -> *mut Main {
        Self::alloc::<T>(Kind::Tomb, gen, [0; 3], entries, &[], d)
    }

    /// A collision list of `entries`.
    pub(crate) fn list<T: Copy>(entries: &[&[T]], gen: u64, d: &Domain) -> *mut Main {
        Self::alloc::<T>(Kind::List, gen, [0; 3], entries, &[], d)
    }

    /// The size cached by [`set_cached_size`](Self::set_cached_size), if any.
    pub(crate) fn cached_size(&self) -> Option<usize> {
        // Relaxed: the value is a deterministic function of a frozen subtree; any thread
        // that computes it writes the same number. (The node is committed: its decision was
        // read with Acquire before we got here.)
        let p = self.prev.load(Relaxed) as usize;
        (p & SIZED != 0).then_some(p >> 2)
    }

    /// Caches the number of entries below this node. Only for committed frozen nodes
    /// (reached from a read-only snapshot), whose subtree never changes; sizes too large for
    /// the field's bits are simply not cached.
    pub(crate) fn set_cached_size(&self, n: usize) {
        if n > usize::MAX >> 2 {
            return;
        }
        // Relaxed: see `cached_size`; from null (committed, no size yet) only.
        let _ = self.prev.compare_exchange(
            ptr::null_mut(),
            (n << 2 | SIZED) as *mut Main,
            Relaxed,
            Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offsets the readers compute (`data_offset`, `nodes_offset`) are the ones `shape`
    /// allocated with, the arrays are aligned and inside the allocation, for entries of every
    /// size and alignment the layouts use, on every target (on 32-bit ones a pointer is
    /// 4 bytes and a `u64` may be 4- or 8-aligned: the cross-target suite,
    /// scripts/cross/test.sh, runs this under qemu for i686 and armv7; a list there once
    /// wrote past its allocation).
    #[test]
    fn main_node_arrays_are_where_the_readers_look() {
        fn check<T>() {
            let name = std::any::type_name::<T>();
            for ndata in 0..40 {
                for nnodes in 0..33 {
                    let s = shape::<T>(ndata, nnodes);
                    assert_eq!(s.data, Main::data_offset::<T>(), "{name}: entries");
                    assert_eq!(s.nodes, Main::nodes_offset::<T>(ndata), "{name}: children");
                    assert!(
                        s.data >= size_of::<Main>(),
                        "{name}: entries overlap the header"
                    );
                    assert_eq!(s.data % align_of::<T>(), 0, "{name}: entries misaligned");
                    assert!(
                        s.nodes >= s.data + ndata * size_of::<T>(),
                        "{name}: overlap"
                    );
                    assert_eq!(
                        s.nodes % align_of::<*mut INode>(),
                        0,
                        "{name}: children misaligned"
                    );
                    assert!(
                        s.nodes + nnodes * size_of::<*mut INode>() <= s.layout.size(),
                        "{name}: past the end"
                    );
                    assert!(s.layout.align() >= align_of::<Main>().max(align_of::<T>()));
                }
            }
        }
        check::<u8>();
        check::<u32>();
        check::<u64>();
        check::<(u8, u64)>();
        check::<(u64, u64, u32)>();
        check::<*const ()>();
        #[repr(align(32))]
        struct Wide(#[allow(dead_code)] [u8; 32]);
        check::<Wide>();
    }
}
