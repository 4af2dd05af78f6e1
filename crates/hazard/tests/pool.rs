//! Block pools (`Domain::with_block_pool`): blocks freed through a domain are reused by later
//! allocations of their size class, up to the pool's capacity; `reclaim` and dropping the
//! domain give them back; threads allocating and freeing at once, with other threads emptying
//! the pools, never get the same block twice (each block carries its owner's pattern, checked
//! before it is freed; the sanitizer runs check the rest).
#![cfg(not(loom))]

use hazard::pool::{block_layout, CAPACITY};
use hazard::{Batch, Domain, Link};
use std::alloc::Layout;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::thread;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

#[test]
fn freed_blocks_are_reused_by_their_class() {
    let domain = Domain::new().with_block_pool();
    let a = domain.alloc_block(layout(100));
    // Safety: from `alloc_block` for this layout; not used after.
    unsafe { domain.free_block(a, layout(100)) };
    assert_eq!(domain.stats().pooled, 1);
    // Another size of the same class gets it; a size of another class does not.
    let other = domain.alloc_block(layout(200));
    assert_ne!(other, a);
    let b = domain.alloc_block(layout(97));
    assert_eq!(b, a, "a block of the same class comes from the pool");
    assert_eq!(domain.stats().pooled, 0);
    // Safety: as above.
    unsafe {
        domain.free_block(b, layout(97));
        domain.free_block(other, layout(200));
    }
    assert_eq!(domain.stats().pooled, 2);
    domain.reclaim();
    assert_eq!(domain.stats().pooled, 0, "reclaim empties the pools");
}

#[test]
fn a_pool_holds_at_most_its_capacity_and_some_layouts_are_never_pooled() {
    let domain = Domain::new().with_block_pool();
    let blocks: Vec<_> = (0..CAPACITY + 10)
        .map(|_| domain.alloc_block(layout(64)))
        .collect();
    for &b in &blocks {
        // Safety: from `alloc_block` for this layout; not used after.
        unsafe { domain.free_block(b, layout(64)) };
    }
    // A pool keeps as many blocks as a full retired list: the domain's current threshold (a
    // fresh domain's has not been raised by any scan), never more than CAPACITY.
    let capacity = domain.stats().threshold.min(CAPACITY);
    assert_eq!(domain.stats().pooled, capacity);
    for l in [layout(4096), Layout::from_size_align(64, 64).unwrap()] {
        assert_eq!(block_layout(l), l);
        let p = domain.alloc_block(l);
        assert_eq!(p as usize % l.align(), 0);
        // Safety: as above.
        unsafe { domain.free_block(p, l) };
    }
    assert_eq!(
        domain.stats().pooled,
        capacity,
        "large or over-aligned blocks are not pooled"
    );
    // Dropping the domain frees the pooled blocks (the sanitizers' leak check sees it).
    drop(domain);
}

#[test]
fn a_domain_without_pools_frees_at_once() {
    let domain = Domain::new();
    let a = domain.alloc_block(layout(100));
    // Safety: from `alloc_block` for this layout; not used after.
    unsafe { domain.free_block(a, layout(100)) };
    assert_eq!(domain.stats().pooled, 0);
}

/// A retired object allocated from the domain's blocks, freed by the reclaimer through its
/// batch (into the scanning thread's pool).
#[repr(C)]
struct Node {
    link: Link,
    payload: [u64; 5],
}

const NODE: Layout = Layout::new::<Node>();

unsafe fn reclaim_node(link: *mut Link, _kind: usize, batch: &mut Batch<'_>) {
    // Safety: a `Node` written at a block from `alloc_block(NODE)`, ours now.
    unsafe { batch.free_block(link.cast(), NODE) };
}

#[test]
fn reclaim_frees_retired_blocks_through_the_pool_and_leaves_it_empty() {
    let domain = Domain::with_retire_threshold(usize::MAX)
        .with_reclaimer(reclaim_node)
        .with_block_pool();
    {
        let mut batch = Batch::new(&domain);
        for i in 0..10 {
            let p = domain.alloc_block(NODE).cast::<Node>();
            // Safety: a fresh block for a `Node`; retired once, never shared.
            unsafe {
                p.write(Node {
                    link: Link::new(0),
                    payload: [i; 5],
                });
                batch.retire(p.cast(), 0);
            }
        }
    }
    assert_eq!(domain.stats().pending, 10);
    // `reclaim`'s scan frees them into this thread's pool, then `reclaim` empties the pools.
    assert_eq!(domain.reclaim(), 10);
    assert_eq!(domain.stats().pooled, 0);
    // The next allocations come from the global allocator again, and are usable.
    let p = domain.alloc_block(NODE);
    assert!(!p.is_null());
    // Safety: from `alloc_block` for this layout; not used after.
    unsafe { domain.free_block(p, NODE) };
}

#[test]
fn concurrent_allocations_frees_and_reclaims() {
    const THREADS: usize = 2;
    const ROUNDS: usize = 20_000;
    let domain = Arc::new(Domain::new().with_block_pool());
    let stop = Arc::new(AtomicBool::new(false));
    let drains = Arc::new(AtomicUsize::new(0));
    let reclaimer = {
        let (domain, stop, drains) = (domain.clone(), stop.clone(), drains.clone());
        thread::spawn(move || {
            // Acquire: pairs with the Release store that stops this thread (nothing is
            // published with it; the join orders the rest).
            while !stop.load(Acquire) {
                domain.reclaim();
                let _ = domain.stats().pooled;
                // Relaxed: a progress counter, read only to decide when the workers stop.
                drains.fetch_add(1, Relaxed);
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (domain, drains) = (domain.clone(), drains.clone());
            thread::spawn(move || {
                let mut live: Vec<(*mut u64, Layout, u64)> = Vec::new();
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t as u64;
                // At least ROUNDS, and on until the other thread has emptied the pools a few
                // times meanwhile (so that the two overlap however the threads are scheduled).
                let mut round = 0;
                // Relaxed: the progress counter (see the reclaiming thread).
                while round < ROUNDS || drains.load(Relaxed) < 3 {
                    round += 1;
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let l = layout(8 * (1 + (x % 100) as usize));
                    let p = domain.alloc_block(l).cast::<u64>();
                    assert!(!p.is_null());
                    let mark = (t as u64) << 32 | round as u64;
                    for i in 0..l.size() / 8 {
                        // Safety: inside a fresh block of `l`, ours.
                        unsafe { p.add(i).write(mark) };
                    }
                    live.push((p, l, mark));
                    if live.len() > 64 || x % 3 == 0 {
                        let (p, l, mark) = live.swap_remove((x >> 8) as usize % live.len());
                        for i in 0..l.size() / 8 {
                            // Safety: ours since we wrote it.
                            let v = unsafe { p.add(i).read() };
                            assert_eq!(v, mark, "a block handed out twice, or written by another");
                        }
                        // Safety: from `alloc_block` for `l`; not used after.
                        unsafe { domain.free_block(p.cast(), l) };
                    }
                }
                for (p, l, _) in live {
                    // Safety: as above.
                    unsafe { domain.free_block(p.cast(), l) };
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Release: pairs with the reclaiming thread's Acquire load.
    stop.store(true, Release);
    reclaimer.join().unwrap();
    domain.reclaim();
    assert_eq!(domain.stats().pooled, 0);
}
