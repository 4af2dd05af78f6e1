//! The algorithms: lookup, the one write loop behind every update, tomb cleaning, and the
//! Ctrie's snapshot machinery (GCAS on main nodes, RDCSS on the root).
//!
//! # Reading under hazard pointers
//!
//! A reader protects every node before it dereferences it, and validates each protection
//! against the INode whose main node led to it:
//!
//! 1. protect the main node `m` of INode `i` (the hazard protect-and-validate loop on
//!    `i.main`, inside [`gcas_read`]);
//! 2. read child `c` from `m`, publish `c`, and re-read `i.main`: if it still holds `m`, then
//!    `c` was still held by `m` after the hazard was published, so its count had not reached
//!    zero and no writer can have retired it yet. (No ABA: `m` is protected, so its address
//!    cannot be reused.)
//!
//! Step 2 relies on: *a main node that an INode holds keeps its references*. A main node
//! releases its children only when it is reclaimed (after every INode let go of it), or, for
//! a never-shared main node, when the writer that unlinked it releases the children its
//! replacement dropped (after the CAS that makes the re-read fail). The root INode is
//! protected like the rest (a snapshot replaces it), and a tomb's leaf is validated against
//! the *parent's* main node, since the tomb's INode is only ever unlinked by folding the tomb
//! into the parent. Cursors keep the parent's two protections for that.
//!
//! # GCAS: main-node replacement that commits only in its generation
//!
//! A writer works in the generation of the root it started from (`startgen`) and changes only
//! INodes of that generation. It installs a new main node `n` with `n.prev = old` by a CAS of
//! the INode's `main`, then *decides* it: if the map's root is still the root it started from
//! (so its generation is unchanged), it commits (`prev` := null); otherwise a snapshot was
//! taken meanwhile and it fails (`prev` := `old | FAILED`, then `main` goes back to `old`).
//! Any reader that meets a pending `n` decides it the same way before going on (the paper's
//! `GCAS_Commit`), so nobody waits for the installer; readers of a frozen snapshot always
//! fail it. A decision is one CAS on `n.prev`, so all agree. Readers dereference the children
//! of committed main nodes only.
//!
//! # RDCSS: the root swap of a snapshot
//!
//! A snapshot replaces the root INode `r0` by a new INode of a new generation pointing to
//! `r0`'s main node `m`, provided `r0.main` is still `m` (a double-compare single-swap): it
//! installs a descriptor in the root, reads `r0.main` (deciding a pending GCAS there, which
//! aborts the descriptor), decides the descriptor (commit if `r0.main` is `m`), and swaps the
//! descriptor for the new root (commit) or back to `r0` (abort). Anyone who meets a descriptor
//! completes it; a GCAS decision aborts it instead, so that root writes are never blocked.
//!
//! The writer's "CAS `i.main`, then read the root" and the snapshot's "CAS the root, then read
//! `r0.main`" have the store-buffering shape: each must see the other's store, or both would
//! go ahead (the snapshot would miss a committed write). Both pairs of accesses are `SeqCst`,
//! which forbids that outcome (on x86 a locked CAS and a plain load; on ARMv8 `stlxr` then
//! `ldar`, which are ordered). loom models `SeqCst` accesses as `AcqRel`, so under loom a
//! `SeqCst` fence sits between them ([`loom_sc_fence`]).

use crate::count::Counter;
use crate::node::{
    acquire_ref, acquire_ref_if_live, free_unpublished_chain, fresh_gen, is_committed,
    reclaim_node, release, release_main, release_unlinked_leaf, slot, Branch, INode, Kind, Leaf,
    Main, BITS, DESC as DESC_KIND, FAILED, INODE_BARE, MAIN_BARE,
};
use crate::sync::{loom_sc_fence, AtomicPtr, AtomicUsize, Data};
use crate::Ref;
use hazard::{contention, Batch, Domain, HazardPointer, Link};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::mem;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use std::sync::{Arc, OnceLock};

/// Tag bit of the root pointer when it holds an RDCSS [`Desc`] instead of an INode.
const DESC: usize = 1;
const _: () = assert!(std::mem::align_of::<Desc>() > DESC);

/// States of a [`Desc`].
const PENDING: usize = 0;
const COMMIT: usize = 1;
const ABORT: usize = 2;

/// An RDCSS descriptor: swap the root from `old` to `new` if `old`'s main node is `expected`.
#[repr(C)]
struct Desc {
    /// Chains it once retired.
    link: Link,
    swap: Data<Swap>,
    /// [`PENDING`], then [`COMMIT`] or [`ABORT`], decided once by CAS (so that whoever
    /// completes the descriptor, its installer learns the outcome).
    state: AtomicUsize,
}

/// The immutable part of a [`Desc`], published with it by the root CAS.
struct Swap {
    old: *mut INode,
    expected: *mut Main,
    new: *mut INode,
}

/// Frees a retired descriptor (kind [`DESC_KIND`]).
///
/// # Safety
/// `hazard::Batch::retire`'s contract, for a `Desc` from `Box::into_raw`.
pub(crate) unsafe fn free_desc(link: *mut Link) {
    // Safety: our caller's contract.
    drop(unsafe { Box::from_raw(link.cast::<Desc>()) });
}

/// How a reader decides a pending GCAS that it meets.
#[derive(Clone, Copy)]
pub(crate) enum Decide<'r> {
    /// In a live map whose root was `start` (protected by the caller) when the operation
    /// began: commit if the root is still `start` and the INode is of its generation.
    Live {
        root: &'r AtomicPtr<()>,
        start: *mut INode,
    },
    /// In a frozen snapshot: always fail it (the snapshot's generation is over).
    Frozen,
}

/// Reads the committed main node of `inode`, protected by `guard`, deciding a pending GCAS
/// first if there is one (the paper's `GCAS_READ`).
///
/// # Safety
/// 1. `inode` is protected by the caller (or otherwise kept alive), and so is `start` in
///    `how`.
#[inline(always)]
pub(crate) unsafe fn gcas_read(
    inode: *mut INode,
    guard: &mut HazardPointer<'_>,
    how: Decide<'_>,
    domain: &Domain,
) -> *mut Main {
    loop {
        // Safety: 1.
        let m = guard.protect(unsafe { &(*inode).main });
        // Acquire: pairs with the AcqRel CAS that committed `m` (its decision), so that the
        // decision and everything before it are visible. Safety: protected by `guard`.
        if is_committed(unsafe { (*m).prev.load(Acquire) }) {
            return m;
        }
        // Safety: 1; `m` is protected.
        unsafe { gcas_decide_cold(inode, m, how, domain) };
    }
}

/// [`gcas_decide`] for readers: out of line, off the hot path.
///
/// # Safety
/// As [`gcas_decide`].
#[cold]
#[inline(never)]
unsafe fn gcas_decide_cold(inode: *mut INode, n: *mut Main, how: Decide<'_>, domain: &Domain) {
    // Safety: our caller's contract.
    unsafe { gcas_decide(inode, n, how, domain) };
}

