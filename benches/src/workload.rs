//! A bustle-style mixed workload (the "universal benchmark" of libcuckoo that bustle ports and
//! conc-map-bench drives), written from scratch for this repository.
//!
//! # Keys
//!
//! Thread `t` owns the keys `key(t, i) = mix64(t << 40 | i)` for `i` in `0..2^m`, where
//! `mix64` is the SplitMix64 finaliser, a bijection on `u64`: every key is distinct, keys look
//! random to every hasher, and no key array has to be read during the run (a key costs a few
//! multiplications instead of a cache miss). Each thread only ever touches its own keys, so
//! the outcome of every operation is known in advance even with several threads, and the
//! harness checks it (`errors` counts operations whose result was wrong: a `get` that missed
//! a present key or found an absent one, an `insert` of a fresh key that reported it present,
//! a `remove` of a present key that reported it absent, ...).
//!
//! # Operations
//!
//! Per thread, with `ins` (next fresh key) starting at the thread's prefill count and `era`
//! (oldest live key) at 0:
//! - `Insert`: inserts `key(t, ins)` (always a fresh key), `ins += 1`;
//! - `Remove`: removes `key(t, era)`, `era += 1` (if `era == ins` nothing is live: the remove
//!   of the not-yet-inserted `key(t, era)` must fail and `era` stays);
//! - `Read` / `Update`: a pseudo-random walk (64-bit LCG, bits 24..) picks `i` in `0..2^m`; the
//!   key is present iff `era <= i < ins`, so the hit rate is the fraction of the thread's key
//!   range currently live (~75% for ReadHeavy). `Update` adds 1 to the value if present.
//!
//! The operation stream of each thread is generated before the run: exactly
//! `ops * percentage / 100` operations of each kind, Fisher-Yates-shuffled with a fixed seed,
//! so every map gets the same streams.
//!
//! # A trial
//!
//! A fresh map is created (with the capacity hint if the workload asks for one and the map
//! takes one), every thread prefills its own first `prefill` keys, all threads meet at a
//! barrier, then each runs its stream. The trial's time is from the earliest thread start to
//! the latest thread end; throughput is total operations / that time. Map creation, prefill
//! and the drop of the map are not timed.

use crate::maps::{ConcMap, SeqMap};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// SplitMix64 finaliser: a bijection on `u64` with good avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Key `i` of thread `t`.
#[inline]
pub fn key(t: u64, i: u64) -> u64 {
    mix64((t << 40) | i)
}

/// SplitMix64 generator.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// Shuffle in place (Fisher-Yates).
pub fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
}

const LCG_A: u64 = 6_364_136_223_846_793_005;
const LCG_C: u64 = 1_442_695_040_888_963_407;

/// One operation of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// `get`.
    Read,
    /// `insert` of a fresh key.
    Insert,
    /// `remove` of the oldest live key.
    Remove,
    /// `update` (+1) of a walked key.
    Update,
}

/// Percentages of each operation; they add up to 100.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// `get`s.
    pub read: u32,
    /// `insert`s.
    pub insert: u32,
    /// `remove`s.
    pub remove: u32,
    /// `update`s.
    pub update: u32,
}

/// A workload definition.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Display name.
    pub name: &'static str,
    /// File-name id.
    pub id: &'static str,
    /// Operation mix.
    pub mix: Mix,
    /// The key space / capacity is `2^capacity_log2` (as in bustle).
    pub capacity_log2: u32,
    /// Fraction of the capacity inserted before the timed run.
    pub prefill: f64,
    /// Total operations (all threads) as a multiple of the capacity.
    pub ops: f64,
    /// Give the capacity to maps that take a hint.
    pub hint: bool,
}

