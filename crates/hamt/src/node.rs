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
//! the references it holds in turn ([`reclaim_node`], kinds [`MAIN_FULL`], [`INODE_FULL`]).
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

use crate::layout::private::Sealed;
use crate::sync::{AtomicPtr, AtomicUsize, Data};
use hazard::{Batch, Domain, Link};
use std::alloc::{self, Layout};
use std::mem::{align_of, size_of};
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};

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
fn drop_ref(rc: &AtomicUsize) -> bool {
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

// ---------------------------------------------------------------------------------------
// Leaves and inline entries

/// A key and its value, in an allocation of their own (the `Leaves` layout). (`pub` only
/// because the sealed layout trait names it; not reachable outside the crate.)
#[repr(C)]
pub struct Leaf<K, V> {
    /// Main nodes that hold this leaf (see the module docs), in the word that chains it once
    /// retired (nothing reads the count of a retired leaf).
    link: Link,
    entry: Data<Entry<K, V>>,
}

/// A leaf's contents: immutable once the leaf is published.
pub(crate) struct Entry<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
}

impl<K, V> Leaf<K, V> {
    pub(crate) fn new(hash: u64, key: K, value: V) -> Self {
        Leaf {
            link: Link::new(1),
            entry: Data::new(Entry { hash, key, value }),
        }
    }

    /// The reference count.
    #[inline(always)]
    pub(crate) fn rc(&self) -> &AtomicUsize {
        self.link.word()
    }

    /// The key, value and hash (see [`Data::get`]).
    #[inline(always)]
    pub(crate) fn entry(&self) -> &Entry<K, V> {
        self.entry.get()
    }

    /// The contents of a leaf not yet published.
    pub(crate) fn entry_mut(&mut self) -> &mut Entry<K, V> {
        self.entry.get_mut()
    }
}

/// An entry of the `Leaves` layout, as stored in a main node: a pointer to the leaf.
pub struct LeafPtr<K, V>(*mut Leaf<K, V>);

impl<K, V> Clone for LeafPtr<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for LeafPtr<K, V> {}

/// An entry of the `Inline` layout, as stored in a main node.
pub struct Pair<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

impl<K: Copy, V: Copy> Clone for Pair<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: Copy, V: Copy> Copy for Pair<K, V> {}

/// How the node code handles an entry of either layout. Implemented by [`LeafPtr`] and
/// [`Pair`]; `E::INLINE` is a constant, so every branch on it is decided at compile time.
///
/// # Safety
/// The functions that take an entry pointer need it to point into a live main node (or at a
/// live entry value), and, for `LeafPtr`, the leaf to be alive (protected or counted).
pub trait EntryOps<K, V>: Copy {
    /// Whether the entry is the key and value themselves.
    const INLINE: bool;

    /// The entry's key.
    ///
    /// # Safety
    /// See the trait docs.
    unsafe fn key<'a>(e: *const Self) -> &'a K;

    /// The entry's value.
    ///
    /// # Safety
    /// See the trait docs.
    unsafe fn value<'a>(e: *const Self) -> &'a V;

    /// The entry's hash: stored in a leaf; computed with `hash` for an inline entry.
    ///
    /// # Safety
    /// See the trait docs.
    unsafe fn hash(e: *const Self, hash: &dyn Fn(&K) -> u64) -> u64;

    /// The leaf (the `Leaves` layout only).
    fn leaf(self) -> *mut Leaf<K, V>;

    /// Whether two entries are the same stored entry (the same leaf; inline entries are never
    /// compared).
    fn same(self, other: Self) -> bool;

    /// A fresh entry: a new leaf (the caller owns it until a CAS publishes it, and frees it
    /// with [`discard`](Self::discard) otherwise), or the pair itself.
    fn fresh(hash: u64, key: K, value: V) -> Self;

    /// Frees an entry made by [`fresh`](Self::fresh) and never published.
    ///
    /// # Safety
    /// `self` came from `fresh`, was never published, and is discarded once.
    unsafe fn discard(self);

    /// Replaces the value of an entry made by [`fresh`](Self::fresh) and not yet published.
    ///
    /// # Safety
    /// As [`discard`](Self::discard), except that the entry stays the caller's.
    unsafe fn set_value(&mut self, value: V);
}

impl<K, V> EntryOps<K, V> for LeafPtr<K, V> {
    const INLINE: bool = false;

