//! What snapshots of `concurrent_hamt::Hamt` cost: taking one, the writes that follow one, and
//! iterating (which takes one), all with `u64` keys and values, in one run.
//!
//! Run: `cargo bench -p benches --bench snapshot` (about a minute on the 2-core machine), or a
//! smoke run of a few seconds with `cargo bench -p benches --bench snapshot -- --quick` (or
//! `SNAPSHOT_BENCH_QUICK=1`). See BENCHMARKS.md at the top of the repository.
//!
//! # What is measured
//!
//! 1. **Snapshot latency** at 10^3, 10^5 and 10^6 entries (10^6 is left out with `--quick`):
//!    ns per call of `read_only_snapshot()` and of `snapshot()`,
//!    - *back to back*: batches of [`BATCH`] calls on an unchanging map, the snapshots kept in
//!      a preallocated `Vec` and dropped after the timed part (their drop is timed on its own);
//!      the figure is the median over batches of the batch time / [`BATCH`];
//!    - *after writes*: one call timed on its own after [`WRITES_BETWEEN`] random overwrites
//!      (untimed), so that the call meets a map changed since the last snapshot; these
//!      figures include one `Instant::now()` pair, whose own cost is printed;
//!    - *first after the fill*: the first `read_only_snapshot()` of a freshly filled map
//!      (one call per fresh map), which would show any one-time cost proportional to the size.
//! 2. **Writes after a snapshot**, at 10^6 entries (10^5 with `--quick`): the time of
//!    (take a snapshot, then [`WRITES`] writes) against the same writes with no snapshot. The
//!    writes are half overwrites of random present keys, half inserts of fresh keys, shuffled.
//!    The snapshot stays alive during the writes, so every path they touch must be copied;
//!    each sample uses a freshly filled map and its own write keys (the three variants of a
//!    sample share them), so every sample pays the copying. The snapshot's drop after the
//!    writes is timed separately; the map's drop is not timed.
//! 3. **Full iteration** of 10^6 entries (10^5 with `--quick`): `Hamt::iter()` (which
//!    iterates a read-only snapshot taken at the call), `Snapshot::iter()` excluding and
//!    including `read_only_snapshot()`, `std::collections::HashMap` iteration and `papaya`
//!    iteration under one pinned guard (`map.pin().iter()`, the pin included), each summing
//!    the keys and values (checked against the expected sum and count).
//!
//! The cost of snapshot support when no snapshot is taken (the trie against itself before
//! this work, on the ReadHeavy and Exchange workloads) is measured by `benches/baseline.sh`,
//! not here: it needs the old version of the crate built beside the new one.
//!
//! Every figure is a **median**: of the batches (part 1, pooled over several fresh maps), or
//! of several samples whose variants run interleaved in a rotating order (parts 2 and 3).
//! Each map uses std `RandomState`. Results are checked (`len`, values seen by the snapshot
//! and by the map after the writes, iteration count and sum); a mismatch is reported under
//! *Notes from this run* and makes the program exit with status 1 (after writing its tables),
//! so `--quick` can serve as a smoke test. Goals that are missed do not change the status.
//!
//! # Output
//!
//! Tables (markdown) on stdout and in `benches/results/snapshot.md` (`--quick` writes
//! `benches/results/quick/snapshot.md`).
//!
//! # Options (arguments after `--`, or environment variables)
//!
//! - `--quick` / `SNAPSHOT_BENCH_QUICK=1`: smaller sizes, 3 trials.
//! - `SNAPSHOT_BENCH_TRIALS=N`: fresh maps per size in part 1, samples in parts 2 and 3
//!   (default 7, quick 3).
//! - `SNAPSHOT_BENCH_SKIP=latency,writes,iter`: skip parts.
//! - `SNAPSHOT_BENCH_OUT=DIR`: output directory.

