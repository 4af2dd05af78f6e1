//! When reclamation happens, what it frees, and the bounds `stats()` reports.
#![cfg(not(loom))]

use hazard::{Domain, HazardPointer, RETIRE_THRESHOLD_MIN};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::*};
use std::sync::Arc;

/// Counts its drops in a shared counter.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Relaxed);
    }
}

fn retire_n(domain: &Domain, n: usize, drops: &Arc<AtomicUsize>) {
    for _ in 0..n {
        let p = Box::into_raw(Box::new(Tracked(drops.clone())));
        // Safety: never shared, so trivially unlinked; retired once.
        unsafe { domain.retire_box(p) };
    }
}

/// `retire_without_scan` queues past the threshold without scanning; the next ordinary
/// retire scans them all; and `with_retire_threshold` moves the threshold.
#[test]
fn retire_without_scan_and_a_custom_threshold() {
    let domain = Domain::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let threshold = domain.stats().threshold;
    for _ in 0..threshold * 2 {
        unsafe fn reclaim(p: *mut (), _: &Domain) {
            // Safety: a `Tracked` box, reclaimed once.
            drop(unsafe { Box::from_raw(p.cast::<Tracked>()) });
        }
        let p = Box::into_raw(Box::new(Tracked(drops.clone())));
        // Safety: never shared; retired once; `reclaim` matches.
        unsafe { domain.retire_without_scan(p.cast(), reclaim) };
    }
    assert_eq!(drops.load(Relaxed), 0, "no scan from retire_without_scan");
    assert_eq!(domain.stats().pending as usize, threshold * 2);
    retire_n(&domain, 1, &drops);
    assert_eq!(
        drops.load(Relaxed),
        threshold * 2 + 1,
        "an ordinary retire scans all"
    );

    let big = Domain::with_retire_threshold(threshold * 4);
    assert_eq!(big.stats().threshold, threshold * 4);
    retire_n(&big, threshold * 2, &drops);
    assert_eq!(
        big.stats().pending as usize,
        threshold * 2,
        "below the custom threshold"
    );
    assert_eq!(big.reclaim(), threshold * 2);
}

#[test]
fn scans_start_at_the_threshold_without_an_explicit_call() {
    let domain = Domain::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let threshold = domain.stats().threshold;
    assert!(threshold >= RETIRE_THRESHOLD_MIN);
    retire_n(&domain, threshold - 1, &drops);
    assert_eq!(drops.load(Relaxed), 0, "no scan below the threshold");
    assert_eq!(domain.stats().pending as usize, threshold - 1);
    retire_n(&domain, 1, &drops);
    assert_eq!(
        drops.load(Relaxed),
        threshold,
        "the threshold-th retire scans"
    );
    let stats = domain.stats();
    assert_eq!(
        (stats.retired, stats.reclaimed, stats.pending),
        (threshold as u64, threshold as u64, 0)
    );
}

#[test]
fn protected_objects_survive_scans_until_released() {
    let domain = Domain::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = AtomicPtr::new(Box::into_raw(Box::new(Tracked(drops.clone()))));
    let mut guard = HazardPointer::new(&domain);
    let p = guard.protect(&cell);
    cell.store(std::ptr::null_mut(), Release);
    // Safety: unlinked above; retired once.
    unsafe { domain.retire_box(p) };
    // Enough retires to scan several times.
    retire_n(&domain, 3 * domain.stats().threshold, &drops);
    domain.reclaim();
    assert_eq!(domain.stats().pending, 1, "the protected object is kept");
    // Safety: still protected.
    assert_eq!(unsafe { &*p }.0.load(Relaxed), drops.load(Relaxed));
    guard.reset();
    assert_eq!(domain.reclaim(), 1);
    assert_eq!(domain.stats().pending, 0);
}