/// Decides the GCAS that installed `n` in `inode` (if still pending), and if it failed makes
/// sure `inode.main` no longer holds `n`. Returns whether it committed.
///
/// # Safety
/// 1. `inode`, `n` and `start` in `how` are protected by the caller.
unsafe fn gcas_decide(inode: *mut INode, n: *mut Main, how: Decide<'_>, domain: &Domain) -> bool {
    loop {
        // Acquire: pairs with the AcqRel decision CAS below (of whichever thread won it).
        // Safety: 1.
        let p = unsafe { (*n).prev.load(Acquire) };
        if is_committed(p) {
            return true;
        }
        if p as usize & FAILED != 0 {
            let old = (p as usize & !FAILED) as *mut Main;
            // AcqRel: Release republishes `old` to readers' Acquire loads of `main`.
            // Safety: 1. (`old` is alive: its installer protects it until it returns, and
            // it returns only once `main` no longer holds `n`.)
            let _ = unsafe { (*inode).main.compare_exchange(n, old, AcqRel, Acquire) };
            return false;
        }
        let commit = match how {
            Decide::Frozen => false,
            Decide::Live { root, start } => {
                loom_sc_fence();
                // Safety: 1.
                root_is(root, start, domain) && unsafe { (*start).gen() == (*inode).gen() }
            }
        };
        let decision = if commit {
            ptr::null_mut()
        } else {
            (p as usize | FAILED) as *mut Main
        };
        // AcqRel: the one decision; Release publishes it with what led to it.
        // Safety: 1.
        let _ = unsafe { (*n).prev.compare_exchange(p, decision, AcqRel, Acquire) };
    }
}

/// Whether the root is `start`, aborting an RDCSS in progress first (the paper's
/// `RDCSS_READ_ROOT(abort = true)`): a GCAS decision never waits for a snapshot.
fn root_is(root: &AtomicPtr<()>, start: *mut INode, domain: &Domain) -> bool {
    loop {
        // SeqCst: the load half of the writers' store-buffering pair (see the module docs).
        let r = root.load(SeqCst);
        if r as usize & DESC != 0 {
            // Safety: `r` was just read from the root.
            unsafe { complete_desc(root, r, true, domain) };
            continue;
        }
        return r == start.cast();
    }
}

/// Completes the RDCSS whose tagged descriptor is `tagged`: decides it (abort if `abort`,
/// otherwise commit if its old root still holds the expected main node) and swaps the root
/// to the outcome.
///
/// # Safety
/// 1. `tagged` was read from `root` (the descriptor may have been completed and retired
///    since: it is protected and validated here before use).
unsafe fn complete_desc(root: &AtomicPtr<()>, tagged: *mut (), abort: bool, domain: &Domain) {
    let desc = (tagged as usize & !DESC) as *mut Desc;
    let mut guard = HazardPointer::new(domain);
    guard.publish(desc);
    // Acquire: validates the protection (the descriptor is retired only after the root
    // stopped holding it).
    if root.load(Acquire) != tagged {
        return;
    }
    // Safety: protected and validated.
    let desc = unsafe { &*desc };
    let d = desc.swap.get();
    // The old root too: its installer lets go of it once the root no longer holds the
    // descriptor, so the same validation covers it.
    let mut old_guard = HazardPointer::new(domain);
    old_guard.publish(d.old);
    // Acquire: as above.
    if root.load(Acquire) != tagged {
        return;
    }
    // Acquire: pairs with the AcqRel decision below.
    let mut state = desc.state.load(Acquire);
    if state == PENDING {
        let decided = if abort {
            ABORT
        } else {
            let mut main_guard = HazardPointer::new(domain);
            let how = Decide::Live { root, start: d.old };
            // Safety: the old root and the descriptor are protected (validated above).
            let m = unsafe { gcas_read(d.old, &mut main_guard, how, domain) };
            loom_sc_fence();
            // SeqCst: the load half of the snapshot's store-buffering pair (module docs).
            // Safety: as above.
            if m == d.expected && unsafe { (*d.old).main.load(SeqCst) } == d.expected {
                COMMIT
            } else {
                ABORT
            }
        };
        // AcqRel: one decision wins; Release publishes it.
        state = match desc
            .state
            .compare_exchange(PENDING, decided, AcqRel, Acquire)
        {
            Ok(_) => decided,
            Err(now) => now,
        };
    }
    let target = if state == COMMIT { d.new } else { d.old };
    // SeqCst: a root store, ordered with the GCAS deciders' SeqCst root loads. No ABA: the
    // descriptor is protected.
    let _ = root.compare_exchange(tagged, target.cast(), SeqCst, Relaxed);
}

/// The success ordering of the GCAS that installs a main node (see [`Inner::gcas`]).
///
/// `--cfg hamt_weak_publication` weakens it to `Relaxed`, for one test only: it shows that the
/// loom models, which track node contents (see `sync::Data`), catch a main node published
/// without Release (`scripts/loom.sh --weakened`). Never in a real build.
#[cfg(not(hamt_weak_publication))]
const PUBLISH: std::sync::atomic::Ordering = SeqCst;
#[cfg(hamt_weak_publication)]
const PUBLISH: std::sync::atomic::Ordering = Relaxed;

/// The outcome of a GCAS by its installer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gcas {
    /// The CAS lost: `new` was never published.
    Lost,
    /// Published, then failed: a snapshot was taken meanwhile.
    Aborted,
    Committed,
}

/// The shared state behind every clone of a map.
pub(crate) struct Inner<K, V, S> {
    /// The root INode (holding one counted reference on it), or an RDCSS descriptor tagged
    /// [`DESC`] while a snapshot is being taken.
    pub(crate) root: AtomicPtr<()>,
    pub(crate) hasher: S,
    /// Entries inserted minus entries removed through this map.
    pub(crate) count: Counter,
    /// Entries present when this map was created: 0 for a new map; for a writable snapshot,
    /// the size of the frozen main node it started from, computed on the first `len`.
    base: OnceLock<isize>,
    /// That frozen main node (one counted reference) until `base` is computed; null after.
    base_main: std::sync::atomic::AtomicPtr<Main>,
    /// Shared by every map and snapshot that may share nodes with this one: a node retired
    /// by one of them may be protected by a reader of another.
    pub(crate) domain: Arc<Domain>,
    /// Owns `K`s and `V`s (for drop check and auto traits).
    _marker: PhantomData<(K, V)>,
}

// Safety: the trie hands keys and values between threads (a leaf inserted on one thread is
// read, and dropped, on others), so both must be `Send` and `Sync`; the raw pointers are
// owned by the structure and synchronised by its atomics.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Send> Send for Inner<K, V, S> {}
// Safety: as above; `&Inner` exposes `&S` (hashing) to every thread.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Sync> Sync for Inner<K, V, S> {}

