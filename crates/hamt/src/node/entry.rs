//! Leaves and inline entries: the two entry types of the layouts, and the operations the
//! trie's code is generic over ([`EntryOps`]).

use super::{acquire_ref, drop_ref, LEAF};
use crate::layout::private::Sealed;
use crate::sync::{AtomicUsize, Data};
use hazard::{Batch, Link};
/// A key and its value, in an allocation of their own (the `Leaves` layout). (`pub` only
/// because the sealed layout trait names it; not reachable outside the crate.)
#[repr(C)]
pub struct Leaf<K, V> {
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

/// An entry of the `Leaves` layout, as stored in a main node: a pointer to the leaf.
pub struct LeafPtr<K, V>(*mut Leaf<K, V>);

impl<K, V> Clone for LeafPtr<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for LeafPtr<K, V> {}

/// An entry of the `Inline` layout, as stored in a main node.
pub struct Pair<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

impl<K: Copy, V: Copy> Clone for Pair<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: Copy, V: Copy> Copy for Pair<K, V> {}

/// How the node code handles an entry of either layout. Implemented by [`LeafPtr`] and
/// [`Pair`]; `E::INLINE` is a constant, so every branch on it is decided at compile time.
///
/// # Safety
/// The functions that take an entry pointer need it to point into a live main node (or at a
/// live entry value), and, for `LeafPtr`, the leaf to be alive (protected or counted).
pub trait EntryOps<K, V>: Copy {
    /// Whether the entry is the key and value themselves.
    const INLINE: bool;

    /// The entry's key.
    ///
    /// # Safety
    /// See the trait docs.
    unsafe fn key<'a>(e: *const Self) -> &'a K;

    /// The entry's value.
    ///
    /// # Safety
    /// See the trait docs.
    unsafe fn value<'a>(e: *const Self) -> &'a V;

    /// The entry's hash: stored in a leaf; computed with `hash` for an inline entry.
    ///
    /// # Safety
    /// See the trait docs.
    unsafe fn hash(e: *const Self, hash: &dyn Fn(&K) -> u64) -> u64;

    /// The leaf (the `Leaves` layout only).
    fn leaf(self) -> *mut Leaf<K, V>;

    /// Whether two entries are the same stored entry (the same leaf; inline entries are never
    /// compared).
    fn same(self, other: Self) -> bool;

    /// A fresh entry: a new leaf (the caller owns it until a CAS publishes it, and frees it
    /// with [`discard`](Self::discard) otherwise), or the pair itself.
    fn fresh(hash: u64, key: K, value: V) -> Self;

    /// Frees an entry made by [`fresh`](Self::fresh) and never published.
    ///
    /// # Safety
    /// `self` came from `fresh`, was never published, and is discarded once.
    unsafe fn discard(self);

    /// Replaces the value of an entry made by [`fresh`](Self::fresh) and not yet published.
    ///
    /// # Safety
    /// As [`discard`](Self::discard), except that the entry stays the caller's.
    unsafe fn set_value(&mut self, value: V);
}

impl<K, V> EntryOps<K, V> for LeafPtr<K, V> {
    const INLINE: bool = false;

    #[inline(always)]
    unsafe fn key<'a>(e: *const Self) -> &'a K {
        // Safety: the caller's contract: `e` is readable and its leaf alive.
        unsafe {
            let entry: *const Entry<K, V> = (*(*e).0).entry();
            &(*entry).key
        }
    }

    #[inline(always)]
    unsafe fn value<'a>(e: *const Self) -> &'a V {
        // Safety: as above.
        unsafe {
            let entry: *const Entry<K, V> = (*(*e).0).entry();
            &(*entry).value
        }
    }

    #[inline(always)]
    unsafe fn hash(e: *const Self, _: &dyn Fn(&K) -> u64) -> u64 {
        // Safety: as above.
        unsafe { (*(*e).0).entry().hash }
    }

    #[inline(always)]
    fn leaf(self) -> *mut Leaf<K, V> {
        self.0
    }

    #[inline(always)]
    fn same(self, other: Self) -> bool {
        self.0 == other.0
    }

    #[inline]
    fn fresh(hash: u64, key: K, value: V) -> Self {
        LeafPtr(Box::into_raw(Box::new(Leaf::new(hash, key, value))))
    }

    unsafe fn discard(self) {
        // Safety: the caller's contract: from `Box::into_raw` in `fresh`, never shared.
        drop(unsafe { Box::from_raw(self.0) });
    }

    unsafe fn set_value(&mut self, value: V) {
        // Safety: the caller's contract: ours, unpublished. (The value it replaces was never
        // published either.)
        unsafe { (*self.0).entry_mut().value = value };
    }
}

impl<K: Copy, V: Copy> EntryOps<K, V> for Pair<K, V> {
    const INLINE: bool = true;

    #[inline(always)]
    unsafe fn key<'a>(e: *const Self) -> &'a K {
        // Safety: the caller's contract: `e` is readable for `'a`.
        unsafe { &(*e).key }
    }

    #[inline(always)]
    unsafe fn value<'a>(e: *const Self) -> &'a V {
        // Safety: as above.
        unsafe { &(*e).value }
    }

    #[inline(always)]
    unsafe fn hash(e: *const Self, hash: &dyn Fn(&K) -> u64) -> u64 {
        // Safety: as above.
        hash(unsafe { &(*e).key })
    }

    fn leaf(self) -> *mut Leaf<K, V> {
        unreachable!("inline entries have no leaf")
    }

    fn same(self, _: Self) -> bool {
        false
    }

    #[inline(always)]
    fn fresh(_: u64, key: K, value: V) -> Self {
        Pair { key, value }
    }

    unsafe fn discard(self) {}

    unsafe fn set_value(&mut self, value: V) {
        self.value = value;
    }
}

/// The entry type of layout `L`.
pub(crate) type E<K, V, L> = <L as Sealed<K, V>>::Entry;

/// Takes one counted reference on an entry (a leaf; nothing for inline entries).
///
/// # Safety
/// The entry's count is kept above zero by a holder for the duration of the call.
#[inline]
pub(crate) unsafe fn acquire_entry<K, V, T: EntryOps<K, V>>(e: T) {
    if !T::INLINE {
        // Safety: the caller's contract.
        acquire_ref(unsafe { (*e.leaf()).rc() }, 1);
    }
}

/// Drops one counted reference on an entry (a leaf; nothing for inline entries); retires
/// the leaf if that was the last.
///
/// # Safety
/// As [`release`](super::release).
#[inline]
pub(crate) unsafe fn release_entry<K, V, T: EntryOps<K, V>>(e: T, batch: &mut Batch<'_>) {
    if !T::INLINE {
        let leaf = e.leaf();
        // Safety: our reference keeps it alive.
        if drop_ref(unsafe { (*leaf).rc() }) {
            // Safety: the last reference: unreachable, retired once (by us).
            unsafe { batch.retire(leaf.cast(), LEAF) };
        }
    }
}
