//! The trie's nodes, how they are built, and how they are freed.
//!
//! - [`INode`]: an indirection node. Its `main` pointer is the only mutable field in the
//!   trie; every update is one CAS of some INode's `main`.
//! - [`Main`]: an immutable main node, one allocation of a header and an inline array of
//!   [`Branch`]es, in one of three kinds:
//!   - *CNode*: a branch node; a 32-bit bitmap says which of the 32 slots of this level are
//!     present, and the array holds them in slot order (popcount indexing, Bagwell 2000);
//!   - *TNode*: a tomb (the original's `Deleted*` states): the INode holding it was left with
//!     at most one leaf and must be folded into its parent; it holds that leaf (or nothing).
//!     A tomb is never replaced: its INode is frozen until the parent drops it;
//!   - *LNode*: a collision list, below the last level, for keys whose 64-bit hashes are equal,
//!     with a sequence number per entry that orders them for iteration.
//! - [`Leaf`]: a key, its value and its hash, in an allocation of its own, shared by pointer
//!   between successive copies of the main nodes above it (keys and values are never cloned).
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
//! keeps, and releases `m`'s reference instead of retiring it. Leaves carry no generation: a
//! writer that unlinks a leaf from a never-shared main node reads its count, and a count of
//! one is its own (see [`release_unlinked_leaf`]).

use crate::sync::{AtomicPtr, AtomicUsize, Data};
use hazard::{Batch, Link};
use std::alloc::{self, Layout};
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

/// A key and its value.
#[repr(C)]
pub(crate) struct Leaf<K, V> {
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

/// An indirection node.
#[repr(C)]
pub(crate) struct INode {
    /// Main nodes that hold this INode (or the map or snapshot whose root it is), in the word
    /// that chains it once retired (nothing reads the count of a retired INode).
    link: Link,
    /// The current main node. Never null. It may hold a main node whose GCAS is pending
    /// (see `raw`), which readers decide before using. Invariant: once it holds a committed
    /// tomb, it never changes again.
    pub(crate) main: AtomicPtr<Main>,
    /// The generation this INode belongs to: only writers of that generation change it.
    gen: Data<u64>,
}

/// Tag bit of a [`Branch`] that points to a leaf (clear: an INode). Leaves and INodes are at
/// least 8-aligned, so the bit is free.
const LEAF_TAG: usize = 1;
const _: () = assert!(std::mem::align_of::<INode>() > LEAF_TAG);

/// An entry of a main node's array: a tagged pointer to a leaf or an INode, or null (only in
/// an empty tomb).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Branch(usize);

impl Branch {
    pub(crate) const NONE: Branch = Branch(0);

    #[inline(always)]
    pub(crate) fn leaf<K, V>(p: *mut Leaf<K, V>) -> Self {
        Branch(p as usize | LEAF_TAG)
    }

    #[inline(always)]
    pub(crate) fn inode(p: *mut INode) -> Self {
        Branch(p as usize)
    }

    #[inline(always)]
    pub(crate) fn is_leaf(self) -> bool {
        self.0 & LEAF_TAG != 0
    }

    #[inline(always)]
    pub(crate) fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The untagged pointer, as published in hazard records.
    #[inline(always)]
    pub(crate) fn ptr(self) -> *mut () {
        (self.0 & !LEAF_TAG) as *mut ()
    }

    #[inline(always)]
    pub(crate) fn as_leaf<K, V>(self) -> *mut Leaf<K, V> {
        debug_assert!(self.is_leaf());
        self.ptr().cast()
    }

    #[inline(always)]
    pub(crate) fn as_inode(self) -> *mut INode {
        debug_assert!(!self.is_leaf() && !self.is_none());
        self.ptr().cast()
    }
}

/// Kinds of main node, in the top two bits of `Main::meta`.
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

/// An immutable main node: this header, then `len` [`Branch`]es inline.
#[repr(C)]
pub(crate) struct Main {
    /// Chains the node once retired. (Its own word: a retired main node's count may still be
    /// read, see `acquire_ref_if_live`.)
    link: Link,
    /// The immutable part of the header. It also stands for the array that follows (under
    /// loom, reading the array is a read of `head`: see [`Data`]); the array is written
    /// right after it, before the node is published.
    head: Data<Head>,
    /// GCAS state: null once committed (and for nodes never installed by a GCAS); the main
    /// node this one replaces while the GCAS is pending; that pointer tagged [`FAILED`] once
    /// it failed. A committed frozen node may cache its subtree's size here instead of null
    /// (tagged [`SIZED`], see [`Main::cached_size`]).
    pub(crate) prev: AtomicPtr<Main>,
    /// INodes whose committed main node this is (see the module docs).
    pub(crate) rc: AtomicUsize,
    entries: [Branch; 0],
}

/// The immutable fields of a main node's header.
#[repr(C)]
struct Head {
    /// CNode: which slots are present. Others: 0.
    bitmap: u32,
    /// Kind (top two bits) and array length.
    meta: u32,
    /// The generation of the INode it was created for (see the module docs).
    gen: u64,
}

impl Main {
    /// Words after the header: the branches, and for a list as many sequence numbers.
    fn words(kind: Kind, len: usize) -> usize {
        if kind == Kind::List {
            2 * len
        } else {
            len
        }
    }