impl Workload {
    /// `2^capacity_log2`.
    pub fn capacity(&self) -> usize {
        1usize << self.capacity_log2
    }
    /// Total operations of one trial.
    pub fn total_ops(&self) -> usize {
        (self.capacity() as f64 * self.ops) as usize
    }
    /// e.g. `98/1/1/0`.
    pub fn mix_str(&self) -> String {
        let m = self.mix;
        format!("{}/{}/{}/{}", m.read, m.insert, m.remove, m.update)
    }
}

/// The workloads of the `map` benchmark (the three of conc-map-bench, plus RapidGrow with a
/// capacity hint), on a key space of 2^20, or 2^17 when `quick`. The baseline runner
/// (`benches/baseline/runner.rs`) takes ReadHeavy and Exchange from here too.
pub fn standard(quick: bool) -> Vec<Workload> {
    // Key space 2^20 in a full run, 2^17 with --quick. Operation counts are chosen so that a
    // trial of the fastest maps takes ~0.2-0.4 s here; the slowest take up to ~2 s.
    let log2 = if quick { 17 } else { 20 };
    let read_heavy = Mix {
        read: 98,
        insert: 1,
        remove: 1,
        update: 0,
    };
    let exchange = Mix {
        read: 10,
        insert: 40,
        remove: 40,
        update: 10,
    };
    let rapid_grow = Mix {
        read: 5,
        insert: 80,
        remove: 5,
        update: 10,
    };
    vec![
        Workload {
            name: "ReadHeavy",
            id: "readheavy",
            mix: read_heavy,
            capacity_log2: log2,
            prefill: 0.75,
            ops: 2.0,
            hint: false,
        },
        Workload {
            name: "Exchange",
            id: "exchange",
            mix: exchange,
            capacity_log2: log2,
            prefill: 0.75,
            ops: 1.5,
            hint: false,
        },
        Workload {
            name: "RapidGrow",
            id: "rapidgrow",
            mix: rapid_grow,
            capacity_log2: log2,
            prefill: 0.0,
            ops: 1.0,
            hint: false,
        },
        Workload {
            name: "RapidGrow (capacity hint)",
            id: "rapidgrow_hint",
            mix: rapid_grow,
            capacity_log2: log2,
            prefill: 0.0,
            ops: 1.0,
            hint: true,
        },
    ]
}

/// What one thread does in a trial.
pub struct ThreadPlan {
    /// Thread index (key namespace).
    pub tid: u64,
    /// Keys `0..prefill` are inserted before the run.
    pub prefill: u64,
    /// The walk picks indices in `0..=mask`.
    pub mask: u64,
    /// Initial LCG state of the walk.
    pub walk_seed: u64,
    /// The operation stream.
    pub ops: Vec<Op>,
}

/// Pre-generated streams for a workload at a thread count.
pub struct Plan {
    /// Threads.
    pub threads: usize,
    /// Capacity hint (`2^capacity_log2`), passed only if the workload wants one.
    pub hint: Option<usize>,
    /// Per-thread plans.
    pub per_thread: Vec<ThreadPlan>,
}

impl Plan {
    /// Build the streams; the same `seed` gives the same streams.
    pub fn new(w: &Workload, threads: usize, seed: u64) -> Plan {
        let per_thread_ops = w.total_ops() / threads;
        let prefill = (w.capacity() as f64 * w.prefill) as usize / threads;
        let mut rng = Rng::new(seed);
        let per_thread = (0..threads)
            .map(|t| {
                let n = |pct: u32| per_thread_ops * pct as usize / 100;
                let (ni, nr, nu) = (n(w.mix.insert), n(w.mix.remove), n(w.mix.update));
                let nread = per_thread_ops - ni - nr - nu;
                let mut ops = Vec::with_capacity(per_thread_ops);
                ops.extend(std::iter::repeat_n(Op::Read, nread));
                ops.extend(std::iter::repeat_n(Op::Insert, ni));
                ops.extend(std::iter::repeat_n(Op::Remove, nr));
                ops.extend(std::iter::repeat_n(Op::Update, nu));
                shuffle(&mut ops, &mut rng);
                let keys = (prefill + ni).max(2).next_power_of_two() as u64;
                ThreadPlan {
                    tid: t as u64,
                    prefill: prefill as u64,
                    mask: keys - 1,
                    walk_seed: rng.next_u64(),
                    ops,
                }
            })
            .collect();
        Plan {
            threads,
            hint: w.hint.then(|| w.capacity()),
            per_thread,
        }
    }

