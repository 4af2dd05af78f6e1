//! Reader cost of a 4-level hand-over-hand walk under concurrent reclamation.
//!
//! # What is measured
//!
//! A chain `root -> n1 -> n2 -> n3 -> n4` of heap nodes (`next` pointer + `u64` value). One
//! *walk* starts at `root`, protects each node before dereferencing it and sums the values,
//! as a trie lookup of depth 4 will. For the hazard-pointer variants the walk creates two
//! guards (as a lookup does, once per operation) and moves hand over hand: the guard that is
//! not holding the current node protects the next one, loaded from the current node's `next`
//! field while the current node is still protected, then the roles swap.
//!
//! Variants, all in one criterion group (`hazard_walk`) so they share one run:
//! - `ours/asymmetric`: `hazard::Domain::new()` (Linux `membarrier` on the reclaimer, only a
//!   compiler barrier per protection; whether it is really in effect is printed at start).
//! - `ours/fallback`: `hazard::Domain::with_fallback_fence()` (a `fence(SeqCst)` per
//!   protection).
//! - `haphazard`: the `haphazard` crate, global domain, one `safe_load` per level (its reader
//!   fence is a `fence(SeqCst)`, and creating a guard takes a record from a shared list).
//! - `crossbeam-epoch`: one `pin()` per walk, plain `Acquire` loads per level.
//!
//! # The writer
//!
//! While a variant is measured, one writer thread repeatedly replaces the level-2 node: it
//! copies `n2` with a new value, CASes `n1.next` from the old node to the copy and retires the
//! old node, so reclamation (scans, `membarrier`s, epoch advances) really happens. It does
//! `WRITER_BATCH` replacements, then sleeps `WRITER_PAUSE_US` microseconds (override with the
//! environment variable `HAZARD_BENCH_WRITER_PAUSE_US`; `0` means yield instead of sleeping,
//! i.e. a flat-out writer). The pacing keeps the writer from taking a core on this small
//! machine while still retiring ~1.8 * 10^5 nodes per second, i.e. ~700 scans (each with a
//! `membarrier` in asymmetric mode) per second for ours; the rate and the number of nodes
//! reclaimed by the writer's own scans are printed. Each variant gets its own writer, started
//! before its first measurement and stopped (`AtomicBool` + `join`) after its last (per slot
//! in the interleaved re-check), so a variant's measurements only ever see its own
//! reclamation.
//!
//! Only level 2 is ever replaced: levels 3 and 4 are never retired. A reader that validates
//! `n3` against an `n2` that has just been unlinked is therefore still safe here. (A real trie
//! must validate against something that proves reachability; see `HazardPointer::publish`.)
//!
//! # Threads and timing
//!
//! `threads = 1`: criterion's thread is the only reader. `threads = 2`: criterion's thread plus
//! one extra reader thread (spawned per sample, outside the timed region). Measurement uses
//! `iter_custom`: every reader thread does one untimed walk (so thread registration is not
//! timed), meets the others at a barrier, then times `iters` walks; the sample is the *mean* of
//! the readers' elapsed times, so the reported time is ns per walk as seen by one reader while
//! `threads` readers run concurrently (not aggregate throughput). The walk is a generic
//! parameter of the timed loop, so it is inlined (no indirect call per walk).
//!
//! The machine has only **2 cores** (KVM vCPUs), and in practice they deliver about one
//! core's worth of throughput: two independent CPU-bound processes each run ~2x slower than
//! one alone (sibling hyper-threads or host throttling). So with 2 readers every variant's
//! per-reader time roughly doubles; the 2-thread rows show relative cost under time-sharing,
//! not scalability. The writer and anything else running (e.g. a concurrent build) share the
//! same cores, so all numbers are noisy: expect +-20% between runs.
//!
//! # The summary table
//!
//! Two estimates per (variant, threads), both medians of ns per walk:
//! - *criterion*: every `iter_custom` call records `elapsed / iters`. Criterion calls the
//!   routine during warm-up first and then exactly `sample_size` times for the measurement,
//!   so the last `sample_size` records are its measurement samples (same statistic as
//!   criterion's "median" estimate).
//! - *interleaved*: after criterion, a re-check of 15 rounds, each running every variant
//!   (rotating order) for ~40 ms with its writer. Slow drift of the machine then hits all
//!   variants alike instead of whichever one criterion happened to be measuring.
//!
//! Each is shown with its ratio to `crossbeam-epoch` at the same thread count. Goal checked:
//! `ours/asymmetric` <= 1.5x `crossbeam-epoch`.
//!
//! # No leaks
//!
//! Each node type counts live nodes (constructor +1, `Drop` -1). After all measurements the
//! chains are freed (retired, for haphazard), every retired node is reclaimed (domain drop,
//! `eager_reclaim`, epoch flushes), and the counts must be zero: checked, printed, asserted.
//!
//! Run: `cargo bench -p benches --bench hazard`.