    fn layout(kind: Kind, len: usize) -> Layout {
        Layout::new::<Main>()
            .extend(
                Layout::array::<Branch>(Self::words(kind, len)).expect("main node size overflows"),
            )
            .expect("main node size overflows")
            .0
            .pad_to_align()
    }

    /// Allocates a main node and fills its array from `entries` (exactly `len` items).
    fn alloc(
        kind: Kind,
        gen: u64,
        bitmap: u32,
        len: usize,
        entries: impl IntoIterator<Item = Branch>,
    ) -> *mut Main {
        assert!(len <= LEN_MASK as usize, "collision list too long");
        let layout = Self::layout(kind, len);
        // Safety: the layout has a non-zero size (the header).
        let p = unsafe { alloc::alloc(layout) }.cast::<Main>();
        if p.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // Safety: `p` is a fresh allocation of `layout`, which holds the header and `len`
        // branches; we write each exactly once before anyone can read it.
        unsafe {
            p.write(Main {
                link: Link::new(0),
                head: Data::new(Head {
                    bitmap,
                    meta: (kind as u32) << 30 | len as u32,
                    gen,
                }),
                prev: AtomicPtr::new(ptr::null_mut()),
                rc: AtomicUsize::new(1),
                entries: [],
            });
            let array = ptr::addr_of_mut!((*p).entries).cast::<Branch>();
            let mut n = 0;
            for b in entries {
                assert!(n < len);
                array.add(n).write(b);
                n += 1;
            }
            assert_eq!(n, len);
        }
        p
    }

    /// Frees a main node (and nothing it points to).
    ///
    /// # Safety
    /// 1. `p` came from [`Main::alloc`] and is freed once, when no thread can read it.
    pub(crate) unsafe fn free(p: *mut Main) {
        // Safety: 1. `p` is a live main node.
        let layout = unsafe { Self::layout((*p).kind(), (*p).len()) };
        // Safety: 1. ours alone; the header's fields are dropped once (a no-op outside loom,
        // where no field has drop glue; under loom, the write access that checks that every
        // reader is done, see `Data`). The branches own nothing.
        unsafe { ptr::drop_in_place(p) };
        // Safety: 1. allocated with this layout.
        unsafe { alloc::dealloc(p.cast(), layout) };
    }

    #[inline(always)]
    pub(crate) fn kind(&self) -> Kind {
        match self.head.get().meta >> 30 {
            0 => Kind::CNode,
            1 => Kind::Tomb,
            _ => Kind::List,
        }
    }

    #[inline(always)]
    pub(crate) fn bitmap(&self) -> u32 {
        self.head.get().bitmap
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        (self.head.get().meta & LEN_MASK) as usize
    }

    /// The generation of the INode it was created for (see the module docs).
    #[inline(always)]
    pub(crate) fn gen(&self) -> u64 {
        self.head.get().gen
    }

    #[inline(always)]
    pub(crate) fn entries(&self) -> &[Branch] {
        // Safety: `alloc` wrote `len` branches right after the header, and they never change.
        unsafe { std::slice::from_raw_parts(self.entries.as_ptr(), self.len()) }
    }

    /// The array index of slot bit `bit` in a CNode (whether or not the slot is present).
    #[inline(always)]
    pub(crate) fn index(&self, bit: u32) -> usize {
        (self.bitmap() & (bit - 1)).count_ones() as usize
    }

    pub(crate) fn empty_cnode(gen: u64) -> *mut Main {
        Self::alloc(Kind::CNode, gen, 0, 0, [])
    }

