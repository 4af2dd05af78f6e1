//! `std` or loom atomics, chosen in one place (see the hazard crate's `sync.rs`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicIsize, AtomicPtr, AtomicUsize};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicIsize, AtomicPtr, AtomicUsize};

/// Under loom only, a `fence(SeqCst)` where the real code relies on a `SeqCst` store (or
/// read-modify-write) followed by a `SeqCst` load never being reordered (the
/// store-buffering shape): loom models `SeqCst` accesses no stronger than `AcqRel`, but it
/// models `SeqCst` fences. Outside loom it compiles to nothing.
#[inline(always)]
pub(crate) fn loom_sc_fence() {
    #[cfg(loom)]
    fence(std::sync::atomic::Ordering::SeqCst);
}

/// The plain contents of a node (a leaf's key and value, a main node's header and array, an
/// INode's generation): written once before the node is published by an atomic store or CAS,
/// then only read, until the node is freed.
///
/// Outside loom it is the value itself, with no cost. Under loom it is a
/// `loom::cell::UnsafeCell`, so that the models check the data as well as the atomics: every
/// [`get`](Data::get) is a read access and must happen after the node's creation (a
/// publication with too weak an ordering is reported as a "causality violation"), and freeing
/// the node (dropping the `Data`) is a write access that must happen after every read (a
/// reclamation that does not wait for a reader is reported the same way).
pub(crate) struct Data<T> {
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<T>,
    #[cfg(not(loom))]
    value: T,
}

impl<T> Data<T> {
    #[inline(always)]
    pub(crate) fn new(value: T) -> Self {
        Data {
            #[cfg(loom)]
            cell: loom::cell::UnsafeCell::new(value),
            #[cfg(not(loom))]
            value,
        }
    }

    /// The contents. Under loom, one read access, checked against the writes now; the reads
    /// made later through the reference are not tracked (they are covered by this one: the
    /// node is immutable while it is alive).
    #[inline(always)]
    pub(crate) fn get(&self) -> &T {
        #[cfg(loom)]
        // Safety: a shared reference to immutable contents; loom checks the access against
        // the writes (creation, `get_mut`, drop).
        return self.cell.with(|p| unsafe { &*p });
        #[cfg(not(loom))]
        return &self.value;
    }

    /// The contents, for the owner of a node not yet published. Under loom, a write access.
    #[inline(always)]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        #[cfg(loom)]
        // Safety: `&mut self` is exclusive; loom checks the access against every other.
        return self.cell.with_mut(|p| unsafe { &mut *p });
        #[cfg(not(loom))]
        return &mut self.value;
    }
}

/// Freeing a node is a write of its contents: loom checks that every read of them happened
/// before (so that a reader's hazard pointer, or a reference count, really held the node).
#[cfg(loom)]
impl<T> Drop for Data<T> {
    fn drop(&mut self) {
        self.cell.with_mut(|_| ());
    }
}
