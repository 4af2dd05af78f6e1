//! The algorithms behind [`Hamt`](crate::Hamt), one concern per file:
//!
//! | file | what | invariants it keeps |
//! |---|---|---|
//! | [`gcas`] | GCAS on main nodes, RDCSS on the root (the Ctrie's snapshot protocol) | a decision is made once; readers use committed main nodes only |
//! | [`root`] | reading the root, the snapshot's root swap, `clear`'s | the root is an INode or a descriptor being completed |
//! | [`lookup`] | `get`: the read path | every node dereferenced is protected and validated |
//! | [`cache`] | the level cache: the INodes three levels down, where large maps' lookups and writes start | a cached INode is used only in its generation and if not folded; a slot keeps no node the trie let go of |
//! | [`write`](mod@write) | the one write loop behind every update, and its reference counting | a change counts exactly what it keeps from a shared node |
//! | [`cleanup`] | renewal (copying a node out of a snapshot's generation) and tomb folding | a tomb is folded into its parent, never changed |
//! | this file | the map's state, its size, how a trie is let go of | |
//!
//! # Reading under hazard pointers
//!
//! A reader protects every node before it dereferences it, and validates each protection
//! against the INode whose main node led to it:
//!
//! 1. protect the main node `m` of INode `i` (the hazard protect-and-validate loop on
//!    `i.main`, inside [`gcas_read`]);
//! 2. read child INode `c` (or, with the `Leaves` layout, leaf `c`) from `m`, publish `c`,
//!    and re-read `i.main`: if it still holds `m`, then `c` was still held by `m` after the
//!    hazard was published, so its count had not reached zero and no writer can have retired
//!    it yet. (No ABA: `m` is protected, so its address cannot be reused.)
//!
//! Step 2 relies on: *a main node that an INode holds keeps its references*. A main node
//! releases its children only when it is reclaimed (after every INode let go of it), or, for
//! a never-shared main node, when the writer that unlinked it releases the children its
//! replacement dropped (after the CAS that makes the re-read fail). The root INode is
//! protected like the rest (a snapshot replaces it). Inline entries need no step 2: they are
//! part of `m`, and a [`Ref`](crate::Ref) to one keeps `m` protected. A tomb's leaves need
//! none either: a tomb keeps its references until it is reclaimed (see the `node` module),
//! and a protected tomb is not reclaimed.

pub(crate) mod cache;
pub(crate) mod cleanup;
pub(crate) mod gcas;
pub(crate) mod lookup;
pub(crate) mod root;
pub(crate) mod write;

pub(crate) use gcas::{free_desc, gcas_read, Decide};
pub(crate) use write::{Action, Prepared};

use crate::count::Counter;
use crate::layout::Layout;
use crate::node::{free_tree, reclaim_node, release, release_main, EntryOps, INode, Kind, Main, E};
use crate::sync::AtomicPtr;
use hazard::{Batch, Domain, HazardPointer};
use std::hash::{BuildHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::mem;
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::{Arc, OnceLock};

/// The shared state behind every clone of a map.
pub(crate) struct Inner<K, V, S, L: Layout<K, V>> {
    /// The root INode (holding one counted reference on it), or an RDCSS descriptor tagged
    /// [`gcas::DESC`] while a snapshot is being taken.
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
    /// The INodes at one depth, for lookups in large maps (see [`cache`]).
    pub(crate) cache: cache::LevelCache,
    /// Owns `K`s and `V`s (for drop check and auto traits).
    _marker: PhantomData<(K, V, L)>,
}

// Safety: the trie hands keys and values between threads (an entry inserted on one thread is
// read, and dropped, on others), so both must be `Send` and `Sync`; the raw pointers are
// owned by the structure and synchronised by its atomics.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Send, L: Layout<K, V>> Send for Inner<K, V, S, L> {}
// Safety: as above; `&Inner` exposes `&S` (hashing) to every thread.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Sync, L: Layout<K, V>> Sync for Inner<K, V, S, L> {}

impl<K, V, S, L: Layout<K, V>> Drop for Inner<K, V, S, L> {
    fn drop(&mut self) {
        // Relaxed: `&mut self`; a snapshot completes its descriptor before returning, so the
        // root is an INode.
        let root = self.root.load(Relaxed).cast::<INode>();
        let base = mem::replace(self.base_main.get_mut(), ptr::null_mut());
        // The level cache's references first (each only drops a count, unless the INode is
        // no longer on the trie).
        let cached = self.cache.take_all();
        if Arc::strong_count(&self.domain) == 1 {
            for inode in cached {
                // Safety: as for the root below: the domain is ours alone, and so is the
                // slot's reference on `inode`.
                unsafe { free_tree::<K, V, E<K, V, L>>(inode) };
            }
        } else if !cached.is_empty() {
            let mut batch = Batch::new(&self.domain);
            for inode in cached {
                // Safety: the slot's reference, now ours.
                unsafe { release(inode, &mut batch) };
            }
        }
        // Safety: the last handle is gone; we own the root's reference (and the base's).
        unsafe { release_tree::<K, V, L>(root, base, &self.domain, Release::Last) };
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
/// ([`free_tree`]). Otherwise they go through the domain (a reader may still protect a node
/// that was reachable a moment ago).
///
/// # Safety
/// 1. The caller owns one counted reference on `root` (and on `base`), and gives it up.
/// 2. With `Last`, the caller's map or snapshot has no other handle, and holds one count of
///    `domain`'s `Arc`.
pub(crate) unsafe fn release_tree<K, V, L: Layout<K, V>>(
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
                free_tree::<K, V, E<K, V, L>>(INode::new(base, 0));
            }
            free_tree::<K, V, E<K, V, L>>(root);
        }
        return;
    }
    let mut batch = Batch::new(domain);
    // Safety: 1.
    unsafe {
        if !base.is_null() {
            release_main(base, &mut batch);
        }
        release(root, &mut batch);
    }
    if how == Release::Lazy {
        batch.flush_without_scan();
    } else {
        drop(batch);
        domain.reclaim();
    }
}