    pub(crate) fn tomb(leaf: Branch, gen: u64) -> *mut Main {
        Self::alloc(Kind::Tomb, gen, 0, 1, [leaf])
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

    /// A collision list of `(leaf, sequence number)` pairs.
    ///
    /// Sequence numbers order a list's entries for iteration: they grow along the list, a
    /// replaced entry keeps its number, an appended one takes the last plus one. So an
    /// iterator that resumes in a newer version of the list can skip what it has yielded.
    fn list(entries: &[(Branch, u64)], gen: u64) -> *mut Main {
        let len = entries.len();
        let p = Self::alloc(Kind::List, gen, 0, len, entries.iter().map(|&(b, _)| b));
        // Safety: a fresh list of `len` entries has room for `len` sequence numbers after
        // them; written once before publication.
        unsafe {
            let seqs = ptr::addr_of_mut!((*p).entries)
                .cast::<Branch>()
                .add(len)
                .cast::<u64>();
            for (i, &(_, seq)) in entries.iter().enumerate() {
                seqs.add(i).write(seq);
            }
        }
        p
    }

    /// A list's sequence numbers (see [`list`](Self::list)).
    pub(crate) fn seqs(&self) -> &[u64] {
        debug_assert_eq!(self.kind(), Kind::List);
        // Safety: a list holds `len` sequence numbers after its `len` branches.
        unsafe {
            std::slice::from_raw_parts(
                self.entries.as_ptr().add(self.len()).cast::<u64>(),
                self.len(),
            )
        }
    }

    fn list_pairs(&self) -> impl Iterator<Item = (Branch, u64)> + '_ {
        self.entries()
            .iter()
            .copied()
            .zip(self.seqs().iter().copied())
    }

    /// A copy of this CNode with `b` added at slot bit `bit` (absent here).
    pub(crate) fn inserted(&self, bit: u32, b: Branch, gen: u64) -> *mut Main {
        let i = self.index(bit);
        let e = self.entries();
        let entries = e[..i]
            .iter()
            .copied()
            .chain([b])
            .chain(e[i..].iter().copied());
        Self::alloc(Kind::CNode, gen, self.bitmap() | bit, e.len() + 1, entries)
    }

    /// A copy of this CNode with the INode at index `i` replaced by the leaf `leaf` it held in
    /// its tomb (the INode is folded into this level), contracted for `level` like
    /// [`removed`](Self::removed).
    pub(crate) fn resurrected(&self, i: usize, leaf: Branch, level: u32, gen: u64) -> *mut Main {
        if level > 0 && self.len() == 1 {
            return Self::tomb(leaf, gen);
        }
        self.updated(i, leaf, gen)
    }

    /// A copy of this CNode (or list) with entry `i` replaced by `b`.
    pub(crate) fn updated(&self, i: usize, b: Branch, gen: u64) -> *mut Main {
        if self.kind() == Kind::List {
            let pairs: Vec<_> = self
                .list_pairs()
                .enumerate()
                .map(|(j, (x, seq))| (if j == i { b } else { x }, seq))
                .collect();
            return Self::list(&pairs, gen);
        }
        let e = self.entries();
        let entries = e
            .iter()
            .enumerate()
            .map(|(j, &x)| if j == i { b } else { x });
        Self::alloc(self.kind(), gen, self.bitmap(), e.len(), entries)
    }

    /// A copy of this CNode without slot bit `bit` (at index `i`), contracted for `level`:
    /// below the root, a CNode left with no entry or a single leaf becomes a tomb.
    pub(crate) fn removed(&self, bit: u32, i: usize, level: u32, gen: u64) -> *mut Main {
        let e = self.entries();
        if level > 0 && e.len() <= 2 {
            let rest = e.iter().enumerate().find(|&(j, _)| j != i).map(|(_, &b)| b);
            match rest {
                None => return Self::tomb(Branch::NONE, gen),
                Some(b) if b.is_leaf() => return Self::tomb(b, gen),
                Some(_) => {}
            }
        }
        let entries = e
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, &b)| b);
        Self::alloc(Kind::CNode, gen, self.bitmap() & !bit, e.len() - 1, entries)
    }

    /// A copy of this list without entry `i`. A list left empty becomes an empty tomb; a list
    /// left with one leaf stays a list (so that its sequence numbers, which iteration relies
    /// on, survive).
    pub(crate) fn list_removed(&self, i: usize, gen: u64) -> *mut Main {
        if self.len() == 1 {
            return Self::tomb(Branch::NONE, gen);
        }
        let rest: Vec<_> = self
            .list_pairs()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, p)| p)
            .collect();
        Self::list(&rest, gen)
    }

    /// A copy of this list with `b` appended.
    pub(crate) fn list_appended(&self, b: Branch, gen: u64) -> *mut Main {
        let next = self.seqs().last().map_or(0, |s| s + 1);
        let all: Vec<_> = self.list_pairs().chain([(b, next)]).collect();
        Self::list(&all, gen)
    }

    /// The main node of a new INode at `level` holding two leaves whose hashes differ at or
    /// below `level` (or not at all): a CNode with both, a chain of one-child CNodes down to
    /// where they part, or a collision list past the last level.
    pub(crate) fn dual(a: Branch, ha: u64, b: Branch, hb: u64, level: u32, gen: u64) -> *mut Main {
        if level >= MAX_LEVEL {
            // `a` is the leaf already there: it keeps its place (number 0) in list order.
            return Self::list(&[(a, 0), (b, 1)], gen);
        }
        let (sa, sb) = (slot(ha, level), slot(hb, level));
        if sa == sb {
            let child = INode::new(Self::dual(a, ha, b, hb, level + BITS, gen), gen);
            return Self::alloc(Kind::CNode, gen, 1 << sa, 1, [Branch::inode(child)]);
        }
        let pair = if sa < sb { [a, b] } else { [b, a] };
        Self::alloc(Kind::CNode, gen, (1 << sa) | (1 << sb), 2, pair)
    }
}