use criterion::{BenchmarkId, Criterion};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, Ordering::*};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Levels of the chain (and protections per walk).
const DEPTH: usize = 4;
/// Replacements per writer burst.
const WRITER_BATCH: u64 = 32;
/// Default writer pause between bursts, in microseconds.
const WRITER_PAUSE_US: u64 = 100;
/// Reader thread counts measured.
const THREADS: [usize; 2] = [1, 2];
/// Criterion settings (kept small: the whole bench takes about a minute).
const SAMPLE_SIZE: usize = 20;
const MEASUREMENT: Duration = Duration::from_secs(3);
const WARM_UP: Duration = Duration::from_secs(1);

const GOAL_RATIO: f64 = 1.5;

// ---------------------------------------------------------------------------------------
// Node types, one per reclamation scheme, each counting its live instances.
// ---------------------------------------------------------------------------------------

/// Live `HpNode`s (both `ours` variants).
static LIVE_HP: AtomicIsize = AtomicIsize::new(0);
/// Live `HaNode`s.
static LIVE_HA: AtomicIsize = AtomicIsize::new(0);
/// Live `EbNode`s.
static LIVE_EB: AtomicIsize = AtomicIsize::new(0);

/// A node for our hazard pointers.
struct HpNode {
    next: AtomicPtr<HpNode>,
    value: u64,
}

impl HpNode {
    fn boxed(value: u64, next: *mut HpNode) -> *mut HpNode {
        LIVE_HP.fetch_add(1, Relaxed); // Relaxed: a counter, read after all threads joined.
        Box::into_raw(Box::new(HpNode {
            next: AtomicPtr::new(next),
            value,
        }))
    }
}

impl Drop for HpNode {
    fn drop(&mut self) {
        LIVE_HP.fetch_sub(1, Relaxed); // Relaxed: a counter, read after all threads joined.
    }
}

/// A node for haphazard.
struct HaNode {
    next: haphazard::AtomicPtr<HaNode>,
    value: u64,
}

impl HaNode {
    fn boxed(value: u64, next: *mut HaNode) -> Box<HaNode> {
        // Relaxed: a counter, read after all threads joined.
        LIVE_HA.fetch_add(1, Relaxed);
        // Safety: `next` is null or a live node allocated with `Box` (the `P` of the
        // `AtomicPtr`) that is only ever dropped through `retire_ptr` on the global domain.
        let next = unsafe { haphazard::AtomicPtr::new(next) };
        Box::new(HaNode { next, value })
    }
}

impl Drop for HaNode {
    fn drop(&mut self) {
        LIVE_HA.fetch_sub(1, Relaxed); // Relaxed: a counter, read after all threads joined.
    }
}

/// A node for crossbeam-epoch.
struct EbNode {
    next: crossbeam_epoch::Atomic<EbNode>,
    value: u64,
}

impl EbNode {
    fn owned(value: u64, next: crossbeam_epoch::Atomic<EbNode>) -> crossbeam_epoch::Owned<EbNode> {
        LIVE_EB.fetch_add(1, Relaxed); // Relaxed: a counter, read after all threads joined.
        crossbeam_epoch::Owned::new(EbNode { next, value })
    }
}

impl Drop for EbNode {
    fn drop(&mut self) {
        LIVE_EB.fetch_sub(1, Relaxed); // Relaxed: a counter, read after all threads joined.
    }
}

// ---------------------------------------------------------------------------------------
// ours: hazard::Domain
// ---------------------------------------------------------------------------------------

/// The chain for our hazard pointers. Frees its linked nodes on drop (retired ones belong
/// to the domain).
struct HpChain {
    root: AtomicPtr<HpNode>,
}

