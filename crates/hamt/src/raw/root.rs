//! The root: reading it, and replacing it (a snapshot's RDCSS, `clear`'s swap).
//!
//! # Invariants
//!
//! - The map's `root` holds one counted reference on its INode; a descriptor is there only
//!   while its RDCSS is being completed, and whoever reads one completes it before going on.
//! - A snapshot's new root (a fresh INode of a fresh generation) shares the old root's main
//!   node, counted once for it, and is published only by the RDCSS's commit.
//! - A root that a swap replaced is frozen: no write can commit in its generation any more
//!   (every GCAS decision reads the root).

use super::gcas::{complete_desc, Desc, Swap, COMMIT, DESC, PENDING};
use super::{gcas_read, Decide, Inner};
use crate::layout::Layout;
use crate::node::{
    acquire_ref_if_live, fresh_gen, release_main, INode, Main, DESC as DESC_KIND, E,
};
use crate::sync::{AtomicUsize, Data};
use hazard::{Batch, HazardPointer, Link};
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};

impl<K, V, S, L: Layout<K, V>> Inner<K, V, S, L> {
    /// Reads and protects the root INode, completing a snapshot's RDCSS if one is in progress.
    pub(crate) fn read_root(&self, guard: &mut HazardPointer<'_>) -> *mut INode {
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
        let empty = INode::new(Main::empty_cnode::<E<K, V, L>>(gen, &self.domain), gen);
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
}