impl<K, V, S> Drop for Inner<K, V, S> {
    fn drop(&mut self) {
        // Relaxed: `&mut self`; a snapshot completes its descriptor before returning, so the
        // root is an INode.
        let root = self.root.load(Relaxed).cast::<INode>();
        let base = mem::replace(self.base_main.get_mut(), ptr::null_mut());
        // Safety: the last handle is gone; we own the root's reference (and the base's).
        unsafe { release_tree::<K, V>(root, base, &self.domain, Release::Last) };
    }
}

/// How [`release_tree`] lets go of a trie.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Release {
    /// The last handle of a map or snapshot: frees directly if no other map or snapshot
    /// shares the domain, otherwise as `Eager`.
    Last,
    /// Through the domain, then a reclamation pass that follows the cascade at once (user
    /// `Drop`s run now, and a panic from one resumes here).
    Eager,
    /// Through the domain only: the cascade proceeds with later scans.
    Lazy,
}

/// Lets go of a reference on `root` (and on `base`, if not null): frees what only it kept
/// alive.
///
/// With [`Release::Last`] and no other map or snapshot sharing the domain, no other thread
/// can hold a reference or a hazard pointer on these nodes, and they are freed directly
/// ([`crate::node::free_tree`]). Otherwise they go through the domain (a reader may still
/// protect a node that was reachable a moment ago).
///
/// # Safety
/// 1. The caller owns one counted reference on `root` (and on `base`), and gives it up.
/// 2. With `Last`, the caller's map or snapshot has no other handle, and holds one count of
///    `domain`'s `Arc`.
pub(crate) unsafe fn release_tree<K, V>(
    root: *mut INode,
    base: *mut Main,
    domain: &Arc<Domain>,
    how: Release,
) {
    if how == Release::Last && Arc::strong_count(domain) == 1 {
        // Safety: 1, 2: the domain is ours alone, so are the nodes (every holder of another
        // reference is a node of this trie or a retired node of this domain, reclaimed
        // without concurrency when the domain drops).
        unsafe {
            if !base.is_null() {
                // A base main node is held like an INode's main node: free it through a
                // temporary INode so that one walk handles both.
                crate::node::free_tree::<K, V>(INode::new(base, 0));
            }
            crate::node::free_tree::<K, V>(root);
        }
        return;
    }
    let mut batch = Batch::new(domain);
    // Safety: 1.
    unsafe {
        if !base.is_null() {
            release_main(base, &mut batch);
        }
        release::<K, V>(Branch::inode(root), &mut batch);
    }
    if how == Release::Lazy {
        batch.flush_without_scan();
    } else {
        drop(batch);
        domain.reclaim();
    }
}

/// What a write does with the entry it found.
pub(crate) enum Action<V> {
    /// Nothing: the operation completes without writing.
    Keep,
    /// Store the prepared leaf, first setting its value to this one if given.
    Put(Option<V>),
    /// Remove the entry (which must exist).
    Remove,
}

/// The key of a write, and the leaf it may store.
pub(crate) enum Prepared<'q, K, V, Q: ?Sized> {
    /// A removal: only the key to look for.
    Borrowed(&'q Q),
    /// The key, before a value exists (`update`).
    Key(K),
    /// A leaf ready to publish.
    Leaf(OwnedLeaf<K, V>),
    /// The leaf is in the trie.
    Published,
}

/// A leaf not (yet) in the trie: freed on drop unless published.
pub(crate) struct OwnedLeaf<K, V>(*mut Leaf<K, V>);

impl<K, V> OwnedLeaf<K, V> {
    pub(crate) fn new(hash: u64, key: K, value: V) -> Self {
        OwnedLeaf(Box::into_raw(Box::new(Leaf::new(hash, key, value))))
    }

    pub(crate) fn get(&self) -> &Leaf<K, V> {
        // Safety: unpublished, so ours.
        unsafe { &*self.0 }
    }

    /// Hands the leaf to the trie (a CAS published it).
    fn publish(self) {
        mem::forget(self);
    }
}

impl<K, V> Drop for OwnedLeaf<K, V> {
    fn drop(&mut self) {
        // Safety: never published, so ours; from `Box::into_raw`.
        drop(unsafe { Box::from_raw(self.0) });
    }
}

impl<K: Borrow<Q>, V, Q: ?Sized> Prepared<'_, K, V, Q> {
    fn key(&self) -> &Q {
        match self {
            Prepared::Borrowed(q) => q,
            Prepared::Key(k) => k.borrow(),
            Prepared::Leaf(l) => l.get().entry().key.borrow(),
            Prepared::Published => unreachable!("the key is used after publication"),
        }
    }

    /// The leaf to store, with `value` if given.
    fn put(&mut self, value: Option<V>, hash: u64) -> Branch {
        match (mem::replace(self, Prepared::Published), value) {
            (Prepared::Leaf(l), value) => {
                if let Some(v) = value {
                    // Safety: an unpublished leaf is ours. (The value it replaces was never
                    // published either.)
                    unsafe { (*l.0).entry_mut().value = v };
                }
                let b = Branch::leaf(l.0);
                *self = Prepared::Leaf(l);
                b
            }
            (Prepared::Key(key), Some(value)) => {
                let l = OwnedLeaf::new(hash, key, value);
                let b = Branch::leaf(l.0);
                *self = Prepared::Leaf(l);
                b
            }
            _ => unreachable!("Put without a value to store"),
        }
    }
}

/// The outcome of a write.
pub(crate) struct Written<'a, K, V> {
    /// The entry found (the previous one, when the write changed it).
    pub(crate) old: Option<Ref<'a, K, V>>,
    /// The entry stored, when asked for and the write stored one.
    pub(crate) new: Option<Ref<'a, K, V>>,
    /// Whether the map changed.
    pub(crate) changed: bool,
}

/// The guards of a traversal: the root it started from, the current INode and its main node,
/// their parents, and a child. Rotated by swapping as the traversal descends.
struct Cursor<'d> {
    root: HazardPointer<'d>,
    inode: HazardPointer<'d>,
    main: HazardPointer<'d>,
    parent_inode: HazardPointer<'d>,
    parent_main: HazardPointer<'d>,
    child: HazardPointer<'d>,
}

impl<'d> Cursor<'d> {
    /// A cursor whose six guards are taken in one go (one thread-local access).
    #[inline]
    fn new(domain: &'d Domain) -> Self {
        Self::of(HazardPointer::array::<6>(domain))
    }