impl HpChain {
    fn new() -> Self {
        let mut next = std::ptr::null_mut();
        for level in (1..=DEPTH as u64).rev() {
            next = HpNode::boxed(level, next);
        }
        // The chain is published to other threads by `thread::scope`'s spawn (happens-before).
        HpChain {
            root: AtomicPtr::new(next),
        }
    }

    /// The reader: two guards, hand over hand, one protection per level.
    #[inline]
    fn walk(&self, domain: &hazard::Domain) -> u64 {
        let mut held = hazard::HazardPointer::new(domain); // protects the current node
        let mut next = hazard::HazardPointer::new(domain); // protects the node being entered
        let mut src: &AtomicPtr<HpNode> = &self.root;
        let mut sum = 0u64;
        for _ in 0..DEPTH {
            // `protect` publishes with Release, fences (compiler-only in asymmetric mode,
            // SeqCst in fallback; pairs with the scan's membarrier / SeqCst fence) and
            // re-loads `src` with Acquire (pairs with the writer's Release CAS; the initial
            // chain reached this thread through `spawn`) until the published pointer is validated.
            let p = next.protect(src);
            debug_assert!(!p.is_null());
            // `held` (the parent) may now move on: the child is protected by `next`.
            held.swap(&mut next);
            // Safety: `p` is protected by `held` and was validated as reachable from `src`
            // after publication; the writer retires only into `domain`, and only after
            // unlinking; nodes of other levels are never retired (see the header). `held` keeps
            // protecting `p` until the next iteration has protected `p`'s child, and both
            // guards outlive the last use of `node`.
            let node = unsafe { &*p };
            sum = sum.wrapping_add(node.value);
            src = &node.next;
        }
        sum
    }

    /// The writer: replaces level 2 and retires the old node into `domain`.
    fn replace(&self, domain: &hazard::Domain, value: u64) {
        // Acquire: root never changes (the chain reached this thread through `spawn`);
        // the writer is the only thread that retires, so nodes it finds linked are live
        // without protection.
        let n1 = self.root.load(Acquire);
        // Safety: `n1` is linked and never retired (only level 2 is).
        let n1 = unsafe { &*n1 };
        // Acquire: every value after the initial one was stored by this thread's own CAS.
        let n2 = n1.next.load(Acquire);
        // Safety: `n2` is linked; only this thread retires it, after the CAS below.
        let n3 = unsafe { &*n2 }.next.load(Relaxed); // Relaxed: never changes after creation.
        let fresh = HpNode::boxed(value, n3);
        // Release: publishes `fresh`'s fields to readers' Acquire validating loads in
        // `protect`. Relaxed on failure: cannot fail with a single writer.
        match n1.next.compare_exchange(n2, fresh, Release, Relaxed) {
            // Safety: `n2` came from `Box::into_raw`, was just unlinked from the only place
            // that held it, is retired once, and readers protect only through `domain`.
            Ok(old) => unsafe { domain.retire_box(old) },
            Err(_) => unreachable!("single writer"),
        }
    }
}

impl Drop for HpChain {
    fn drop(&mut self) {
        let mut p = *self.root.get_mut();
        while !p.is_null() {
            // Safety: `&mut self`: no reader or writer is left; linked nodes were never
            // retired, so we own them and free each once.
            let node = unsafe { Box::from_raw(p) };
            p = node.next.load(Relaxed); // Relaxed: single-threaded now.
        }
    }
}

// ---------------------------------------------------------------------------------------
// haphazard
// ---------------------------------------------------------------------------------------

struct HaChain {
    root: haphazard::AtomicPtr<HaNode>,
}

impl HaChain {
    fn new() -> Self {
        let mut next: *mut HaNode = std::ptr::null_mut();
        for level in (1..=DEPTH as u64).rev() {
            next = Box::into_raw(HaNode::boxed(level, next));
        }
        // Safety: `next` is a live `Box`-allocated node, dropped only via `retire_ptr`.
        let root = unsafe { haphazard::AtomicPtr::new(next) };
        HaChain { root }
    }