#[test]
fn objects_retired_by_exited_threads_are_freed_by_a_later_scan() {
    let domain = Domain::new();
    let exited = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| retire_n(&domain, 10, &exited)))
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    assert_eq!(
        exited.load(Relaxed),
        0,
        "below the threshold nothing was scanned"
    );
    assert_eq!(domain.stats().pending, 40);
    // No explicit reclaim: this thread reaching its threshold scans every list. (This thread
    // may have inherited an exited thread's block, and with it its list's count, so its own
    // threshold comes sooner; either way the exited threads' objects are freed.)
    let mine = Arc::new(AtomicUsize::new(0));
    // (The threshold is read once: the scan may raise it for the next scans, from its
    // barrier's time, when other tests' threads are running.)
    let threshold = domain.stats().threshold;
    retire_n(&domain, threshold, &mine);
    assert_eq!(
        exited.load(Relaxed),
        40,
        "the exited threads' objects were freed"
    );
    assert_eq!(
        mine.load(Relaxed) as u64 + domain.stats().pending,
        threshold as u64
    );
}

#[test]
fn explicit_reclaim_frees_exited_threads_lists() {
    let domain = Domain::new();
    let drops = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        s.spawn(|| retire_n(&domain, 7, &drops)).join().unwrap();
    });
    assert_eq!(domain.reclaim(), 7);
    assert_eq!(drops.load(Relaxed), 7);
}

#[test]
fn dropping_the_domain_frees_everything_retired() {
    let domain = Domain::new();
    let drops = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| retire_n(&domain, 5, &drops)))
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    retire_n(&domain, 5, &drops);
    drop(domain);
    assert_eq!(drops.load(Relaxed), 20);
}

/// A node that, when reclaimed, retires its child: the cascade must be queued, not recursed.
struct Chain {
    child: *mut Chain,
    drops: Arc<AtomicUsize>,
}

unsafe fn reclaim_chain(p: *mut (), domain: &Domain) {
    // Safety: retired from `Box::into_raw` below, reclaimed once.
    let node = unsafe { Box::from_raw(p.cast::<Chain>()) };
    node.drops.fetch_add(1, Relaxed);
    if !node.child.is_null() {
        // Safety: the child is reachable only through its parent, which is gone.
        unsafe { domain.retire(node.child.cast(), reclaim_chain) };
    }
}

fn chain(len: usize, drops: &Arc<AtomicUsize>) -> *mut Chain {
    let mut head = std::ptr::null_mut();
    for _ in 0..len {
        head = Box::into_raw(Box::new(Chain {
            child: head,
            drops: drops.clone(),
        }));
    }
    head
}

#[test]
fn cascades_are_iterative_in_reclaim_and_in_drop() {
    let drops = Arc::new(AtomicUsize::new(0));
    let domain = Domain::new();
    // Safety: unshared chain, retired once, reclaim_chain matches its layout.
    unsafe { domain.retire(chain(200_000, &drops).cast(), reclaim_chain) };
    assert_eq!(domain.reclaim(), 200_000);
    assert_eq!(drops.load(Relaxed), 200_000);

    let domain = Domain::new();
    // Safety: as above.
    unsafe { domain.retire(chain(200_000, &drops).cast(), reclaim_chain) };
    drop(domain);
    assert_eq!(drops.load(Relaxed), 400_000);
}

struct Bomb(Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Relaxed);
        panic!("user Drop panics");
    }
}

#[test]
fn a_panicking_drop_does_not_lose_other_objects() {
    let domain = Domain::new();
    let drops = Arc::new(AtomicUsize::new(0));
    retire_n(&domain, 10, &drops);
    // Safety: unshared; retired once.
    unsafe { domain.retire_box(Box::into_raw(Box::new(Bomb(drops.clone())))) };
    retire_n(&domain, 10, &drops);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| domain.reclaim()));
    assert!(result.is_err(), "the user's panic propagates");
    assert_eq!(
        drops.load(Relaxed),
        21,
        "every other object was still reclaimed"
    );
    assert_eq!(domain.stats().pending, 0);
}

