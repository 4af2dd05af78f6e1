//! The public map type.

use crate::layout::{Layout, Leaves};
use crate::node::{INode, E};
use crate::raw::{frozen_size, gcas_read, release_tree, Action, Decide, Inner, Prepared, Release};
use crate::snapshot::{Iter, Snapshot};
use hazard::HazardPointer;
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

/// A lock-free concurrent hash map: a hash array mapped trie (a Ctrie) with hazard-pointer
/// reclamation.
///
/// A `Hamt` is a handle: [`Clone`] gives another handle on the *same* map (as the original's
/// `HAMT` did), and the map is freed when the last handle is dropped. Share it between threads
/// by cloning it into each, or by reference (`&Hamt` is `Send` when the map is `Sync`).
///
/// ```
/// use concurrent_hamt::Hamt;
///
/// let map = Hamt::new();
/// std::thread::scope(|s| {
///     for t in 0..4u64 {
///         let map = map.clone();
///         s.spawn(move || {
///             for i in 0..100 {
///                 map.insert(t * 100 + i, i);
///             }
///         });
///     }
/// });
/// assert_eq!(map.len(), 400);
/// assert_eq!(*map.get(&250).unwrap(), 50);
/// ```
///
/// The fourth parameter is where entries are kept: [`Leaves`] (the default, any types) or
/// [`Inline`](crate::Inline) (faster and smaller, for [`Plain`](crate::Plain) keys and values
/// such as integers); see the [`layout`](crate::layout) module.
pub struct Hamt<K, V, S = RandomState, L: Layout<K, V> = Leaves> {
    inner: Arc<Inner<K, V, S, L>>,
}

/// A reference to an entry of a [`Hamt`], kept alive by a hazard pointer while it is held.
///
/// The entry may be removed from the map or replaced meanwhile: a `Ref` still reads the key
/// and value it was created with (they are freed only after every `Ref` to them is dropped).
/// It is not `Send`: its hazard pointer belongs to the thread that made it. Holding many
/// `Ref`s at once is allowed (each takes one hazard record; past eight per thread they come
/// from a shared pool).
pub struct Ref<'a, K, V> {
    _guard: HazardPointer<'a>,
    key: *const K,
    value: *const V,
    _marker: PhantomData<&'a (K, V)>,
}

impl<'a, K, V> Ref<'a, K, V> {
    /// A `Ref` to the entry whose key and value are at `key` and `value`.
    ///
    /// # Safety
    /// `guard` protects, validated, the node that holds them (the leaf, or the main node
    /// holding the entry inline), which keeps them alive and unchanged while it does.
    #[inline(always)]
    pub(crate) unsafe fn new(guard: HazardPointer<'a>, key: *const K, value: *const V) -> Self {
        Ref {
            _guard: guard,
            key,
            value,
            _marker: PhantomData,
        }
    }

    /// The entry's key.
    pub fn key(&self) -> &K {
        // Safety: the guard protects the entry for as long as `self` lives (`new`).
        unsafe { &*self.key }
    }

    /// The entry's value.
    pub fn value(&self) -> &V {
        // Safety: as above.
        unsafe { &*self.value }
    }

    /// Both.
    pub fn pair(&self) -> (&K, &V) {
        (self.key(), self.value())
    }
}

impl<K, V> Deref for Ref<'_, K, V> {
    type Target = V;

    fn deref(&self) -> &V {
        self.value()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Ref<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ref")
            .field("key", self.key())
            .field("value", self.value())
            .finish()
    }
}

impl<K, V> Hamt<K, V, RandomState> {
    /// An empty map with a keyed SipHash hasher (`std`'s `RandomState`), keeping its entries
    /// in leaves (for the inline layout: `Hamt::<u64, u64, _, Inline>::default()`, or
    /// [`with_hasher`](Self::with_hasher)).
    pub fn new() -> Self {
        Self::with_hasher(RandomState::new())
    }
}

