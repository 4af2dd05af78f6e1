//! The level cache: a table of the INodes at one depth of the trie, indexed by the hash bits
//! above that depth, so that a lookup in a large map starts there instead of at the root
//! (after Prokopec, "Cache-Tries", PPoPP 2018; simplified to one fixed depth, with no effect on
//! what a lookup returns or where a write lands). Writes start there too.
//!
//! # Invariants
//!
//! - A slot holds null or an INode at depth [`CACHE_LEVEL`] (bit offset) whose path is the
//!   slot's index, with one counted reference on it (so a slot's INode is never freed while
//!   the slot holds it; a reader protects it through the slot as from any other source).
//! - A slot is filled by a lookup or a write that walked from the root (`install`), with an
//!   INode it reached along a validated path, of the generation of the root it started from,
//!   whose main node was not a tomb. Only lookups allocate the table.
//! - A write that starts from a cached INode (of its root's generation, its main node not a
//!   tomb) is as safe as one that walked there: its GCAS replaces a main node that is not a
//!   tomb, so the INode was not folded before the CAS, and it cannot be folded while the GCAS
//!   is pending (a fold reads the main node, which completes the GCAS first); the commit
//!   checks that the root is still the one the write read. A cached INode has no parent in
//!   the write's cursor, so a tomb the write leaves there is folded by the walk from the root
//!   (`cleanup`), and a tomb found there sends the write to the root after emptying the slot.
//! - A cached INode is used only if its generation is that of the root the lookup read and
//!   its committed main node is not a tomb. Then it is still on the trie of that root: an
//!   INode leaves the trie of its own generation only when it is folded (and a tomb is
//!   final, so its main node would be a tomb) or when an ancestor is (a tomb has no
//!   children, so the INode would have been folded first); renewal and `clear` replace it
//!   only in a newer generation, whose lookups reject it. If the root was replaced since the
//!   lookup read it, the INode's main node is frozen since the replacement, and the lookup
//!   reads the map as it was then (as a lookup that walked from the root would).
//! - Stale slots (a folded INode, an older generation) cost only memory: the lookup that meets
//!   one empties it; the writer that folds or renews an INode at this depth empties its slot;
//!   `clear` empties them all. A reader that fills a slot checks afterwards that the root
//!   and the INode's main node are unchanged, and empties the slot otherwise; a fence on
//!   each side (store buffering) makes sure that one of the two sees the other, so a slot
//!   filled during a `clear`, a renewal or a fold does not keep the old nodes alive. The
//!   lookup's own checks (generation, tomb) do not rely on this: they are what makes a
//!   cached INode safe to read; the evictions only bound the memory a slot keeps.
//!
//! The table is allocated by the first lookup that reaches an INode below this depth in a
//! map of at least [`MIN_LEN`] entries (checked on one lookup in 64 of those, chosen by hash
//! bits), and freed with the map: 2^15 slots of 32 bytes (1 MiB) for maps of 2^16 entries or
//! more. Each slot also keeps a hint, the address and bitmaps of its INode's main node as the
//! last lookup through it saw them ([`Slot`]): lookups prefetch that main node beside the
//! INode. The hint holds no reference and is only ever prefetched, so it plays no part in the
//! invariants above.

use crate::node::{acquire_ref_if_live, release, INode, Kind, Main, BITS};
#[cfg(not(loom))]
use crate::node::{hint_offset, prefetch, Hint};
use crate::sync::{fence, AtomicPtr};
use hazard::{Batch, Domain, HazardPointer};
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};

/// Whether this is a test build that puts the cache one level below the root in every map
/// (`--cfg hamt_cache_always`: `scripts/test.sh` runs the trie's tests so once, so that every
/// test goes through the cache, not only those of large maps).
const ALWAYS: bool = cfg!(hamt_cache_always);
/// The bit offset of the cached depth: the INodes three levels below the root (one level
/// below the root under loom and in `hamt_cache_always` builds, so that small maps reach it).
pub(crate) const CACHE_LEVEL: u32 = if cfg!(loom) || ALWAYS { BITS } else { 3 * BITS };
/// Slots in the table: one per path to the cached depth.
const SLOTS: usize = 1 << CACHE_LEVEL;
/// Entries from which a map gets a table (by default; [`Hamt::with_level_cache_from`]
/// chooses). Never under loom unless a model asks for it; always in `hamt_cache_always`
/// builds.
///
/// [`Hamt::with_level_cache_from`]: crate::Hamt::with_level_cache_from
pub(crate) const MIN_LEN: usize = if cfg!(loom) {
    usize::MAX
} else if ALWAYS {
    0
} else {
    1 << 16
};

