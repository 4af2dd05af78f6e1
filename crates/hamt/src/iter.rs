//! Iteration over the live trie, in hash order.
//!
//! The iterator walks the trie depth first, holding protections on the INodes and main nodes
//! of its path. Entries come out in the order of their hashes' 5-bit groups read from the
//! root down (see [`order`]), which does not depend on the shape of the trie: a leaf keeps its
//! place in that order whether it sits in a CNode, a tomb or one level higher after
//! contraction. When a validation fails (a writer replaced a main node on the path), the
//! iterator drops its path and seeks again from the root to the first entry after the last
//! one it yielded. So no entry is yielded twice, and an entry present during the whole
//! iteration is yielded once. Keys of one collision list (equal hashes) are ordered by the
//! list's sequence numbers, which survive every copy of the list. The iterator holds a
//! bounded number of hazard records (two per level of its path, plus one per `Ref` the
//! caller keeps), whatever the size of the map.

use crate::node::{Branch, INode, Kind, Leaf, Main, BITS, MAX_LEVEL};
use crate::Ref;
use hazard::{Domain, HazardPointer};
use std::marker::PhantomData;
use std::sync::atomic::Ordering::Acquire;

/// The position of `hash` in iteration order: its 5-bit groups, the root's first.
pub(crate) fn order(hash: u64) -> u64 {
    let mut o = 0;
    let mut level = 0;
    while level < MAX_LEVEL {
        let g = (hash >> level) & 31;
        // Groups 0..=11 take bits 63..=4, group 12 (4 bits) bits 3..=0.
        o |= if level < 60 { g << (59 - level) } else { g };
        level += BITS;
    }
    o
}

/// The slot that order key `o` takes at `level` (the inverse of [`order`] for one group).
fn group(o: u64, level: u32) -> u32 {
    if level < 60 {
        ((o >> (59 - level)) & 31) as u32
    } else {
        (o & 15) as u32
    }
}

struct Frame<'a> {
    inode_guard: HazardPointer<'a>,
    main_guard: HazardPointer<'a>,
    inode: *mut INode,
    main: *mut Main,
    /// Next array index to visit.
    next: usize,
    level: u32,
    /// Whether this frame's path equals the last yielded entry's (so earlier slots are done).
    tight: bool,
}

/// An iterator over the entries of a map, yielding a [`Ref`] for each.
///
/// See [`Hamt::iter`](crate::Hamt::iter) for what it yields under concurrent writes.
pub struct Iter<'a, K, V> {
    domain: &'a Domain,
    root: *mut INode,
    stack: Vec<Frame<'a>>,
    spare: Vec<HazardPointer<'a>>,
    /// Position of the last entry yielded: its hash's order key, and its sequence number in
    /// a collision list (0 for a leaf outside lists).
    last: Option<(u64, u64)>,
    started: bool,
    _marker: PhantomData<&'a (K, V)>,
}

impl<'a, K, V> Iter<'a, K, V> {
    pub(crate) fn new(domain: &'a Domain, root: *mut INode) -> Self {
        Iter {
            domain,
            root,
            stack: Vec::new(),
            spare: Vec::new(),
            last: None,
            started: false,
            _marker: PhantomData,
        }
    }

    fn guard(&mut self) -> HazardPointer<'a> {
        self.spare
            .pop()
            .unwrap_or_else(|| HazardPointer::new(self.domain))
    }

    /// Pushes a frame for `inode` (protected by `inode_guard`, or the root).
    fn push(&mut self, inode_guard: HazardPointer<'a>, inode: *mut INode, level: u32, tight: bool) {
        let mut main_guard = self.guard();
        // Safety: `inode` is the root or protected by `inode_guard`, validated by the caller.
        let main = main_guard.protect(unsafe { &(*inode).main });
        // Safety: protected and validated.
        let m = unsafe { &*main };
        let next = if tight && m.kind() == Kind::CNode {
            m.index(1 << group(self.last_order(), level))
        } else {
            0
        };
        self.stack.push(Frame {
            inode_guard,
            main_guard,
            inode,
            main,
            next,
            level,
            tight,
        });
    }

    fn pop(&mut self) {
        if let Some(f) = self.stack.pop() {
            self.spare.push(f.inode_guard);
            self.spare.push(f.main_guard);
        }
    }

    /// Drops the path and starts again from the root, after the last entry yielded.
    fn restart(&mut self) {
        while !self.stack.is_empty() {
            self.pop();
        }
        let g = self.guard();
        self.push(g, self.root, 0, self.last.is_some());
    }

    /// Whether `frame`'s main node still holds, for the entry just protected: its INode still
    /// points to it, or for a tomb, the parent still holds the tombed INode.
    fn valid(&self) -> bool {
        let n = self.stack.len();
        let f = &self.stack[n - 1];
        // Safety: protected.
        let (inode, main) = if unsafe { (*f.main).kind() } == Kind::Tomb {
            let p = &self.stack[n - 2];
            (p.inode, p.main)
        } else {
            (f.inode, f.main)
        };
        // Acquire: the validating load (see the `raw` module docs).
        // Safety: the root or protected.
        unsafe { (*inode).main.load(Acquire) == main }
    }

    fn last_order(&self) -> u64 {
        self.last.map_or(0, |(o, _)| o)
    }

    /// Whether the entry at position `at` was yielded already (or skipped as before it).
    fn is_done(&self, at: (u64, u64)) -> bool {
        self.last.is_some_and(|l| at <= l)
    }
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = Ref<'a, K, V>;

    fn next(&mut self) -> Option<Ref<'a, K, V>> {
        if !self.started {
            self.started = true;
            self.restart();
        }
        loop {
            let f = self.stack.last_mut()?;
            // Safety: protected and validated when the frame was pushed.
            let main = unsafe { &*f.main };
            let entries = main.entries();
            if f.next >= entries.len() {
                self.pop();
                continue;
            }
            let j = f.next;
            f.next += 1;
            let (level, tight) = (f.level, f.tight);
            let b: Branch = entries[j];
            if b.is_none() {
                continue;
            }
            let mut g = self.guard();
            g.publish(b.ptr());
            if !self.valid() {
                self.spare.push(g);
                self.restart();
                continue;
            }
            if !b.is_leaf() {
                // A child INode: tight if it is on the last entry's path.
                let s = group(self.last_order(), level);
                let child_tight = tight && main.bitmap() & (1 << s) != 0 && j == main.index(1 << s);
                self.push(g, b.as_inode(), level + BITS, child_tight);
                continue;
            }
            // Safety: protected and validated.
            let leaf = unsafe { &*b.as_leaf::<K, V>() };
            let seq = if main.kind() == Kind::List {
                main.seqs()[j]
            } else {
                0
            };
            let at = (order(leaf.hash), seq);
            if self.is_done(at) {
                self.spare.push(g);
                continue;
            }
            self.last = Some(at);
            return Some(Ref::new(g, leaf as *const Leaf<K, V>));
        }
    }
}

// Compile-time check that `slot` and `group` agree (used by the tests in `map`).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::slot;

    #[test]
    fn order_is_a_bijection_that_groups_by_slot() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let o = order(x);
            let mut level = 0;
            while level < MAX_LEVEL {
                assert_eq!(group(o, level), slot(x, level));
                level += BITS;
            }
        }
        assert!(
            order(1) > order(u64::MAX << 5),
            "the root's group is the most significant"
        );
    }
}
