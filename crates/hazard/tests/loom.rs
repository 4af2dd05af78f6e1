//! loom models of the hazard-pointer protocol, run on the fallback fence (loom cannot model
//! `membarrier`; see the `fence` module for the argument that covers it).
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p concurrent-hamt-hazard --test loom --release`
#![cfg(loom)]

use hazard::{contention, Batch, Domain, HazardPointer, Link};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicPtr, AtomicUsize};
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};

/// This thread's CPU time so far, in seconds (Linux): a model runs on one thread, so this is
/// its cost whatever the load of the machine.
fn thread_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// Runs a loom model (as `loom::model`, honouring `LOOM_MAX_PREEMPTIONS`) and reports its
/// size on stderr: `loom model NAME: bound B, N iterations, T s (CPU C s)` (see `scripts/loom.sh`).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let iterations = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = iterations.clone();
    let builder = loom::model::Builder::new();
    let start = std::time::Instant::now();
    let cpu = thread_cpu();
    builder.check(move || {
        // Relaxed: a std atomic outside the model, counting its iterations (all run on
        // this thread, one after another); read once the model is done.
        counter.fetch_add(1, Relaxed);
        f();
    });
    let cpu = match (cpu, thread_cpu()) {
        (Some(a), Some(b)) => format!(" (CPU {:.1} s)", b - a),
        _ => String::new(),
    };
    eprintln!(
        "loom model {}: bound {}, {} iterations, {:.1} s{cpu}",
        std::thread::current().name().unwrap_or("?"),
        builder
            .preemption_bound
            .map_or("none".to_string(), |b| b.to_string()),
        iterations.load(Relaxed),
        start.elapsed().as_secs_f64()
    );
}

/// An object whose reclamation writes to it: loom reports a data race if that write is not
/// ordered after every reader's access.
struct Obj {
    value: UnsafeCell<usize>,
    drops: Arc<AtomicUsize>,
}

fn obj(value: usize, drops: &Arc<AtomicUsize>) -> *mut Obj {
    Box::into_raw(Box::new(Obj {
        value: UnsafeCell::new(value),
        drops: drops.clone(),
    }))
}

unsafe fn reclaim_obj(p: *mut (), _: &Domain) {
    // Safety: retired from `obj`, reclaimed once.
    let o = unsafe { Box::from_raw(p.cast::<Obj>()) };
    // Safety: loom checks that this write does not race with a reader.
    o.value.with_mut(|v| unsafe { *v = 0 });
    o.drops.fetch_add(1, Relaxed);
}

fn read(domain: &Domain, cell: &AtomicPtr<Obj>) -> usize {
    let mut guard = HazardPointer::new(domain);
    let p = guard.protect(cell);
    // Safety: protected and validated; loom checks the read against reclamation.
    unsafe { (*p).value.with(|v| *v) }
}

/// Two readers protect and read while the main thread unlinks, retires and reclaims.
#[test]
fn protection_against_concurrent_retirement() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let domain = Arc::new(Domain::new());
        let cell = Arc::new(AtomicPtr::new(obj(1, &drops)));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (domain, cell) = (domain.clone(), cell.clone());
                thread::spawn(move || {
                    let v = read(&domain, &cell);
                    assert!(v == 1 || v == 2, "read {v}: a freed or torn object");
                })
            })
            .collect();
        // AcqRel: Release publishes the new object; Acquire takes the old one to retire it.
        let old = cell.swap(obj(2, &drops), AcqRel);
        // Safety: unlinked by the swap; retired once.
        unsafe { domain.retire(old.cast(), reclaim_obj) };
        domain.reclaim();
        for r in readers {
            r.join().unwrap();
        }
        domain.reclaim();
        assert_eq!(
            drops.load(Relaxed),
            1,
            "the old object is freed exactly once"
        );
        assert_eq!(domain.stats().pending, 0);
        // Safety: no thread uses the cell any more.
        drop(unsafe { Box::from_raw(cell.load(Relaxed)) });
    });
}

/// A thread retires (below the threshold, so without scanning) and exits; its list stays in
/// the domain and is freed by a scan on another thread, never while a reader protects the
/// object, and the exited thread's hazard records return to the pool.
#[test]
fn thread_exit_hands_off_records_and_retired_list() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let domain = Arc::new(Domain::new());
        let cell = Arc::new(AtomicPtr::new(obj(1, &drops)));
        let reader = {
            let (domain, cell) = (domain.clone(), cell.clone());
            thread::spawn(move || {
                let v = read(&domain, &cell);
                assert!(v == 1 || v == 2);
            })
        };
        let retirer = {
            let (domain, cell, drops) = (domain.clone(), cell.clone(), drops.clone());
            thread::spawn(move || {
                let old = cell.swap(obj(2, &drops), AcqRel); // AcqRel: as above.
                                                             // Safety: unlinked by the swap; retired once.
                unsafe { domain.retire(old.cast(), reclaim_obj) };
            })
        };
        retirer.join().unwrap();
        assert_eq!(
            domain.stats().pending,
            1,
            "one object below the threshold stays retired"
        );
        domain.reclaim(); // may run while the reader still protects the object
        reader.join().unwrap();
        domain.reclaim();
        assert_eq!(drops.load(Relaxed), 1);
        assert_eq!(domain.stats().pending, 0);
        // loom's `join` returns before the thread's locals are destroyed (std's waits), so
        // wait for the hand-off: both exited threads return their blocks of records. A block
        // never returned would spin here forever, which loom reports.
        while domain.stats().records_in_use != 0 {
            thread::yield_now();
        }
        // Safety: no thread uses the cell any more.
        drop(unsafe { Box::from_raw(cell.load(Relaxed)) });
    });
}

/// With the threshold at two, the second retire of a thread scans on its own.
#[test]
fn threshold_scan_against_a_reader() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let domain = Arc::new(Domain::new());
        let cell = Arc::new(AtomicPtr::new(obj(1, &drops)));
        let reader = {
            let (domain, cell) = (domain.clone(), cell.clone());
            thread::spawn(move || {
                let v = read(&domain, &cell);
                assert!((1..=3).contains(&v));
            })
        };
        for v in 2..=3 {
            let old = cell.swap(obj(v, &drops), AcqRel); // AcqRel: as above.
                                                         // Safety: unlinked by the swap; retired once.
            unsafe { domain.retire(old.cast(), reclaim_obj) };
        }
        reader.join().unwrap();
        assert!(domain.stats().reclaimed + domain.stats().pending == 2);
        drop(domain);
        assert_eq!(drops.load(Relaxed), 2, "dropping the domain frees the rest");
        // Safety: no thread uses the cell any more.
        drop(unsafe { Box::from_raw(cell.load(Relaxed)) });
    });
}

/// Two threads increment a counter through the contention-managed CAS: the back-off loop
/// terminates and no increment is lost.
#[test]
fn back_off_loop() {
    model(|| {
        let cell = Arc::new(AtomicPtr::new(std::ptr::null_mut::<u8>()));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let cell = cell.clone();
                thread::spawn(move || {
                    // Relaxed: a first guess, corrected by the CAS.
                    let mut cur = cell.load(Relaxed);
                    // AcqRel/Relaxed: a counter; nothing else is published.
                    while let Err(now) = contention::compare_exchange(
                        &cell,
                        cur,
                        cur.wrapping_add(1),
                        AcqRel,
                        Relaxed,
                    ) {
                        cur = now;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cell.load(Relaxed) as usize, 2);
    });
}

// ---------------------------------------------------------------------------------------
// Batches: objects linked through themselves, pushed with one CAS per batch

/// An object retired through a [`Batch`]: its link first, and a value that its reclamation
/// overwrites (so that loom reports a reader's access that is not ordered before the free).
#[repr(C)]
struct Linked {
    link: Link,
    value: UnsafeCell<usize>,
    drops: Arc<AtomicUsize>,
}

fn linked(value: usize, drops: &Arc<AtomicUsize>) -> *mut Linked {
    Box::into_raw(Box::new(Linked {
        link: Link::new(0),
        value: UnsafeCell::new(value),
        drops: drops.clone(),
    }))
}

/// The models' reclaimer: kind 0 frees a `Linked`; kind 1 frees one and retires the object
/// whose address it holds in its value (a cascade, queued in `batch`).
unsafe fn reclaim_linked(link: *mut Link, kind: usize, batch: &mut Batch<'_>) {
    // Safety: every object retired in these models is a `Linked` from `linked`.
    let o = unsafe { Box::from_raw(link.cast::<Linked>()) };
    // Safety: loom checks that this access does not race with a reader's.
    let child = o
        .value
        .with_mut(|v| unsafe { std::mem::replace(&mut *v, 0) });
    if kind == 1 {
        // Safety: the child was reachable only through `o`, which is gone; retired once.
        unsafe { batch.retire(child as *mut Link, 0) };
    }
    o.drops.fetch_add(1, Relaxed);
}

fn read_linked(domain: &Domain, cell: &AtomicPtr<Linked>) -> usize {
    let mut guard = HazardPointer::new(domain);
    let p = guard.protect(cell);
    // Safety: protected and validated; loom checks the read against reclamation.
    unsafe { (*p).value.with(|v| *v) }
}

/// A reader protects an object while a writer unlinks it and retires it through a batch (plain
/// stores to its link, then one CAS at the flush), and the main thread scans: the object is
/// freed exactly once, never while the reader uses it.
#[test]
fn batch_retire_against_a_reader() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let domain =
            Arc::new(Domain::with_retire_threshold(usize::MAX).with_reclaimer(reclaim_linked));
        let cell = Arc::new(AtomicPtr::new(linked(1, &drops)));
        let reader = {
            let (domain, cell) = (domain.clone(), cell.clone());
            thread::spawn(move || {
                let v = read_linked(&domain, &cell);
                assert!(v == 1 || v == 2, "read {v}: a freed or torn object");
            })
        };
        let writer = {
            let (domain, cell, drops) = (domain.clone(), cell.clone(), drops.clone());
            thread::spawn(move || {
                let mut batch = Batch::new(&domain);
                // AcqRel: Release publishes the new object; Acquire takes the old one.
                let old = cell.swap(linked(2, &drops), AcqRel);
                // Safety: unlinked by the swap; retired once; a `Linked` starts with its link.
                unsafe { batch.retire(old.cast(), 0) };
                drop(batch); // the flush
            })
        };
        domain.reclaim(); // concurrent with the reader and the flush
        writer.join().unwrap();
        reader.join().unwrap();
        domain.reclaim();
        assert_eq!(
            drops.load(Relaxed),
            1,
            "the old object is freed exactly once"
        );
        assert_eq!(domain.stats().pending, 0);
        // Safety: no thread uses the cell any more.
        drop(unsafe { Box::from_raw(cell.load(Relaxed)) });
    });
}

/// Two threads each retire a batch (one of them holding a cascade: an object whose reclamation
/// retires another) and exit; their lists stay in the domain under their thread indexes and
/// are taken by a scan on the main thread, racing the second thread's flush. Everything is
/// freed exactly once, the counts balance, and both exited threads hand back their records.
#[test]
fn batches_of_exited_threads_are_handed_off() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let domain =
            Arc::new(Domain::with_retire_threshold(usize::MAX).with_reclaimer(reclaim_linked));
        // The main thread's own block (its scans queue the cascade in its list), taken first
        // so that the hand-off check below can count the others.
        drop(HazardPointer::new(&domain));
        let own = domain.stats().records_in_use;
        let retirers: Vec<_> = (0..2)
            .map(|t| {
                let (domain, drops) = (domain.clone(), drops.clone());
                thread::spawn(move || {
                    let mut batch = Batch::new(&domain);
                    if t == 0 {
                        let child = linked(0, &drops);
                        let parent = linked(child as usize, &drops);
                        // Safety: never shared; retired once; kind 1 owns its child.
                        unsafe { batch.retire(parent.cast(), 1) };
                    } else {
                        for _ in 0..2 {
                            // Safety: never shared; retired once.
                            unsafe { batch.retire(linked(7, &drops).cast(), 0) };
                        }
                    }
                    batch.flush();
                })
            })
            .collect();
        let mut retirers = retirers.into_iter();
        retirers.next().unwrap().join().unwrap();
        domain.reclaim(); // may run before, during or after the second thread's flush
        retirers.next().unwrap().join().unwrap();
        // loom's `join` returns before the thread's locals are destroyed: wait for both
        // hand-offs (a block never returned would spin here forever, which loom reports).
        while domain.stats().records_in_use != own {
            thread::yield_now();
        }
        domain.reclaim();
        assert_eq!(drops.load(Relaxed), 4, "every object freed exactly once");
        let stats = domain.stats();
        assert_eq!((stats.retired, stats.reclaimed, stats.pending), (4, 4, 0));
    });
}

/// A thread frees a block into its pool and allocates it back, twice, while another thread
/// empties the pools (`reclaim`) and counts them (`stats`). The pool's lists are loom cells:
/// loom reports any access to them not ordered by the pool's flag (a second holder, or a
/// holder that released the flag of another). A block is never handed out while pooled (the
/// owner checks it gets back either its block or a fresh one), and once the owner is done,
/// `reclaim` leaves nothing pooled.
#[test]
fn block_pool_against_reclaim() {
    model(|| {
        let domain = Arc::new(Domain::with_retire_threshold(usize::MAX).with_block_pool());
        let layout = std::alloc::Layout::from_size_align(48, 8).unwrap();
        let owner = {
            let domain = domain.clone();
            thread::spawn(move || {
                let mut a = domain.alloc_block(layout);
                for _ in 0..2 {
                    // Safety: from `alloc_block` for `layout`; not used until handed out again.
                    unsafe { domain.free_block(a, layout) };
                    a = domain.alloc_block(layout);
                    assert!(!a.is_null());
                }
                // Safety: as above.
                unsafe { domain.free_block(a, layout) };
            })
        };
        domain.reclaim();
        assert!(domain.stats().pooled <= 1);
        owner.join().unwrap();
        domain.reclaim();
        assert_eq!(
            domain.stats().pooled,
            0,
            "reclaim empties every pool nobody holds"
        );
    });
}