    #[inline(always)]
    fn of(guards: [HazardPointer<'d>; 6]) -> Self {
        let [root, inode, main, parent_inode, parent_main, child] = guards;
        Cursor {
            root,
            inode,
            main,
            parent_inode,
            parent_main,
            child,
        }
    }

    /// Moves down: the current pair becomes the parent pair, the child becomes the INode.
    #[inline(always)]
    fn descend(&mut self) {
        mem::swap(&mut self.parent_inode, &mut self.inode);
        mem::swap(&mut self.parent_main, &mut self.main);
        mem::swap(&mut self.inode, &mut self.child);
    }
}

/// Where a traversal stands: INode `inode` (at `level`) whose committed main node is `main`,
/// its parent pair (null at the root), and the root it started from.
#[derive(Clone, Copy)]
struct Position {
    root: *mut INode,
    inode: *mut INode,
    main: *mut Main,
    parent: *mut INode,
    parent_main: *mut Main,
    level: u32,
}

impl Position {
    /// The start of a traversal: the root INode, no main node read yet, no parent.
    fn at_root(root: *mut INode) -> Self {
        Position {
            root,
            inode: root,
            main: ptr::null_mut(),
            parent: ptr::null_mut(),
            parent_main: ptr::null_mut(),
            level: 0,
        }
    }

    /// The generation the traversal writes in.
    fn gen(&self) -> u64 {
        // Safety: the cursor protects the root for the whole traversal.
        unsafe { (*self.root).gen() }
    }
}

#[inline(always)]
fn still_holds(inode: *mut INode, m: *mut Main) -> bool {
    // Acquire: pairs with the Release half of the CAS that installed the current main node;
    // this is the validating load of the protection just published (see the module docs).
    // Safety: `inode` is protected by the caller's cursor.
    unsafe { (*inode).main.load(Acquire) == m }
}

/// A replacement of main node `old` by `new` in `inode`, and what it does to counts.
struct Change {
    inode: *mut INode,
    old: *mut Main,
    new: *mut Main,
    /// The child of `new` created for it (a new leaf or INode), already counted for it.
    fresh: Branch,
    /// A child of `old` that moves into `fresh` (two leaves pushed down a level): counted
    /// when `old` is shared, handed over otherwise.
    pushed_down: Branch,
    /// A child of `new` that comes from below (a tomb's leaf): counted unless the INode and
    /// tomb it comes from were never shared (`dropped_bare`).
    moved_up: Branch,
    /// The child of `old` that `new` drops (a replaced or removed leaf, a folded or renewed
    /// INode), released once `new` commits.
    dropped: Branch,
    /// `dropped` is an INode that only `old` held, whose tomb only it held, and whose leaf
    /// `new` takes over: freed bare.
    dropped_bare: bool,
}

impl Change {
    fn new(inode: *mut INode, old: *mut Main, new: *mut Main) -> Self {
        Change {
            inode,
            old,
            new,
            fresh: Branch::NONE,
            pushed_down: Branch::NONE,
            moved_up: Branch::NONE,
            dropped: Branch::NONE,
            dropped_bare: false,
        }
    }

    /// Whether `old` may be shared (see the `node` module docs).
    fn shared(&self) -> bool {
        // Safety: `old` and `inode` are protected by the caller.
        unsafe { (*self.old).gen() != (*self.inode).gen() }
    }

    /// The children whose counts this change takes before publishing `new` (and gives back
    /// if it does not commit): when `old` is shared, every child `new` keeps (and the one it
    /// pushes down); otherwise only a leaf moved up from a shared tomb.
    fn counted(&self) -> impl Iterator<Item = Branch> + '_ {
        let shared = self.shared();
        let kept: &[Branch] = if shared {
            // Safety: `new` is ours until published, and immutable.
            unsafe { (*self.new).entries() }
        } else {
            &[]
        };
        let kept = kept
            .iter()
            .copied()
            .filter(move |&b| b != self.fresh && !b.is_none());
        let pushed = Some(self.pushed_down).filter(|b| shared && !b.is_none());
        let moved = Some(self.moved_up).filter(|b| !shared && !self.dropped_bare && !b.is_none());
        kept.chain(pushed).chain(moved)
    }
}

/// What a committed [`Change`] leaves to do: retire or release `old` and what `new` dropped,
/// into the operation's batch ([`settle`](Self::settle); nothing is freed before the batch
/// is flushed and scanned, and no user code runs meanwhile).
#[must_use]
struct Settle<K, V> {
    shared: bool,
    old: *mut Main,
    dropped: Branch,
    dropped_bare: bool,
    _marker: PhantomData<(K, V)>,
}

impl<K, V> Settle<K, V> {
    fn settle(self, batch: &mut Batch<'_>) {
        // Our committed GCAS unlinked `old` from its INode: we own the INode's reference on
        // it, and (when `old` was never shared) `old`'s reference on `dropped`.
        if self.shared {
            // `old` may be held by other INodes: let go of ours; it releases its children
            // (`dropped` among them) when the last holder lets go.
            // Safety: our reference, given up once.
            unsafe { release_main(self.old, batch) };
            return;
        }
        // Never shared: its children were handed over, except `dropped`.
        // Safety: unlinked by our GCAS, held by nothing else; retired once, by us.
        unsafe { batch.retire(self.old.cast(), MAIN_BARE) };
        if self.dropped.is_leaf() {
            // Safety: `old`'s reference, now ours; `old` was never shared.
            unsafe { release_unlinked_leaf(self.dropped.as_leaf::<K, V>(), batch) };
        } else if self.dropped_bare {
            // Safety: an INode and tomb that only `old` held (see `Change::dropped_bare`),
            // unlinked by our GCAS; retired once, by us.
            unsafe { batch.retire(self.dropped.as_inode().cast(), INODE_BARE) };
        } else {
            // Safety: `old`'s reference, now ours.
            unsafe { release::<K, V>(self.dropped, batch) };
        }
    }
}

impl<K, V, S> Inner<K, V, S> {
    pub(crate) fn with_hasher(hasher: S) -> Self {
        let gen = fresh_gen();
        Self::with_root(
            INode::new(Main::empty_cnode(gen), gen),
            hasher,
            ptr::null_mut(),
            Arc::new(new_domain::<K, V>()),
        )
    }

    /// A map on `root` (whose reference it takes), counting from the size of `base` (a
    /// frozen main node whose reference it takes; null: from 0).
    fn with_root(root: *mut INode, hasher: S, base: *mut Main, domain: Arc<Domain>) -> Self {
        let base_count = OnceLock::new();
        if base.is_null() {
            let _ = base_count.set(0);
        }
        Inner {
            root: AtomicPtr::new(root.cast()),
            hasher,
            count: Counter::new(),
            base: base_count,
            base_main: std::sync::atomic::AtomicPtr::new(base),
            domain,
            _marker: PhantomData,
        }
    }

