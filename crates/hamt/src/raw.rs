//! The algorithms: lookup, the one write loop behind every update, and tomb cleaning.
//!
//! # Reading under hazard pointers
//!
//! A reader protects every node before it dereferences it, and validates each protection
//! against the INode whose main node led to it:
//!
//! 1. protect the main node `m` of INode `i` (the hazard protect-and-validate loop on
//!    `i.main`);
//! 2. read child `c` from `m`, publish `c`, and re-read `i.main`: if it still holds `m`, then
//!    `c` was still in the trie after the hazard was published, so no writer can have
//!    retired it yet. (No ABA: `m` is protected, so its address cannot be reused.)
//!
//! Step 2 relies on: *an INode whose main node is not a tomb is linked in the trie*. INodes
//! are only ever unlinked after their main node became a tomb (and a tomb is never replaced).
//! So a CNode or list read from `i` is live while `i.main` holds it, and so are its children.
//! A tomb's leaf, however, is handed to the parent when the tomb is folded away, and may be
//! removed from there: it is validated against the *parent's* main node instead (the INode is
//! still in the parent's array, so the leaf is still in the tomb). Cursors keep the parent's
//! two protections for that.

use crate::count::Counter;
use crate::node::{
    free_unpublished_chain, reclaim_inode, reclaim_leaf, reclaim_main, slot, Branch, INode, Kind,
    Leaf, Main, BITS,
};
use crate::Ref;
use hazard::{contention, Domain, HazardPointer};
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::mem;
use std::ptr;
use std::sync::atomic::Ordering::{AcqRel, Acquire};

/// The shared state behind every clone of a map.
pub(crate) struct Inner<K, V, S> {
    /// The root INode: owned by this structure, never retired, its main node always a CNode.
    pub(crate) root: *mut INode,
    pub(crate) hasher: S,
    pub(crate) count: Counter,
    pub(crate) domain: Domain,
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
        // Safety: the last handle is gone, so no thread can reach the trie; retired nodes are
        // not in it (the domain, dropped right after, frees them).
        unsafe { crate::node::free_tree::<K, V>(self.root) };
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
        OwnedLeaf(Box::into_raw(Box::new(Leaf { hash, key, value })))
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
            Prepared::Leaf(l) => l.get().key.borrow(),
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
                    unsafe { (*l.0).value = v };
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

/// The guards of a traversal: the current INode and its main node, their parents, and a
/// child. Rotated by swapping as the traversal descends.
struct Cursor<'d> {
    inode: HazardPointer<'d>,
    main: HazardPointer<'d>,
    parent_inode: HazardPointer<'d>,
    parent_main: HazardPointer<'d>,
    child: HazardPointer<'d>,
}