/// A map's reclamation domain, which frees this trie's nodes. Under loom, scans happen only
/// where a model calls `reclaim` (or when the domain drops): with the usual threshold, a scan
/// after every other retire multiplies the interleavings past what a model can explore, and
/// the scan protocol itself is the hazard crate's models' subject.
fn new_domain<K, V, L: Layout<K, V>>() -> Domain {
    let domain = if cfg!(loom) {
        Domain::with_retire_threshold(usize::MAX)
    } else {
        // Main nodes freed by scans are kept for the next writes (`hazard::pool`). (Not under
        // loom: a pool only recycles what the domain would have freed, as the allocator
        // recycles addresses, so the models check the protocol without it.)
        Domain::new().with_block_pool()
    };
    domain.with_reclaimer(reclaim_node::<K, V, E<K, V, L>>)
}

/// The number of entries below the frozen main node `m`, cached in the main nodes.
///
/// # Safety
/// 1. `m` is frozen (reached from a read-only snapshot, or held by a map as its base) and
///    kept alive by the caller; so is everything below it; its entries are of type `T`.
pub(crate) unsafe fn frozen_size<T>(
    m: *mut Main,
    guard: &mut HazardPointer<'_>,
    domain: &Domain,
) -> usize {
    // Safety: 1.
    let main = unsafe { &*m };
    if let Some(n) = main.cached_size() {
        return n;
    }
    let a = main.arrays::<T>();
    let n = a.data.len()
        + match main.kind() {
            Kind::CNode => a
                .nodes
                .iter()
                .map(|&i| {
                    // Safety: 1. (The committed main node of a frozen INode never changes, and
                    // the INode holds it, so the guard is needed only while deciding.)
                    let child = unsafe { gcas_read(i, guard, Decide::Frozen, domain) };
                    // Safety: 1.
                    unsafe { frozen_size::<T>(child, guard, domain) }
                })
                .sum(),
            _ => 0,
        };
    main.set_cached_size(n);
    n
}

impl<K, V, S, L: Layout<K, V>> Inner<K, V, S, L> {
    pub(crate) fn with_hasher(hasher: S) -> Self {
        Self::with_hasher_and_cache(hasher, cache::MIN_LEN)
    }

    /// A new map whose level cache starts at `min_len` entries (`usize::MAX`: never).
    pub(crate) fn with_hasher_and_cache(hasher: S, min_len: usize) -> Self {
        let gen = crate::node::fresh_gen();
        let domain = Arc::new(new_domain::<K, V, L>());
        Self::with_root_and_cache(
            INode::new(Main::empty_cnode::<E<K, V, L>>(gen, &domain), gen),
            hasher,
            ptr::null_mut(),
            domain,
            min_len,
        )
    }

    /// A map on `root` (whose reference it takes), counting from the size of `base` (a
    /// frozen main node whose reference it takes; null: from 0), in `domain` (shared with the
    /// maps and snapshots it shares nodes with).
    pub(crate) fn with_root(
        root: *mut INode,
        hasher: S,
        base: *mut Main,
        domain: Arc<Domain>,
    ) -> Self {
        Self::with_root_and_cache(root, hasher, base, domain, cache::MIN_LEN)
    }

    fn with_root_and_cache(
        root: *mut INode,
        hasher: S,
        base: *mut Main,
        domain: Arc<Domain>,
        min_len: usize,
    ) -> Self {
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
            cache: cache::LevelCache::new(min_len),
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
            let n = unsafe { frozen_size::<E<K, V, L>>(base, &mut guard, &self.domain) } as isize;
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
}

impl<K: Hash + Eq, V, S: BuildHasher, L: Layout<K, V>> Inner<K, V, S, L> {
    /// The hash of `key`. (Spelled out rather than `BuildHasher::hash_one`, which the
    /// compiler does not inline: with SipHash that costs a third of a small map's `get`.)
    #[inline(always)]
    #[allow(clippy::manual_hash_one)]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        key.hash(&mut hasher);
        hasher.finish()
    }
}

/// The key of entry pointer `e` of layout `L` (a leaf or an inline pair).
///
/// # Safety
/// As [`EntryOps::key`].
#[inline(always)]
pub(crate) unsafe fn key_of<'a, K, V, L: Layout<K, V>>(e: *const E<K, V, L>) -> &'a K {
    // Safety: our caller's contract.
    unsafe { <E<K, V, L> as EntryOps<K, V>>::key(e) }
}

/// The value of entry pointer `e` of layout `L`.
///
/// # Safety
/// As [`EntryOps::value`].
#[inline(always)]
pub(crate) unsafe fn value_of<'a, K, V, L: Layout<K, V>>(e: *const E<K, V, L>) -> &'a V {
    // Safety: our caller's contract.
    unsafe { <E<K, V, L> as EntryOps<K, V>>::value(e) }
}