    /// The number of entries: see [`Hamt::len`](crate::Hamt::len).
    pub(crate) fn len(&self) -> usize {
        let base = *self.base.get_or_init(|| {
            // Acquire: the base main node was stored before this map was shared.
            let base = self.base_main.load(Acquire);
            let mut guard = HazardPointer::new(&self.domain);
            // Safety: we hold a reference on the frozen `base`.
            let n = unsafe { frozen_size(base, &mut guard, &self.domain) } as isize;
            drop(guard);
            // Only the thread that initialises `base` gets here, once.
            // Relaxed: the pointer was read above by this same thread.
            self.base_main.store(ptr::null_mut(), Relaxed);
            // Safety: our reference, given up once.
            unsafe { release_main(base, &mut Batch::new(&self.domain)) };
            n
        });
        (base + self.count.sum()).max(0) as usize
    }

    /// Reads and protects the root INode, completing a snapshot's RDCSS if one is in progress.
    fn read_root(&self, guard: &mut HazardPointer<'_>) -> *mut INode {
        loop {
            // Acquire: pairs with the Release (SeqCst) CAS that installed the root.
            let r = self.root.load(Acquire);
            guard.publish((r as usize & !DESC) as *mut ());
            // Acquire: validates the protection (a root INode or descriptor is retired only
            // after the root stopped holding it).
            if self.root.load(Acquire) != r {
                continue;
            }
            if r as usize & DESC == 0 {
                return r.cast();
            }
            // Safety: `r` was just read from the root.
            unsafe { complete_desc(&self.root, r, false, &self.domain) };
        }
    }

    /// Installs `new` in `inode` by GCAS (see the module docs). `guard` protects `new` from
    /// before its publication, so that deciding it afterwards is safe.
    ///
    /// # Safety
    /// 1. `inode`, `old` (its committed main node) and `start` (the root the traversal
    ///    started from) are protected; `new` is fresh.
    unsafe fn gcas(
        &self,
        inode: *mut INode,
        old: *mut Main,
        new: *mut Main,
        start: *mut INode,
        guard: &mut HazardPointer<'_>,
    ) -> Gcas {
        // Relaxed: `new` is not shared yet; the CAS below publishes it.
        // Safety: 1. fresh.
        unsafe { (*new).prev.store(old, Relaxed) };
        guard.publish(new);
        // SeqCst: the store half of the writers' store-buffering pair with snapshots (module
        // docs), and Release publishes `new` with its children; Acquire on failure makes the
        // winner's main node readable for the retry.
        // Safety: 1.
        let cas =
            contention::compare_exchange(unsafe { &(*inode).main }, old, new, PUBLISH, Acquire);
        if cas.is_err() {
            return Gcas::Lost;
        }
        let how = Decide::Live {
            root: &self.root,
            start,
        };
        // Safety: 1; `new` is protected by `guard`.
        if unsafe { gcas_decide(inode, new, how, &self.domain) } {
            Gcas::Committed
        } else {
            Gcas::Aborted
        }
    }

    /// Applies `change` by GCAS with its counting. On `Committed`, returns what is left to
    /// settle; otherwise `new` is gone (freed or retired) and every count is back, and
    /// `change.fresh` (with whatever it holds) is the caller's again.
    ///
    /// # Safety
    /// 1. As [`gcas`](Self::gcas), and the fields of `change` describe `new` truthfully.
    unsafe fn apply(
        &self,
        change: &Change,
        start: *mut INode,
        guard: &mut HazardPointer<'_>,
        batch: &mut Batch<'_>,
    ) -> Result<Settle<K, V>, Gcas> {
        for b in change.counted() {
            // Safety: 1. children of `old` (protected) or of the protected tomb below: their
            // holders keep them alive and counted, so a plain increment cannot resurrect.
            unsafe { acquire_branch::<K, V>(b) };
        }
        // Safety: 1.
        let outcome = unsafe { self.gcas(change.inode, change.old, change.new, start, guard) };
        if outcome != Gcas::Committed {
            for b in change.counted() {
                // Safety: the references taken above; their other holders keep the counts
                // above zero.
                unsafe { release::<K, V>(b, batch) };
            }
            if outcome == Gcas::Lost {
                // Safety: never published.
                unsafe { Main::free(change.new) };
            } else {
                // Safety: published (readers may protect it) and now unlinked; nobody
                // dereferences the children of a failed main node, so it is retired bare.
                unsafe { batch.retire(change.new.cast(), MAIN_BARE) };
            }
            return Err(outcome);
        }
        Ok(Settle {
            shared: change.shared(),
            old: change.old,
            dropped: change.dropped,
            dropped_bare: change.dropped_bare,
            _marker: PhantomData,
        })
    }
}

/// A map's reclamation domain. Under loom, scans happen only where a model calls
/// `reclaim` (or when the domain drops): with the usual threshold, a scan after every other
/// retire multiplies the interleavings past what a model can explore, and the scan protocol
/// itself is the hazard crate's models' subject.
fn new_domain<K, V>() -> Domain {
    let domain = if cfg!(loom) {
        Domain::with_retire_threshold(usize::MAX)
    } else {
        Domain::new()
    };
    domain.with_reclaimer(reclaim_node::<K, V>)
}

/// Takes one counted reference on a child.
///
/// # Safety
/// The child's count is kept above zero by a holder for the duration of the call.
unsafe fn acquire_branch<K, V>(b: Branch) {
    if b.is_leaf() {
        // Safety: the caller's contract.
        acquire_ref(unsafe { (*b.as_leaf::<K, V>()).rc() }, 1);
    } else {
        // Safety: as above.
        acquire_ref(unsafe { (*b.as_inode()).rc() }, 1);
    }
}

/// The number of entries below the frozen main node `m`, cached in the main nodes.
///
/// # Safety
/// 1. `m` is frozen (reached from a read-only snapshot, or held by a map as its base) and
///    kept alive by the caller; so is everything below it.
pub(crate) unsafe fn frozen_size(
    m: *mut Main,
    guard: &mut HazardPointer<'_>,
    domain: &Domain,
) -> usize {
    // Safety: 1.
    let main = unsafe { &*m };
    if let Some(n) = main.cached_size() {
        return n;
    }
    let n = match main.kind() {
        Kind::Tomb => usize::from(!main.entries()[0].is_none()),
        Kind::List => main.len(),
        Kind::CNode => main
            .entries()
            .iter()
            .map(|&b| {
                if b.is_leaf() {
                    1
                } else {
                    // Safety: 1. (The committed main node of a frozen INode never changes, and
                    // the INode holds it, so the guard is needed only while deciding.)
                    let child = unsafe { gcas_read(b.as_inode(), guard, Decide::Frozen, domain) };
                    // Safety: 1.
                    unsafe { frozen_size(child, guard, domain) }
                }
            })
            .sum(),
    };
    main.set_cached_size(n);
    n
}