use benches::report::{cpu_probe, load_average, machine, other_load, Samples};
use benches::workload::{key, shuffle, Rng};
use concurrent_hamt::Hamt;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Snapshots per timed batch in part 1.
const BATCH: usize = 64;
/// Batches of each kind per fresh map in part 1.
const BATCHES: usize = 100;
/// Random overwrites before each single timed call of part 1's *after writes* columns.
const WRITES_BETWEEN: usize = 100;
/// Single timed calls of each kind per fresh map in part 1's *after writes* columns.
const AFTER_WRITES_CALLS: usize = 100;
/// Writes per sample in part 2.
const WRITES: usize = 10_000;

/// Key namespace of the entries a map is filled with (`key(FILL_NS, i)` -> `i`).
const FILL_NS: u64 = 0x5A9;
/// Key namespace of the fresh keys part 2 inserts.
const FRESH_NS: u64 = 0x5AA;

struct Config {
    quick: bool,
    trials: usize,
    lat_sizes: Vec<usize>,
    write_n: usize,
    iter_n: usize,
    skip: Vec<String>,
    out_dir: PathBuf,
}

fn config() -> Config {
    let args: Vec<String> = std::env::args().collect();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let quick = args.iter().any(|a| a == "--quick")
        || env("SNAPSHOT_BENCH_QUICK").is_some_and(|v| v != "0");
    let trials = env("SNAPSHOT_BENCH_TRIALS")
        .map(|v| v.parse().expect("SNAPSHOT_BENCH_TRIALS"))
        .unwrap_or(if quick { 3 } else { 7 });
    let skip = env("SNAPSHOT_BENCH_SKIP")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let out_dir = env("SNAPSHOT_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or(if quick {
            results.join("quick")
        } else {
            results
        });
    Config {
        quick,
        trials: trials.max(1),
        lat_sizes: if quick {
            vec![1_000, 100_000]
        } else {
            vec![1_000, 100_000, 1_000_000]
        },
        write_n: if quick { 100_000 } else { 1_000_000 },
        iter_n: if quick { 100_000 } else { 1_000_000 },
        skip,
        out_dir,
    }
}

type Map = Hamt<u64, u64>;
/// The same map with its entries inline in the trie's nodes (the layout for plain types).
type InlineMap = Hamt<u64, u64, std::hash::RandomState, concurrent_hamt::Inline>;

/// A fresh map holding `key(FILL_NS, i) -> i` for `i < n`, inserted from this thread, with
/// the garbage of the fill reclaimed.
fn fill(n: usize) -> Map {
    let m = Map::new();
    for i in 0..n as u64 {
        m.insert(key(FILL_NS, i), i);
    }
    m.reclaim();
    m
}

fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

fn pow10(n: usize) -> String {
    format!("10^{}", (n as f64).log10().round())
}