    /// The reader: two guards, hand over hand (unrolled, so the borrow checker sees that each
    /// reference lives only while its guard protects it).
    #[inline]
    fn walk(&self) -> u64 {
        const _: () = assert!(DEPTH == 4, "the haphazard walk is unrolled for 4 levels");
        let mut a = haphazard::HazardPointer::new();
        let mut b = haphazard::HazardPointer::new();
        // Each `safe_load` stores the hazard, issues a SeqCst fence (pairs with the
        // reclaimer's SeqCst fence) and re-loads the source with Acquire (pairs with the
        // writer's Release CAS) until validated.
        let n1 = self.root.safe_load(&mut a).expect("4 levels");
        let n2 = n1.next.safe_load(&mut b).expect("4 levels"); // n1 still held by `a`
        let mut sum = n1.value.wrapping_add(n2.value);
        let n3 = n2.next.safe_load(&mut a).expect("4 levels"); // n2 still held by `b`
        let n4 = n3.next.safe_load(&mut b).expect("4 levels"); // n3 still held by `a`
        sum = sum.wrapping_add(n3.value).wrapping_add(n4.value);
        sum
    }

    fn replace(&self, value: u64) {
        // `load_ptr` is an Acquire load; root never changes, and `n1.next` is only changed by
        // this thread's own CAS.
        let n1 = self.root.load_ptr();
        // Safety: `n1` is linked and never retired; the writer is the only retirer.
        let n1 = unsafe { &*n1 };
        // Acquire, as above.
        let n2 = n1.next.load_ptr();
        // Safety: `n2` is linked; only this thread retires it, after the CAS below.
        // Acquire (fixed by `load_ptr`); the field never changes after creation anyway.
        let n3 = unsafe { &*n2 }.next.load_ptr();
        // `compare_exchange` is Release on success (publishes the new node's fields to the
        // readers' Acquire validating loads), Relaxed on failure.
        match n1.next.compare_exchange(n2, HaNode::boxed(value, n3)) {
            Ok(Some(old)) => {
                // Safety: the old node is now unreachable from the chain (never again
                // returned by a load), retired once, and all readers use the global domain.
                unsafe { old.retire() };
            }
            _ => unreachable!("single writer, non-null level 2"),
        }
    }

    /// Retires the chain and reclaims everything (no reader or writer is left).
    fn destroy(self) {
        let mut p = self.root.into_inner();
        while !p.is_null() {
            // Acquire (fixed by `load_ptr`); single-threaded now anyway.
            // Safety: single-threaded now; `p` is a linked node, never retired before.
            let next = unsafe { &*p }.next.load_ptr();
            // Safety: `p` is unreachable from now on, retired once, was allocated as a
            // `Box<HaNode>` and belongs to the global domain.
            unsafe { haphazard::Domain::global().retire_ptr::<HaNode, Box<HaNode>>(p) };
            p = next;
        }
        haphazard::Domain::global().eager_reclaim();
    }
}

// ---------------------------------------------------------------------------------------
// crossbeam-epoch
// ---------------------------------------------------------------------------------------

struct EbChain {
    root: crossbeam_epoch::Atomic<EbNode>,
}

impl EbChain {
    fn new() -> Self {
        let mut next = crossbeam_epoch::Atomic::null();
        for level in (1..=DEPTH as u64).rev() {
            next = crossbeam_epoch::Atomic::from(EbNode::owned(level, next));
        }
        EbChain { root: next }
    }

    /// The reader: one pin per walk, one Acquire load per level.
    #[inline]
    fn walk(&self) -> u64 {
        let guard = crossbeam_epoch::pin();
        let mut src = &self.root;
        let mut sum = 0u64;
        for _ in 0..DEPTH {
            // Acquire: pairs with the writer's Release CAS (the initial chain came via `spawn`).
            let cur = src.load(Acquire, &guard);
            // Safety: non-null (4 levels); a node unlinked while we are pinned is destroyed
            // only after every thread pinned at that time has unpinned.
            let node = unsafe { cur.deref() };
            sum = sum.wrapping_add(node.value);
            src = &node.next;
        }
        sum
    }