impl<K: Hash + Eq, V, S: BuildHasher> Inner<K, V, S> {
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Looks `key` up. Never writes, never renews, never cleans: a tomb is read as the entry
    /// it holds, and an INode of an older generation is read as it is (it is frozen, and
    /// still current for this map while the validated path leads to it).
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut c = Cursor::new(&self.domain);
        'restart: loop {
            let root = self.read_root(&mut c.root);
            let how = Decide::Live {
                root: &self.root,
                start: root,
            };
            let mut inode = root;
            let mut parent = (ptr::null_mut::<INode>(), ptr::null_mut::<Main>());
            let mut level = 0;
            'inode: loop {
                // Safety: `inode` is protected by `c.root` or `c.inode`, validated when read;
                // `root` by `c.root`.
                let m = unsafe { gcas_read(inode, &mut c.main, how, &self.domain) };
                // Safety: protected and validated by `gcas_read`.
                let main = unsafe { &*m };
                let b = match main.kind() {
                    Kind::CNode => {
                        let bit = 1 << slot(hash, level);
                        if main.bitmap() & bit == 0 {
                            return None;
                        }
                        let b = main.entries()[main.index(bit)];
                        c.child.publish(b.ptr());
                        if !still_holds(inode, m) {
                            continue 'inode;
                        }
                        if !b.is_leaf() {
                            parent = (inode, m);
                            c.descend();
                            inode = b.as_inode();
                            level += BITS;
                            continue 'inode;
                        }
                        b
                    }
                    Kind::Tomb => {
                        let b = main.entries()[0];
                        if b.is_none() {
                            return None;
                        }
                        c.child.publish(b.ptr());
                        // The leaf is validated against the parent (see the module docs).
                        // The root is never a tomb, so there is a parent.
                        if !still_holds(parent.0, parent.1) {
                            continue 'restart;
                        }
                        b
                    }
                    Kind::List => {
                        for &b in main.entries() {
                            c.child.publish(b.ptr());
                            if !still_holds(inode, m) {
                                continue 'inode;
                            }
                            // Safety: protected and validated.
                            let leaf = unsafe { (*b.as_leaf::<K, V>()).entry() };
                            if leaf.hash == hash && leaf.key.borrow() == key {
                                return Some(Ref::new(c.child, b.as_leaf()));
                            }
                        }
                        return None;
                    }
                };
                // Safety: protected and validated above.
                let leaf = unsafe { (*b.as_leaf::<K, V>()).entry() };
                if leaf.hash == hash && leaf.key.borrow() == key {
                    return Some(Ref::new(c.child, b.as_leaf()));
                }
                return None;
            }
        }
    }

    /// The one write loop: finds `prepared.key()`, asks `decide` what to do with the entry
    /// found (possibly several times, when a CAS is lost to another writer), and commits it
    /// with one GCAS of the INode that holds the key's slot.
    pub(crate) fn write<Q>(
        &self,
        hash: u64,
        mut prepared: Prepared<'_, K, V, Q>,
        want_new: bool,
        mut decide: impl FnMut(Option<&V>) -> Action<V>,
    ) -> Written<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        // What this write retires, handed to the domain in one push before it returns.
        let mut batch = Batch::new(&self.domain);
        // The cursor's guards; `fresh` protects the main node a GCAS installs, from before its
        // publication; `new_guard` the entry stored, if asked for. One thread-local access.
        let (mut c, mut fresh, mut new_guard) = if want_new {
            let [a, b, c, d, e, f, fresh, new] = HazardPointer::array::<8>(&self.domain);
            (Cursor::of([a, b, c, d, e, f]), fresh, Some(new))
        } else {
            let [a, b, c, d, e, f, fresh] = HazardPointer::array::<7>(&self.domain);
            (Cursor::of([a, b, c, d, e, f]), fresh, None)
        };
        'restart: loop {
            let mut pos = Position::at_root(self.read_root(&mut c.root));
            let gen = pos.gen();
            let how = Decide::Live {
                root: &self.root,
                start: pos.root,
            };
            'inode: loop {
                // Safety: `pos.inode` is protected by `c.root` or `c.inode`.
                pos.main = unsafe { gcas_read(pos.inode, &mut c.main, how, &self.domain) };
                // Safety: protected and validated.
                let main = unsafe { &*pos.main };
                if main.kind() == Kind::Tomb {
                    // Writers never change a tomb: fold it into the parent, start again.
                    self.clean_parent(&pos, hash, &mut c.child, &mut batch);
                    continue 'restart;
                }
                // Safety: protected.
                if unsafe { (*pos.inode).gen() } != gen {
                    // Shared with a snapshot: copy it into this generation first.
                    self.renew(&pos, hash, &mut c.child, &mut batch);
                    continue 'restart;
                }
                // The entry for the key: (array index, branch found there, whether it is the
                // key's own leaf).
                let (index, here, found) = match main.kind() {
                    Kind::Tomb => unreachable!("handled above"),
                    Kind::CNode => {
                        let bit = 1 << slot(hash, pos.level);
                        let index = main.index(bit);
                        if main.bitmap() & bit == 0 {
                            (index, Branch::NONE, false)
                        } else {
                            let b = main.entries()[index];
                            c.child.publish(b.ptr());
                            if !still_holds(pos.inode, pos.main) {
                                continue 'inode;
                            }
                            if !b.is_leaf() {
                                pos.parent = pos.inode;
                                pos.parent_main = pos.main;
                                c.descend();
                                pos.inode = b.as_inode();
                                pos.level += BITS;
                                continue 'inode;
                            }
                            // Safety: protected and validated.
                            let leaf = unsafe { (*b.as_leaf::<K, V>()).entry() };
                            let found = leaf.hash == hash && leaf.key.borrow() == prepared.key();
                            (index, b, found)
                        }
                    }
                    Kind::List => {
                        let mut hit = (main.len(), Branch::NONE, false);
                        for (i, &b) in main.entries().iter().enumerate() {
                            c.child.publish(b.ptr());
                            if !still_holds(pos.inode, pos.main) {
                                continue 'inode;
                            }
                            // Safety: protected and validated.
                            let leaf = unsafe { (*b.as_leaf::<K, V>()).entry() };
                            if leaf.hash == hash && leaf.key.borrow() == prepared.key() {
                                hit = (i, b, true);
                                break;
                            }
                        }
                        hit
                    }
                };
                // Safety: `c.child` protects `here` when `found`.
                let current = found.then(|| unsafe { &(*here.as_leaf::<K, V>()).entry().value });
                let action = decide(current);
                // The replacement main node and the leaf it stores (if any).
                let mut stored: *const Leaf<K, V> = ptr::null();
                let (change, delta) = match action {
                    Action::Keep => {
                        // Dropped before the result is built: if a `Drop` of the rejected key
                        // or value panics, a result under construction would be leaked, with
                        // its hazard pointers still published. (So is the batch flushed: its
                        // scan may run user `Drop`s.)
                        drop(prepared);
                        batch.flush();
                        return Written {
                            old: found.then(|| Ref::new(c.child, here.as_leaf())),
                            new: None,
                            changed: false,
                        };
                    }
                    Action::Put(value) => {
                        let leaf = prepared.put(value, hash);
                        stored = leaf.as_leaf();
                        if let Some(g) = new_guard.as_mut() {
                            // Published before the CAS that makes the leaf reachable, so no
                            // validation is needed: any later unlink and retire of the leaf
                            // happens after our CAS, hence after this store.
                            g.publish(leaf.ptr());
                        }
                        let m2 = |b| match main.kind() {
                            Kind::List if found => main.updated(index, b, gen),
                            Kind::List => main.list_appended(b, gen),
                            _ if found => main.updated(index, b, gen),
                            _ => main.inserted(1 << slot(hash, pos.level), b, gen),
                        };
                        if found || here.is_none() || main.kind() == Kind::List {
                            let mut ch = Change::new(pos.inode, pos.main, m2(leaf));
                            ch.fresh = leaf;
                            if found {
                                ch.dropped = here;
                            }
                            (ch, isize::from(!found))
                        } else {
                            // Another key's leaf holds the slot: both go one level down.
                            // Safety: protected and validated above.
                            let other = unsafe { (*here.as_leaf::<K, V>()).entry().hash };
                            let sub = Main::dual(here, other, leaf, hash, pos.level + BITS, gen);
                            let chain = Branch::inode(INode::new(sub, gen));
                            let mut ch =
                                Change::new(pos.inode, pos.main, main.updated(index, chain, gen));
                            ch.fresh = chain;
                            ch.pushed_down = here;
                            (ch, 1)
                        }
                    }
                    Action::Remove => {
                        assert!(found, "Action::Remove of an absent key");
                        let m2 = match main.kind() {
                            Kind::List => main.list_removed(index, gen),
                            _ => main.removed(1 << slot(hash, pos.level), index, pos.level, gen),
                        };
                        let mut ch = Change::new(pos.inode, pos.main, m2);
                        ch.dropped = here;
                        (ch, -1)
                    }
                };
                // Read before the GCAS: once published, `new` may be replaced and freed by
                // another writer at any moment.
                // Safety: `new` is ours until the GCAS.
                let entombed = unsafe { (*change.new).kind() } == Kind::Tomb;
                // Safety: the cursor protects the INode, its main node and the root; the
                // change describes `new`.
                let settle = match unsafe { self.apply(&change, pos.root, &mut fresh, &mut batch) } {
                    Ok(settle) => settle,
                    Err(outcome) => {
                        if !change.fresh.is_leaf() && !change.fresh.is_none() {
                            // Safety: the chain was never reachable through a committed node.
                            unsafe { free_unpublished_chain(change.fresh.as_inode()) };
                        }
                        if outcome == Gcas::Lost {
                            continue 'inode;
                        }
                        continue 'restart;
                    }
                };
                settle.settle(&mut batch);
                if !stored.is_null() {
                    if let Prepared::Leaf(l) = mem::replace(&mut prepared, Prepared::Published) {
                        // The leaf is in the trie now: not ours to free.
                        l.publish();
                    }
                }
                self.count.add(delta);
                // An unused prepared leaf (an `update` that ended in a removal) is dropped
                // now, before the result exists (see the `Keep` case).
                drop(prepared);
                if entombed {
                    // The cursor's guards are reused (the child's protects the old leaf, which
                    // is returned, so the GCAS guard, free now, stands in for it), so that a
                    // write holds a bounded number of hazard records.
                    mem::swap(&mut c.child, &mut fresh);
                    self.cleanup(hash, &mut c, &mut batch);
                    mem::swap(&mut c.child, &mut fresh);
                }
                // Handed to the domain before the result is built (the push may scan, and a
                // scan may run user `Drop`s, which may panic; see the `Keep` case). The old
                // leaf stays protected by `c.child`, the new one by `new_guard`.
                batch.flush();
                let old = found.then(|| Ref::new(c.child, here.as_leaf()));
                let new = match new_guard {
                    // Protected by `g` since before the CAS.
                    Some(g) if !stored.is_null() => Some(Ref::new(g, stored)),
                    _ => None,
                };
                return Written {
                    old,
                    new,
                    changed: true,
                };
            }
        }
    }

    /// Copies the INode at `pos` (of an older generation, shared with a snapshot) into the
    /// traversal's generation: the parent's copy points to a fresh INode that shares the old
    /// one's main node. (The paper renews every child of the parent at once; renewing only the
    /// one on the write's path reads one main node instead of 32.) Does nothing if the parent
    /// changed meanwhile.
    fn renew(
        &self,
        pos: &Position,
        hash: u64,
        guard: &mut HazardPointer<'_>,
        batch: &mut Batch<'_>,
    ) {
        debug_assert!(pos.level > 0, "the root is always of its map's generation");
        let gen = pos.gen();
        let parent_level = pos.level - BITS;
        // Safety: the cursor protects the parent main node (validated when read).
        let pm = unsafe { &*pos.parent_main };
        let bit = 1 << slot(hash, parent_level);
        if pm.kind() != Kind::CNode || pm.bitmap() & bit == 0 {
            return;
        }
        let i = pm.index(bit);
        if pm.entries()[i] != Branch::inode(pos.inode) {
            return;
        }
        // The new INode's reference on the shared main node. The old INode is frozen (no
        // writer can commit in its generation any more) and protected, so it keeps its
        // reference on `pos.main`: the count is above zero.
        // Safety: protected.
        acquire_ref(unsafe { &(*pos.main).rc }, 1);
        let renewed = INode::new(pos.main, gen);
        let mut ch = Change::new(
            pos.parent,
            pos.parent_main,
            pm.updated(i, Branch::inode(renewed), gen),
        );
        ch.fresh = Branch::inode(renewed);
        ch.dropped = Branch::inode(pos.inode);
        // Safety: the cursor protects the parent pair, the root and the old INode.
        match unsafe { self.apply(&ch, pos.root, guard, batch) } {
            Ok(settle) => settle.settle(batch),
            Err(_) => {
                // Safety: never reachable through a committed node: ours.
                drop(unsafe { Box::from_raw(renewed) });
                // Safety: the reference taken above.
                unsafe { release_main(pos.main, batch) };
            }
        }
    }

    /// Folds the tomb at `pos` into its parent: the parent's copy holds the tomb's leaf (or
    /// loses the slot). Does nothing if the parent changed meanwhile, or is not of the
    /// traversal's generation.
    fn clean_parent(
        &self,
        pos: &Position,
        hash: u64,
        guard: &mut HazardPointer<'_>,
        batch: &mut Batch<'_>,
    ) {
        debug_assert!(pos.level > 0, "the root is never a tomb");
        let gen = pos.gen();
        // Safety: the cursor protects the parent INode.
        if unsafe { (*pos.parent).gen() } != gen {
            return;
        }
        let parent_level = pos.level - BITS;
        // Safety: the cursor protects the parent main node (validated when read).
        let pm = unsafe { &*pos.parent_main };
        let bit = 1 << slot(hash, parent_level);
        if pm.kind() != Kind::CNode || pm.bitmap() & bit == 0 {
            return;
        }
        let i = pm.index(bit);
        if pm.entries()[i] != Branch::inode(pos.inode) {
            return;
        }
        // Safety: protected; a committed tomb never changes.
        let tomb = unsafe { &*pos.main };
        let leaf = tomb.entries()[0];
        let p2 = if leaf.is_none() {
            pm.removed(bit, i, parent_level, gen)
        } else {
            pm.resurrected(i, leaf, parent_level, gen)
        };
        let mut ch = Change::new(pos.parent, pos.parent_main, p2);
        ch.moved_up = leaf;
        ch.dropped = Branch::inode(pos.inode);
        // Safety: protected.
        ch.dropped_bare = unsafe { (*pos.inode).gen() } == gen && tomb.gen() == gen;
        // Safety: the cursor protects the parent pair, the root, and the tomb and its INode.
        if let Ok(settle) = unsafe { self.apply(&ch, pos.root, guard, batch) } {
            settle.settle(batch);
        }
    }

    /// After a write left a tomb on `hash`'s path: walks the path from the root and folds
    /// every tomb it meets, until none is left (folding one can entomb the parent in turn).
    /// Stops at INodes of older generations (a snapshot was taken meanwhile: the next writer
    /// there renews and cleans).
    fn cleanup(&self, hash: u64, c: &mut Cursor<'_>, batch: &mut Batch<'_>) {
        'restart: loop {
            let mut pos = Position::at_root(self.read_root(&mut c.root));
            let gen = pos.gen();
            let how = Decide::Live {
                root: &self.root,
                start: pos.root,
            };
            loop {
                // Safety: protected by `c.root` or `c.inode`.
                pos.main = unsafe { gcas_read(pos.inode, &mut c.main, how, &self.domain) };
                // Safety: protected and validated.
                let main = unsafe { &*pos.main };
                // Safety: protected.
                if unsafe { (*pos.inode).gen() } != gen {
                    return;
                }
                match main.kind() {
                    Kind::Tomb => {
                        self.clean_parent(&pos, hash, &mut c.child, batch);
                        continue 'restart;
                    }
                    Kind::List => return,
                    Kind::CNode => {
                        let bit = 1 << slot(hash, pos.level);
                        if main.bitmap() & bit == 0 {
                            return;
                        }
                        let b = main.entries()[main.index(bit)];
                        if b.is_leaf() {
                            return;
                        }
                        c.child.publish(b.ptr());
                        if !still_holds(pos.inode, pos.main) {
                            continue;
                        }
                        pos.parent = pos.inode;
                        pos.parent_main = pos.main;
                        c.descend();
                        pos.inode = b.as_inode();
                        pos.level += BITS;
                    }
                }
            }
        }
    }
}