/// Median cost of an `Instant::now()` / `elapsed()` pair around nothing, in ns.
fn timer_overhead() -> f64 {
    let mut v: Vec<f64> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            ns(black_box(t).elapsed())
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// 1. Latency

#[derive(Default)]
struct Latency {
    ro: Samples,
    w: Samples,
    ro_drop: Samples,
    w_drop: Samples,
    ro_after_writes: Samples,
    w_after_writes: Samples,
    ro_drop_after_writes: Samples,
    w_drop_after_writes: Samples,
    first_ro: Samples,
}

fn latency_trial(n: usize, trial: usize, out: &mut Latency, oddities: &mut Vec<String>) {
    let m = fill(n);
    // The first snapshot of a freshly filled map.
    let t0 = Instant::now();
    let s = m.read_only_snapshot();
    out.first_ro.0.push(ns(t0.elapsed()));
    if s.len() != n || s.get(&key(FILL_NS, 0)) != Some(&0) {
        oddities.push(format!(
            "{}: a read-only snapshot of {n} entries has len {} or lacks key 0",
            pow10(n),
            s.len()
        ));
    }
    drop(s);
    let w = m.snapshot();
    if w.len() != n || w.get(&key(FILL_NS, 1)).map(|r| *r) != Some(1) {
        oddities.push(format!(
            "{}: a writable snapshot of {n} entries has len {} or lacks key 1",
            pow10(n),
            w.len()
        ));
    }
    drop(w);

    // Back to back, alternating the kinds batch by batch.
    let mut ro_batch = Vec::with_capacity(BATCH);
    let mut w_batch = Vec::with_capacity(BATCH);
    for b in 0..2 * BATCHES {
        if (b + trial) % 2 == 0 {
            let t0 = Instant::now();
            for _ in 0..BATCH {
                ro_batch.push(m.read_only_snapshot());
            }
            let t1 = Instant::now();
            ro_batch.clear();
            let t2 = Instant::now();
            out.ro.0.push(ns(t1 - t0) / BATCH as f64);
            out.ro_drop.0.push(ns(t2 - t1) / BATCH as f64);
        } else {
            let t0 = Instant::now();
            for _ in 0..BATCH {
                w_batch.push(m.snapshot());
            }
            let t1 = Instant::now();
            w_batch.clear();
            let t2 = Instant::now();
            out.w.0.push(ns(t1 - t0) / BATCH as f64);
            out.w_drop.0.push(ns(t2 - t1) / BATCH as f64);
        }
    }

    // One call at a time, each after some random overwrites.
    let mut rng = Rng::new(0xA1 ^ ((n as u64) << 8) ^ trial as u64);
    for c in 0..2 * AFTER_WRITES_CALLS {
        for _ in 0..WRITES_BETWEEN {
            let i = rng.below(n) as u64;
            m.insert(key(FILL_NS, i), i);
        }
        if (c + trial) % 2 == 0 {
            let t0 = Instant::now();
            let s = m.read_only_snapshot();
            let t1 = Instant::now();
            drop(black_box(s));
            let t2 = Instant::now();
            out.ro_after_writes.0.push(ns(t1 - t0));
            out.ro_drop_after_writes.0.push(ns(t2 - t1));
        } else {
            let t0 = Instant::now();
            let s = m.snapshot();
            let t1 = Instant::now();
            drop(black_box(s));
            let t2 = Instant::now();
            out.w_after_writes.0.push(ns(t1 - t0));
            out.w_drop_after_writes.0.push(ns(t2 - t1));
        }
    }
    drop(m);
}

// ---------------------------------------------------------------------------------------------
// 2. Writes after a snapshot

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum WriteVariant {
    NoSnapshot,
    ReadOnly,
    Writable,
}

impl WriteVariant {
    const ALL: [WriteVariant; 3] = [
        WriteVariant::NoSnapshot,
        WriteVariant::ReadOnly,
        WriteVariant::Writable,
    ];
    fn name(self) -> &'static str {
        match self {
            WriteVariant::NoSnapshot => "no snapshot, then the writes",
            WriteVariant::ReadOnly => "`read_only_snapshot()`, then the writes",
            WriteVariant::Writable => "`snapshot()`, then the writes",
        }
    }
}

/// The writes of one sample: `WRITES / 2` overwrites of random present keys (values with
/// the top bit set) and `WRITES / 2` inserts of fresh keys, shuffled. Returns the writes and
/// the first overwrite (key, old value, new value).
fn sample_writes(n: usize, sample: usize) -> (Vec<(u64, u64)>, (u64, u64, u64)) {
    let mut rng = Rng::new(0xB2 + sample as u64);
    let mut writes: Vec<(u64, u64)> = Vec::with_capacity(WRITES);
    for j in 0..WRITES / 2 {
        let i = rng.below(n) as u64;
        writes.push((key(FILL_NS, i), i | (1 << 63)));
        let f = (sample * WRITES + j) as u64;
        writes.push((key(FRESH_NS, f), f));
    }
    let probe = writes[0];
    let i = probe.1 & !(1 << 63);
    shuffle(&mut writes, &mut rng);
    (writes, (probe.0, i, probe.1))
}

struct WriteSample {
    writes: Duration,
    snapshot_drop: Duration,
    ok: bool,
}

