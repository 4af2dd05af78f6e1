//! A Treiber stack on the hazard-pointer crate, hammered by 2 to 8 threads, counting drops:
//! every node is freed exactly once, and never while a reader protects it.
#![cfg(not(loom))]

use hazard::{Domain, HazardPointer};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering::*};
use std::sync::Arc;

const LIVE: u64 = 0x11FE_11FE_11FE_11FE;
const DEAD: u64 = 0xDEAD_DEAD_DEAD_DEAD;

struct Node {
    canary: AtomicU64,
    id: usize,
    next: *mut Node,
    drops: Arc<Vec<AtomicU8>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        assert_eq!(
            self.canary.swap(DEAD, Relaxed),
            LIVE,
            "node {} dropped twice",
            self.id
        );
        let before = self.drops[self.id].fetch_add(1, Relaxed);
        assert_eq!(before, 0, "node {} dropped twice", self.id);
    }
}

// Safety: `next` is only followed under a hazard pointer; the node is shared by design.
unsafe impl Send for Node {}

struct Stack {
    head: AtomicPtr<Node>,
    domain: Domain,
}

impl Stack {
    fn push(&self, id: usize, drops: &Arc<Vec<AtomicU8>>) {
        let node = Box::into_raw(Box::new(Node {
            canary: AtomicU64::new(LIVE),
            id,
            next: ptr::null_mut(),
            drops: drops.clone(),
        }));
        let mut head = self.head.load(Relaxed);
        loop {
            // Safety: `node` is ours until the CAS publishes it.
            unsafe { (*node).next = head };
            match hazard::contention::compare_exchange(&self.head, head, node, Release, Relaxed) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    fn pop(&self) -> Option<usize> {
        let mut guard = HazardPointer::new(&self.domain);
        loop {
            let head = guard.protect(&self.head);
            if head.is_null() {
                return None;
            }
            // Safety: protected and validated; popped nodes are retired into our domain.
            let node = unsafe { &*head };
            assert_eq!(
                node.canary.load(Relaxed),
                LIVE,
                "node {} used after free",
                node.id
            );
            if hazard::contention::compare_exchange(&self.head, head, node.next, AcqRel, Relaxed)
                .is_ok()
            {
                let id = node.id;
                // Safety: unlinked by our CAS; retired once.
                unsafe { self.domain.retire_box(head) };
                return Some(id);
            }
        }
    }

    /// Reads the top node's id under protection (a pure reader).
    fn peek(&self) -> Option<usize> {
        let mut guard = HazardPointer::new(&self.domain);
        let head = guard.protect(&self.head);
        // Safety: protected and validated.
        let node = unsafe { head.as_ref()? };
        assert_eq!(
            node.canary.load(Relaxed),
            LIVE,
            "node {} used after free",
            node.id
        );
        Some(node.id)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let mut p = *self.head.get_mut();
        while !p.is_null() {
            // Safety: exclusive access; every node in the stack came from `Box::into_raw`.
            let node = unsafe { Box::from_raw(p) };
            p = node.next;
        }
    }
}

fn run(threads: usize, ops_per_thread: usize, domain: Domain) {
    let total = threads * ops_per_thread;
    let drops: Arc<Vec<AtomicU8>> = Arc::new((0..total).map(|_| AtomicU8::new(0)).collect());
    let stack = Stack {
        head: AtomicPtr::new(ptr::null_mut()),
        domain,
    };
    let popped = AtomicU64::new(0);
    // Handles are joined explicitly (not left to the scope) so that ThreadSanitizer sees the
    // join: the scope's own wait happens inside the uninstrumented standard library.
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (stack, drops, popped) = (&stack, &drops, &popped);
                s.spawn(move || {
                    for i in 0..ops_per_thread {
                        stack.push(t * ops_per_thread + i, drops);
                        if i % 4 == 3 {
                            stack.peek();
                        }
                        if i % 2 == 1 {
                            stack.pop().expect("a pushed node is there to pop");
                            stack.pop().expect("a pushed node is there to pop");
                            popped.fetch_add(2, Relaxed);
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
    });
    let stats = stack.domain.stats();
    assert_eq!(stats.retired, popped.load(Relaxed));
    // Scans happened on their own: far fewer objects pending than retired.
    assert!(stats.reclaimed > 0, "{stats:?}");
    let bound = threads * (stats.threshold_max + stats.records_allocated);
    assert!(
        stats.pending as usize <= bound,
        "{stats:?} above bound {bound}"
    );
    assert_eq!(
        stack.domain.reclaim() as u64,
        stats.pending,
        "every unprotected node frees"
    );
    drop(stack);
    for (id, d) in drops.iter().enumerate() {
        assert_eq!(
            d.load(Relaxed),
            1,
            "node {id} dropped {} times",
            d.load(Relaxed)
        );
    }
}

#[test]
fn two_threads_asymmetric() {
    run(2, 100_000, Domain::new());
}

#[test]
fn four_threads_fallback_fence() {
    run(4, 50_000, Domain::with_fallback_fence());
}

#[test]
fn eight_threads() {
    run(8, 25_000, Domain::new());
}