#[test]
fn a_retire_storm_stays_inside_the_bound() {
    let domain = Domain::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let threads = 4;
    let max_pending = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let mut hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    // Counts this thread as done even if it panics, so the watcher stops.
                    struct Done<'a>(&'a AtomicUsize);
                    impl Drop for Done<'_> {
                        fn drop(&mut self) {
                            self.0.fetch_add(1, Relaxed);
                        }
                    }
                    let _done = Done(&done);
                    retire_n(&domain, 200_000, &drops);
                })
            })
            .collect();
        hs.push(s.spawn(|| {
            while done.load(Relaxed) < threads {
                max_pending.fetch_max(domain.stats().pending as usize, Relaxed);
                std::thread::yield_now();
            }
        }));
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    let stats = domain.stats();
    // Stats are read list by list while threads retire, so allow one threshold of skew. (The
    // threshold moves with the scans' barrier times: the bound is for the most it can be.)
    let bound = threads * (stats.threshold_max + stats.records_allocated) + stats.threshold_max;
    let seen = max_pending.load(Relaxed);
    assert!(seen <= bound, "pending reached {seen}, bound {bound}");
    assert_eq!(stats.retired, 800_000);
    assert!(stats.reclaimed >= 800_000 - bound as u64);
}

#[test]
fn short_lived_threads_reuse_hazard_records() {
    let domain = Domain::new();
    let cell = AtomicPtr::new(Box::into_raw(Box::new(1u64)));
    // Make sure this thread has its block, then count.
    drop(HazardPointer::new(&domain));
    let before = domain.stats().records_allocated;
    for _ in 0..200 {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut g = HazardPointer::new(&domain);
                // Safety: the cell is never changed, the value lives until the end.
                assert_eq!(unsafe { *g.protect(&cell) }, 1);
            })
            .join()
            .unwrap();
        });
    }
    let after = domain.stats();
    // Other tests in this binary run in parallel threads and may hold blocks; 200 threads
    // one after another must not have added 200 blocks.
    assert!(
        after.records_allocated <= before + 16 * 8,
        "records grew from {before} to {}",
        after.records_allocated
    );
    // Safety: from Box::into_raw above, never retired.
    drop(unsafe { Box::from_raw(cell.into_inner()) });
}

#[test]
fn many_guards_on_one_thread_use_overflow_records() {
    let domain = Domain::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let cells: Vec<AtomicPtr<Tracked>> = (0..40)
        .map(|_| AtomicPtr::new(Box::into_raw(Box::new(Tracked(drops.clone())))))
        .collect();
    let mut guards: Vec<HazardPointer<'_>> = Vec::new();
    for cell in &cells {
        let mut g = HazardPointer::new(&domain);
        let p = g.protect(cell);
        cell.store(std::ptr::null_mut(), Release);
        // Safety: unlinked above, retired once.
        unsafe { domain.retire_box(p) };
        guards.push(g);
    }
    assert_eq!(domain.reclaim(), 0, "all 40 are protected");
    guards.truncate(20);
    assert_eq!(domain.reclaim(), 20);
    guards.clear();
    assert_eq!(domain.reclaim(), 20);
    assert_eq!(drops.load(Relaxed), 40);
}

#[test]
fn swap_moves_protection_without_a_gap() {
    let domain = Domain::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let a = AtomicPtr::new(Box::into_raw(Box::new(Tracked(drops.clone()))));
    let mut g1 = HazardPointer::new(&domain);
    let mut g2 = HazardPointer::new(&domain);
    let p = g1.protect(&a);
    g1.swap(&mut g2);
    assert_eq!(g2.protected(), p.cast());
    assert!(g1.protected().is_null());
    a.store(std::ptr::null_mut(), Release);
    // Safety: unlinked above, retired once.
    unsafe { domain.retire_box(p) };
    assert_eq!(domain.reclaim(), 0);
    drop(g2);
    assert_eq!(domain.reclaim(), 1);
}

#[test]
fn contended_cas_counter_is_exact_and_estimate_adapts() {
    use hazard::contention;
    let cell = AtomicPtr::new(std::ptr::null_mut::<u8>());
    let threads = 4;
    let per = 50_000;
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..per {
                        let mut cur = cell.load(Relaxed);
                        while let Err(now) = contention::compare_exchange(
                            &cell,
                            cur,
                            cur.wrapping_add(1),
                            AcqRel,
                            Relaxed,
                        ) {
                            cur = now;
                        }
                    }
                    assert!(contention::estimate() <= contention::MAX_LEVEL);
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
    });
    assert_eq!(cell.load(Relaxed) as usize, threads * per);
    // Successes lower the estimate again.
    for _ in 0..=contention::MAX_LEVEL {
        contention::succeeded();
    }
    assert_eq!(contention::estimate(), 0);
}