impl<K, V, S> Hamt<K, V, S> {
    /// An empty map that hashes keys with `hasher`, keeping its entries in leaves. Any
    /// `BuildHasher` gives correct results, even one that returns a constant (then every key
    /// sits in one collision list, slowly).
    pub fn with_hasher(hasher: S) -> Self {
        Self::from_inner(Inner::with_hasher(hasher))
    }
}

impl<K, V, S, L: Layout<K, V>> Hamt<K, V, S, L> {
    /// An empty map of layout `L` (given by the type: [`Leaves`] or
    /// [`Inline`](crate::Inline)) that hashes keys with `hasher`, as
    /// [`with_hasher`](Hamt::with_hasher) does.
    ///
    /// ```
    /// use concurrent_hamt::{Hamt, Inline};
    /// let map: Hamt<u64, u64, _, Inline> = Hamt::with_layout(std::hash::RandomState::new());
    /// map.insert(1, 2);
    /// assert_eq!(*map.get(&1).unwrap(), 2);
    /// ```
    pub fn with_layout(hasher: S) -> Self {
        Self::from_inner(Inner::with_hasher(hasher))
    }

    /// As [`with_layout`](Self::with_layout), with the level cache (the table of the INodes
    /// three levels below the root that large maps' lookups start from) kept from `min_len`
    /// entries on instead of 2^16 (`usize::MAX`: never). For tests of the cache on small maps;
    /// not part of the stable API.
    #[doc(hidden)]
    pub fn with_level_cache_from(hasher: S, min_len: usize) -> Self {
        Self::from_inner(Inner::with_hasher_and_cache(hasher, min_len))
    }

    /// The level cache's filled slots, or `None` if the map has no table (yet). For tests
    /// and diagnostics; not part of the stable API.
    #[doc(hidden)]
    pub fn level_cache_filled(&self) -> Option<usize> {
        self.inner.cache.filled()
    }

    pub(crate) fn from_inner(inner: Inner<K, V, S, L>) -> Self {
        Hamt {
            inner: Arc::new(inner),
        }
    }

    /// The number of entries, in O(1).
    ///
    /// Exact whenever no write is in flight; while writers run it is a sum of per-thread
    /// counters read one after another, so it may be off by the writes in flight (never
    /// negative). For an exact count under concurrent writes, take a
    /// [`read_only_snapshot`](Self::read_only_snapshot) and ask its
    /// [`len`](Snapshot::len) (exact, but O(n) the first time, and the snapshot makes the
    /// following writes copy their paths).
    ///
    /// On a map made by [`snapshot`](Self::snapshot), the first call also counts the
    /// entries it started with (O(n) once).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether [`len`](Self::len) is 0 (with the same caveat).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hasher.
    pub fn hasher(&self) -> &S {
        &self.inner.hasher
    }

    /// Memory-reclamation counters of this map: nodes retired, reclaimed and pending (retired
    /// but not yet freed), and the process-wide hazard records. See [`ReclaimStats`].
    ///
    /// [`ReclaimStats`]: crate::ReclaimStats
    pub fn stats(&self) -> hazard::Stats {
        self.inner.domain.stats()
    }

    /// Frees every retired node that no reader protects now, instead of waiting for the next
    /// automatic scan. Returns how many nodes were freed.
    pub fn reclaim(&self) -> usize {
        self.inner.domain.reclaim()
    }