/// The table of one map (see the module docs).
pub(crate) struct LevelCache {
    /// The least size for a table; `usize::MAX`: never.
    min_len: usize,
    /// Null until allocated; then never changed until the map is dropped.
    table: AtomicPtr<Table>,
}

pub(crate) struct Table {
    slots: Box<[Slot]>,
}

/// One path's slot: the cached INode, and beside it (on the same cache line) a copy of the
/// address and bitmaps of the INode's main node as a lookup last saw them, so that a lookup
/// starts loading the main node's header and the line of its entry at the same time as the
/// INode, instead of after it (one cache miss fewer in a row, when the copy is current). The
/// copy is a hint like the INode's own [`Hint`]: Relaxed, possibly stale or
/// torn, used only for prefetches (which never fault); it holds no reference. (Not kept under
/// loom.)
#[cfg_attr(not(loom), repr(C, align(32)))]
pub(crate) struct Slot {
    pub(crate) inode: AtomicPtr<INode>,
    #[cfg(not(loom))]
    main: std::sync::atomic::AtomicPtr<Main>,
    #[cfg(not(loom))]
    maps: std::sync::atomic::AtomicU64,
    #[cfg(not(loom))]
    nodes: std::sync::atomic::AtomicU64,
}

impl Slot {
    fn new() -> Self {
        Slot {
            inode: AtomicPtr::new(ptr::null_mut()),
            #[cfg(not(loom))]
            main: std::sync::atomic::AtomicPtr::new(ptr::null_mut()),
            #[cfg(not(loom))]
            maps: std::sync::atomic::AtomicU64::new(0),
            #[cfg(not(loom))]
            nodes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Starts loading the main node last seen under this slot: its header, and the line that
    /// holds slot bit `bit`'s entries or child (entries of type `T`).
    #[inline(always)]
    pub(crate) fn prefetch<T>(&self, bit: u32) {
        #[cfg(not(loom))]
        {
            // Relaxed (all three): a hint.
            let m = self.main.load(Relaxed);
            if m.is_null() {
                return;
            }
            prefetch(m);
            if let Some(off) =
                hint_offset::<T>(self.maps.load(Relaxed), || self.nodes.load(Relaxed), bit)
            {
                // A hint only: `wrapping_add`, and a prefetch never faults.
                prefetch(m.cast::<u8>().wrapping_add(off));
            }
        }
        #[cfg(loom)]
        let _ = bit;
    }

    /// Records that the slot's INode holds main node `m` (protected by the caller), if the
    /// slot's copy says otherwise.
    #[inline(always)]
    pub(crate) fn saw(&self, m: *mut Main) {
        #[cfg(not(loom))]
        {
            // Relaxed: a hint.
            if self.main.load(Relaxed) != m {
                self.record(m);
            }
        }
        #[cfg(loom)]
        let _ = m;
    }

    #[cfg(not(loom))]
    #[cold]
    #[inline(never)]
    fn record(&self, m: *mut Main) {
        // Safety: protected by our caller.
        let (maps, nodes) = Hint::of(unsafe { (*m).head() });
        // Relaxed: a hint.
        self.maps.store(maps, Relaxed);
        self.nodes.store(nodes, Relaxed);
        self.main.store(m, Relaxed);
    }
}

impl Table {
    /// The slot of `hash`.
    #[inline(always)]
    pub(crate) fn slot(&self, hash: u64) -> &Slot {
        // Safety: the index is masked to the table's length.
        unsafe { self.slots.get_unchecked(hash as usize & (SLOTS - 1)) }
    }
}

/// A table of empty slots.
fn new_table() -> *mut Table {
    let slots: Box<[Slot]> = (0..SLOTS).map(|_| Slot::new()).collect();
    Box::into_raw(Box::new(Table { slots }))
}

impl LevelCache {
    /// A cache that gets its table at `min_len` entries; at once for 0 (so that an empty
    /// map's memory includes it, and the exact memory tests check that it keeps nothing).
    pub(crate) fn new(min_len: usize) -> Self {
        let table = if min_len == 0 {
            new_table()
        } else {
            ptr::null_mut()
        };
        LevelCache {
            min_len,
            table: AtomicPtr::new(table),
        }
    }

    /// The table, if the map has one.
    #[inline(always)]
    pub(crate) fn table(&self) -> Option<&Table> {
        if cfg!(loom) && self.min_len == usize::MAX {
            // (Not one more atomic step for the models that do not use the cache.)
            return None;
        }
        // Acquire: pairs with the Release CAS in `maybe_allocate` (the slots' initial nulls).
        let t = self.table.load(Acquire);
        // Safety: once published, the table lives as long as the map (`&self`).
        unsafe { t.as_ref() }
    }

    /// Called by a lookup that reached an INode below the cached depth while the map has no
    /// table: allocates one if the map is large enough (`len` is its size; asked on one
    /// such lookup in 64).
    #[cold]
    #[inline(never)]
    pub(crate) fn maybe_allocate(&self, hash: u64, len: impl FnOnce() -> usize) {
        if self.min_len == usize::MAX || !super::lookup::sampled(hash) || len() < self.min_len {
            return;
        }
        let t = new_table();
        // Release: publishes the table's initialised slots to `table`'s Acquire load.
        if self
            .table
            .compare_exchange(ptr::null_mut(), t, AcqRel, Relaxed)
            .is_err()
        {
            // Safety: never published.
            drop(unsafe { Box::from_raw(t) });
        }
    }

    /// Fills `hash`'s slot with `inode` (unless it already holds it), if `inode` is of
    /// generation `gen` and its main node not a tomb; then checks that the root still holds
    /// `root` and `inode` its main node, and empties the slot again if not.
    ///
    /// # Safety
    /// 1. `inode` is at the cached depth on `hash`'s path, protected by the caller, and was
    ///    reached from `root` (of generation `gen`) along a validated path.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn install(
        &self,
        table: &Table,
        hash: u64,
        inode: *mut INode,
        gen: u64,
        root_slot: &AtomicPtr<()>,
        root: *mut INode,
        domain: &Domain,
    ) {
        // Safety: 1 (protected).
        if unsafe { (*inode).gen() } != gen {
            return;
        }
        // Protected until the end, so that the check after the fence cannot be fooled by a
        // new main node at the same address.
        let mut guard = HazardPointer::new(domain);
        // Safety: 1.
        let main = guard.protect(unsafe { &(*inode).main });
        // Safety: protected.
        if unsafe { (*main).kind() } != Kind::CNode {
            return;
        }
        let entry = table.slot(hash);
        let slot = &entry.inode;
        // Relaxed: a hint; the CAS below decides.
        let old = slot.load(Relaxed);
        if old == inode {
            return;
        }
        // The slot's reference. `inode` is protected but may have been unlinked and let go
        // meanwhile: never add to a count that reached zero.
        // Safety: 1 (protected).
        if !acquire_ref_if_live(unsafe { (*inode).rc() }, 1) {
            return;
        }
        let mut batch = Batch::new(domain);
        // AcqRel: Release publishes the reference taken above with the slot; Acquire pairs
        // with the Release of whoever emptied or filled it (see `evict`).
        match slot.compare_exchange(old, inode, AcqRel, Relaxed) {
            Ok(_) => {
                entry.saw(main);
                if !old.is_null() {
                    // Safety: the slot's reference on `old`, which the CAS took from it.
                    unsafe { release(old, &mut batch) };
                }
            }
            Err(_) => {
                // Safety: the reference taken above, never published.
                unsafe { release(inode, &mut batch) };
                batch.flush_without_scan();
                return;
            }
        }
        // SeqCst fence: the store-buffering pair with the fence in `evict` and `evict_all`. A
        // fold, renewal or `clear` changes `inode.main` or the root, then fences, then looks
        // at the slot; we fill the slot, fence, then look at `inode.main` and the root.
        // Whichever fence comes second in their single total order, its thread sees the
        // other's write: it finds `inode` in the slot and empties it, or we find the change
        // and empty it. Either way the slot does not keep a replaced trie or a folded INode.
        fence(SeqCst);
        // Acquire (both): as in `read_root` and `gcas_read` (only compared here).
        // Safety: 1 (protected).
        let unchanged = root_slot.load(Acquire) == root.cast()
            && unsafe { (*inode).main.load(Acquire) } == main;
        if !unchanged {
            // Safety: `inode` is protected.
            unsafe { self.evict(hash, inode, &mut batch) };
        }
        batch.flush_without_scan();
    }

    /// Empties `hash`'s slot if it holds `inode`, letting go of the slot's reference.
    ///
    /// # Safety
    /// 1. `inode` is protected by the caller, or otherwise kept alive.
    pub(crate) unsafe fn evict(&self, hash: u64, inode: *mut INode, batch: &mut Batch<'_>) {
        let Some(table) = self.table() else {
            return;
        };
        let slot = &table.slot(hash).inode;
        // SeqCst fence: pairs with the one in `install` (see there): the caller's change to
        // `inode.main` (a fold) or to the trie (a renewal) comes before it.
        fence(SeqCst);
        // Relaxed: ordered by the fence; the CAS below decides.
        if slot.load(Relaxed) != inode {
            return;
        }
        // AcqRel: Acquire takes over the reference the filler published; Release orders what
        // led to the eviction (a fold, a root swap) before a later filler's Acquire CAS.
        if slot
            .compare_exchange(inode, ptr::null_mut(), AcqRel, Relaxed)
            .is_ok()
        {
            // Safety: the slot's reference, taken from it by the CAS; 1.
            unsafe { release(inode, batch) };
        }
    }

    /// The filled slots, or `None` without a table (a statistic: Relaxed loads).
    pub(crate) fn filled(&self) -> Option<usize> {
        let table = self.table()?;
        // Relaxed: a statistic.
        Some(
            table
                .slots
                .iter()
                .filter(|s| !s.inode.load(Relaxed).is_null())
                .count(),
        )
    }

    /// Empties every slot (after `clear` swapped the root: the old trie must not stay alive
    /// through the table).
    pub(crate) fn evict_all(&self, domain: &Domain) {
        let Some(table) = self.table() else {
            return;
        };
        let mut batch = Batch::new(domain);
        // SeqCst fence: pairs with the one in `install`; the root swap comes before it.
        fence(SeqCst);
        for slot in table.slots.iter().map(|s| &s.inode) {
            // Relaxed: ordered by the fence; the swap below decides.
            if slot.load(Relaxed).is_null() {
                continue;
            }
            // AcqRel: as in `evict`.
            let old = slot.swap(ptr::null_mut(), AcqRel);
            if !old.is_null() {
                // Safety: the slot's reference, taken from it by the swap.
                unsafe { release(old, &mut batch) };
            }
        }
    }

    /// Takes the table's INodes (each with the slot's reference, now the caller's) and frees
    /// the table. For the map's drop (`&mut`: no reader).
    pub(crate) fn take_all(&mut self) -> Vec<*mut INode> {
        // Relaxed: `&mut self`.
        let t = self.table.load(Relaxed);
        self.table.store(ptr::null_mut(), Relaxed);
        if t.is_null() {
            return Vec::new();
        }
        // Safety: allocated by `new_table`, published once; no reader is left.
        let table = unsafe { Box::from_raw(t) };
        table
            .slots
            .iter()
            .map(|s| s.inode.load(Relaxed)) // Relaxed: `&mut self`.
            .filter(|p| !p.is_null())
            .collect()
    }
}

impl Drop for LevelCache {
    fn drop(&mut self) {
        // The map's drop took the slots' references already (`take_all`); what is left is at
        // most the table itself.
        let rest = self.take_all();
        debug_assert!(rest.is_empty(), "the map's drop releases the cached INodes");
    }
}