    #[inline(always)]
    unsafe fn key<'a>(e: *const Self) -> &'a K {
        // Safety: the caller's contract: `e` is readable and its leaf alive.
        unsafe {
            let entry: *const Entry<K, V> = (*(*e).0).entry();
            &(*entry).key
        }
    }

    #[inline(always)]
    unsafe fn value<'a>(e: *const Self) -> &'a V {
        // Safety: as above.
        unsafe {
            let entry: *const Entry<K, V> = (*(*e).0).entry();
            &(*entry).value
        }
    }

    #[inline(always)]
    unsafe fn hash(e: *const Self, _: &dyn Fn(&K) -> u64) -> u64 {
        // Safety: as above.
        unsafe { (*(*e).0).entry().hash }
    }

    #[inline(always)]
    fn leaf(self) -> *mut Leaf<K, V> {
        self.0
    }

    #[inline(always)]
    fn same(self, other: Self) -> bool {
        self.0 == other.0
    }

    #[inline]
    fn fresh(hash: u64, key: K, value: V) -> Self {
        LeafPtr(Box::into_raw(Box::new(Leaf::new(hash, key, value))))
    }

    unsafe fn discard(self) {
        // Safety: the caller's contract: from `Box::into_raw` in `fresh`, never shared.
        drop(unsafe { Box::from_raw(self.0) });
    }

    unsafe fn set_value(&mut self, value: V) {
        // Safety: the caller's contract: ours, unpublished. (The value it replaces was never
        // published either.)
        unsafe { (*self.0).entry_mut().value = value };
    }
}

impl<K: Copy, V: Copy> EntryOps<K, V> for Pair<K, V> {
    const INLINE: bool = true;

    #[inline(always)]
    unsafe fn key<'a>(e: *const Self) -> &'a K {
        // Safety: the caller's contract: `e` is readable for `'a`.
        unsafe { &(*e).key }
    }

    #[inline(always)]
    unsafe fn value<'a>(e: *const Self) -> &'a V {
        // Safety: as above.
        unsafe { &(*e).value }
    }

    #[inline(always)]
    unsafe fn hash(e: *const Self, hash: &dyn Fn(&K) -> u64) -> u64 {
        // Safety: as above.
        hash(unsafe { &(*e).key })
    }

    fn leaf(self) -> *mut Leaf<K, V> {
        unreachable!("inline entries have no leaf")
    }

    fn same(self, _: Self) -> bool {
        false
    }

    #[inline(always)]
    fn fresh(_: u64, key: K, value: V) -> Self {
        Pair { key, value }
    }

    unsafe fn discard(self) {}

    unsafe fn set_value(&mut self, value: V) {
        self.value = value;
    }
}

/// The entry type of layout `L`.
pub(crate) type E<K, V, L> = <L as Sealed<K, V>>::Entry;

/// Takes one counted reference on an entry (a leaf; nothing for inline entries).
///
/// # Safety
/// The entry's count is kept above zero by a holder for the duration of the call.
#[inline]
pub(crate) unsafe fn acquire_entry<K, V, T: EntryOps<K, V>>(e: T) {
    if !T::INLINE {
        // Safety: the caller's contract.
        acquire_ref(unsafe { (*e.leaf()).rc() }, 1);
    }
}

/// Drops one counted reference on an entry (a leaf; nothing for inline entries); retires
/// the leaf if that was the last.
///
/// # Safety
/// As [`release`].
#[inline]
pub(crate) unsafe fn release_entry<K, V, T: EntryOps<K, V>>(e: T, batch: &mut Batch<'_>) {
    if !T::INLINE {
        let leaf = e.leaf();
        // Safety: our reference keeps it alive.
        if drop_ref(unsafe { (*leaf).rc() }) {
            // Safety: the last reference: unreachable, retired once (by us).
            unsafe { batch.retire(leaf.cast(), LEAF) };
        }
    }
}

// ---------------------------------------------------------------------------------------
// INodes

