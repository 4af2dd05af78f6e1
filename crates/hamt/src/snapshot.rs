//! Read-only snapshots, and the iteration and exact size built on them.
//!
//! Everything reachable from a snapshot's root is *frozen*: its INodes belong to generations
//! that can no longer commit a write (a GCAS of theirs that is still pending is failed by the
//! first reader that meets it), and every node is held by a counted reference from the
//! snapshot's side. So a reader of a snapshot needs a hazard pointer only for the moment of
//! reading an INode's main node (to decide a pending GCAS); everything it reaches after that
//! stays alive as long as the snapshot does, and it never restarts.

use crate::layout::{Layout, Leaves};
use crate::map::Ref;
use crate::node::{
    acquire_ref, fresh_gen, prefetch, slot_bit, EntryOps, INode, Kind, Main, BITS, E,
};
use crate::raw::{frozen_size, gcas_read, key_of, release_tree, value_of, Decide, Inner, Release};
use crate::Hamt;
use hazard::{Domain, HazardPointer};
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::ptr;
#[cfg(not(loom))]
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// A read-only snapshot of a [`Hamt`]: the map's contents at one instant, frozen.
///
/// Taken in O(1) by [`Hamt::read_only_snapshot`], whatever the size of the map, without
/// blocking writers; it shares the map's nodes, and the map copies a path of nodes lazily on
/// its first write below each shared node. Reads of a snapshot return plain references (no
/// hazard pointer per entry, no retry), and [`len`](Self::len) is exact.
///
/// Cloning a `Snapshot` is cheap (another handle on the same frozen contents). Memory: a
/// snapshot keeps alive every entry it contains, including entries that the map has since
/// removed or replaced, until the last handle on it is dropped.
///
/// ```
/// let map = concurrent_hamt::Hamt::new();
/// map.insert(1, "one");
/// let snap = map.read_only_snapshot();
/// map.insert(2, "two");
/// map.remove(&1);
/// assert_eq!(snap.len(), 1);
/// assert_eq!(snap.get(&1), Some(&"one"));
/// assert!(snap.get(&2).is_none());
/// ```
pub struct Snapshot<K, V, S = RandomState, L: Layout<K, V> = Leaves> {
    inner: Arc<Frozen<K, V, S, L>>,
}

/// The state behind a snapshot's handles.
struct Frozen<K, V, S, L: Layout<K, V>> {
    /// The root INode (one counted reference), frozen.
    root: *mut INode,
    hasher: S,
    domain: Arc<Domain>,
    _marker: PhantomData<(K, V, L)>,
}

// Safety: as for the map (`raw::Inner`): keys and values are read from any thread holding a
// handle, and dropped by whichever thread frees them.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Send, L: Layout<K, V>> Send for Frozen<K, V, S, L> {}
// Safety: as above; `&Frozen` exposes `&S`.
unsafe impl<K: Send + Sync, V: Send + Sync, S: Sync, L: Layout<K, V>> Sync for Frozen<K, V, S, L> {}

impl<K, V, S, L: Layout<K, V>> Drop for Frozen<K, V, S, L> {
    fn drop(&mut self) {
        // Safety: the snapshot's reference on its root, given up once; the last handle is
        // gone, so no reader of this snapshot remains.
        unsafe { release_tree::<K, V, L>(self.root, ptr::null_mut(), &self.domain, Release::Last) };
    }
}

impl<K, V, S, L: Layout<K, V>> Snapshot<K, V, S, L> {
    /// A snapshot of the frozen trie below `root` (whose reference it takes).
    pub(crate) fn new(root: *mut INode, hasher: S, domain: Arc<Domain>) -> Self {
        Snapshot {
            inner: Arc::new(Frozen {
                root,
                hasher,
                domain,
                _marker: PhantomData,
            }),
        }
    }

    /// The committed main node of the root.
    fn root_main(&self, guard: &mut HazardPointer<'_>) -> *mut Main {
        // Safety: the snapshot holds its root.
        unsafe { gcas_read(self.inner.root, guard, Decide::Frozen, &self.inner.domain) }
    }

