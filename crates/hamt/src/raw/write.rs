//! The one write loop behind every update (`insert`, `remove`, `update`, ...): find the key's
//! slot, ask the caller what to do with the entry found, build the replacement main node, and
//! install it with one GCAS; and the reference counting of a change.
//!
//! # Invariants
//!
//! - A write starts from the root, or from the level cache's INode on its path when that is of
//!   the root's generation (see the `cache` module docs for why a GCAS there is as good as
//!   one reached from the root); a cached start has no parent in the cursor, so a tomb found
//!   there sends the write back to the root, and one left there is folded from the root.
//! - A writer changes only INodes of its traversal's generation (older ones are renewed first,
//!   see `cleanup`), and never a tomb (it folds it first).
//! - A [`Change`] counts, before its GCAS, exactly the references the new main node adds: when
//!   the old main node may be shared (its generation is not its INode's), every kept leaf and
//!   child; otherwise none but the leaves moved up from a tomb; a fresh leaf or INode comes
//!   with its own count. A change that does not commit gives them all back.
//! - A committed change leaves its [`Settle`]: the old main node is retired bare (never shared:
//!   its references were handed over) or released (shared), and what the new node dropped is
//!   released. Everything a write retires goes into its one [`Batch`], flushed before the
//!   write returns (after which a scan may free it: the write's result is still protected).
//! - User code (the caller's `decide`, `Hash`, `Eq`, `Drop` of a rejected key or value) runs
//!   before the GCAS of an attempt or after the write is complete, never between the GCAS and
//!   its settling.

use super::cache::CACHE_LEVEL;
use super::gcas::{gcas, Gcas};
use super::{gcas_read, key_of, Decide, Inner};
use crate::layout::Layout;
use crate::map::Ref;
use crate::node::{
    acquire_entry, free_unpublished, release, release_entry, release_main, release_unlinked_leaf,
    slot_bit, EntryOps, INode, Kind, Main, BITS, E, MAIN_BARE,
};
use hazard::{Batch, HazardPointer};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::mem;
use std::ptr;
use std::sync::atomic::Ordering::Acquire;

/// What a write does with the entry it found.
pub(crate) enum Action<V> {
    /// Nothing: the operation completes without writing.
    Keep,
    /// Store the prepared entry, first setting its value to this one if given.
    Put(Option<V>),
    /// Remove the entry (which must exist).
    Remove,
}

/// An entry made for a write and not yet published: freed on drop unless published.
pub(crate) struct Fresh<K, V, T: EntryOps<K, V>>(T, PhantomData<(K, V)>);

impl<K, V, T: EntryOps<K, V>> Fresh<K, V, T> {
    /// Hands the entry to the trie (a CAS published it).
    fn publish(self) {
        mem::forget(self);
    }
}

impl<K, V, T: EntryOps<K, V>> Drop for Fresh<K, V, T> {
    fn drop(&mut self) {
        // Safety: made by `fresh`, never published (`publish` forgets it), dropped once.
        unsafe { self.0.discard() };
    }
}

/// The key of a write, and the entry it may store.
pub(crate) enum Prepared<'q, K, V, Q: ?Sized, T: EntryOps<K, V>> {
    /// A removal: only the key to look for.
    Borrowed(&'q Q),
    /// The key, before a value exists (`update`).
    Key(K),
    /// The key and its value, before an entry is made of them.
    Entry(K, V),
    /// An entry ready to publish.
    Fresh(Fresh<K, V, T>),
    /// The entry is in the trie.
    Published,
}