    /// An iterator over the entries, in hash order, yielding a [`Ref`] for each.
    ///
    /// # Consistency
    ///
    /// The iterator walks a read-only snapshot taken at the call (see
    /// [`read_only_snapshot`](Self::read_only_snapshot)): it yields every entry present at
    /// that instant exactly once, with its value at that instant, and nothing else, whatever
    /// writers do meanwhile; writers never wait for it. Like any snapshot it makes the
    /// following writes copy the paths they change, once per node; and the entries it holds
    /// stay in memory until it is dropped.
    pub fn iter(&self) -> Iter<'_, K, V, L> {
        let (root, _) = self.inner.swap_root(0);
        Iter::new(root, &self.inner.domain)
    }

    /// A writable snapshot: an independent map that starts with this map's contents at one
    /// instant, in O(1) whatever the size, without blocking writers.
    ///
    /// The two maps share their nodes; each copies a node lazily, on its first write below
    /// it, so writes to either never show in the other. The cost lands on those first writes
    /// (a path copy each); reads are not slowed. Entries removed from one map stay in memory
    /// while the other still holds them. Both maps share one reclamation domain
    /// ([`stats`](Self::stats) counts the nodes of both). The hasher is cloned, and must hash
    /// like the original (as clones of `RandomState` and of stateless hashers do).
    ///
    /// The new map's first [`len`](Self::len) counts the entries it started with (O(n) once,
    /// less where an earlier snapshot cached subtree sizes); until then it keeps that starting
    /// version's root alive.
    ///
    /// ```
    /// let map = concurrent_hamt::Hamt::new();
    /// map.insert("a", 1);
    /// let copy = map.snapshot();
    /// copy.insert("b", 2);
    /// map.insert("a", 10);
    /// assert_eq!((*map.get("a").unwrap(), map.get("b").is_none()), (10, true));
    /// assert_eq!((*copy.get("a").unwrap(), *copy.get("b").unwrap()), (1, 2));
    /// ```
    pub fn snapshot(&self) -> Hamt<K, V, S, L>
    where
        S: Clone,
    {
        // Two references on the shared main node: the new map's root's, and its base's (for
        // its `len`).
        let (old_root, m) = self.inner.swap_root(2);
        let root = INode::new(m, crate::node::fresh_gen());
        let copy = Inner::with_root(
            root,
            self.inner.hasher.clone(),
            m,
            Arc::clone(&self.inner.domain),
        );
        // The old root is no longer this map's (nor anyone's): let go of it, without a scan
        // (its main node lives on in both maps: the INode is all there is to free, and a
        // snapshot should not pay for reclaiming what writers retired).
        let mut batch = hazard::Batch::new(&self.inner.domain);
        // Safety: `swap_root` passed its reference to us; other threads may still read it.
        unsafe { crate::node::release(old_root, &mut batch) };
        batch.flush_without_scan();
        Hamt::from_inner(copy)
    }

    /// A read-only snapshot: this map's contents at one instant, frozen, in O(1) whatever the
    /// size, without blocking writers. Cheaper than [`snapshot`](Self::snapshot) (one new
    /// node instead of two), with plain-reference reads and an exact
    /// [`len`](Snapshot::len).
    ///
    /// Taking a snapshot makes the map's following writes copy the paths they change (once
    /// per node): do not take one implicitly on a hot path.
    ///
    /// ```
    /// let map = concurrent_hamt::Hamt::new();
    /// map.insert(1, 1);
    /// let snap = map.read_only_snapshot();
    /// map.clear();
    /// assert_eq!((snap.len(), map.len()), (1, 0));
    /// ```
    pub fn read_only_snapshot(&self) -> Snapshot<K, V, S, L>
    where
        S: Clone,
    {
        let (root, _) = self.inner.swap_root(0);
        Snapshot::new(
            root,
            self.inner.hasher.clone(),
            Arc::clone(&self.inner.domain),
        )
    }

    /// Removes every entry, atomically: one swap of the root for an empty one. A concurrent
    /// snapshot or iteration sees all the entries or none; a write that overlaps the call
    /// lands either before it (and is cleared) or after it.
    ///
    /// The removed entries are freed as soon as no reader (and no snapshot) holds them;
    /// counting them for [`len`](Self::len) walks the old trie once.
    pub fn clear(&self) {
        let old_root = self.inner.take_root();
        // The level cache must not keep the old trie alive.
        self.inner.cache.evict_all(&self.inner.domain);
        let mut guard = HazardPointer::new(&self.inner.domain);
        // Safety: the old root is ours (its reference passed to us) and frozen: no write can
        // commit in its generation any more.
        let size = unsafe {
            let m = gcas_read(old_root, &mut guard, Decide::Frozen, &self.inner.domain);
            frozen_size::<E<K, V, L>>(m, &mut guard, &self.inner.domain)
        };
        drop(guard);
        self.inner.count.add(-(size as isize));
        // Safety: our reference; other threads may still read the old trie.
        unsafe {
            release_tree::<K, V, L>(
                old_root,
                std::ptr::null_mut(),
                &self.inner.domain,
                Release::Eager,
            )
        };
    }
}