    /// The number of entries: exact, since the contents never change.
    ///
    /// The first call counts them (O(n), minus subtrees counted before: sizes are cached in
    /// the frozen nodes, which later snapshots share); later calls are O(1).
    pub fn len(&self) -> usize {
        let mut guard = HazardPointer::new(&self.inner.domain);
        let m = self.root_main(&mut guard);
        // Safety: frozen, and kept alive by the snapshot.
        unsafe { frozen_size::<E<K, V, L>>(m, &mut guard, &self.inner.domain) }
    }

    /// Whether the snapshot has no entries (its [`len`](Self::len) is 0: a root with
    /// branches may still hold none, when a removal's cleanup was cut short by the snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hasher.
    pub fn hasher(&self) -> &S {
        &self.inner.hasher
    }

    /// The number of main nodes on the longest path down from the root (the root's
    /// counts): the trie's depth, for tests of its shape. The hash gives 5 bits per level,
    /// so it is at most 14: 13 levels of branch nodes for the 64 bits, then a collision list.
    #[doc(hidden)]
    pub fn depth(&self) -> usize {
        // Safety: the snapshot holds its root for as long as the walk borrows it.
        let mut walk = unsafe { RawIter::<K, V, L>::new(self.inner.root, &self.inner.domain) };
        while walk.next_entry().is_some() {}
        walk.deepest
    }

    /// An iterator over the entries, in hash order.
    pub fn iter(&self) -> SnapshotIter<'_, K, V, L> {
        SnapshotIter {
            // Safety: the snapshot holds its root for as long as the iterator borrows it.
            raw: unsafe { RawIter::new(self.inner.root, &self.inner.domain) },
            _marker: PhantomData,
        }
    }

    /// A writable map that starts with this snapshot's contents, in O(1) (see
    /// [`Hamt::snapshot`]). The snapshot is unchanged by its writes.
    pub fn to_map(&self) -> Hamt<K, V, S, L>
    where
        S: Clone,
    {
        let mut guard = HazardPointer::new(&self.inner.domain);
        let m = self.root_main(&mut guard);
        // Two references: the new root's, and the new map's base (see `Inner`). `m` is held
        // by the snapshot's root, so its count is above zero.
        // Safety: alive.
        acquire_ref(unsafe { &(*m).rc }, 2);
        let root = INode::new(m, fresh_gen());
        Hamt::from_inner(Inner::with_root(
            root,
            self.inner.hasher.clone(),
            m,
            Arc::clone(&self.inner.domain),
        ))
    }
}

impl<K: Hash + Eq, V, S: BuildHasher, L: Layout<K, V>> Snapshot<K, V, S, L> {
    /// The value of `key`, if present in the snapshot.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key).map(|(_, v)| v)
    }

    /// The key and value of `key`, if present in the snapshot.
    pub fn get_key_value<Q>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inline = <E<K, V, L> as EntryOps<K, V>>::INLINE;
        let hash = self.inner.hasher.hash_one(key);
        let mut guard = HazardPointer::new(&self.inner.domain);
        let mut inode = self.inner.root;
        let mut level = 0;
        loop {
            // Safety: `inode` is frozen and kept alive by the snapshot.
            let m = unsafe { gcas_read(inode, &mut guard, Decide::Frozen, &self.inner.domain) };
            // Safety: as above.
            let main = unsafe { &*m };
            let head = main.head();
            let a = main.arrays::<E<K, V, L>>();
            let (from, to) = match head.kind() {
                Kind::CNode => {
                    let bit = slot_bit(hash, level);
                    if head.nodemap & bit != 0 {
                        inode = a.nodes[head.child_index(bit)];
                        level += BITS;
                        continue;
                    }
                    if head.datamap & bit == 0 {
                        return None;
                    }
                    let i = head.data_index(bit);
                    (i, i + head.run(bit))
                }
                Kind::Tomb | Kind::List => (0, a.data.len()),
            };
            return a.data[from..to].iter().find_map(|e| {
                // Safety: frozen and kept alive by the snapshot.
                let (k, v) = unsafe { (key_of::<K, V, L>(e), value_of::<K, V, L>(e)) };
                let hashes_match = inline
                    // Safety: as above.
                    || unsafe { <E<K, V, L> as EntryOps<K, V>>::hash(e, &|_| 0) } == hash;
                (hashes_match && k.borrow() == key).then_some((k, v))
            });
        }
    }

    /// Whether `key` is present in the snapshot.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(key).is_some()
    }
}