/// An indirection node.
#[repr(C)]
pub(crate) struct INode {
    /// Chains the INode once retired.
    link: Link,
    /// Main nodes that hold this INode (or the map or snapshot whose root it is, or a map's
    /// level cache). A word of its own, not the link's (as a leaf's count is): the level
    /// cache takes references on INodes it read through a hazard pointer, which may have
    /// been let go and retired meanwhile, and only a count that stays zero once retired
    /// tells that apart ([`acquire_ref_if_live`]).
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

// ---------------------------------------------------------------------------------------
// Main nodes

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
    fn alloc<T: Copy>(
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

    /// A tomb holding `entries` (at most [`PAIR`]).
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

    // -----------------------------------------------------------------------------------
    // Copies of a CNode (the write path). Each returns the new main node of generation `gen`.

    /// A copy with entry `i` replaced by `e` (a CNode, tomb or list).
    pub(crate) fn with_entry<T: Copy>(&self, i: usize, e: T, gen: u64, d: &Domain) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let maps = [head.datamap, head.nodemap, head.pairmap];
        Self::alloc(
            head.kind(),
            gen,
            maps,
            &[&a.data[..i], &[e], &a.data[i + 1..]],
            &[a.nodes],
            d,
        )
    }

    /// A copy of this CNode with `e` added to slot bit `bit`, which holds no child and at most
    /// one entry (a second one makes a pair).
    pub(crate) fn with_added<T: Copy>(&self, bit: u32, e: T, gen: u64, d: &Domain) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let mut i = head.data_index(bit);
        let (mut datamap, mut pairmap) = (head.datamap, head.pairmap);
        if datamap & bit == 0 {
            datamap |= bit;
        } else {
            debug_assert_eq!(pairmap & bit, 0, "a pair is full");
            pairmap |= bit;
            i += 1;
        }
        Self::alloc(
            Kind::CNode,
            gen,
            [datamap, head.nodemap, pairmap],
            &[&a.data[..i], &[e], &a.data[i..]],
            &[a.nodes],
            d,
        )
    }

    /// A copy of this CNode whose pair at slot bit `bit` moves into the new child `child`.
    pub(crate) fn with_pushed_down<T: Copy>(
        &self,
        bit: u32,
        child: *mut INode,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let i = head.data_index(bit);
        let n = head.run(bit);
        let k = head.child_index(bit);
        Self::alloc::<T>(
            Kind::CNode,
            gen,
            [head.datamap & !bit, head.nodemap | bit, head.pairmap & !bit],
            &[&a.data[..i], &a.data[i + n..]],
            &[&a.nodes[..k], &[child], &a.nodes[k..]],
            d,
        )
    }

    /// A copy of this CNode with the child of slot bit `bit` replaced by `child`.
    pub(crate) fn with_child<T: Copy>(
        &self,
        bit: u32,
        child: *mut INode,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let k = head.child_index(bit);
        Self::alloc::<T>(
            Kind::CNode,
            gen,
            [head.datamap, head.nodemap, head.pairmap],
            &[a.data],
            &[&a.nodes[..k], &[child], &a.nodes[k + 1..]],
            d,
        )
    }

    /// A copy of this CNode without entry `i`, which is in slot bit `bit`, contracted for
    /// `level` (see [`contracted`](Self::contracted)).
    pub(crate) fn with_removed<T: Copy>(
        &self,
        bit: u32,
        i: usize,
        level: u32,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let (datamap, pairmap) = if head.pairmap & bit != 0 {
            (head.datamap, head.pairmap & !bit)
        } else {
            (head.datamap & !bit, head.pairmap)
        };
        Self::contracted(
            [datamap, head.nodemap, pairmap],
            &[&a.data[..i], &a.data[i + 1..]],
            a.nodes,
            level,
            gen,
            d,
        )
    }

    /// A copy of this CNode with the child of slot bit `bit` (a tomb's INode) replaced by the
    /// tomb's entries `up` (none, one, or a pair), contracted for `level`.
    pub(crate) fn with_folded<T: Copy>(
        &self,
        bit: u32,
        up: &[T],
        level: u32,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        debug_assert!(up.len() <= PAIR);
        let head = *self.head();
        let a = self.arrays::<T>();
        let i = head.data_index(bit);
        let k = head.child_index(bit);
        let datamap = if up.is_empty() {
            head.datamap
        } else {
            head.datamap | bit
        };
        let pairmap = if up.len() == PAIR {
            head.pairmap | bit
        } else {
            head.pairmap
        };
        let nodes = [&a.nodes[..k], &a.nodes[k + 1..]];
        let data = [&a.data[..i], up, &a.data[i..]];
        if level > 0 && a.nodes.len() == 1 && a.data.len() + up.len() <= PAIR {
            return Self::tomb(&data, gen, d);
        }
        Self::alloc(
            Kind::CNode,
            gen,
            [datamap, head.nodemap & !bit, pairmap],
            &data,
            &nodes,
            d,
        )
    }

    /// A CNode with these maps and arrays, or, below the root, a tomb if it would hold no
    /// child and at most [`PAIR`] entries (the canonical form after deletes).
    fn contracted<T: Copy>(
        maps: [u32; 3],
        data: &[&[T]],
        nodes: &[*mut INode],
        level: u32,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        let ndata: usize = data.iter().map(|c| c.len()).sum();
        if level > 0 && nodes.is_empty() && ndata <= PAIR {
            return Self::tomb(data, gen, d);
        }
        Self::alloc(Kind::CNode, gen, maps, data, &[nodes], d)
    }

    /// A copy of this list with `e` appended.
    pub(crate) fn list_appended<T: Copy>(&self, e: T, gen: u64, d: &Domain) -> *mut Main {
        Self::list(&[self.arrays::<T>().data, &[e]], gen, d)
    }

    /// A copy of this list without entry `i`. A list left empty becomes an empty tomb.
    pub(crate) fn list_removed<T: Copy>(&self, i: usize, gen: u64, d: &Domain) -> *mut Main {
        let data = self.arrays::<T>().data;
        if data.len() == 1 {
            return Self::tomb::<T>(&[], gen, d);
        }
        Self::list(&[&data[..i], &data[i + 1..]], gen, d)
    }

    /// The main node of a new INode at `level` holding `entries` (a full pair and the key
    /// that joins it, all with the same slot one level up): a CNode that spreads them over its
    /// slots (a pair where two share one), a CNode with one child INode where all three share
    /// one (built the same way one level down), or a collision list past the last level. No
    /// allocation but the nodes themselves (a write pushes a pair down on about a fifth of
    /// its inserts in a map whose bottom level is full).
    pub(crate) fn spread<T: Copy>(
        entries: &[(T, u64); PAIR + 1],
        level: u32,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        if level >= MAX_LEVEL {
            return Self::list(&[&entries.map(|(e, _)| e)], gen, d);
        }
        let mut sorted = *entries;
        // (A stable sort of three elements: insertion sort, no allocation.)
        sorted.sort_by_key(|&(_, h)| slot(h, level));
        let first = slot(sorted[0].1, level);
        if first == slot(sorted[PAIR].1, level) {
            let child = INode::new(Self::spread(&sorted, level + BITS, gen, d), gen);
            return Self::alloc::<T>(Kind::CNode, gen, [0, 1 << first, 0], &[], &[&[child]], d);
        }
        // At most two share a slot: a pair, in slot order like the rest.
        let (mut datamap, mut pairmap) = (0u32, 0u32);
        for &(_, h) in &sorted {
            let bit = 1 << slot(h, level);
            if datamap & bit != 0 {
                pairmap |= bit;
            }
            datamap |= bit;
        }
        Self::alloc(
            Kind::CNode,
            gen,
            [datamap, 0, pairmap],
            &[&sorted.map(|(e, _)| e)],
            &[],
            d,
        )
    }
}

/// Frees a fresh INode built by [`Main::spread`] and never published, with the INodes and
/// main nodes below it, but no entry: leaves belong to the caller.
///
/// # Safety
/// 1. `inode` came from a [`Main::spread`] tree (every node in it is fresh) and was never
///    published; its entries are of type `T`.
pub(crate) unsafe fn free_unpublished<T>(inode: *mut INode) {
    let mut stack = vec![inode];
    while let Some(i) = stack.pop() {
        // Safety: 1. fresh, so ours.
        let inode = unsafe { Box::from_raw(i) };
        // Relaxed: never shared.
        let m = inode.main.load(Relaxed);
        // Safety: 1. a fresh main node of the tree.
        stack.extend_from_slice(unsafe { &*m }.arrays::<T>().nodes);
        // Safety: 1.
        unsafe { Main::free::<T>(m) };
    }
}

// ---------------------------------------------------------------------------------------
// Reclamation

/// Kinds of retired node (see `hazard::Batch::retire`), dispatched by [`reclaim_node`].
///
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