/// One sample: a fresh map of `n` entries; times `take` then the writes; checks the map and,
/// with `check`, what the snapshot sees; times the snapshot's drop.
fn write_sample<T>(
    n: usize,
    writes: &[(u64, u64)],
    probe: (u64, u64, u64),
    take: impl FnOnce(&Map) -> T,
    check: impl FnOnce(&T) -> bool,
) -> WriteSample {
    let m = fill(n);
    let t0 = Instant::now();
    let snap = take(&m);
    let mut fresh = 0usize;
    for &(k, v) in writes {
        fresh += usize::from(m.insert(k, v).is_none());
    }
    let elapsed = t0.elapsed();
    let ok = fresh == WRITES / 2
        && m.len() == n + WRITES / 2
        && m.get(&probe.0).map(|r| *r) == Some(probe.2)
        && check(&snap);
    let t1 = Instant::now();
    drop(snap);
    let snapshot_drop = t1.elapsed();
    drop(m);
    WriteSample {
        writes: elapsed,
        snapshot_drop,
        ok,
    }
}

fn run_write_variant(
    v: WriteVariant,
    n: usize,
    writes: &[(u64, u64)],
    probe: (u64, u64, u64),
) -> WriteSample {
    // What a snapshot taken before the writes must see: `n` entries, the old value of the
    // probed key, none of the fresh keys.
    let fresh0 = key(FRESH_NS, 0);
    match v {
        WriteVariant::NoSnapshot => write_sample(n, writes, probe, |_| (), |_| true),
        WriteVariant::ReadOnly => write_sample(
            n,
            writes,
            probe,
            |m| m.read_only_snapshot(),
            |s| s.len() == n && s.get(&probe.0) == Some(&probe.1) && !s.contains_key(&fresh0),
        ),
        WriteVariant::Writable => write_sample(
            n,
            writes,
            probe,
            |m| m.snapshot(),
            |s| {
                s.len() == n
                    && s.get(&probe.0).map(|r| *r) == Some(probe.1)
                    && !s.contains_key(&fresh0)
            },
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Iteration

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum IterVariant {
    Hamt,
    Snapshot,
    SnapshotWithCreation,
    /// `Hamt::iter()` on the inline layout (`Hamt<u64, u64, RandomState, Inline>`).
    InlineHamt,
    /// `Snapshot::iter()` on the inline layout.
    InlineSnapshot,
    Std,
    Papaya,
}

impl IterVariant {
    const ALL: [IterVariant; 7] = [
        IterVariant::Hamt,
        IterVariant::Snapshot,
        IterVariant::SnapshotWithCreation,
        IterVariant::InlineHamt,
        IterVariant::InlineSnapshot,
        IterVariant::Std,
        IterVariant::Papaya,
    ];
    fn name(self) -> &'static str {
        match self {
            IterVariant::Hamt => "`Hamt::iter()` (takes a snapshot)",
            IterVariant::Snapshot => "`Snapshot::iter()`, snapshot taken before the timing",
            IterVariant::SnapshotWithCreation => "`read_only_snapshot()` + `Snapshot::iter()`",
            IterVariant::InlineHamt => "inline layout: `Hamt::iter()`",
            IterVariant::InlineSnapshot => "inline layout: `Snapshot::iter()`, taken before",
            IterVariant::Std => "std `HashMap` iteration",
            IterVariant::Papaya => "papaya `pin().iter()`",
        }
    }
}

#[inline]
fn acc(sum: u64, k: u64, v: u64) -> u64 {
    sum.wrapping_add(k.wrapping_mul(0x9E37_79B9) ^ v)
}

struct IterMaps {
    hamt: Map,
    inline: InlineMap,
    std: HashMap<u64, u64>,
    papaya: papaya::HashMap<u64, u64>,
}

/// Counts and sums `entries` (the work of one iteration).
#[inline(always)]
fn count_and_sum(entries: impl Iterator<Item = (u64, u64)>) -> (usize, u64) {
    entries.fold((0, 0), |(count, sum), (k, v)| (count + 1, acc(sum, k, v)))
}

/// Time one full iteration; returns (time, entries seen, sum).
fn iterate(v: IterVariant, maps: &IterMaps) -> (Duration, usize, u64) {
    let pairs = |(&k, &v): (&u64, &u64)| (k, v);
    let t0;
    let (count, sum);
    let elapsed;
    match v {
        IterVariant::Hamt => {
            t0 = Instant::now();
            (count, sum) = count_and_sum(maps.hamt.iter().map(|r| pairs(r.pair())));
            elapsed = t0.elapsed();
        }
        IterVariant::Snapshot => {
            let s = maps.hamt.read_only_snapshot();
            t0 = Instant::now();
            (count, sum) = count_and_sum(s.iter().map(pairs));
            elapsed = t0.elapsed();
            drop(s);
        }
        IterVariant::SnapshotWithCreation => {
            t0 = Instant::now();
            let s = maps.hamt.read_only_snapshot();
            (count, sum) = count_and_sum(s.iter().map(pairs));
            elapsed = t0.elapsed();
            drop(s);
        }
        IterVariant::InlineHamt => {
            t0 = Instant::now();
            (count, sum) = count_and_sum(maps.inline.iter().map(|r| pairs(r.pair())));
            elapsed = t0.elapsed();
        }
        IterVariant::InlineSnapshot => {
            let s = maps.inline.read_only_snapshot();
            t0 = Instant::now();
            (count, sum) = count_and_sum(s.iter().map(pairs));
            elapsed = t0.elapsed();
            drop(s);
        }
        IterVariant::Std => {
            t0 = Instant::now();
            (count, sum) = count_and_sum(maps.std.iter().map(pairs));
            elapsed = t0.elapsed();
        }
        IterVariant::Papaya => {
            t0 = Instant::now();
            let g = maps.papaya.pin();
            (count, sum) = count_and_sum(g.iter().map(pairs));
            elapsed = t0.elapsed();
            drop(g);
        }
    }
    (elapsed, count, black_box(sum))
}

// ---------------------------------------------------------------------------------------------

fn fmt_ns(s: &Samples) -> String {
    if s.0.is_empty() {
        "—".into()
    } else {
        format!("{:.0}", s.median())
    }
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn main() {
    let cfg = config();
    let args: Vec<String> = std::env::args().collect();
    let t_start = Instant::now();
    let run_probe = cpu_probe();
    let command = format!(
        "cargo bench -p benches --bench snapshot{}",
        if cfg.quick { " -- --quick" } else { "" }
    );
    let timer = timer_overhead();
    let mut md = String::new();
    let _ = writeln!(md, "# Snapshot benchmark results\n");
    let _ = writeln!(md, "- command: `{command}`");
    let _ = writeln!(md, "- argv: `{}`", args.join(" "));
    for l in machine(env!("CARGO_MANIFEST_DIR"), "profile bench (opt-level 3)") {
        let _ = writeln!(md, "- {l}");
    }
    let _ = writeln!(
        md,
        "- load average at the start: {} (`nproc` = {})",
        load_average(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        md,
        "- {} fresh maps per size (part 1), {} interleaved samples (parts 2 and 3); \
         `u64` keys and values, std `RandomState`; one thread",
        cfg.trials, cfg.trials
    );
    let _ = writeln!(
        md,
        "- part 4 (cost of snapshot support when no snapshot is taken) is measured by \
         `benches/baseline.sh`, results in `benches/results/snapshot_overhead.md`"
    );
    print!("{md}");
    println!();

    let mut out = String::new();
    let mut oddities: Vec<String> = Vec::new();
    let mut loads: Vec<(String, f64)> = Vec::new();
    let mut goals: Vec<String> = Vec::new();

    // ---- 1. latency
    if !cfg.skip.iter().any(|s| s == "latency") {
        let probe = cpu_probe();
        let mut lat: Vec<(usize, Latency)> = Vec::new();
        for &n in &cfg.lat_sizes {
            eprintln!("== latency at {} entries", pow10(n));
            let mut l = Latency::default();
            for trial in 0..cfg.trials {
                latency_trial(n, trial, &mut l, &mut oddities);
            }
            eprintln!(
                "   read_only_snapshot {} ns, snapshot {} ns (back to back); after writes {} / {} ns",
                fmt_ns(&l.ro),
                fmt_ns(&l.w),
                fmt_ns(&l.ro_after_writes),
                fmt_ns(&l.w_after_writes)
            );
            lat.push((n, l));
        }
        let load = other_load(probe, cpu_probe());
        loads.push(("latency".into(), load));
        let _ = writeln!(
            out,
            "## 1. Snapshot latency (ns per call, median; lower is better)\n"
        );
        let _ = writeln!(
            out,
            "*Back to back*: batches of {BATCH} calls on an unchanging map, the snapshots \
             kept alive until the batch is timed, then dropped (drop timed separately); median \
             over {} batches of each kind per map, {} fresh maps per size. *After {WRITES_BETWEEN} \
             writes*: one call timed alone after {WRITES_BETWEEN} random overwrites (untimed), \
             {AFTER_WRITES_CALLS} calls of each kind per map, each snapshot dropped right away \
             (the drop, timed separately, may include reclaiming what the writes retired); \
             these include the timer's own cost, {timer:.0} ns here. *First after fill*: the first `read_only_snapshot()` of a \
             freshly filled map (one per map). Other load during this part: {load:.2} CPUs.\n",
            BATCHES, cfg.trials
        );
        let _ = writeln!(
            out,
            "| entries | `read_only_snapshot()` | `snapshot()` | drop read-only | drop writable \
             | read-only after {WRITES_BETWEEN} writes | `snapshot()` after {WRITES_BETWEEN} writes \
             | drop read-only after writes | drop writable after writes | first read-only after fill |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (n, l) in &lat {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                pow10(*n),
                fmt_ns(&l.ro),
                fmt_ns(&l.w),
                fmt_ns(&l.ro_drop),
                fmt_ns(&l.w_drop),
                fmt_ns(&l.ro_after_writes),
                fmt_ns(&l.w_after_writes),
                fmt_ns(&l.ro_drop_after_writes),
                fmt_ns(&l.w_drop_after_writes),
                fmt_ns(&l.first_ro)
            );
        }
        let _ = writeln!(out);
        type Pick = fn(&Latency) -> &Samples;
        let kinds: [(&str, Pick, Pick); 2] = [
            ("read_only_snapshot()", |l| &l.ro, |l| &l.ro_after_writes),
            ("snapshot()", |l| &l.w, |l| &l.w_after_writes),
        ];
        for (name, b2b, aw) in kinds {
            let meds: Vec<f64> = lat.iter().map(|(_, l)| b2b(l).median()).collect();
            let aws: Vec<f64> = lat.iter().map(|(_, l)| aw(l).median()).collect();
            let worst = meds.iter().chain(&aws).copied().fold(0.0, f64::max);
            let (first, last) = (meds[0], meds[meds.len() - 1]);
            goals.push(format!(
                "`{name}` under 1 µs at every size (back to back and after writes): {} \
                 (slowest median {worst:.0} ns); flatness: {} / {} = {:.2}x back to back, \
                 {:.2}x after writes",
                pass(worst < 1000.0),
                pow10(lat[lat.len() - 1].0),
                pow10(lat[0].0),
                last / first,
                aws[aws.len() - 1] / aws[0]
            ));
        }
        let (n_first, first_worst) = lat
            .iter()
            .map(|(n, l)| (*n, l.first_ro.median()))
            .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });
        goals.push(format!(
            "(not part of the goal above: the first `read_only_snapshot()` of a freshly filled \
             map, one cold call with the timer, took up to {first_worst:.0} ns (median, at {}))",
            pow10(n_first)
        ));
    }

    // ---- 2. writes after a snapshot
    if !cfg.skip.iter().any(|s| s == "writes") {
        let probe = cpu_probe();
        let n = cfg.write_n;
        eprintln!("== {WRITES} writes after a snapshot, {} entries", pow10(n));
        let mut times: Vec<(WriteVariant, Samples, Samples)> = WriteVariant::ALL
            .iter()
            .map(|&v| (v, Samples::default(), Samples::default()))
            .collect();
        let mut failed = 0usize;
        for sample in 0..cfg.trials {
            let (writes, probe_kv) = sample_writes(n, sample);
            for j in 0..WriteVariant::ALL.len() {
                let vi = (j + sample) % WriteVariant::ALL.len();
                let v = WriteVariant::ALL[vi];
                let r = run_write_variant(v, n, &writes, probe_kv);
                failed += usize::from(!r.ok);
                eprintln!(
                    "   sample {} {:<45} {:8.2} ms (snapshot drop {:.3} ms){}",
                    sample + 1,
                    v.name(),
                    r.writes.as_secs_f64() * 1e3,
                    r.snapshot_drop.as_secs_f64() * 1e3,
                    if r.ok { "" } else { "  WRONG RESULT" }
                );
                times[vi].1 .0.push(r.writes.as_secs_f64() * 1e3);
                times[vi].2 .0.push(r.snapshot_drop.as_secs_f64() * 1e3);
            }
        }
        if failed > 0 {
            oddities.push(format!(
                "part 2: {failed} samples saw a wrong result (map len or values after the \
                 writes, or a snapshot that saw a later write)"
            ));
        }
        let load = other_load(probe, cpu_probe());
        loads.push(("writes after a snapshot".into(), load));
        let _ = writeln!(
            out,
            "## 2. Writes after a snapshot ({} entries, {WRITES} writes; lower is better)\n",
            pow10(n)
        );
        let _ = writeln!(
            out,
            "Timed: taking the snapshot (if any) and then {WRITES} writes on the map, half \
             overwrites of random present keys, half inserts of fresh keys, shuffled; the \
             snapshot stays alive during the writes. Every sample uses a freshly filled map \
             and its own write keys (shared by the three variants of the sample, which run in \
             a rotating order); median of {} samples, ± = half the min–max spread. The drop of \
             the snapshot after the writes is timed separately (it frees what the writes \
             replaced); the map's drop is not timed. Other load during this part: {load:.2} \
             CPUs.\n",
            cfg.trials
        );
        let _ = writeln!(
            out,
            "| variant | time (ms) | ns per write | vs no snapshot | drop of the snapshot afterwards (ms) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let base = times[0].1.median();
        for (v, t, d) in &times {
            let ratio = t.median() / base;
            let _ = writeln!(
                out,
                "| {} | {:.2} ±{:.0}% | {:.0} | {:.2}x | {} |",
                v.name(),
                t.median(),
                t.spread_pct(),
                t.median() * 1e6 / WRITES as f64,
                ratio,
                if *v == WriteVariant::NoSnapshot {
                    "—".to_string()
                } else {
                    format!("{:.3}", d.median())
                }
            );
            if *v != WriteVariant::NoSnapshot {
                goals.push(format!(
                    "{} at {}: at most 3x the writes alone: {} ({ratio:.2}x: {:.2} ms vs \
                     {base:.2} ms)",
                    v.name(),
                    pow10(n),
                    pass(ratio <= 3.0),
                    t.median()
                ));
            }
        }
        let _ = writeln!(out);
    }

    // ---- 3. iteration
    if !cfg.skip.iter().any(|s| s == "iter") {
        let n = cfg.iter_n;
        eprintln!(
            "== full iteration, {} entries (filling four maps)",
            pow10(n)
        );
        let maps = IterMaps {
            hamt: fill(n),
            inline: {
                let m = InlineMap::default();
                for i in 0..n as u64 {
                    m.insert(key(FILL_NS, i), i);
                }
                m.reclaim();
                m
            },
            std: (0..n as u64).map(|i| (key(FILL_NS, i), i)).collect(),
            papaya: {
                let p = papaya::HashMap::new();
                {
                    let g = p.pin();
                    for i in 0..n as u64 {
                        g.insert(key(FILL_NS, i), i);
                    }
                }
                p
            },
        };
        let expected = (0..n as u64).fold(0u64, |s, i| acc(s, key(FILL_NS, i), i));
        let probe = cpu_probe();
        let mut times: Vec<(IterVariant, Samples)> = IterVariant::ALL
            .iter()
            .map(|&v| (v, Samples::default()))
            .collect();
        // One untimed pass of every variant first: papaya finishes its incremental resize on
        // a later access, and every map's first pass after the fill pays first-touch costs.
        for v in IterVariant::ALL {
            black_box(iterate(v, &maps));
        }
        for sample in 0..cfg.trials {
            for j in 0..IterVariant::ALL.len() {
                let vi = (j + sample) % IterVariant::ALL.len();
                let v = IterVariant::ALL[vi];
                let (t, count, sum) = iterate(v, &maps);
                if count != n || sum != expected {
                    oddities.push(format!(
                        "part 3: {} saw {count} entries (expected {n}){}",
                        v.name(),
                        if sum != expected {
                            ", with a wrong sum"
                        } else {
                            ""
                        }
                    ));
                }
                eprintln!(
                    "   sample {} {:<55} {:8.2} ms",
                    sample + 1,
                    v.name(),
                    t.as_secs_f64() * 1e3
                );
                times[vi].1 .0.push(t.as_secs_f64() * 1e3);
            }
        }
        let load = other_load(probe, cpu_probe());
        loads.push(("iteration".into(), load));
        drop(maps);
        let _ = writeln!(
            out,
            "## 3. Full iteration of {} entries (lower is better)\n",
            pow10(n)
        );
        let _ = writeln!(
            out,
            "Each iteration sums the keys and values (checked). Median of {} samples, the \
             variants interleaved in a rotating order, after one untimed pass of each; ± = half \
             the min–max spread. The four maps (ours with leaves and inline, std, papaya) hold the same entries, each filled from one \
             thread in key order. Other load during this part: {load:.2} CPUs.\n",
            cfg.trials
        );
        let _ = writeln!(
            out,
            "| iteration | time (ms) | ns per entry | vs std HashMap | vs papaya |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let med = |v: IterVariant| times.iter().find(|t| t.0 == v).unwrap().1.median();
        let (std_ms, papaya_ms) = (med(IterVariant::Std), med(IterVariant::Papaya));
        for (v, t) in &times {
            let m = t.median();
            let _ = writeln!(
                out,
                "| {} | {:.2} ±{:.0}% | {:.1} | {:.2}x | {:.2}x |",
                v.name(),
                m,
                t.spread_pct(),
                m * 1e6 / n as f64,
                m / std_ms,
                m / papaya_ms
            );
        }
        let _ = writeln!(out);
        for v in [IterVariant::Snapshot, IterVariant::InlineSnapshot] {
            let r = med(v) / papaya_ms;
            goals.push(format!(
                "full iteration of {}, {}: at least as fast as papaya's: {} ({r:.2}x papaya's time)",
                pow10(n),
                v.name(),
                pass(r <= 1.0)
            ));
        }
    }

    let total_load = other_load(run_probe, cpu_probe());
    if !goals.is_empty() {
        let _ = writeln!(out, "## Goals\n");
        for g in &goals {
            let _ = writeln!(out, "- {g}");
        }
        let _ = writeln!(out);
    }
    // Every oddity so far is a wrong result; the load note below is not.
    let wrong_results = oddities.len();
    let busiest =
        loads.iter().cloned().fold(
            (String::new(), 0.0f64),
            |a, b| if b.1 > a.1 { b } else { a },
        );
    if busiest.1 > 0.15 {
        oddities.push(format!(
            "other processes were using the CPUs during the run (on average {total_load:.2} \
             of {} CPUs over the whole run; most during {}: {:.2}); these figures are \
             provisional",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            busiest.0,
            busiest.1
        ));
    }
    let _ = writeln!(out, "## Notes from this run\n");
    if oddities.is_empty() {
        let _ = writeln!(out, "- nothing unusual: every check passed");
    }
    for o in &oddities {
        let _ = writeln!(out, "- {o}");
    }
    let _ = writeln!(
        out,
        "- total run time: {:.0} s; other processes kept {total_load:.2} CPUs busy on average \
         (per part: {}); load average at the end: {}",
        t_start.elapsed().as_secs_f64(),
        loads
            .iter()
            .map(|(p, l)| format!("{p} {l:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        load_average()
    );
    print!("{out}");
    md.push('\n');
    md.push_str(&out);
    if let Err(e) = std::fs::create_dir_all(&cfg.out_dir) {
        eprintln!("cannot create {}: {e}", cfg.out_dir.display());
        return;
    }
    let path = cfg.out_dir.join("snapshot.md");
    match std::fs::write(&path, &md) {
        Ok(()) => println!("\nwrote {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
    if wrong_results > 0 {
        eprintln!("{wrong_results} check(s) failed: see Notes from this run");
        std::process::exit(1);
    }
}