impl<K, V, S, L: Layout<K, V>> Clone for Snapshot<K, V, S, L> {
    /// Another handle on the same snapshot.
    fn clone(&self) -> Self {
        Snapshot {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S, L: Layout<K, V>> fmt::Debug for Snapshot<K, V, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a, K, V, S, L: Layout<K, V>> IntoIterator for &'a Snapshot<K, V, S, L> {
    type Item = (&'a K, &'a V);
    type IntoIter = SnapshotIter<'a, K, V, L>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// How many entries of a main node ahead of the current one the walk prefetches: leaves are
/// separate allocations, in hash order rather than address order, so without it each one is a
/// cache miss that the walk waits for.
const PREFETCH_DISTANCE: usize = 4;

/// A depth-first walk of a frozen trie: each main node's entries, then its children (in slot
/// order, so the whole walk follows the hashes' lowest bits first).
struct RawIter<'d, K, V, L: Layout<K, V>> {
    domain: &'d Domain,
    guard: HazardPointer<'d>,
    /// The main nodes of the path, each with the next entry, then child, to visit.
    stack: Vec<(*const Main, usize)>,
    /// The longest `stack` so far.
    deepest: usize,
    _marker: PhantomData<(K, V, L)>,
}

impl<'d, K, V, L: Layout<K, V>> RawIter<'d, K, V, L> {
    /// # Safety
    /// 1. `root` is frozen, and kept alive (with everything below it) for as long as the
    ///    iterator exists.
    unsafe fn new(root: *mut INode, domain: &'d Domain) -> Self {
        let mut guard = HazardPointer::new(domain);
        // Safety: 1.
        let m = unsafe { gcas_read(root, &mut guard, Decide::Frozen, domain) };
        RawIter {
            domain,
            guard,
            stack: vec![(m, 0)],
            deepest: 1,
            _marker: PhantomData,
        }
    }

    /// The next entry (alive as long as the frozen trie is) and the main node holding it.
    fn next_entry(&mut self) -> Option<(*const E<K, V, L>, *const Main)> {
        loop {
            let (m, i) = self.stack.last_mut()?;
            let m = *m;
            // Safety: frozen and alive (`new`'s contract).
            let a = unsafe { &*m }.arrays::<E<K, V, L>>();
            if *i == 0 {
                // The first two children's INodes, while this node's entries are visited; and
                // the leaves before the first one the look-ahead below reaches.
                a.nodes.iter().take(2).for_each(|&c| prefetch(c));
                if !<E<K, V, L> as EntryOps<K, V>>::INLINE {
                    for e in a.data.iter().take(PREFETCH_DISTANCE - 1) {
                        prefetch(e.leaf());
                    }
                }
            }
            if let Some(e) = a.data.get(*i) {
                *i += 1;
                if !<E<K, V, L> as EntryOps<K, V>>::INLINE {
                    if let Some(ahead) = a.data.get(*i + PREFETCH_DISTANCE - 1) {
                        prefetch(ahead.leaf());
                    }
                }
                return Some((e, m));
            }
            let k = *i - a.data.len();
            let Some(&child) = a.nodes.get(k) else {
                self.stack.pop();
                continue;
            };
            *i += 1;
            look_ahead(a.nodes, k);
            // Safety: as above.
            let child = unsafe { gcas_read(child, &mut self.guard, Decide::Frozen, self.domain) };
            prefetch(child);
            self.stack.push((child, 0));
            self.deepest = self.deepest.max(self.stack.len());
        }
    }
}

/// Starts loading what a walk that is about to descend into child `k` of a frozen main node
/// (with children `nodes`) visits after that child's subtree: the first lines of child
/// `k + 1`'s main node (its INode was prefetched one child earlier, or with the node's first
/// entries) and child `k + 2`'s INode. Only prefetches: at the bottom of a large trie each
/// child is two cache misses (INode, then main node) that the walk would otherwise wait for
/// one after the other. (Not under loom: one more atomic access per child for the model, and
/// no effect on what the walk does.)
#[inline(always)]
fn look_ahead(nodes: &[*mut INode], k: usize) {
    #[cfg(not(loom))]
    {
        if let Some(&next) = nodes.get(k + 1) {
            // Relaxed: only the address of a prefetch; the walk reads `main` again, through
            // `gcas_read`, before it uses it.
            // Safety: the children of a frozen main node live as long as the frozen trie
            // (`RawIter::new`'s contract).
            let m = unsafe { (*next).main.load(Relaxed) };
            prefetch(m);
            // A hint only: `wrapping_add`, and a prefetch never faults.
            prefetch(m.cast::<u8>().wrapping_add(64));
        }
        if let Some(&after) = nodes.get(k + 2) {
            prefetch(after);
        }
    }
    #[cfg(loom)]
    let _ = (nodes, k);
}

/// An iterator over a [`Snapshot`]'s entries, yielding `(&K, &V)`.
pub struct SnapshotIter<'a, K, V, L: Layout<K, V> = Leaves> {
    raw: RawIter<'a, K, V, L>,
    _marker: PhantomData<&'a (K, V)>,
}

impl<'a, K, V, L: Layout<K, V>> Iterator for SnapshotIter<'a, K, V, L> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        let (e, _) = self.raw.next_entry()?;
        // Safety: the snapshot, borrowed for 'a, keeps the entry alive.
        Some(unsafe { (key_of::<K, V, L>(e), value_of::<K, V, L>(e)) })
    }
}