impl INode {
    /// The reference count.
    #[inline(always)]
    pub(crate) fn rc(&self) -> &AtomicUsize {
        self.link.word()
    }

    /// A fresh INode of generation `gen` holding one reference to `main`.
    pub(crate) fn new(main: *mut Main, gen: u64) -> *mut INode {
        Box::into_raw(Box::new(INode {
            link: Link::new(1),
            main: AtomicPtr::new(main),
            gen: Data::new(gen),
        }))
    }

    /// The generation this INode belongs to.
    #[inline(always)]
    pub(crate) fn gen(&self) -> u64 {
        *self.gen.get()
    }
}

/// Frees a fresh INode built by [`Main::dual`] and never published, with the chain of INodes
/// and main nodes below it, but no leaf: leaves belong to the caller.
///
/// # Safety
/// 1. `inode` came from a [`Main::dual`] chain (every INode in it is fresh) and was never
///    published.
pub(crate) unsafe fn free_unpublished_chain(inode: *mut INode) {
    let mut next = Some(inode);
    while let Some(i) = next.take() {
        // Safety: 1. fresh, so ours.
        let inode = unsafe { Box::from_raw(i) };
        // Relaxed: never shared.
        let m = inode.main.load(Relaxed);
        // Safety: 1. a fresh main node of the chain.
        let main = unsafe { &*m };
        if main.kind() == Kind::CNode {
            next = main
                .entries()
                .iter()
                .find(|b| !b.is_leaf())
                .map(|b| b.as_inode());
        }
        // Safety: 1.
        unsafe { Main::free(m) };
    }
}

/// Kinds of retired node (see `hazard::Batch::retire`), dispatched by [`reclaim_node`].
///
/// A main node retired bare: its own allocation only (its children were handed over to its
/// replacement, or released by the writer that unlinked it).
pub(crate) const MAIN_BARE: usize = 0;
/// A main node whose count reached zero: releases its reference on each child.
pub(crate) const MAIN_FULL: usize = 1;
/// An INode whose count reached zero: releases its main node's reference.
pub(crate) const INODE_FULL: usize = 2;
/// An INode that a writer folded away together with its never-shared tomb, whose leaf (if
/// any) was handed over to the parent: frees both, nothing else.
pub(crate) const INODE_BARE: usize = 3;
/// A leaf: drops its key and value.
pub(crate) const LEAF: usize = 4;
/// An RDCSS descriptor (see `raw`).
pub(crate) const DESC: usize = 5;