impl<K: Borrow<Q>, V, Q: ?Sized, T: EntryOps<K, V>> Prepared<'_, K, V, Q, T> {
    fn key(&self) -> &Q {
        match self {
            Prepared::Borrowed(q) => q,
            Prepared::Key(k) | Prepared::Entry(k, _) => k.borrow(),
            // Safety: an unpublished entry is ours, and alive.
            Prepared::Fresh(f) => unsafe { T::key(&f.0) }.borrow(),
            Prepared::Published => unreachable!("the key is used after publication"),
        }
    }

    /// The entry to store, with `value` if given.
    fn put(&mut self, value: Option<V>, hash: u64) -> T {
        let fresh = match (mem::replace(self, Prepared::Published), value) {
            (Prepared::Fresh(mut f), value) => {
                if let Some(v) = value {
                    // Safety: unpublished, so ours.
                    unsafe { f.0.set_value(v) };
                }
                f
            }
            (Prepared::Entry(key, value), new) => {
                Fresh(T::fresh(hash, key, new.unwrap_or(value)), PhantomData)
            }
            (Prepared::Key(key), Some(value)) => Fresh(T::fresh(hash, key, value), PhantomData),
            _ => unreachable!("Put without a value to store"),
        };
        let t = fresh.0;
        *self = Prepared::Fresh(fresh);
        t
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
pub(crate) struct Cursor<'d> {
    pub(crate) root: HazardPointer<'d>,
    pub(crate) inode: HazardPointer<'d>,
    pub(crate) main: HazardPointer<'d>,
    pub(crate) parent_inode: HazardPointer<'d>,
    pub(crate) parent_main: HazardPointer<'d>,
    pub(crate) child: HazardPointer<'d>,
}