impl<K, V, L: Layout<K, V>> FusedIterator for SnapshotIter<'_, K, V, L> {}

/// An iterator over a [`Hamt`]'s entries as of the call to [`Hamt::iter`], yielding a
/// [`Ref`] for each.
pub struct Iter<'a, K, V, L: Layout<K, V> = Leaves> {
    raw: RawIter<'a, K, V, L>,
    /// The read-only snapshot iterated (one counted reference on its root).
    root: *mut INode,
    domain: &'a Arc<Domain>,
    _marker: PhantomData<&'a (K, V)>,
}

impl<'a, K, V, L: Layout<K, V>> Iter<'a, K, V, L> {
    /// Iterates the frozen trie below `root` (whose reference it takes).
    pub(crate) fn new(root: *mut INode, domain: &'a Arc<Domain>) -> Self {
        Iter {
            // Safety: the iterator holds the root until dropped.
            raw: unsafe { RawIter::new(root, domain) },
            root,
            domain,
            _marker: PhantomData,
        }
    }
}

impl<'a, K, V, L: Layout<K, V>> Iterator for Iter<'a, K, V, L> {
    type Item = Ref<'a, K, V>;

    fn next(&mut self) -> Option<Ref<'a, K, V>> {
        let (e, m) = self.raw.next_entry()?;
        let mut guard = HazardPointer::new(self.domain);
        // No validation needed: the entry is alive now (the snapshot holds its leaf, or the
        // main node holding it), and can be retired only after every holder let go, ours
        // included, which happens after this.
        if <E<K, V, L> as EntryOps<K, V>>::INLINE {
            guard.publish(m.cast_mut());
        } else {
            // Safety: alive (see above).
            guard.publish(unsafe { *e }.leaf());
        }
        // Safety: protected from now on (see above).
        Some(unsafe { Ref::new(guard, key_of::<K, V, L>(e), value_of::<K, V, L>(e)) })
    }
}

impl<K, V, L: Layout<K, V>> FusedIterator for Iter<'_, K, V, L> {}

impl<K, V, L: Layout<K, V>> Drop for Iter<'_, K, V, L> {
    fn drop(&mut self) {
        // Safety: our reference on the snapshot's root, given up once. Lazily: dropping an
        // iterator should not run user `Drop`s of unrelated entries (nor their panics).
        unsafe { release_tree::<K, V, L>(self.root, ptr::null_mut(), self.domain, Release::Lazy) };
    }
}
