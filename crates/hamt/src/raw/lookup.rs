//! `get`: the read path.
//!
//! # Invariants
//!
//! - Three hazard pointers, hand over hand: the current INode (the root at first), its main
//!   node, and a child (the next INode, or a leaf). The root is not kept protected once the
//!   lookup is past it: a pending GCAS that the lookup decides is decided against the root's
//!   address and generation ([`Decide::Unpinned`]). Every node is protected before it is dereferenced, and
//!   validated against the INode that led to it (see the `raw` module docs).
//! - In a map with a level cache ([`cache`](super::cache)), the lookup starts from the cached
//!   INode of its path three levels down, protected through the cache's slot, if that INode
//!   is of the generation of the root it read; if its main node is a tomb (folded out of the
//!   trie), the lookup empties the slot and starts again from the root. A walk from the root
//!   fills the slot of the INode it passes at that depth.
//! - A lookup never writes to the trie, never renews, never cleans: a tomb is read as the
//!   entries it holds (below the cached depth), and an INode of an older generation is read
//!   as it is (it is frozen, and still current for this map while the validated path leads to
//!   it). A pending GCAS it meets is decided (any thread may), and it fills or empties level
//!   cache slots; those are the only writes a reader makes.
//! - The `Ref` it returns keeps protected what holds the entry: the leaf, or, for an inline
//!   entry, the main node itself.

use super::cache::{Table, CACHE_LEVEL};
use super::gcas::gcas_read_hinted;
use super::write::still_holds;
use super::{key_of, value_of, Decide, Inner};
use crate::layout::Layout;
use crate::map::Ref;
use crate::node::INode;
use crate::node::{slot_bit, EntryOps, Kind, BITS, E, MAX_LEVEL};
use hazard::{Batch, HazardPointer};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::mem;

/// Runs `f` compiled for a CPU with `popcnt` when this one has it (checked once per call:
/// a load and a test of the standard library's cached CPU features), for x86-64 builds whose
/// baseline lacks it. Indexing a node by bitmap takes two or three popcounts per level, which
/// the baseline computes in about fifteen instructions each.
macro_rules! with_popcnt {
    ($fast:ident, $body:expr) => {{
        #[cfg(all(target_arch = "x86_64", not(target_feature = "popcnt")))]
        {
            #[target_feature(enable = "popcnt")]
            unsafe fn $fast<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            if std::arch::is_x86_feature_detected!("popcnt") {
                // Safety: the CPU has `popcnt`.
                unsafe { $fast(|| $body) }
            } else {
                $body
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(target_feature = "popcnt"))))]
        {
            $body
        }
    }};
}

/// Whether a lookup of `hash` that found no level cache asks whether the map should have one
/// (one in 64, by the hash's top bits: asking sums the size counters).
#[inline(always)]
pub(crate) fn sampled(hash: u64) -> bool {
    cfg!(hamt_cache_always) || hash >> 58 == 0
}

impl<K, V, S, L: Layout<K, V>> Inner<K, V, S, L> {
    /// Empties the level cache's slot of `hash` if it holds `inode`.
    ///
    /// # Safety
    /// 1. `inode` is protected by the caller.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn evict_cached(&self, hash: u64, inode: *mut INode) {
        let mut batch = Batch::new(&self.domain);
        // Safety: 1.
        unsafe { self.cache.evict(hash, inode, &mut batch) };
        batch.flush_without_scan();
    }

    /// Where an operation on `hash` under a root of generation `gen` may start in `table`:
    /// the cached INode of its path, protected by `guard`, if it is of that generation (it is
    /// on that root's trie unless folded, which its main node tells: see the `cache` module
    /// docs). A cached INode of an older generation is stale for good: its slot is emptied.
    /// With `PREFETCH` (lookups), starts loading the main node the slot last saw beside the
    /// INode. (Writes do not: the main node they replace is cold by the time they are done,
    /// and their guess would often be stale.)
    #[inline(always)]
    pub(crate) fn cached_start<const PREFETCH: bool>(
        &self,
        table: &Table,
        hash: u64,
        gen: u64,
        guard: &mut HazardPointer<'_>,
    ) -> Option<*mut INode> {
        let slot = table.slot(hash);
        if PREFETCH {
            slot.prefetch::<E<K, V, L>>(slot_bit(hash, CACHE_LEVEL));
        }
        let s = guard.protect(&slot.inode);
        if s.is_null() {
            return None;
        }
        // Safety: protected, through the slot (which holds a reference on it).
        let g = unsafe { (*s).gen() };
        if g < gen {
            // Safety: protected.
            unsafe { self.evict_cached(hash, s) };
        }
        (g == gen).then_some(s)
    }

    /// Fills `hash`'s slot of `table` with `inode`, reached by a walk from `start` (of
    /// generation `gen`): [`LevelCache::install`](super::cache::LevelCache::install).
    ///
    /// # Safety
    /// 1. `inode` is at the cached depth on `hash`'s path, protected by the caller, and was
    ///    reached from `start` along a validated path.
    #[inline(always)]
    pub(crate) unsafe fn fill_cache(
        &self,
        table: &Table,
        hash: u64,
        inode: *mut INode,
        gen: u64,
        start: *mut INode,
    ) {
        // Safety: 1.
        unsafe {
            self.cache
                .install(table, hash, inode, gen, &self.root, start, &self.domain)
        };
    }
}

