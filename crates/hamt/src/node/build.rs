//! The copies of a main node that writes make: an entry replaced, added or removed, a
//! child added or replaced, a pair pushed down, a tomb folded, a list changed, and the
//! spread of entries into fresh nodes. Each returns a new node of the generation given.

use super::{slot, INode, Kind, Main, BITS, MAX_LEVEL, PAIR};
use hazard::Domain;
use std::sync::atomic::Ordering::Relaxed;
impl Main {
    /// A copy with entry `i` replaced by `e` (a CNode, tomb or list).
    pub(crate) fn with_entry<T: Copy>(&self, i: usize, e: T, gen: u64, d: &Domain) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let maps = [head.datamap, head.nodemap, head.pairmap];
        Self::alloc(
            head.kind(),
            gen,
            maps,
            &[&a.data[..i], &[e], &a.data[i + 1..]],
            &[a.nodes],
            d,
        )
    }

    /// A copy of this CNode with `e` added to slot bit `bit`, which holds no child and at most
    /// one entry (a second one makes a pair).
    pub(crate) fn with_added<T: Copy>(&self, bit: u32, e: T, gen: u64, d: &Domain) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let mut i = head.data_index(bit);
        let (mut datamap, mut pairmap) = (head.datamap, head.pairmap);
        if datamap & bit == 0 {
            datamap |= bit;
        } else {
            debug_assert_eq!(pairmap & bit, 0, "a pair is full");
            pairmap |= bit;
            i += 1;
        }
        Self::alloc(
            Kind::CNode,
            gen,
            [datamap, head.nodemap, pairmap],
            &[&a.data[..i], &[e], &a.data[i..]],
            &[a.nodes],
            d,
        )
    }

    /// A copy of this CNode whose pair at slot bit `bit` moves into the new child `child`.
    pub(crate) fn with_pushed_down<T: Copy>(
        &self,
        bit: u32,
        child: *mut INode,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let i = head.data_index(bit);
        let n = head.run(bit);
        let k = head.child_index(bit);
        Self::alloc::<T>(
            Kind::CNode,
            gen,
            [head.datamap & !bit, head.nodemap | bit, head.pairmap & !bit],
            &[&a.data[..i], &a.data[i + n..]],
            &[&a.nodes[..k], &[child], &a.nodes[k..]],
            d,
        )
    }

    /// A copy of this CNode with the child of slot bit `bit` replaced by `child`.
    pub(crate) fn with_child<T: Copy>(
        &self,
        bit: u32,
        child: *mut INode,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let k = head.child_index(bit);
        Self::alloc::<T>(
            Kind::CNode,
            gen,
            [head.datamap, head.nodemap, head.pairmap],
            &[a.data],
            &[&a.nodes[..k], &[child], &a.nodes[k + 1..]],
            d,
        )
    }

    /// A copy of this CNode without entry `i`, which is in slot bit `bit`, contracted for
    /// `level` (see [`contracted`](Self::contracted)).
    pub(crate) fn with_removed<T: Copy>(
        &self,
        bit: u32,
        i: usize,
        level: u32,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        let head = *self.head();
        let a = self.arrays::<T>();
        let (datamap, pairmap) = if head.pairmap & bit != 0 {
            (head.datamap, head.pairmap & !bit)
        } else {
            (head.datamap & !bit, head.pairmap)
        };
        Self::contracted(
            [datamap, head.nodemap, pairmap],
            &[&a.data[..i], &a.data[i + 1..]],
            a.nodes,
            level,
            gen,
            d,
        )
    }

    /// A copy of this CNode with the child of slot bit `bit` (a tomb's INode) replaced by the
    /// tomb's entries `up` (none, one, or a pair), contracted for `level`.
    pub(crate) fn with_folded<T: Copy>(
        &self,
        bit: u32,
        up: &[T],
        level: u32,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        debug_assert!(up.len() <= PAIR);
        let head = *self.head();
        let a = self.arrays::<T>();
        let i = head.data_index(bit);
        let k = head.child_index(bit);
        let datamap = if up.is_empty() {
            head.datamap
        } else {
            head.datamap | bit
        };
        let pairmap = if up.len() == PAIR {
            head.pairmap | bit
        } else {
            head.pairmap
        };
        let nodes = [&a.nodes[..k], &a.nodes[k + 1..]];
        let data = [&a.data[..i], up, &a.data[i..]];
        if level > 0 && a.nodes.len() == 1 && a.data.len() + up.len() <= PAIR {
            return Self::tomb(&data, gen, d);
        }
        Self::alloc(
            Kind::CNode,
            gen,
            [datamap, head.nodemap & !bit, pairmap],
            &data,
            &nodes,
            d,
        )
    }

    /// A CNode with these maps and arrays, or, below the root, a tomb if it would hold no
    /// child and at most [`PAIR`] entries (the canonical form after deletes).
    fn contracted<T: Copy>(
        maps: [u32; 3],
        data: &[&[T]],
        nodes: &[*mut INode],
        level: u32,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        let ndata: usize = data.iter().map(|c| c.len()).sum();
        if level > 0 && nodes.is_empty() && ndata <= PAIR {
            return Self::tomb(data, gen, d);
        }
        Self::alloc(Kind::CNode, gen, maps, data, &[nodes], d)
    }

    /// A copy of this list with `e` appended.
    pub(crate) fn list_appended<T: Copy>(&self, e: T, gen: u64, d: &Domain) -> *mut Main {
        Self::list(&[self.arrays::<T>().data, &[e]], gen, d)
    }

    /// A copy of this list without entry `i`. A list left empty becomes an empty tomb.
    pub(crate) fn list_removed<T: Copy>(&self, i: usize, gen: u64, d: &Domain) -> *mut Main {
        let data = self.arrays::<T>().data;
        if data.len() == 1 {
            return Self::tomb::<T>(&[], gen, d);
        }
        Self::list(&[&data[..i], &data[i + 1..]], gen, d)
    }

    /// The main node of a new INode at `level` holding `entries` (a full pair and the key
    /// that joins it, all with the same slot one level up): a CNode that spreads them over its
    /// slots (a pair where two share one), a CNode with one child INode where all three share
    /// one (built the same way one level down), or a collision list past the last level. No
    /// allocation but the nodes themselves (a write pushes a pair down on about a fifth of
    /// its inserts in a map whose bottom level is full).
    pub(crate) fn spread<T: Copy>(
        entries: &[(T, u64); PAIR + 1],
        level: u32,
        gen: u64,
        d: &Domain,
    ) -> *mut Main {
        if level >= MAX_LEVEL {
            return Self::list(&[&entries.map(|(e, _)| e)], gen, d);
        }
        let mut sorted = *entries;
        // (A stable sort of three elements: insertion sort, no allocation.)
        sorted.sort_by_key(|&(_, h)| slot(h, level));
        let first = slot(sorted[0].1, level);
        if first == slot(sorted[PAIR].1, level) {
            let child = INode::new(Self::spread(&sorted, level + BITS, gen, d), gen);
            return Self::alloc::<T>(Kind::CNode, gen, [0, 1 << first, 0], &[], &[&[child]], d);
        }
        // At most two share a slot: a pair, in slot order like the rest.
        let (mut datamap, mut pairmap) = (0u32, 0u32);
        for &(_, h) in &sorted {
            let bit = 1 << slot(h, level);
            if datamap & bit != 0 {
                pairmap |= bit;
            }
            datamap |= bit;
        }
        Self::alloc(
            Kind::CNode,
            gen,
            [datamap, 0, pairmap],
            &[&sorted.map(|(e, _)| e)],
            &[],
            d,
        )
    }
}

/// Frees a fresh INode built by [`Main::spread`] and never published, with the INodes and
/// main nodes below it, but no entry: leaves belong to the caller.
///
/// # Safety
/// 1. `inode` came from a [`Main::spread`] tree (every node in it is fresh) and was never
///    published; its entries are of type `T`.
pub(crate) unsafe fn free_unpublished<T>(inode: *mut INode) {
    let mut stack = vec![inode];
    while let Some(i) = stack.pop() {
        // Safety: 1. fresh, so ours.
        let inode = unsafe { Box::from_raw(i) };
        // Relaxed: never shared.
        let m = inode.main.load(Relaxed);
        // Safety: 1. a fresh main node of the tree.
        stack.extend_from_slice(unsafe { &*m }.arrays::<T>().nodes);
        // Safety: 1.
        unsafe { Main::free::<T>(m) };
    }
}