    /// Operations in one trial.
    pub fn total_ops(&self) -> usize {
        self.per_thread.iter().map(|t| t.ops.len()).sum()
    }
}

/// Outcome of one trial.
#[derive(Clone, Copy, Debug)]
pub struct Trial {
    /// Operations run.
    pub ops: usize,
    /// Wall time of the timed phase.
    pub elapsed: Duration,
    /// Operations whose result was not the expected one (must be 0).
    pub errors: u64,
    /// Time to prefill (untimed phase, for information).
    pub prefill: Duration,
}

impl Trial {
    /// Million operations per second.
    pub fn mops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64() / 1e6
    }
}

struct ThreadOut {
    start: Instant,
    end: Instant,
    prefill: Duration,
    errors: u64,
    checksum: u64,
}

#[inline(never)]
fn run_stream<M: ConcMap>(map: &M, tp: &ThreadPlan) -> (u64, u64) {
    let t = tp.tid;
    let mask = tp.mask;
    let mut ins = tp.prefill;
    let mut era = 0u64;
    let mut walk = tp.walk_seed;
    let mut errors = 0u64;
    let mut sum = 0u64;
    for &op in &tp.ops {
        match op {
            Op::Read => {
                walk = walk.wrapping_mul(LCG_A).wrapping_add(LCG_C);
                let i = (walk >> 24) & mask;
                let expect = i >= era && i < ins;
                match map.get(key(t, i)) {
                    Some(v) => {
                        sum = sum.wrapping_add(v);
                        errors += u64::from(!expect);
                    }
                    None => errors += u64::from(expect),
                }
            }
            Op::Insert => {
                let k = key(t, ins);
                errors += u64::from(!map.insert(k, k));
                ins += 1;
            }
            Op::Remove => {
                if era < ins {
                    errors += u64::from(!map.remove(key(t, era)));
                    era += 1;
                } else {
                    errors += u64::from(map.remove(key(t, era)));
                }
            }
            Op::Update => {
                walk = walk.wrapping_mul(LCG_A).wrapping_add(LCG_C);
                let i = (walk >> 24) & mask;
                let expect = i >= era && i < ins;
                errors += u64::from(map.update(key(t, i)) != expect);
            }
        }
    }
    (errors, sum)
}

