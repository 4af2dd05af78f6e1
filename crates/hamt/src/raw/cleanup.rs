//! Keeping the trie canonical and in its generation: renewal (copying an INode out of a
//! snapshot's generation before a write below it) and tomb folding (lazy contraction).
//!
//! # Invariants
//!
//! - A tomb is never changed: its INode is frozen once it commits, and only its parent's copy
//!   can drop it, taking its entries (none, one, or a pair) into the parent's slot.
//! - A fold moves a tomb's leaves up *counted*: the tomb keeps its references until it is
//!   reclaimed, so a reader that protects a tomb may read its leaves without validation.
//! - Folding happens only in the traversal's generation; a tomb in an older one is left to the
//!   next writer there, which renews the path first.
//! - A write that leaves a tomb folds it through the parent its cursor still protects; only if
//!   that fails (the parent changed) or entombs the parent in turn does it walk from the root
//!   ([`cleanup`](Inner::cleanup)), folding every tomb on the key's path until none is left.

use super::cache::CACHE_LEVEL;
use super::gcas_read;
use super::write::{still_holds, Change, Cursor, Position};
use super::{Decide, Inner};
use crate::layout::Layout;
use crate::node::{acquire_ref, release_main, slot_bit, INode, Kind, BITS, E};
use hazard::{Batch, HazardPointer};

/// The outcome of [`Inner::clean_parent`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fold {
    /// Folded; the parent is not a tomb.
    Done,
    /// Folded, and the parent became a tomb in turn (to be folded into its own parent).
    Entombed,
    /// Not folded: the parent changed meanwhile, or is of another generation.
    Failed,
}

impl<K, V, S, L: Layout<K, V>> Inner<K, V, S, L> {
    /// Copies the INode at `pos` (of an older generation, shared with a snapshot) into the
    /// traversal's generation: the parent's copy points to a fresh INode that shares the old
    /// one's main node. (The paper renews every child of the parent at once; renewing only the
    /// one on the write's path reads one main node instead of 32.) Does nothing if the parent
    /// changed meanwhile.
    pub(crate) fn renew(
        &self,
        pos: &Position,
        hash: u64,
        guard: &mut HazardPointer<'_>,
        batch: &mut Batch<'_>,
    ) {
        debug_assert!(pos.level > 0, "the root is always of its map's generation");
        let gen = pos.gen();
        let parent_level = pos.level - BITS;
        // Safety: the cursor protects the parent main node (validated when read).
        let pm = unsafe { &*pos.parent_main };
        let head = *pm.head();
        let bit = slot_bit(hash, parent_level);
        if head.kind() != Kind::CNode || head.nodemap & bit == 0 {
            return;
        }
        if pm.arrays::<E<K, V, L>>().nodes[head.child_index(bit)] != pos.inode {
            return;
        }
        // The new INode's reference on the shared main node. The old INode is frozen (no
        // writer can commit in its generation any more) and protected, so it keeps its
        // reference on `pos.main`: the count is above zero.
        // Safety: protected.
        acquire_ref(unsafe { &(*pos.main).rc }, 1);
        let renewed = INode::new(pos.main, gen);
        let mut ch = Change::new(
            pos.parent,
            pos.parent_main,
            pm.with_child::<E<K, V, L>>(bit, renewed, gen, &self.domain),
        );
        ch.fresh_child = renewed;
        ch.dropped_child = pos.inode;
        // Safety: the cursor protects the parent pair, the root and the old INode.
        match unsafe { self.apply(&ch, pos.root, guard, batch) } {
            Ok(settle) => {
                settle.settle(batch);
                if pos.level == CACHE_LEVEL {
                    // The old INode is off this generation's trie: not kept by the cache.
                    // Safety: the cursor protects it.
                    unsafe { self.cache.evict(hash, pos.inode, batch) };
                }
            }
            Err(_) => {
                // Safety: never reachable through a committed node: ours.
                drop(unsafe { Box::from_raw(renewed) });
                // Safety: the reference taken above.
                unsafe { release_main(pos.main, batch) };
            }
        }
    }