impl<'d> Cursor<'d> {
    #[inline]
    fn new(domain: &'d Domain) -> Self {
        Cursor {
            inode: HazardPointer::new(domain),
            main: HazardPointer::new(domain),
            parent_inode: HazardPointer::new(domain),
            parent_main: HazardPointer::new(domain),
            child: HazardPointer::new(domain),
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

/// Where a traversal stands: INode `inode` (at `level`) whose main node is `main`, and its
/// parent pair (null at the root).
#[derive(Clone, Copy)]
struct Position {
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
            inode: root,
            main: ptr::null_mut(),
            parent: ptr::null_mut(),
            parent_main: ptr::null_mut(),
            level: 0,
        }
    }
}

#[inline(always)]
fn still_holds(inode: *mut INode, m: *mut Main) -> bool {
    // Acquire: pairs with the Release half of the CAS that installed the current main node;
    // this is the validating load of the protection just published (see the module docs).
    // Safety: `inode` is the root or protected by the caller's cursor.
    unsafe { (*inode).main.load(Acquire) == m }
}

impl<K, V, S> Inner<K, V, S> {
    pub(crate) fn with_hasher(hasher: S) -> Self {
        Inner {
            root: INode::new(Main::empty_cnode()),
            hasher,
            count: Counter::new(),
            domain: Domain::new(),
            _marker: PhantomData,
        }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Inner<K, V, S> {
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Looks `key` up. Never writes: a tomb is read as the entry it holds.
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<Ref<'_, K, V>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut c = Cursor::new(&self.domain);
        'restart: loop {
            let mut inode = self.root;
            let mut parent = (ptr::null_mut::<INode>(), ptr::null_mut::<Main>());
            let mut level = 0;
            'inode: loop {
                // Safety: `inode` is the root or protected by `c.inode`, validated when read.
                let m = c.main.protect(unsafe { &(*inode).main });
                // Safety: protected and validated by `protect`.
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
                            let leaf = unsafe { &*b.as_leaf::<K, V>() };
                            if leaf.hash == hash && leaf.key.borrow() == key {
                                return Some(Ref::new(c.child, leaf));
                            }
                        }
                        return None;
                    }
                };
                // Safety: protected and validated above.
                let leaf = unsafe { &*b.as_leaf::<K, V>() };
                if leaf.hash == hash && leaf.key.borrow() == key {
                    return Some(Ref::new(c.child, leaf));
                }
                return None;
            }
        }
    }

    /// The one write loop: finds `prepared.key()`, asks `decide` what to do with the entry
    /// found (possibly several times, when a CAS is lost to another writer), and commits it
    /// with one CAS of the INode that holds the key's slot.
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
        let mut c = Cursor::new(&self.domain);
        let mut new_guard = want_new.then(|| HazardPointer::new(&self.domain));
        'restart: loop {
            let mut pos = Position::at_root(self.root);
            'inode: loop {
                // Safety: `pos.inode` is the root or protected by `c.inode`.
                pos.main = c.main.protect(unsafe { &(*pos.inode).main });
                // Safety: protected and validated.
                let main = unsafe { &*pos.main };
                // The entry for the key: (array index, branch found there, whether it is the
                // key's own leaf).
                let (index, here, found) = match main.kind() {
                    Kind::Tomb => {
                        // Writers never change a tomb: fold it into the parent, start again.
                        self.clean_parent(&pos, hash);
                        continue 'restart;
                    }
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
                            let leaf = unsafe { &*b.as_leaf::<K, V>() };
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
                            let leaf = unsafe { &*b.as_leaf::<K, V>() };
                            if leaf.hash == hash && leaf.key.borrow() == prepared.key() {
                                hit = (i, b, true);
                                break;
                            }
                        }
                        hit
                    }
                };
                // Safety: `c.child` protects `here` when `found`.
                let current = found.then(|| unsafe { &(*here.as_leaf::<K, V>()).value });
                let action = decide(current);
                // The replacement main node, a fresh INode chain built for it (if any), and
                // the leaf it stores (if any).
                let mut fresh_chain = ptr::null_mut();
                let mut stored: *const Leaf<K, V> = ptr::null();
                let (m2, delta) = match action {
                    Action::Keep => {
                        // Dropped before the result is built: if a `Drop` of the rejected key
                        // or value panics, a result under construction would be leaked, with
                        // its hazard pointers still published.
                        drop(prepared);
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
                        match main.kind() {
                            Kind::List if found => (main.updated(index, leaf), 0),
                            Kind::List => (main.list_appended(leaf), 1),
                            _ if found => (main.updated(index, leaf), 0),
                            _ if here.is_none() => {
                                (main.inserted(1 << slot(hash, pos.level), leaf), 1)
                            }
                            _ => {
                                // Another key's leaf holds the slot: both go one level down.
                                // Safety: protected and validated above.
                                let other = unsafe { (*here.as_leaf::<K, V>()).hash };
                                let sub = Main::dual(here, other, leaf, hash, pos.level + BITS);
                                fresh_chain = INode::new(sub);
                                (main.updated(index, Branch::inode(fresh_chain)), 1)
                            }
                        }
                    }
                    Action::Remove => {
                        assert!(found, "Action::Remove of an absent key");
                        match main.kind() {
                            Kind::List => (main.list_removed(index), -1),
                            _ => (
                                main.removed(1 << slot(hash, pos.level), index, pos.level),
                                -1,
                            ),
                        }
                    }
                };
                // Read before the CAS: once published, `m2` may be replaced and freed by
                // another writer at any moment (we hold no hazard on it).
                // Safety: `m2` is ours until the CAS.
                let entombed = unsafe { (*m2).kind() } == Kind::Tomb;
                // AcqRel: Release publishes `m2`, its new leaf and chain; Acquire (also on
                // failure) makes the winner's main node readable for the retry.
                // Safety: `pos.inode` is the root or protected.
                let cas = contention::compare_exchange(
                    unsafe { &(*pos.inode).main },
                    pos.main,
                    m2,
                    AcqRel,
                    Acquire,
                );
                if cas.is_err() {
                    // Safety: `m2` and the chain were never published; leaves are not freed.
                    unsafe {
                        Main::free(m2);
                        if !fresh_chain.is_null() {
                            free_unpublished_chain(fresh_chain);
                        }
                    }
                    continue 'inode;
                }
                // Armed at once, so that the unlinked nodes are retired even if user code run
                // below (a `Drop` of the unused key, a scan during cleanup) panics; they
                // retire when dropped, last.
                // Safety: our CAS unlinked `pos.main` (and, if found, the old leaf, which the
                // new main node no longer holds); each is retired once, by us.
                let retire_main =
                    unsafe { Retire::new(&self.domain, pos.main.cast(), reclaim_main) };
                // Safety: as above.
                let retire_leaf = found.then(|| unsafe {
                    Retire::new(&self.domain, here.ptr(), reclaim_leaf::<K, V>)
                });
                if !stored.is_null() {
                    if let Prepared::Leaf(l) = mem::replace(&mut prepared, Prepared::Published) {
                        // The leaf is in the trie now: not ours to free.
                        l.publish();
                    }
                }
                if delta != 0 {
                    self.count.add(delta);
                }
                // An unused prepared leaf (an `update` that ended in a removal) is dropped
                // now, before the result exists (see the `Keep` case).
                drop(prepared);
                if entombed {
                    // The cursor's guards are reused (the child's protects the old leaf, which
                    // is returned: it moves out, a fresh guard takes its place), so that a
                    // write never holds more than seven hazard records.
                    let old_leaf_guard =
                        mem::replace(&mut c.child, HazardPointer::new(&self.domain));
                    self.cleanup(hash, &mut c);
                    c.child = old_leaf_guard;
                }
                let old = found.then(|| Ref::new(c.child, here.as_leaf()));
                let new = match new_guard {
                    // Protected by `g` since before the CAS.
                    Some(g) if !stored.is_null() => Some(Ref::new(g, stored)),
                    _ => None,
                };
                // Retire last, before the result is built (a scan may run user `Drop`s, which
                // may panic; see the `Keep` case). The old leaf stays protected by `old`.
                drop(retire_leaf);
                drop(retire_main);
                return Written {
                    old,
                    new,
                    changed: true,
                };
            }
        }
    }

    /// Folds the tomb at `pos` into its parent: the parent's copy holds the tomb's leaf (or
    /// loses the slot). Does nothing if the parent changed meanwhile.
    fn clean_parent(&self, pos: &Position, hash: u64) {
        debug_assert!(pos.level > 0, "the root is never a tomb");
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
        // Safety: protected; a tomb never changes.
        let leaf = unsafe { (*pos.main).entries()[0] };
        let p2 = if leaf.is_none() {
            pm.removed(bit, i, parent_level)
        } else {
            pm.resurrected(i, leaf, parent_level)
        };
        // AcqRel/Acquire: as in `write`.
        // Safety: the parent INode is protected (or the root).
        let cas = contention::compare_exchange(
            unsafe { &(*pos.parent).main },
            pos.parent_main,
            p2,
            AcqRel,
            Acquire,
        );
        match cas {
            // Safety: our CAS unlinked the parent's old main node and the tombed INode (whose
            // leaf `p2` now holds); each is retired once, by us.
            Ok(_) => unsafe {
                let _main = Retire::new(&self.domain, pos.parent_main.cast(), reclaim_main);
                self.domain.retire(pos.inode.cast(), reclaim_inode);
            },
            // Safety: never published.
            Err(_) => unsafe { Main::free(p2) },
        }
    }

    /// After a write left a tomb on `hash`'s path: walks the path from the root and folds
    /// every tomb it meets, until none is left (folding one can entomb the parent in turn).
    fn cleanup(&self, hash: u64, c: &mut Cursor<'_>) {
        'restart: loop {
            let mut pos = Position::at_root(self.root);
            loop {
                // Safety: the root or protected by `c.inode`.
                pos.main = c.main.protect(unsafe { &(*pos.inode).main });
                // Safety: protected and validated.
                let main = unsafe { &*pos.main };
                match main.kind() {
                    Kind::Tomb => {
                        self.clean_parent(&pos, hash);
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

/// Retires a node when dropped: so that a panic from a scan run by one retire (a user
/// `Drop`) does not skip the next.
struct Retire<'d> {
    domain: &'d Domain,
    ptr: *mut (),
    reclaim: unsafe fn(*mut (), &Domain),
}

impl<'d> Retire<'d> {
    /// # Safety
    /// [`Domain::retire`]'s contract for `ptr` and `reclaim`.
    unsafe fn new(domain: &'d Domain, ptr: *mut (), reclaim: unsafe fn(*mut (), &Domain)) -> Self {
        Retire {
            domain,
            ptr,
            reclaim,
        }
    }
}

impl Drop for Retire<'_> {
    fn drop(&mut self) {
        // Safety: `Retire::new`'s contract.
        unsafe { self.domain.retire(self.ptr, self.reclaim) };
    }
}