/// Run one trial of `plan` on a fresh `M`.
pub fn run_trial<M: ConcMap>(plan: &Plan) -> Trial {
    let hint = if M::TAKES_HINT { plan.hint } else { None };
    let map = M::create(hint);
    let barrier = Barrier::new(plan.threads);
    let outs: Vec<ThreadOut> = std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .per_thread
            .iter()
            .map(|tp| {
                let map = &map;
                let barrier = &barrier;
                s.spawn(move || {
                    let p0 = Instant::now();
                    let mut errors = 0;
                    for i in 0..tp.prefill {
                        let k = key(tp.tid, i);
                        errors += u64::from(!map.insert(k, k));
                    }
                    let prefill = p0.elapsed();
                    barrier.wait();
                    let start = Instant::now();
                    let (e, checksum) = run_stream(map, tp);
                    let end = Instant::now();
                    ThreadOut {
                        start,
                        end,
                        prefill,
                        errors: errors + e,
                        checksum,
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    drop(map);
    let start = outs.iter().map(|o| o.start).min().unwrap();
    let end = outs.iter().map(|o| o.end).max().unwrap();
    black_box(outs.iter().map(|o| o.checksum).sum::<u64>());
    Trial {
        ops: plan.total_ops(),
        elapsed: end - start,
        errors: outs.iter().map(|o| o.errors).sum(),
        prefill: outs.iter().map(|o| o.prefill).max().unwrap(),
    }
}

/// Single-thread operation measured in ns/op.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeqOp {
    /// `get` of present keys, random order.
    Get,
    /// `insert` of fresh keys into a map growing from empty (no hint).
    Insert,
    /// `remove` of every key of a full map, random order.
    Remove,
}

impl SeqOp {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            SeqOp::Get => "get",
            SeqOp::Insert => "insert",
            SeqOp::Remove => "remove",
        }
    }
}

/// Namespace of the single-thread keys (distinct from the workload threads').
/// The key namespace of the single-thread loops and of `fill`.
pub const SEQ_NS: u64 = 0xABCD;

/// Single-thread ns/op of one trial, see [`seq_trial`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqResult {
    /// ns per `insert` of a fresh key into a map growing from empty.
    pub insert: f64,
    /// ns per `get` of a present key, random order.
    pub get: f64,
    /// ns per `remove` of a present key, random order, until the map is empty.
    pub remove: f64,
    /// Operations whose result was wrong (must be 0).
    pub errors: u64,
}

impl SeqResult {
    /// The figure for `op`.
    pub fn of(&self, op: SeqOp) -> f64 {
        match op {
            SeqOp::Get => self.get,
            SeqOp::Insert => self.insert,
            SeqOp::Remove => self.remove,
        }
    }
}

/// One single-thread trial at `n` keys. Each round creates an empty map (no hint), times `n`
/// inserts of fresh keys, then (first round only) times `get` of the keys in `order` (a
/// permutation of `0..n`), repeated until about `target_ops` lookups, then times the removal
/// of the keys in `order` (all of them, or only the first `target_ops` when `n` is larger),
/// and drops the map (untimed). Rounds repeat until about `target_ops` inserts were timed (at
/// least one round).
pub fn seq_trial<S: SeqMap>(n: usize, order: &[u32], target_ops: usize) -> SeqResult {
    let rounds = (target_ops / n).max(1);
    let mut errors = 0u64;
    let (mut t_ins, mut t_get, mut t_rem) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut gets = 0usize;
    let mut removed = 0usize;
    for round in 0..rounds {
        let mut m = S::create();
        let t0 = Instant::now();
        for i in 0..n as u64 {
            errors += u64::from(!m.insert(key(SEQ_NS, i), i));
        }
        t_ins += t0.elapsed();
        if round == 0 {
            let mut sum = 0u64;
            let lookups = &order[..n.min(target_ops)];
            let t0 = Instant::now();
            for _ in 0..rounds {
                for &i in lookups {
                    match m.get(key(SEQ_NS, i as u64)) {
                        Some(v) => sum = sum.wrapping_add(v),
                        None => errors += 1,
                    }
                }
            }
            t_get = t0.elapsed();
            gets = rounds * lookups.len();
            black_box(sum);
        }
        let removals = &order[..n.min(target_ops)];
        let t0 = Instant::now();
        for &i in removals {
            errors += u64::from(!m.remove(key(SEQ_NS, i as u64)));
        }
        t_rem += t0.elapsed();
        removed += removals.len();
        drop(m);
    }
    let per = |t: Duration, ops: usize| t.as_nanos() as f64 / ops as f64;
    SeqResult {
        insert: per(t_ins, rounds * n),
        get: per(t_get, gets),
        remove: per(t_rem, removed),
        errors,
    }
}

/// Fill a fresh `M` (no hint) with `n` keys from one thread; returns the map so the caller
/// can measure memory before dropping it.
pub fn fill<M: ConcMap>(n: usize) -> M {
    let m = M::create(None);
    for i in 0..n as u64 {
        let k = key(SEQ_NS, i);
        m.insert(k, i);
    }
    m
}

/// Median of a non-empty sample.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}