impl<K, V, S> Inner<K, V, S> {
    /// Takes a snapshot's root swap (RDCSS): replaces the root `r0` by a fresh INode of a new
    /// generation sharing `r0`'s main node `m`. Returns `r0`, whose reference passes from the
    /// map to the caller, and `m`, on which the caller receives `extra` counted references.
    pub(crate) fn swap_root(&self, extra: usize) -> (*mut INode, *mut Main) {
        let mut root_guard = HazardPointer::new(&self.domain);
        let mut main_guard = HazardPointer::new(&self.domain);
        loop {
            let r0 = self.read_root(&mut root_guard);
            let how = Decide::Live {
                root: &self.root,
                start: r0,
            };
            // Safety: `r0` is protected by `root_guard`.
            let m = unsafe { gcas_read(r0, &mut main_guard, how, &self.domain) };
            // The references of the new root and the caller's. `m` is protected but may have
            // been replaced and let go meanwhile: never add to a count that reached zero.
            // Safety: protected.
            if !acquire_ref_if_live(unsafe { &(*m).rc }, 1 + extra) {
                continue;
            }
            let r1 = INode::new(m, fresh_gen());
            let desc = Box::into_raw(Box::new(Desc {
                link: Link::new(0),
                swap: Data::new(Swap {
                    old: r0,
                    expected: m,
                    new: r1,
                }),
                state: AtomicUsize::new(PENDING),
            }));
            let tagged = (desc as usize | DESC) as *mut ();
            // SeqCst: the store half of the snapshot's store-buffering pair (module docs);
            // Release publishes the descriptor.
            let installed = self
                .root
                .compare_exchange(r0.cast(), tagged, SeqCst, Relaxed)
                .is_ok();
            if installed {
                // Safety: just read from the root (ours, in fact).
                unsafe { complete_desc(&self.root, tagged, false, &self.domain) };
            }
            // Acquire: pairs with the AcqRel decision in `complete_desc`.
            // Safety: the descriptor is ours until retired below.
            let committed = installed && unsafe { (*desc).state.load(Acquire) } == COMMIT;
            if installed {
                // Without a scan: a snapshot should not pay for reclaiming what writers
                // retired (the next writer's flush will).
                let mut batch = Batch::new(&self.domain);
                // Safety: completed, so the root no longer holds it; helpers may still
                // protect it; retired once; a `Desc` starts with its link.
                unsafe { batch.retire(desc.cast(), DESC_KIND) };
                batch.flush_without_scan();
            } else {
                // Safety: never published.
                drop(unsafe { Box::from_raw(desc) });
            }
            if committed {
                return (r0, m);
            }
            // Safety: `r1` was never the root (helpers only compare and swap the pointer on
            // a commit), so it is ours; the references taken above go back.
            unsafe {
                drop(Box::from_raw(r1));
                let mut batch = Batch::new(&self.domain);
                for _ in 0..1 + extra {
                    release_main(m, &mut batch);
                }
            }
        }
    }

    /// Replaces the root by an empty one, atomically; returns the old root (its reference
    /// passes to the caller; the trie below it is frozen from now on).
    pub(crate) fn take_root(&self) -> *mut INode {
        let gen = fresh_gen();
        let empty = INode::new(Main::empty_cnode(gen), gen);
        let mut guard = HazardPointer::new(&self.domain);
        loop {
            let r0 = self.read_root(&mut guard);
            // SeqCst: a root store, like a snapshot's (writers deciding a GCAS in the old
            // generation must see it, and fail).
            if self
                .root
                .compare_exchange(r0.cast(), empty.cast(), SeqCst, Relaxed)
                .is_ok()
            {
                return r0;
            }
        }
    }

    /// A map on `root`, counting from the size of the frozen `base` (references on both
    /// passed in), in `domain` (shared with the maps and snapshots it shares nodes with).
    pub(crate) fn new_sharing(
        root: *mut INode,
        hasher: S,
        base: *mut Main,
        domain: Arc<Domain>,
    ) -> Self {
        Self::with_root(root, hasher, base, domain)
    }
}