    /// Folds the tomb at `pos` (`pos.main`, protected) into its parent: the parent's copy
    /// holds the tomb's entries in the slot (or loses it). Fails if the parent changed
    /// meanwhile, or is not of the traversal's generation.
    pub(crate) fn clean_parent(
        &self,
        pos: &Position,
        hash: u64,
        guard: &mut HazardPointer<'_>,
        batch: &mut Batch<'_>,
    ) -> Fold {
        debug_assert!(pos.level > 0, "the root is never a tomb");
        let gen = pos.gen();
        // Safety: the cursor protects the parent INode.
        if unsafe { (*pos.parent).gen() } != gen {
            return Fold::Failed;
        }
        let parent_level = pos.level - BITS;
        // Safety: the cursor protects the parent main node (validated when read).
        let pm = unsafe { &*pos.parent_main };
        let head = *pm.head();
        let bit = slot_bit(hash, parent_level);
        if head.kind() != Kind::CNode || head.nodemap & bit == 0 {
            return Fold::Failed;
        }
        if pm.arrays::<E<K, V, L>>().nodes[head.child_index(bit)] != pos.inode {
            return Fold::Failed;
        }
        // Safety: protected; a committed tomb never changes.
        let up = unsafe { &*pos.main }.arrays::<E<K, V, L>>().data;
        let p2 = pm.with_folded(bit, up, parent_level, gen, &self.domain);
        let mut ch = Change::new(pos.parent, pos.parent_main, p2);
        for (m, &e) in ch.moved_up.iter_mut().zip(up) {
            *m = Some(e);
        }
        ch.dropped_child = pos.inode;
        // Read before the GCAS (once published, `p2` may be replaced and freed).
        // Safety: ours until the GCAS.
        let entombed = unsafe { (*p2).kind() } == Kind::Tomb;
        // Safety: the cursor protects the parent pair, the root, and the tomb and its INode
        // (which keep the moved entries alive).
        match unsafe { self.apply(&ch, pos.root, guard, batch) } {
            Ok(settle) => {
                settle.settle(batch);
                if pos.level == CACHE_LEVEL {
                    // Folded off the trie: not kept by the cache.
                    // Safety: the cursor protects the tomb's INode.
                    unsafe { self.cache.evict(hash, pos.inode, batch) };
                }
                if entombed {
                    Fold::Entombed
                } else {
                    Fold::Done
                }
            }
            Err(_) => Fold::Failed,
        }
    }

    /// After a write left a tomb on `hash`'s path: walks the path from the root and folds
    /// every tomb it meets, until none is left (folding one can entomb the parent in turn).
    /// Stops at INodes of older generations (a snapshot was taken meanwhile: the next writer
    /// there renews and cleans).
    pub(crate) fn cleanup(&self, hash: u64, c: &mut Cursor<'_>, batch: &mut Batch<'_>) {
        'restart: loop {
            let mut pos = Position::at_root(self.read_root(&mut c.root));
            let gen = pos.gen();
            let how = Decide::Live {
                root: &self.root,
                start: pos.root,
            };
            loop {
                // Safety: protected by `c.root` or `c.inode`.
                pos.main = unsafe { gcas_read(pos.inode, &mut c.main, how, &self.domain) };
                // Safety: protected and validated.
                let main = unsafe { &*pos.main };
                // Safety: protected.
                if unsafe { (*pos.inode).gen() } != gen {
                    return;
                }
                let head = *main.head();
                match head.kind() {
                    Kind::Tomb => {
                        self.clean_parent(&pos, hash, &mut c.child, batch);
                        continue 'restart;
                    }
                    Kind::List => return,
                    Kind::CNode => {
                        let bit = slot_bit(hash, pos.level);
                        if head.nodemap & bit == 0 {
                            return;
                        }
                        let child = main.arrays::<E<K, V, L>>().nodes[head.child_index(bit)];
                        c.child.publish(child);
                        if !still_holds(pos.inode, pos.main) {
                            continue;
                        }
                        c.descend();
                        pos.descend(child);
                    }
                }
            }
        }
    }
}