    fn replace(&self, value: u64) {
        let guard = crossbeam_epoch::pin();
        // Acquire: root never changes (the chain reached this thread through `spawn`).
        let n1 = self.root.load(Acquire, &guard);
        // Safety: linked and never retired; the writer is the only retirer.
        let n1 = unsafe { n1.deref() };
        // Acquire: every value after the initial one was stored by this thread's own CAS.
        let n2 = n1.next.load(Acquire, &guard);
        // Safety: linked; only this thread defers its destruction, after the CAS below.
        let n3 = unsafe { n2.deref() }.next.load(Relaxed, &guard); // Relaxed: immutable.
        let fresh = EbNode::owned(value, crossbeam_epoch::Atomic::from(n3));
        // Release: publishes the new node to readers' Acquire loads. Relaxed on failure:
        // cannot fail with a single writer.
        match n1
            .next
            .compare_exchange(n2, fresh, Release, Relaxed, &guard)
        {
            // Safety: `n2` is unlinked, so no thread pinned from now on can reach it;
            // destroyed once.
            Ok(_) => unsafe { guard.defer_destroy(n2) },
            Err(_) => unreachable!("single writer"),
        }
    }

    /// Frees the chain and flushes deferred garbage (no reader or writer is left).
    fn destroy(self) {
        // Safety: single-threaded now, so no guard is needed.
        let guard = unsafe { crossbeam_epoch::unprotected() };
        let mut cur = self.root.load(Relaxed, guard); // Relaxed: single-threaded now.
        while !cur.is_null() {
            // Safety: linked nodes were never deferred; we own them and free each once.
            let node = unsafe { cur.into_owned() };
            cur = node.next.load(Relaxed, guard); // Relaxed: single-threaded now.
        }
        // Deferred destructions run once the global epoch has advanced past them; the
        // writer's thread-local bag went to the global queue when the writer exited.
        for _ in 0..10_000 {
            // Relaxed: this thread runs the destructors (collection happens in `flush`).
            if LIVE_EB.load(Relaxed) == 0 {
                break;
            }
            crossbeam_epoch::pin().flush();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Runs `walk` `iters` times on each of `threads` reader threads (the caller's plus
/// `threads - 1` spawned), returning the mean per-thread elapsed time. Generic, so the walk
/// is inlined into the timed loop (no indirect call per walk).
fn measure<W: Fn() -> u64 + Sync>(threads: usize, iters: u64, walk: &W) -> Duration {
    let barrier = Barrier::new(threads);
    let run = || {
        black_box(walk()); // untimed: registers the thread with the reclaimer
        barrier.wait();
        let start = Instant::now();
        for _ in 0..iters {
            black_box(walk());
        }
        start.elapsed()
    };
    thread::scope(|s| {
        let others: Vec<_> = (1..threads).map(|_| s.spawn(run)).collect();
        let mine = run();
        let total = others
            .into_iter()
            .map(|h| h.join().expect("reader panicked"))
            .fold(mine, |a, b| a + b);
        total / threads as u32
    })
}

/// A variant under test: how to time its walk, and one writer step.
struct Variant<'a> {
    name: &'static str,
    /// `(threads, iters)` -> mean per-thread elapsed time of `iters` walks.
    measure: Box<dyn Fn(usize, u64) -> Duration + Sync + 'a>,
    /// Replaces level 2 with a node holding the given value and retires the old one.
    replace: Box<dyn Fn(u64) + Sync + 'a>,
    /// Writer replacements and seconds, over all phases.
    writer_ops: u64,
    writer_secs: f64,
}

fn variant<'a>(
    name: &'static str,
    walk: impl Fn() -> u64 + Sync + 'a,
    replace: impl Fn(u64) + Sync + 'a,
) -> Variant<'a> {
    Variant {
        name,
        measure: Box::new(move |threads, iters| measure(threads, iters, &walk)),
        replace: Box::new(replace),
        writer_ops: 0,
        writer_secs: 0.0,
    }
}

fn writer_pause() -> Duration {
    let us = std::env::var("HAZARD_BENCH_WRITER_PAUSE_US")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(WRITER_PAUSE_US);
    Duration::from_micros(us)
}

/// Runs `f` while a writer thread repeatedly calls `v.replace`; stops and joins the writer
/// before returning.
fn with_writer<T>(v: &mut Variant<'_>, f: impl FnOnce(&Variant<'_>) -> T) -> T {
    let stop = AtomicBool::new(false);
    let pause = writer_pause();
    let base = v.writer_ops;
    let vr: &Variant<'_> = v;
    let (out, (ops, secs)) = thread::scope(|s| {
        let writer = s.spawn(|| {
            let start = Instant::now();
            let mut n = 0u64;
            // Relaxed: a stop request only; `join` orders everything the writer did.
            while !stop.load(Relaxed) {
                for _ in 0..WRITER_BATCH {
                    n += 1;
                    (vr.replace)(base + n);
                }
                if pause.is_zero() {
                    thread::yield_now();
                } else {
                    thread::sleep(pause);
                }
            }
            (n, start.elapsed().as_secs_f64())
        });
        let out = f(vr);
        stop.store(true, Relaxed); // Relaxed: see the writer's load.
        (out, writer.join().expect("writer panicked"))
    });
    v.writer_ops += ops;
    v.writer_secs += secs;
    out
}