impl<K: Hash + Eq, V, S: BuildHasher, L: Layout<K, V>> Inner<K, V, S, L> {
    /// Looks `key` up (see the module docs).
    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        with_popcnt!(
            find_popcnt,
            match self.cache.table() {
                Some(t) => self.find_in::<true, false, Q>(hash, key, Some(t)),
                None => self.find_in::<false, true, Q>(hash, key, None),
            }
        )
    }

    /// The lookup after a cached INode turned out folded: from the root, without the cache.
    #[cold]
    #[inline(never)]
    fn find_uncached<Q>(&self, hash: u64, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find_in::<false, false, Q>(hash, key, None)
    }

    /// The lookup; with `CACHE`, starting from the level cache `table` where it can (and
    /// filling it); with `GROW` (a map without a table yet), asking on deep lookups whether
    /// the map should have one.
    #[inline(always)]
    fn find_in<const CACHE: bool, const GROW: bool, Q>(
        &self,
        hash: u64,
        key: &Q,
        table: Option<&Table>,
    ) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        type T<K, V, L> = E<K, V, L>;
        let inline = <T<K, V, L> as EntryOps<K, V>>::INLINE;
        // Three guards, hand over hand: the current INode (the root at first), its main node,
        // and the child being entered; taken together, with one thread-local access.
        let [mut inode_guard, mut main_guard, mut child_guard] =
            HazardPointer::array::<3>(&self.domain);
        let start = self.read_root(&mut inode_guard);
        // Safety: protected by `inode_guard`.
        let gen = unsafe { (*start).gen() };
        let how = Decide::Unpinned {
            root: &self.root,
            start,
            gen,
        };
        let mut inode = start;
        let mut level = 0;
        // Whether the lookup started from the level cache.
        let mut cached = false;
        let table = if CACHE { table } else { None };
        if let Some(s) =
            table.and_then(|t| self.cached_start::<true>(t, hash, gen, &mut child_guard))
        {
            mem::swap(&mut inode_guard, &mut child_guard);
            inode = s;
            level = CACHE_LEVEL;
            cached = true;
        }
        'inode: loop {
            // The key's slot bit at this level (none past the last level: a list).
            let bit = if level < MAX_LEVEL {
                slot_bit(hash, level)
            } else {
                0
            };
            // Safety: `inode` is protected by `inode_guard`, validated when read (or read
            // from the level cache).
            let m = unsafe {
                gcas_read_hinted::<T<K, V, L>>(inode, &mut main_guard, how, &self.domain, bit)
            };
            if CACHE && cached && level == CACHE_LEVEL {
                if let Some(t) = table {
                    t.slot(hash).saw(m);
                }
            }
            // Safety: protected and validated by `gcas_read`.
            let main = unsafe { &*m };
            let head = main.head();
            // The key's run of entries: the slot's one or two, or the whole tomb or list.
            let (run, n) = if head.kind() == Kind::CNode {
                if head.datamap & bit != 0 {
                    // Safety: a data slot's entries are in the array.
                    (
                        unsafe { main.data_ptr::<T<K, V, L>>().add(head.data_index(bit)) },
                        head.run(bit),
                    )
                } else if head.nodemap & bit != 0 {
                    // Safety: a node slot's child is in the array.
                    let child = unsafe {
                        *main
                            .nodes_ptr::<T<K, V, L>>(head.ndata())
                            .add(head.child_index(bit))
                    };
                    child_guard.publish(child);
                    if !still_holds(inode, m) {
                        continue 'inode;
                    }
                    mem::swap(&mut inode_guard, &mut child_guard);
                    inode = child;
                    level += BITS;
                    if CACHE {
                        // (Only a walk from the root enters the cached depth.)
                        if level == CACHE_LEVEL {
                            if let Some(t) = table {
                                // Safety: `child` is protected and was reached from `start`
                                // along a validated path.
                                unsafe { self.fill_cache(t, hash, child, gen, start) };
                            }
                        }
                    } else if GROW && level == CACHE_LEVEL + BITS && sampled(hash) {
                        self.cache.maybe_allocate(hash, || self.len());
                    }
                    continue 'inode;
                } else {
                    return None;
                }
            } else {
                if CACHE && cached && level == CACHE_LEVEL && head.kind() == Kind::Tomb {
                    // The cached INode was folded out of the trie: empty the slot, and look
                    // up from the root.
                    // Safety: protected.
                    unsafe { self.evict_cached(hash, inode) };
                    drop((inode_guard, main_guard, child_guard));
                    return self.find_uncached(hash, key);
                }
                (main.data_ptr::<T<K, V, L>>(), head.ndata())
            };
            for j in 0..n {
                // Safety: `j` is inside the run.
                let e = unsafe { run.add(j) };
                if inline {
                    // Safety: part of the protected main node.
                    let k = unsafe { key_of::<K, V, L>(e) };
                    if k.borrow() == key {
                        // Safety: as above; `main_guard` keeps the node alive for the `Ref`.
                        return Some(unsafe { Ref::new(main_guard, k, value_of::<K, V, L>(e)) });
                    }
                    continue;
                }
                // Safety: readable (part of the protected main node).
                let leaf = unsafe { *e }.leaf();
                child_guard.publish(leaf);
                // A tomb's leaves live as long as the (protected) tomb; a CNode's or a list's
                // are validated against the INode.
                if head.kind() != Kind::Tomb && !still_holds(inode, m) {
                    continue 'inode;
                }
                // Safety: protected (and validated).
                let entry = unsafe { (*leaf).entry() };
                if entry.hash == hash && entry.key.borrow() == key {
                    // Safety: `child_guard` protects the leaf for the `Ref`.
                    return Some(unsafe { Ref::new(child_guard, &entry.key, &entry.value) });
                }
            }
            return None;
        }
    }
}
