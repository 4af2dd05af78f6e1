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
//! # Ownership (which node frees which)
//!
//! Every node has exactly one owner in the live trie: the main node whose array holds it (or,
//! for a main node, the INode whose `main` points to it). A writer that replaces main node
//! `m` by `m2` hands every child of `m` it keeps over to `m2`; what it drops (a replaced or
//! removed leaf, an INode folded away) it retires itself, and it retires `m` as a bare main
//! node ([`reclaim_main`]): reclaiming `m` later frees `m`'s own allocation and nothing it
//! points to. An INode is retired only once its main node is a tomb, and then together with
//! it ([`reclaim_inode`]); the tomb's leaf has been handed to the parent by then.
//!
//! The snapshot work will give shared nodes reference counts; these rules are where the counts
//! go (a "hand over" becomes an increment when the copy crosses a generation).

use crate::sync::AtomicPtr;
use hazard::Domain;
use std::alloc::{self, Layout};
use std::ptr;
use std::sync::atomic::Ordering::Relaxed;

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
pub(crate) struct Leaf<K, V> {
    pub(crate) hash: u64,
    pub(crate) key: K,
    pub(crate) value: V,
}

/// An indirection node.
pub(crate) struct INode {
    /// The current main node. Never null. Invariant: once it points to a tomb, it never
    /// changes again.
    pub(crate) main: AtomicPtr<Main>,
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

/// An immutable main node: this header, then `len` [`Branch`]es inline.
#[repr(C)]
pub(crate) struct Main {
    /// CNode: which slots are present. Others: 0.
    bitmap: u32,
    /// Kind (top two bits) and array length.
    meta: u32,
    entries: [Branch; 0],
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
                bitmap,
                meta: (kind as u32) << 30 | len as u32,
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
        // Safety: 1. allocated with this layout.
        unsafe { alloc::dealloc(p.cast(), layout) };
    }

    #[inline(always)]
    pub(crate) fn kind(&self) -> Kind {
        match self.meta >> 30 {
            0 => Kind::CNode,
            1 => Kind::Tomb,
            _ => Kind::List,
        }
    }

    #[inline(always)]
    pub(crate) fn bitmap(&self) -> u32 {
        self.bitmap
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        (self.meta & LEN_MASK) as usize
    }

    #[inline(always)]
    pub(crate) fn entries(&self) -> &[Branch] {
        // Safety: `alloc` wrote `len` branches right after the header, and they never change.
        unsafe { std::slice::from_raw_parts(self.entries.as_ptr(), self.len()) }
    }

    /// The array index of slot bit `bit` in a CNode (whether or not the slot is present).
    #[inline(always)]
    pub(crate) fn index(&self, bit: u32) -> usize {
        (self.bitmap & (bit - 1)).count_ones() as usize
    }

    pub(crate) fn empty_cnode() -> *mut Main {
        Self::alloc(Kind::CNode, 0, 0, [])
    }

    pub(crate) fn tomb(leaf: Branch) -> *mut Main {
        Self::alloc(Kind::Tomb, 0, 1, [leaf])
    }

    /// A collision list of `(leaf, sequence number)` pairs.
    ///
    /// Sequence numbers order a list's entries for iteration: they grow along the list, a
    /// replaced entry keeps its number, an appended one takes the last plus one. So an
    /// iterator that resumes in a newer version of the list can skip what it has yielded.
    fn list(entries: &[(Branch, u64)]) -> *mut Main {
        let len = entries.len();
        let p = Self::alloc(Kind::List, 0, len, entries.iter().map(|&(b, _)| b));
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
    pub(crate) fn inserted(&self, bit: u32, b: Branch) -> *mut Main {
        let i = self.index(bit);
        let e = self.entries();
        let entries = e[..i]
            .iter()
            .copied()
            .chain([b])
            .chain(e[i..].iter().copied());
        Self::alloc(Kind::CNode, self.bitmap | bit, e.len() + 1, entries)
    }

    /// A copy of this CNode with the INode at index `i` replaced by the leaf `leaf` it held in
    /// its tomb (the INode is folded into this level), contracted for `level` like
    /// [`removed`](Self::removed).
    pub(crate) fn resurrected(&self, i: usize, leaf: Branch, level: u32) -> *mut Main {
        if level > 0 && self.len() == 1 {
            return Self::tomb(leaf);
        }
        self.updated(i, leaf)
    }

    /// A copy of this CNode (or list) with entry `i` replaced by `b`.
    pub(crate) fn updated(&self, i: usize, b: Branch) -> *mut Main {
        if self.kind() == Kind::List {
            let pairs: Vec<_> = self
                .list_pairs()
                .enumerate()
                .map(|(j, (x, seq))| (if j == i { b } else { x }, seq))
                .collect();
            return Self::list(&pairs);
        }
        let e = self.entries();
        let entries = e
            .iter()
            .enumerate()
            .map(|(j, &x)| if j == i { b } else { x });
        Self::alloc(self.kind(), self.bitmap, e.len(), entries)
    }

    /// A copy of this CNode without slot bit `bit` (at index `i`), contracted for `level`:
    /// below the root, a CNode left with no entry or a single leaf becomes a tomb.
    pub(crate) fn removed(&self, bit: u32, i: usize, level: u32) -> *mut Main {
        let e = self.entries();
        if level > 0 && e.len() <= 2 {
            let rest = e.iter().enumerate().find(|&(j, _)| j != i).map(|(_, &b)| b);
            match rest {
                None => return Self::tomb(Branch::NONE),
                Some(b) if b.is_leaf() => return Self::tomb(b),
                Some(_) => {}
            }
        }
        let entries = e
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, &b)| b);
        Self::alloc(Kind::CNode, self.bitmap & !bit, e.len() - 1, entries)
    }

    /// A copy of this list without entry `i`. A list left empty becomes an empty tomb; a list
    /// left with one leaf stays a list (so that its sequence numbers, which iteration relies
    /// on, survive).
    pub(crate) fn list_removed(&self, i: usize) -> *mut Main {
        if self.len() == 1 {
            return Self::tomb(Branch::NONE);
        }
        let rest: Vec<_> = self
            .list_pairs()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, p)| p)
            .collect();
        Self::list(&rest)
    }

    /// A copy of this list with `b` appended.
    pub(crate) fn list_appended(&self, b: Branch) -> *mut Main {
        let next = self.seqs().last().map_or(0, |s| s + 1);
        let all: Vec<_> = self.list_pairs().chain([(b, next)]).collect();
        Self::list(&all)
    }

    /// The main node of a new INode at `level` holding two leaves whose hashes differ at or
    /// below `level` (or not at all): a CNode with both, a chain of one-child CNodes down to
    /// where they part, or a collision list past the last level.
    pub(crate) fn dual(a: Branch, ha: u64, b: Branch, hb: u64, level: u32) -> *mut Main {
        if level >= MAX_LEVEL {
            // `a` is the leaf already there: it keeps its place (number 0) in iteration order.
            return Self::list(&[(a, 0), (b, 1)]);
        }
        let (sa, sb) = (slot(ha, level), slot(hb, level));
        if sa == sb {
            let child = INode::new(Self::dual(a, ha, b, hb, level + BITS));
            return Self::alloc(Kind::CNode, 1 << sa, 1, [Branch::inode(child)]);
        }
        let pair = if sa < sb { [a, b] } else { [b, a] };
        Self::alloc(Kind::CNode, (1 << sa) | (1 << sb), 2, pair)
    }
}