impl<'d> Cursor<'d> {
    /// A cursor on six guards (taken in one go with the caller's others).
    #[inline(always)]
    pub(crate) fn of(guards: [HazardPointer<'d>; 6]) -> Self {
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
    pub(crate) fn descend(&mut self) {
        mem::swap(&mut self.parent_inode, &mut self.inode);
        mem::swap(&mut self.parent_main, &mut self.main);
        mem::swap(&mut self.inode, &mut self.child);
    }
}

/// Where a traversal stands: INode `inode` (at `level`) whose committed main node is `main`,
/// its parent pair (null at the root), and the root it started from.
#[derive(Clone, Copy)]
pub(crate) struct Position {
    pub(crate) root: *mut INode,
    pub(crate) inode: *mut INode,
    pub(crate) main: *mut Main,
    pub(crate) parent: *mut INode,
    pub(crate) parent_main: *mut Main,
    pub(crate) level: u32,
}

impl Position {
    /// The start of a traversal: the root INode, no main node read yet, no parent.
    pub(crate) fn at_root(root: *mut INode) -> Self {
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
    pub(crate) fn gen(&self) -> u64 {
        // Safety: the cursor protects the root for the whole traversal.
        unsafe { (*self.root).gen() }
    }

    /// Moves down to `child`, the INode of slot bit `bit` of `main`.
    #[inline(always)]
    pub(crate) fn descend(&mut self, child: *mut INode) {
        self.parent = self.inode;
        self.parent_main = self.main;
        self.inode = child;
        self.level += BITS;
    }
}

/// Whether `inode` still holds `m`.
#[inline(always)]
pub(crate) fn still_holds(inode: *mut INode, m: *mut Main) -> bool {
    // Acquire: pairs with the Release half of the CAS that installed the current main node;
    // this is the validating load of the protection just published (see the module docs).
    // Safety: `inode` is protected by the caller's cursor.
    unsafe { (*inode).main.load(Acquire) == m }
}

/// A replacement of main node `old` by `new` in `inode`, and what it does to counts.
pub(crate) struct Change<T> {
    pub(crate) inode: *mut INode,
    pub(crate) old: *mut Main,
    pub(crate) new: *mut Main,
    /// The entry of `new` created for it (a new leaf), already counted for it.
    pub(crate) fresh_entry: Option<T>,
    /// The child of `new` created for it (a new INode, with the tree below it), already
    /// counted for it.
    pub(crate) fresh_child: *mut INode,
    /// Entries of `old` that move into `fresh_child`'s tree (a pair pushed down a level):
    /// counted when `old` is shared, handed over otherwise.
    pub(crate) pushed_down: [Option<T>; 2],
    /// Entries of `new` that come from below (a tomb's): always counted (the tomb keeps its
    /// references until it is reclaimed).
    pub(crate) moved_up: [Option<T>; 2],
    /// The entry of `old` that `new` drops (replaced or removed), released once `new`
    /// commits.
    pub(crate) dropped_entry: Option<T>,
    /// The child of `old` that `new` drops (a folded or renewed INode), released likewise.
    pub(crate) dropped_child: *mut INode,
}

impl<T: Copy> Change<T> {
    pub(crate) fn new(inode: *mut INode, old: *mut Main, new: *mut Main) -> Self {
        Change {
            inode,
            old,
            new,
            fresh_entry: None,
            fresh_child: ptr::null_mut(),
            pushed_down: [None; 2],
            moved_up: [None; 2],
            dropped_entry: None,
            dropped_child: ptr::null_mut(),
        }
    }

    /// Whether `old` may be shared (see the `node` module docs).
    fn shared(&self) -> bool {
        // Safety: `old` and `inode` are protected by the caller.
        unsafe { (*self.old).gen() != (*self.inode).gen() }
    }

    /// Calls `f` on the references this change takes before publishing `new` (and gives back
    /// if it does not commit): see the module docs.
    fn counted<K, V>(&self, mut f: impl FnMut(Held<T>))
    where
        T: EntryOps<K, V>,
    {
        if self.shared() {
            // Safety: `new` is ours until published, and immutable.
            let a = unsafe { &*self.new }.arrays::<T>();
            if !T::INLINE {
                let from_below = |e: T| {
                    self.fresh_entry.is_some_and(|f| f.same(e))
                        || self.moved_up.iter().flatten().any(|m| m.same(e))
                };
                for &e in a.data.iter().filter(|&&e| !from_below(e)) {
                    f(Held::Entry(e));
                }
                for &e in self.pushed_down.iter().flatten() {
                    f(Held::Entry(e));
                }
            }
            for &c in a.nodes.iter().filter(|&&c| c != self.fresh_child) {
                f(Held::Child(c));
            }
        }
        if !T::INLINE {
            for &e in self.moved_up.iter().flatten() {
                f(Held::Entry(e));
            }
        }
    }
}

/// A reference a [`Change`] counts: an entry's (a leaf's) or a child's.
pub(crate) enum Held<T> {
    Entry(T),
    Child(*mut INode),
}

/// What a committed [`Change`] leaves to do: retire or release `old` and what `new` dropped,
/// into the operation's batch ([`settle`](Self::settle); nothing is freed before the batch
/// is flushed and scanned, and no user code runs meanwhile).
#[must_use]
pub(crate) struct Settle<K, V, T> {
    shared: bool,
    old: *mut Main,
    dropped_entry: Option<T>,
    dropped_child: *mut INode,
    _marker: PhantomData<(K, V)>,
}

impl<K, V, T: EntryOps<K, V>> Settle<K, V, T> {
    pub(crate) fn settle(self, batch: &mut Batch<'_>) {
        // Our committed GCAS unlinked `old` from its INode: we own the INode's reference on
        // it, and (when `old` was never shared) `old`'s references on what `new` dropped.
        if self.shared {
            // `old` may be held by other INodes: let go of ours; it releases its children
            // (the dropped ones among them) when the last holder lets go.
            // Safety: our reference, given up once.
            unsafe { release_main(self.old, batch) };
            return;
        }
        // Never shared: its children were handed over, except the dropped ones.
        // Safety: unlinked by our GCAS, held by nothing else; retired once, by us.
        unsafe { batch.retire(self.old.cast(), MAIN_BARE) };
        if let Some(e) = self.dropped_entry {
            // Safety: `old`'s reference, now ours; `old` was never shared.
            unsafe { release_unlinked_leaf::<K, V, T>(e, batch) };
        }
        if !self.dropped_child.is_null() {
            // Safety: `old`'s reference, now ours.
            unsafe { release(self.dropped_child, batch) };
        }
    }
}

/// The [`Settle`] of a map of layout `L`.
type SettleOf<K, V, L> = Settle<K, V, E<K, V, L>>;

impl<K, V, S, L: Layout<K, V>> Inner<K, V, S, L> {
    /// Applies `change` by GCAS with its counting. On `Committed`, returns what is left to
    /// settle; otherwise `new` is gone (freed or retired) and every count is back, and
    /// `change.fresh_child` (with its tree) and `change.fresh_entry` are the caller's again
    /// (never reachable through a committed node).
    ///
    /// # Safety
    /// 1. `change.inode`, `change.old` (its committed main node) and `start` (the root the
    ///    traversal started from) are protected; the fields of `change` describe `new`
    ///    truthfully; the entries and children it counts are kept alive by their holders
    ///    (`old`, or the protected tomb they come from) for the duration of the call.
    pub(crate) unsafe fn apply(
        &self,
        change: &Change<E<K, V, L>>,
        start: *mut INode,
        guard: &mut HazardPointer<'_>,
        batch: &mut Batch<'_>,
    ) -> Result<SettleOf<K, V, L>, Gcas> {
        change.counted::<K, V>(|held| match held {
            // Safety: 1. its holders keep it alive and counted, so a plain increment cannot
            // resurrect it.
            Held::Entry(e) => unsafe { acquire_entry::<K, V, _>(e) },
            // Safety: as above.
            Held::Child(c) => crate::node::acquire_ref(unsafe { (*c).rc() }, 1),
        });
        // Safety: 1.
        let outcome = unsafe {
            gcas(
                &self.root,
                change.inode,
                change.old,
                change.new,
                start,
                guard,
                &self.domain,
            )
        };
        if outcome != Gcas::Committed {
            change.counted::<K, V>(|held| match held {
                // Safety: the reference taken above; its other holders keep the count above
                // zero.
                Held::Entry(e) => unsafe { release_entry::<K, V, _>(e, batch) },
                // Safety: as above.
                Held::Child(c) => unsafe { release(c, batch) },
            });
            if outcome == Gcas::Lost {
                // Safety: never published.
                unsafe { Main::free::<E<K, V, L>>(change.new) };
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
            dropped_entry: change.dropped_entry,
            dropped_child: change.dropped_child,
            _marker: PhantomData,
        })
    }
}

/// Where the entry for `key` is in the fresh main node `m` (at `level`) or the fresh tree
/// below it: the main node holding it and its index. (For a `Ref` to an inline entry just
/// stored.)
///
/// # Safety
/// 1. `m` and everything below it are fresh (not yet published) or protected, and hold the
///    key.
unsafe fn locate<K: Eq, V, T: EntryOps<K, V>>(
    mut m: *mut Main,
    hash: u64,
    mut level: u32,
    key: &K,
) -> (*mut Main, usize) {
    loop {
        // Safety: 1.
        let main = unsafe { &*m };
        let head = *main.head();
        let a = main.arrays::<T>();
        let (from, to) = match head.kind() {
            Kind::CNode => {
                let bit = slot_bit(hash, level);
                if head.nodemap & bit != 0 {
                    // Acquire: the tree is fresh (not yet published), so this is its builder's
                    // own write; Acquire costs nothing here and keeps the read honest.
                    // Safety: 1.
                    m = unsafe { (*a.nodes[head.child_index(bit)]).main.load(Acquire) };
                    level += BITS;
                    continue;
                }
                let i = head.data_index(bit);
                (i, i + head.run(bit))
            }
            _ => (0, a.data.len()),
        };
        for i in from..to {
            // Safety: 1.
            if unsafe { T::key(&a.data[i]) } == key {
                return (m, i);
            }
        }
        unreachable!("the stored entry is in the tree just built");
    }
}

impl<K: Hash + Eq, V, S: BuildHasher, L: Layout<K, V>> Inner<K, V, S, L> {
    /// The one write loop: finds `prepared.key()`, asks `decide` what to do with the entry
    /// found (possibly several times, when a CAS is lost to another writer), and commits it
    /// with one GCAS of the INode that holds the key's slot.
    pub(crate) fn write<Q>(
        &self,
        hash: u64,
        mut prepared: Prepared<'_, K, V, Q, E<K, V, L>>,
        want_new: bool,
        mut decide: impl FnMut(Option<&V>) -> Action<V>,
    ) -> Written<'_, K, V>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let inline = <E<K, V, L> as EntryOps<K, V>>::INLINE;
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
        let hash_of = |k: &K| self.hash(k);
        // Whether the write may start from the level cache (not after its cached INode
        // turned out folded).
        let mut from_cache = true;
        'restart: loop {
            let mut pos = Position::at_root(self.read_root(&mut c.root));
            let gen = pos.gen();
            let how = Decide::Live {
                root: &self.root,
                start: pos.root,
            };
            let table = self.cache.table();
            let cached = table
                .filter(|_| from_cache)
                .and_then(|t| self.cached_start::<false>(t, hash, gen, &mut c.inode));
            if let Some(s) = cached {
                // Folded or not, the tomb check below tells; it has no parent in the cursor.
                pos.inode = s;
                pos.level = CACHE_LEVEL;
            }
            'inode: loop {
                // Safety: `pos.inode` is protected by `c.root` or `c.inode`.
                pos.main = unsafe { gcas_read(pos.inode, &mut c.main, how, &self.domain) };
                // Safety: protected and validated.
                let main = unsafe { &*pos.main };
                let head = *main.head();
                if head.kind() == Kind::Tomb && pos.parent.is_null() {
                    // The cached INode was folded out of the trie: empty its slot, and start
                    // again from the root.
                    debug_assert_eq!(pos.level, CACHE_LEVEL, "the root is never a tomb");
                    // Safety: protected by `c.inode`.
                    unsafe { self.evict_cached(hash, pos.inode) };
                    from_cache = false;
                    continue 'restart;
                }
                if head.kind() == Kind::Tomb {
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
                let a = main.arrays::<E<K, V, L>>();
                // (Lists live past the last level: no slot there.)
                let bit = if head.kind() == Kind::CNode {
                    slot_bit(hash, pos.level)
                } else {
                    0
                };
                // The key's run of entries in this node (the slot's one or two, or the whole
                // list), and their hashes.
                let (from, to) = match head.kind() {
                    Kind::CNode if head.nodemap & bit != 0 => {
                        let child = a.nodes[head.child_index(bit)];
                        c.child.publish(child);
                        if !still_holds(pos.inode, pos.main) {
                            continue 'inode;
                        }
                        c.descend();
                        pos.descend(child);
                        // A walk from the root fills the level cache as a lookup's does. (Only
                        // lookups allocate a table: a map that was only ever written does not
                        // pay for one.)
                        if pos.level == CACHE_LEVEL {
                            if let Some(t) = table {
                                // Safety: `child` is protected and was reached from `pos.root`
                                // along a validated path.
                                unsafe { self.fill_cache(t, hash, child, gen, pos.root) };
                            }
                        }
                        continue 'inode;
                    }
                    Kind::CNode if head.datamap & bit != 0 => {
                        let i = head.data_index(bit);
                        (i, i + head.run(bit))
                    }
                    Kind::CNode => (head.data_index(bit), head.data_index(bit)),
                    _ => (0, a.data.len()),
                };
                let mut found = None;
                // The hashes of a pair's leaves, read while each is protected (inline entries'
                // are computed if the pair has to go down a level).
                let mut hashes = [0u64; 2];
                for i in from..to {
                    let e = &a.data[i];
                    if !inline {
                        // A leaf: protected and validated before it is read.
                        c.child.publish(e.leaf());
                        if !still_holds(pos.inode, pos.main) {
                            continue 'inode;
                        }
                    }
                    // Safety: inline, part of the protected main node; a leaf, protected and
                    // validated.
                    let k = unsafe { key_of::<K, V, L>(e) };
                    let h = if inline {
                        None
                    } else {
                        // Safety: as above.
                        Some(unsafe { <E<K, V, L> as EntryOps<K, V>>::hash(e, &hash_of) })
                    };
                    if h.is_none_or(|h| h == hash) && k.borrow() == prepared.key() {
                        found = Some(i);
                        break;
                    }
                    if let (Some(h), Some(slot)) = (h, hashes.get_mut(i - from)) {
                        *slot = h;
                    }
                }
                // Safety: the found entry is protected (`c.child` for a leaf, `c.main` for an
                // inline entry).
                let current = found.map(|i| unsafe { super::value_of::<K, V, L>(&a.data[i]) });
                // The entry found, copied (a leaf pointer: the old main node may be freed before
                // the result is built; an inline entry is read in place, see below).
                let found_copy = found.map(|i| a.data[i]);
                let action = decide(current);
                // Where an inline entry stored for `new_guard` is: its main node and index.
                let mut stored_at = (ptr::null_mut::<Main>(), 0);
                let (change, delta) = match action {
                    Action::Keep => {
                        // Dropped before the result is built: if a `Drop` of the rejected key
                        // or value panics, a result under construction would be leaked, with
                        // its hazard pointers still published. (So is the batch flushed: its
                        // scan may run user `Drop`s.)
                        drop(prepared);
                        batch.flush();
                        let old = found.map(|i| {
                            let guard = if inline { c.main } else { c.child };
                            self.entry_ref(guard, &a.data[i])
                        });
                        return Written {
                            old,
                            new: None,
                            changed: false,
                        };
                    }
                    Action::Put(value) => {
                        let t = prepared.put(value, hash);
                        let mut ch;
                        if let Some(i) = found {
                            ch = Change::new(
                                pos.inode,
                                pos.main,
                                main.with_entry(i, t, gen, &self.domain),
                            );
                            ch.dropped_entry = Some(a.data[i]);
                        } else if head.kind() == Kind::List {
                            ch = Change::new(
                                pos.inode,
                                pos.main,
                                main.list_appended(t, gen, &self.domain),
                            );
                        } else if to - from < 2 {
                            ch = Change::new(
                                pos.inode,
                                pos.main,
                                main.with_added(bit, t, gen, &self.domain),
                            );
                        } else {
                            // A third key for a full pair: the three go one level down.
                            if inline {
                                for (j, h) in hashes.iter_mut().enumerate() {
                                    // Safety: part of the protected main node.
                                    *h = hash_of(unsafe { key_of::<K, V, L>(&a.data[from + j]) });
                                }
                            }
                            let three = [
                                (a.data[from], hashes[0]),
                                (a.data[from + 1], hashes[1]),
                                (t, hash),
                            ];
                            let sub = Main::spread(&three, pos.level + BITS, gen, &self.domain);
                            let child = INode::new(sub, gen);
                            ch = Change::new(
                                pos.inode,
                                pos.main,
                                main.with_pushed_down::<E<K, V, L>>(bit, child, gen, &self.domain),
                            );
                            ch.fresh_child = child;
                            ch.pushed_down = [Some(a.data[from]), Some(a.data[from + 1])];
                        }
                        ch.fresh_entry = Some(t);
                        if let Some(g) = new_guard.as_mut() {
                            // Published before the CAS that makes the entry reachable, so no
                            // validation is needed: any later unlink and retire of it happens
                            // after our CAS, hence after this store.
                            if inline {
                                // Safety: `new` and the tree below it are fresh.
                                let at = unsafe {
                                    locate::<K, V, E<K, V, L>>(
                                        ch.new,
                                        hash,
                                        pos.level,
                                        prepared_key(&t),
                                    )
                                };
                                g.publish(at.0);
                                stored_at = at;
                            } else {
                                g.publish(t.leaf());
                            }
                        }
                        (ch, isize::from(found.is_none()))
                    }
                    Action::Remove => {
                        let i = found.expect("Action::Remove of an absent key");
                        let new = match head.kind() {
                            Kind::List => main.list_removed::<E<K, V, L>>(i, gen, &self.domain),
                            _ => main.with_removed::<E<K, V, L>>(
                                bit,
                                i,
                                pos.level,
                                gen,
                                &self.domain,
                            ),
                        };
                        let mut ch = Change::new(pos.inode, pos.main, new);
                        ch.dropped_entry = Some(a.data[i]);
                        (ch, -1)
                    }
                };
                // Read before the GCAS: once published, `new` may be replaced and freed by
                // another writer at any moment.
                // Safety: `new` is ours until the GCAS.
                let entombed = unsafe { (*change.new).kind() } == Kind::Tomb;
                // Safety: the cursor protects the INode, its main node and the root; the
                // change describes `new`.
                let settle = match unsafe { self.apply(&change, pos.root, &mut fresh, &mut batch) }
                {
                    Ok(settle) => settle,
                    Err(outcome) => {
                        if !change.fresh_child.is_null() {
                            // Safety: never reachable through a committed node (`apply`).
                            unsafe { free_unpublished::<E<K, V, L>>(change.fresh_child) };
                        }
                        if outcome == Gcas::Lost {
                            continue 'inode;
                        }
                        continue 'restart;
                    }
                };
                settle.settle(&mut batch);
                // Counted before any user code runs (dropping an unused key below may panic).
                self.count.add(delta);
                let stored = change.fresh_entry;
                if let Prepared::Fresh(f) = mem::replace(&mut prepared, Prepared::Published) {
                    if stored.is_some() {
                        // The entry is in the trie now: not ours to free.
                        f.publish();
                    } else {
                        // An unused prepared entry (an `update` that ended in a removal) is
                        // dropped now, before the result exists (see the `Keep` case).
                        drop(f);
                    }
                }
                drop(prepared);
                // The guard that protects the entry found: `c.child` (a leaf) or `c.main` (the
                // old main node, which holds the inline entry). Kept in `c.main`, so that
                // `c.child` is free for the cleanup's GCAS.
                if !inline {
                    mem::swap(&mut c.main, &mut c.child);
                }
                if entombed {
                    // Fold the tomb through the parent the cursor still protects; walk from
                    // the root only if that fails or entombs the parent in turn.
                    let mut tomb = pos;
                    tomb.main = change.new;
                    // `fresh` protects the tomb (since before its GCAS) during the fold.
                    // (The cached INode's parent is not in the cursor: walk from the root.)
                    let folded = !pos.parent.is_null()
                        && self.clean_parent(&tomb, hash, &mut c.child, &mut batch)
                            == super::cleanup::Fold::Done;
                    if !folded {
                        // The walk needs a full cursor: `fresh` stands in for `c.main`.
                        mem::swap(&mut c.main, &mut fresh);
                        self.cleanup(hash, &mut c, &mut batch);
                        mem::swap(&mut c.main, &mut fresh);
                    }
                }
                // Handed to the domain before the result is built (the push may scan, and a
                // scan may run user `Drop`s, which may panic; see the `Keep` case). The old
                // entry stays protected by `c.main`, the new one by `new_guard`.
                batch.flush();
                let old = match (found, found_copy) {
                    // Inline: in the old main node, which `c.main` protects.
                    (Some(i), Some(_)) if inline => Some(self.entry_ref(c.main, &a.data[i])),
                    // A leaf, which `c.main` protects.
                    (_, Some(e)) => Some(self.entry_ref(c.main, &e)),
                    _ => None,
                };
                let new = match (new_guard, stored) {
                    (Some(g), Some(_)) if inline => {
                        // Safety: `g` protects the main node holding it (since before the GCAS).
                        let e = unsafe { &*stored_at.0 }.entry_ptr::<E<K, V, L>>(stored_at.1);
                        Some(self.entry_ref(g, e))
                    }
                    // The leaf, protected by `g` since before the GCAS.
                    (Some(g), Some(t)) => Some(self.entry_ref(g, &t)),
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

    /// A `Ref` to the entry at `e`, protected by `guard` (its leaf, or the main node that
    /// holds it inline).
    fn entry_ref<'a>(&'a self, guard: HazardPointer<'a>, e: *const E<K, V, L>) -> Ref<'a, K, V> {
        // Safety: `guard` protects the entry's storage, which lives as long as the `Ref`.
        unsafe { Ref::new(guard, key_of::<K, V, L>(e), super::value_of::<K, V, L>(e)) }
    }
}

/// The key of a fresh entry.
fn prepared_key<K, V, T: EntryOps<K, V>>(t: &T) -> &K {
    // Safety: fresh entries are ours and alive.
    unsafe { T::key(t) }
}