/// Measurement results of one (variant, threads).
struct Row {
    variant: &'static str,
    threads: usize,
    /// ns per walk of criterion's measurement samples.
    criterion: Vec<f64>,
    /// ns per walk of the interleaved re-check, one per round.
    interleaved: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 0 {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

/// Criterion phase: each variant in turn, its writer running during both thread counts.
fn criterion_phase(c: &mut Criterion, variants: &mut [Variant<'_>], rows: &mut Vec<Row>) {
    let mut group = c.benchmark_group("hazard_walk");
    group
        .sample_size(SAMPLE_SIZE)
        .measurement_time(MEASUREMENT)
        .warm_up_time(WARM_UP);
    for v in variants.iter_mut() {
        let name = v.name;
        with_writer(v, |v| {
            for threads in THREADS {
                let mut samples = Vec::new();
                group.bench_function(BenchmarkId::new(name, threads), |b| {
                    b.iter_custom(|iters| {
                        let elapsed = (v.measure)(threads, iters);
                        samples.push(elapsed.as_nanos() as f64 / iters as f64);
                        elapsed
                    })
                });
                // The last `SAMPLE_SIZE` calls are the measurement (earlier: warm-up).
                let keep = samples.len().min(SAMPLE_SIZE);
                let criterion = samples.split_off(samples.len() - keep);
                rows.push(Row {
                    variant: name,
                    threads,
                    criterion,
                    interleaved: Vec::new(),
                });
            }
        });
    }
    group.finish();
}

/// Interleaved re-check: `ROUNDS` rounds; in each, every (variant, threads) that criterion
/// measured runs for about `SLOT` with its writer, in a rotating order. Slow drift of the
/// machine (other tenants, a concurrent build) then hits every variant alike instead of
/// whichever criterion happened to be measuring.
fn interleaved_phase(variants: &mut [Variant<'_>], rows: &mut [Row]) {
    const ROUNDS: usize = 15;
    const SLOT: Duration = Duration::from_millis(40);
    let n = variants.len();
    for round in 0..ROUNDS {
        for i in 0..n {
            let v = &mut variants[(i + round) % n];
            for threads in THREADS {
                let Some(row) = rows.iter_mut().find(|r| {
                    r.variant == v.name && r.threads == threads && !r.criterion.is_empty()
                }) else {
                    continue; // filtered out on the command line
                };
                let est = median(&row.criterion).max(1.0);
                let iters = ((SLOT.as_nanos() as f64 / est) as u64).max(1_000);
                let elapsed = with_writer(v, |v| (v.measure)(threads, iters));
                row.interleaved
                    .push(elapsed.as_nanos() as f64 / iters as f64);
            }
        }
    }
}

fn print_summary(rows: &[Row], variants: &[Variant<'_>], reclaimed: &[(&str, u64)]) {
    let rows: Vec<&Row> = rows.iter().filter(|r| !r.criterion.is_empty()).collect();
    let base = |threads: usize, pick: fn(&Row) -> &[f64]| {
        rows.iter()
            .find(|b| b.variant == "crossbeam-epoch" && b.threads == threads)
            .map(|b| median(pick(b)))
    };
    let ratio = |x: f64, b: Option<f64>| b.map_or(String::from("-"), |b| format!("{:.2}x", x / b));
    println!();
    println!("hazard_walk summary: median ns per 4-level walk, per reader thread");
    println!(
        "  criterion = last {SAMPLE_SIZE} samples of criterion's run; interleaved = median of the \
         interleaved re-check rounds"
    );
    println!(
        "{:<16} {:>7} | {:>10} {:>10} | {:>11} {:>10}",
        "variant", "threads", "criterion", "vs cb-ep", "interleaved", "vs cb-ep"
    );
    for r in &rows {
        let (c, i) = (median(&r.criterion), median(&r.interleaved));
        println!(
            "{:<16} {:>7} | {:>10.2} {:>10} | {:>11.2} {:>10}",
            r.variant,
            r.threads,
            c,
            ratio(c, base(r.threads, |r| &r.criterion)),
            i,
            ratio(i, base(r.threads, |r| &r.interleaved)),
        );
    }
    println!();
    println!(
        "writer: bursts of {WRITER_BATCH} replacements, pause {:?}",
        writer_pause()
    );
    for v in variants {
        let rec = reclaimed
            .iter()
            .find(|(n, _)| *n == v.name)
            .map_or(String::from("-"), |(_, r)| r.to_string());
        println!(
            "  {:<16} {:>9} replacements ({:>7.0}/s while running), reclaimed by its scans: {}",
            v.name,
            v.writer_ops,
            v.writer_ops as f64 / v.writer_secs.max(1e-9),
            rec
        );
    }
    println!();
    for threads in THREADS {
        let get = |name: &str, pick: fn(&Row) -> &[f64]| {
            rows.iter()
                .find(|r| r.variant == name && r.threads == threads)
                .map(|r| median(pick(r)))
        };
        for (label, pick) in [
            (
                "criterion",
                (|r: &Row| &r.criterion[..]) as fn(&Row) -> &[f64],
            ),
            ("interleaved", |r: &Row| &r.interleaved[..]),
        ] {
            if let (Some(ours), Some(b)) =
                (get("ours/asymmetric", pick), get("crossbeam-epoch", pick))
            {
                let ratio = ours / b;
                println!(
                    "goal ours/asymmetric <= {GOAL_RATIO}x crossbeam-epoch, {threads} reader(s), \
                     {label}: {ratio:.2}x -> {}",
                    if ratio <= GOAL_RATIO {
                        "MET"
                    } else {
                        "NOT MET"
                    }
                );
            }
        }
    }
}

fn main() {
    println!(
        "hazard::asymmetric_fence_available() = {}",
        hazard::asymmetric_fence_available()
    );
    let asym = hazard::Domain::new();
    let fallback = hazard::Domain::with_fallback_fence();
    println!(
        "ours/asymmetric: domain.asymmetric() = {}",
        asym.asymmetric()
    );
    println!(
        "ours/fallback:   domain.asymmetric() = {}",
        fallback.asymmetric()
    );
    let (hp_asym, hp_fallback) = (HpChain::new(), HpChain::new());
    let ha = HaChain::new();
    let eb = EbChain::new();

    let mut rows = Vec::new();
    let mut c = Criterion::default().configure_from_args();
    let mut variants = vec![
        variant(
            "ours/asymmetric",
            || hp_asym.walk(&asym),
            |v| hp_asym.replace(&asym, v),
        ),
        variant(
            "ours/fallback",
            || hp_fallback.walk(&fallback),
            |v| hp_fallback.replace(&fallback, v),
        ),
        variant("haphazard", || ha.walk(), |v| ha.replace(v)),
        variant("crossbeam-epoch", || eb.walk(), |v| eb.replace(v)),
    ];
    // Untimed warm-up of every variant (page faults, thread-local setup, the first
    // `membarrier`, CPU frequency), so that whichever variant criterion measures first is
    // not penalised.
    for v in &mut variants {
        with_writer(v, |v| (v.measure)(1, 2_000_000));
    }
    criterion_phase(&mut c, &mut variants, &mut rows);
    c.final_summary();
    interleaved_phase(&mut variants, &mut rows);

    // Teardown: every reader and writer has been joined.
    let reclaimed = [
        ("ours/asymmetric", asym.stats().reclaimed),
        ("ours/fallback", fallback.stats().reclaimed),
    ];
    print_summary(&rows, &variants, &reclaimed);
    drop(variants); // the closures borrow the chains and domains
    drop((hp_asym, hp_fallback)); // frees the linked nodes
    drop((asym, fallback)); // frees every node still retired
    ha.destroy();
    eb.destroy();
    // Relaxed: all threads have been joined.
    let live = [
        ("ours", LIVE_HP.load(Relaxed)),
        ("haphazard", LIVE_HA.load(Relaxed)),
        ("crossbeam-epoch", LIVE_EB.load(Relaxed)),
    ];
    println!("leak check (live nodes after teardown, must be 0): {live:?}");
    assert!(
        live.iter().all(|&(_, n)| n == 0),
        "some nodes were not freed"
    );
}