/// Frees a retired node of a trie of `K` and `V` (the domain's reclaimer). Children that
/// reach zero are retired in turn into `batch` (a cascade goes through the domain's lists,
/// never through recursion).
///
/// # Safety
/// `hazard::Batch::retire`'s contract: `link` is a node of this `K` and `V`, retired once with
/// `kind`, that no reader protects any more.
pub(crate) unsafe fn reclaim_node<K, V>(link: *mut Link, kind: usize, batch: &mut Batch<'_>) {
    // Each kind is retired, for a node of the matching allocation, only by the code that
    // documents it above: our caller's contract then makes the node ours.
    match kind {
        // Safety: a main node from `Main::alloc`, ours.
        MAIN_BARE => unsafe { Main::free(link.cast()) },
        MAIN_FULL => {
            let m = link.cast::<Main>();
            // Safety: a main node, ours.
            for &b in unsafe { &*m }.entries() {
                // Safety: a counted main node holds one reference on each of its children.
                unsafe { release::<K, V>(b, batch) };
            }
            // Safety: ours, from `Main::alloc`.
            unsafe { Main::free(m) }
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
        INODE_BARE => {
            // Safety: an INode from `INode::new`, ours.
            let inode = unsafe { Box::from_raw(link.cast::<INode>()) };
            // Relaxed: as for `INODE_FULL`.
            let main = inode.main.load(Relaxed);
            // Safety: the tomb was held by this INode alone.
            unsafe { Main::free(main) };
        }
        // Safety: a leaf from `Box::into_raw`, ours.
        LEAF => drop(unsafe { Box::from_raw(link.cast::<Leaf<K, V>>()) }),
        // Safety: a descriptor from `Box::into_raw`, ours.
        DESC => unsafe { crate::raw::free_desc(link) },
        _ => unreachable!("unknown node kind {kind}"),
    }
}

/// Drops one counted reference on a child (leaf or INode); retires it if that was the last.
///
/// # Safety
/// 1. The caller owns one counted reference on `b`'s node (a non-null branch), and gives it
///    up; if it is the last, the node is unreachable (no holder is left to reach it through).
pub(crate) unsafe fn release<K, V>(b: Branch, batch: &mut Batch<'_>) {
    if b.is_none() {
        return;
    }
    if b.is_leaf() {
        let leaf = b.as_leaf::<K, V>();
        // Safety: 1. our reference keeps it alive.
        if drop_ref(unsafe { (*leaf).rc() }) {
            // Safety: 1. the last reference: unreachable, retired once (by us).
            unsafe { batch.retire(leaf.cast(), LEAF) };
        }
    } else {
        let inode = b.as_inode();
        // Safety: 1.
        if drop_ref(unsafe { (*inode).rc() }) {
            // Safety: 1.
            unsafe { batch.retire(inode.cast(), INODE_FULL) };
        }
    }
}

/// Drops one counted reference on a main node; retires it (to release its children when
/// reclaimed) if that was the last.
///
/// # Safety
/// As [`release`], for a main node of this `K` and `V`.
pub(crate) unsafe fn release_main(m: *mut Main, batch: &mut Batch<'_>) {
    // Safety: the caller's reference keeps it alive.
    if drop_ref(unsafe { &(*m).rc }) {
        // Safety: the last reference: unreachable, retired once (by us).
        unsafe { batch.retire(m.cast(), MAIN_FULL) };
    }
}

/// Releases a leaf that a writer has just unlinked from a never-shared main node (it owned
/// that main node's reference on the leaf).
///
/// A count of one is then the writer's own, and nobody can add to it: references are only
/// added by copies of a main node that holds the leaf, the only such node is the one just
/// unlinked, and that node was never shared, so every copy of it is a hand-over (no count).
/// So the common case, a leaf in one generation only, costs a load instead of an atomic
/// read-modify-write.
///
/// # Safety
/// As [`release`], and the main node unlinked held the leaf as a hand-over chain of
/// never-shared main nodes (its generation was its INode's).
pub(crate) unsafe fn release_unlinked_leaf<K, V>(leaf: *mut Leaf<K, V>, batch: &mut Batch<'_>) {
    // Acquire: pairs with the AcqRel decrement of a holder that let go of the leaf (a
    // snapshot's main node reclaimed meanwhile), so its uses come before ours.
    // Safety: our reference keeps it alive.
    if unsafe { (*leaf).rc().load(Acquire) } == 1 {
        // Safety: the last reference, ours: unreachable, retired once.
        unsafe { batch.retire(leaf.cast(), LEAF) };
    } else {
        // Safety: the caller's contract.
        unsafe { release::<K, V>(Branch::leaf(leaf), batch) };
    }
}

/// A node of a trie being freed by [`free_tree`].
enum Item {
    INode(*mut INode),
    Main(*mut Main),
    Leaf(Branch),
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
pub(crate) unsafe fn free_tree<K, V>(root: *mut INode) {
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
                    for &b in main.entries() {
                        if b.is_none() {
                        } else if b.is_leaf() {
                            stack.push(Item::Leaf(b));
                        } else {
                            stack.push(Item::INode(b.as_inode()));
                        }
                    }
                    // Safety: 2; no longer referenced.
                    unsafe { Main::free(m) };
                }
            }
            Item::Leaf(b) => {
                let leaf = b.as_leaf::<K, V>();
                // Safety: 1, 2.
                if last(unsafe { (*leaf).rc() }) {
                    // Safety: 2; the last reference; leaves come from `Box::into_raw`.
                    let leaf = unsafe { Box::from_raw(leaf) };
                    if let Err(p) =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(leaf)))
                    {
                        panic.get_or_insert(p);
                    }
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