impl<K, V, S, L: Layout<K, V>> Hamt<K, V, S, L>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// The entry for `key`, if any.
    ///
    /// ```
    /// let map = concurrent_hamt::Hamt::new();
    /// map.insert("a".to_string(), 1);
    /// let r = map.get("a").unwrap();
    /// assert_eq!((r.key().as_str(), *r), ("a", 1));
    /// assert!(map.get("b").is_none());
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.find(self.inner.hash(key), key)
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Inserts `key` with `value`, replacing the entry present; returns the previous entry.
    ///
    /// ```
    /// let map = concurrent_hamt::Hamt::new();
    /// assert!(map.insert(1, "one").is_none());
    /// assert_eq!(*map.insert(1, "uno").unwrap(), "one");
    /// assert_eq!(*map.get(&1).unwrap(), "uno");
    /// ```
    pub fn insert(&self, key: K, value: V) -> Option<Ref<'_, K, V>> {
        let hash = self.inner.hash(&key);
        self.inner
            .write(hash, Prepared::Entry(key, value), false, |_| {
                Action::Put(None)
            })
            .old
    }

    /// Inserts `key` with `value` only if `key` is absent (the original's `insert`); returns
    /// whether it inserted. Otherwise `key` and `value` are dropped.
    ///
    /// ```
    /// let map = concurrent_hamt::Hamt::new();
    /// assert!(map.insert_if_absent(1, "one"));
    /// assert!(!map.insert_if_absent(1, "uno"));
    /// assert_eq!(*map.get(&1).unwrap(), "one");
    /// ```
    pub fn insert_if_absent(&self, key: K, value: V) -> bool {
        let hash = self.inner.hash(&key);
        let prepared = Prepared::Entry(key, value);
        let decide = |v: Option<&V>| {
            if v.is_some() {
                Action::Keep
            } else {
                Action::Put(None)
            }
        };
        self.inner.write(hash, prepared, false, decide).changed
    }

    /// Removes `key`; returns the entry removed.
    ///
    /// ```
    /// let map = concurrent_hamt::Hamt::new();
    /// map.insert(1, "one");
    /// assert_eq!(*map.remove(&1).unwrap(), "one");
    /// assert!(map.remove(&1).is_none());
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_if(key, |_| true)
    }

    /// Removes `key` if `condition` holds for its value; returns the entry removed.
    ///
    /// `condition` may run more than once (when another writer changes the entry between
    /// the test and the removal, the test is made again on the new value).
    ///
    /// ```
    /// let map = concurrent_hamt::Hamt::new();
    /// map.insert(1, 10);
    /// assert!(map.remove_if(&1, |v| *v > 10).is_none());
    /// assert_eq!(*map.remove_if(&1, |v| *v == 10).unwrap(), 10);
    /// ```
    pub fn remove_if<Q>(
        &self,
        key: &Q,
        mut condition: impl FnMut(&V) -> bool,
    ) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hash(key);
        let decide = |v: Option<&V>| match v {
            Some(v) if condition(v) => Action::Remove,
            _ => Action::Keep,
        };
        let written = self
            .inner
            .write(hash, Prepared::Borrowed(key), false, decide);
        if written.changed {
            written.old
        } else {
            None
        }
    }

    /// Replaces the value of `key` with `new` only if it equals `current`.
    ///
    /// `Ok` holds the new entry; `Err` holds the entry present (whose value differs), or
    /// `None` when `key` is absent. The key is taken by value so that the new entry needs no
    /// clone of it; on `Err` it is dropped, with `new`.
    ///
    /// ```
    /// let map = concurrent_hamt::Hamt::new();
    /// map.insert("k", 1);
    /// assert_eq!(*map.compare_exchange("k", &1, 2).unwrap(), 2);
    /// assert_eq!(*map.compare_exchange("k", &1, 3).unwrap_err().unwrap(), 2);
    /// assert!(map.compare_exchange("x", &1, 3).unwrap_err().is_none());
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn compare_exchange(
        &self,
        key: K,
        current: &V,
        new: V,
    ) -> Result<Ref<'_, K, V>, Option<Ref<'_, K, V>>>
    where
        V: PartialEq,
    {
        let hash = self.inner.hash(&key);
        let prepared = Prepared::Entry(key, new);
        let decide = |v: Option<&V>| match v {
            Some(v) if v == current => Action::Put(None),
            _ => Action::Keep,
        };
        let written = self.inner.write(hash, prepared, true, decide);
        match written.new {
            Some(new) if written.changed => Ok(new),
            _ => Err(written.old),
        }
    }

    /// Lock-free read-modify-write of `key`: `f` gets the present value (or `None`) and
    /// returns the value to store, or `None` to remove the entry (or leave it absent).
    /// Returns the entry stored, if any.
    ///
    /// `f` may run more than once: when another writer changes the entry between the read and
    /// the write, `f` runs again on the new value, and only its last result is stored. Keep it
    /// free of side effects that must happen once.
    ///
    /// ```
    /// let map = concurrent_hamt::Hamt::new();
    /// let add = |v: Option<&u32>| Some(v.copied().unwrap_or(0) + 1);
    /// map.update("hits", add);
    /// assert_eq!(*map.update("hits", add).unwrap(), 2);
    /// assert!(map.update("hits", |_| None).is_none());
    /// assert!(!map.contains_key("hits"));
    /// ```
    pub fn update(
        &self,
        key: K,
        mut f: impl FnMut(Option<&V>) -> Option<V>,
    ) -> Option<Ref<'_, K, V>> {
        let hash = self.inner.hash(&key);
        let decide = |v: Option<&V>| {
            let present = v.is_some();
            match f(v) {
                Some(new) => Action::Put(Some(new)),
                None if present => Action::Remove,
                None => Action::Keep,
            }
        };
        self.inner.write(hash, Prepared::Key(key), true, decide).new
    }
}

impl<K, V, S, L: Layout<K, V>> Clone for Hamt<K, V, S, L> {
    /// Another handle on the same map (not a copy: writes through either show in both).
    fn clone(&self) -> Self {
        Hamt {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V, L: Layout<K, V>> Default for Hamt<K, V, RandomState, L> {
    /// An empty map with `std`'s `RandomState`, in either layout:
    /// `Hamt::<u64, u64, _, Inline>::default()`.
    fn default() -> Self {
        Self::with_layout(RandomState::new())
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S, L: Layout<K, V>> fmt::Debug for Hamt<K, V, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for r in self.iter() {
            m.entry(r.key(), r.value());
        }
        m.finish()
    }
}

impl<K: Hash + Eq, V, S: BuildHasher, L: Layout<K, V>> Extend<(K, V)> for Hamt<K, V, S, L> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Hash + Eq, V, L: Layout<K, V>> FromIterator<(K, V)> for Hamt<K, V, RandomState, L> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Hamt::default();
        map.extend(iter);
        map
    }
}