impl INode {
    pub(crate) fn new(main: *mut Main) -> *mut INode {
        Box::into_raw(Box::new(INode {
            main: AtomicPtr::new(main),
        }))
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
        let m = inode.main.load(Relaxed); // Relaxed: never shared.
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

/// Reclaims a retired main node: its own allocation only.
///
/// # Safety
/// [`Domain::retire`]'s contract, for a pointer from [`Main::alloc`].
pub(crate) unsafe fn reclaim_main(p: *mut (), _: &Domain) {
    // Safety: our caller's contract.
    unsafe { Main::free(p.cast()) }
}

/// Reclaims a retired INode and its (tomb) main node; the tomb's leaf was handed on.
///
/// # Safety
/// [`Domain::retire`]'s contract, for an INode whose main node is a tomb.
pub(crate) unsafe fn reclaim_inode(p: *mut (), _: &Domain) {
    // Safety: our caller's contract; the INode came from `INode::new`.
    let inode = unsafe { Box::from_raw(p.cast::<INode>()) };
    // Relaxed: the retiring thread's Release push and the scanner's Acquire take order this.
    let main = inode.main.load(Relaxed);
    // Safety: a tomb is never replaced, so this INode owns it alone.
    unsafe { Main::free(main) };
}

/// Reclaims a retired leaf, dropping its key and value.
///
/// # Safety
/// [`Domain::retire`]'s contract, for a leaf of this `K` and `V` from `Box::into_raw`.
pub(crate) unsafe fn reclaim_leaf<K, V>(p: *mut (), _: &Domain) {
    // Safety: our caller's contract.
    drop(unsafe { Box::from_raw(p.cast::<Leaf<K, V>>()) });
}

/// Frees the whole trie below `root` (which is freed too), iteratively: no recursion, so a
/// deep trie cannot overflow the stack. Leaves are dropped (running `K`'s and `V`'s `Drop`);
/// if one panics, the rest is still freed and the first panic resumes afterwards.
///
/// # Safety
/// 1. No other thread can reach `root` or anything below it, and nothing below it is retired.
pub(crate) unsafe fn free_tree<K, V>(root: *mut INode) {
    let mut panic = None;
    let mut stack = vec![root];
    while let Some(i) = stack.pop() {
        // Safety: 1. exclusive; INodes come from `INode::new`.
        let inode = unsafe { Box::from_raw(i) };
        let m = inode.main.load(Relaxed); // Relaxed: exclusive access.
                                          // Safety: 1. exclusive; every INode's main is a live main node.
        for &b in unsafe { &*m }.entries() {
            if b.is_none() {
                continue;
            }
            if b.is_leaf() {
                // Safety: 1. a live leaf owned by this main node alone.
                let leaf = unsafe { Box::from_raw(b.as_leaf::<K, V>()) };
                if let Err(p) =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(leaf)))
                {
                    panic.get_or_insert(p);
                }
            } else {
                stack.push(b.as_inode());
            }
        }
        // Safety: 1.
        unsafe { Main::free(m) };
    }
    if let Some(p) = panic {
        if !std::thread::panicking() {
            std::panic::resume_unwind(p);
        }
    }
}
