//! Throughput, single-thread latency and memory of `concurrent_hamt::Hamt` against peer
//! concurrent maps, all `u64 -> u64`, in one run.
//!
//! Run: `cargo bench -p benches --bench map` (about 5 minutes on the 2-core machine), or a
//! ~1 minute smoke run with `cargo bench -p benches --bench map -- --quick` (or
//! `MAP_BENCH_QUICK=1`). See BENCHMARKS.md at the top of the repository.
//!
//! # What is measured
//!
//! 1. **Mixed workloads** (bustle / conc-map-bench style, engine in `benches::workload`):
//!    ReadHeavy (98% get, 1% insert, 1% remove, 0% update; prefill 75% of the key space),
//!    Exchange (10/40/40/10, prefill 75%), RapidGrow (5/80/5/10, from empty) with no capacity
//!    hint, and RapidGrow again with the capacity given to the maps that take one; each at 1
//!    and 2 threads. Mops/s = total operations / wall time of the timed phase.
//! 2. **Single-thread ns/op** of `insert` (fresh keys into a map growing from empty), `get`
//!    (present keys, random order) and `remove` (present keys of the full map, random order)
//!    at 10^3, 10^5 and 10^6 keys, beside a plain `std::collections::HashMap`.
//! 3. **Bytes per entry** at 10^6 entries, filled from one thread with no hint, measured by a
//!    counting `#[global_allocator]` in a child process per map (a fresh process, so no other
//!    map's deferred frees land in the window): live bytes after filling minus before, divided
//!    by 10^6, both as requested from the allocator and as occupied in glibc's heap.
//!
//! Every figure is the **median of several trials** (5, or 3 with `--quick`); the trials of
//! the maps are interleaved (trial 1 of every map, then trial 2 of every map, with a rotating
//! order) so slow drift of the machine hits all maps alike. Each map uses its **default
//! hasher** (std `RandomState` / SipHash-1-3 for all but flurry, whose default is ahash).
//!
//! Every operation's result is checked against the expected one (each thread owns its keys,
//! so the outcome is deterministic); any mismatch is reported as an error.
//!
//! # Output
//!
//! Tables (markdown) on stdout and in `benches/results/map.md`, one PNG per workload in
//! `benches/results/` (`--quick` writes to `benches/results/quick/` instead).
//!
//! # Options (arguments after `--`, or environment variables)
//!
//! - `--quick` / `MAP_BENCH_QUICK=1`: smaller key spaces, 3 trials.
//! - `MAP_BENCH_TRIALS=N`: trials per figure.
//! - `MAP_BENCH_MAPS=ours,dashmap,...`: only these maps (ids: ours, dashmap, papaya, scc,
//!   flurry, contrie, rwlock; dashmap is always kept as the reference).
//! - `MAP_BENCH_WORKLOADS=readheavy,exchange,rapidgrow,rapidgrow_hint`: only these workloads.
//! - `MAP_BENCH_SKIP=seq,mem,workloads`: skip parts.
//! - `MAP_BENCH_OUT=DIR`: output directory.

use benches::maps::{Kind, Seq, StdSeq};
use benches::plot::{self, Group};
use benches::report::{cpu_probe, machine, other_load, Samples};
use benches::with_map;
use benches::workload::{self, Plan, SeqOp, SeqResult, Workload};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[global_allocator]
static ALLOC: benches::alloc::Counting = benches::alloc::Counting;

const THREADS: [usize; 2] = [1, 2];
const MEM_ENTRIES: usize = 1_000_000;

struct Config {
    quick: bool,
    trials: usize,
    maps: Vec<Kind>,
    workloads: Vec<Workload>,
    seq_sizes: Vec<usize>,
    seq_target_ops: usize,
    skip: Vec<String>,
    out_dir: PathBuf,
}

fn config() -> Config {
    let args: Vec<String> = std::env::args().collect();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let quick =
        args.iter().any(|a| a == "--quick") || env("MAP_BENCH_QUICK").is_some_and(|v| v != "0");
    let trials = env("MAP_BENCH_TRIALS")
        .map(|v| v.parse().expect("MAP_BENCH_TRIALS"))
        .unwrap_or(if quick { 3 } else { 5 });
    let mut maps = Kind::all();
    if let Some(list) = env("MAP_BENCH_MAPS") {
        let ids: Vec<&str> = list.split(',').map(str::trim).collect();
        maps.retain(|k| *k == Kind::Dashmap || ids.contains(&k.id()));
    }
    let mut workloads = workload::standard(quick);
    if let Some(list) = env("MAP_BENCH_WORKLOADS") {
        let ids: Vec<&str> = list.split(',').map(str::trim).collect();
        workloads.retain(|w| ids.contains(&w.id));
    }
    let skip = env("MAP_BENCH_SKIP")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    let out_dir = env("MAP_BENCH_OUT").map(PathBuf::from).unwrap_or(if quick {
        results.join("quick")
    } else {
        results
    });
    Config {
        quick,
        trials,
        maps,
        workloads,
        seq_sizes: if quick {
            vec![1_000, 100_000]
        } else {
            vec![1_000, 100_000, 1_000_000]
        },
        seq_target_ops: if quick { 200_000 } else { 300_000 },
        skip,
        out_dir,
    }
}

// ---------------------------------------------------------------------------------------------
// Memory (child processes)

#[derive(Clone, Copy, Debug)]
struct Mem {
    requested: f64,
    malloc: f64,
    blocks: f64,
    peak: f64,
    retained_after_drop: isize,
}

/// The key and value of entry `i` in the `String` memory measurement (a 20-byte key, a value
/// of 7 to 12 bytes: both on the heap, as most string keys are).
fn string_entry(i: u64) -> (String, String) {
    (
        format!("key-{:016x}", workload::key(workload::SEQ_NS, i)),
        format!("value-{i}"),
    )
}

fn mem_child(id: &str, n: usize) {
    use benches::alloc;
    if let Some(which) = id.strip_prefix("string-") {
        // `String` keys and values, ours (leaves: `String` is not `Plain`) beside dashmap;
        // the strings' own blocks count for both.
        let before = alloc::snapshot();
        alloc::reset_peak();
        macro_rules! fill {
            ($map:expr) => {{
                let m = $map;
                for i in 0..n as u64 {
                    let (k, v) = string_entry(i);
                    m.insert(k, v);
                }
                let after = alloc::snapshot();
                drop(m);
                after
            }};
        }
        let after = match which {
            "ours" => fill!(concurrent_hamt::Hamt::<String, String>::new()),
            "dashmap" => fill!(dashmap::DashMap::<String, String>::new()),
            _ => panic!("unknown map id {id}"),
        };
        let dropped = alloc::snapshot();
        println!(
            "MEM {} {} {} {} {}",
            after.requested - before.requested,
            after.malloc - before.malloc,
            after.blocks - before.blocks,
            after.peak_requested - before.requested,
            dropped.requested - before.requested,
        );
        return;
    }
    let kind = Kind::all()
        .into_iter()
        .find(|k| k.id() == id)
        .unwrap_or_else(|| panic!("unknown map id {id}"));
    let before = alloc::snapshot();
    alloc::reset_peak();
    let (after, peak) = with_map!(kind, M => {
        let m = workload::fill::<M>(n);
        let after = alloc::snapshot();
        let peak = after.peak_requested;
        drop(m);
        (after, peak)
    });
    let dropped = alloc::snapshot();
    println!(
        "MEM {} {} {} {} {}",
        after.requested - before.requested,
        after.malloc - before.malloc,
        after.blocks - before.blocks,
        peak - before.requested,
        dropped.requested - before.requested,
    );
}

fn measure_mem(kind: Kind, n: usize) -> Result<Mem, String> {
    measure_mem_of(kind.id(), n)
}

/// Runs the memory child for map id `id` (a [`Kind::id`], or `string-ours` /
/// `string-dashmap`).
fn measure_mem_of(id: &str, n: usize) -> Result<Mem, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["--mem-child", id, &n.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("MEM "))
        .ok_or_else(|| format!("child failed: {}", String::from_utf8_lossy(&out.stderr)))?;
    let v: Vec<isize> = line[4..]
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let per = |x: isize| x as f64 / n as f64;
    Ok(Mem {
        requested: per(v[0]),
        malloc: per(v[1]),
        blocks: per(v[2]),
        peak: per(v[3]),
        retained_after_drop: v[4],
    })
}

// ---------------------------------------------------------------------------------------------
// Single-thread ns/op

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum SeqKind {
    Std,
    Conc(Kind),
}

impl SeqKind {
    fn name(self) -> &'static str {
        match self {
            SeqKind::Std => "std HashMap",
            SeqKind::Conc(k) => k.name(),
        }
    }
}

fn seq_run(kind: SeqKind, n: usize, order: &[u32], target: usize) -> SeqResult {
    match kind {
        SeqKind::Std => workload::seq_trial::<StdSeq>(n, order, target),
        SeqKind::Conc(k) => with_map!(k, M => workload::seq_trial::<Seq<M>>(n, order, target)),
    }
}

fn fmt_mops(s: Option<&Samples>) -> String {
    match s {
        Some(s) if !s.0.is_empty() => format!("{:.2} ±{:.0}%", s.median(), s.spread_pct()),
        _ => "—".into(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--mem-child") {
        benches::alloc::enable();
        mem_child(&args[pos + 1], args[pos + 2].parse().expect("entry count"));
        return;
    }
    let cfg = config();
    let t_start = Instant::now();
    let mut md = String::new();
    let command = format!(
        "cargo bench -p benches --bench map{}",
        if cfg.quick { " -- --quick" } else { "" }
    );
    let _ = writeln!(md, "# Map benchmark results\n");
    let _ = writeln!(md, "- command: `{command}`");
    let _ = writeln!(md, "- argv: `{}`", args.join(" "));
    for l in machine(env!("CARGO_MANIFEST_DIR"), "profile bench (opt-level 3)") {
        let _ = writeln!(md, "- {l}");
    }
    let _ = writeln!(
        md,
        "- every figure is the median of {} trials (trials of the maps interleaved); ± is half \
         the min–max spread of the trials relative to the median",
        cfg.trials
    );
    let _ = writeln!(
        md,
        "- hashers: each map's default (std `RandomState`/SipHash-1-3; flurry: ahash)"
    );
    print!("{md}");
    if !benches::hamt::AVAILABLE {
        println!("- NOTE: our map's adapter is not compiled in; peers only");
    }
    println!();
    let mut oddities: Vec<String> = Vec::new();
    let maps = cfg.maps.clone();
    let has_ours = maps.contains(&Kind::Ours);

    let mut loads: Vec<(String, f64)> = Vec::new();
    let run_probe = cpu_probe();
    let mut probe = run_probe;
    // ---- 3. memory (fast; done first so the table is there even if a later part is cut short)
    let mut mem: BTreeMap<Kind, Mem> = BTreeMap::new();
    let mut string_mem: Vec<(&str, Mem)> = Vec::new();
    if !cfg.skip.iter().any(|s| s == "mem") {
        eprintln!("== memory: {MEM_ENTRIES} entries per map, one child process each");
        for &k in &maps {
            match measure_mem(k, MEM_ENTRIES) {
                Ok(m) => {
                    eprintln!(
                        "   {:<16} {:.1} B/entry requested, {:.1} in heap",
                        k.name(),
                        m.requested,
                        m.malloc
                    );
                    mem.insert(k, m);
                }
                Err(e) => oddities.push(format!("memory measurement of {} failed: {e}", k.name())),
            }
        }
        if has_ours && maps.contains(&Kind::Dashmap) {
            for which in ["ours", "dashmap"] {
                match measure_mem_of(&format!("string-{which}"), MEM_ENTRIES) {
                    Ok(m) => {
                        string_mem.push((which, m));
                    }
                    Err(e) => oddities.push(format!("String memory of {which} failed: {e}")),
                }
            }
        }
    }

    if !mem.is_empty() {
        let p = cpu_probe();
        loads.push(("memory".into(), other_load(probe, p)));
        probe = p;
    }

    // ---- 1. workloads
    type Key = (usize, usize, Kind); // (workload index, threads, map)
    let mut tput: BTreeMap<Key, Samples> = BTreeMap::new();
    let mut errors: BTreeMap<Key, u64> = BTreeMap::new();
    let mut block_load: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    if !cfg.skip.iter().any(|s| s == "workloads") {
        for (wi, w) in cfg.workloads.iter().enumerate() {
            for &threads in &THREADS {
                let wp = cpu_probe();
                let plan = Plan::new(w, threads, 0x5eed_0000 + wi as u64 * 16 + threads as u64);
                let run: Vec<Kind> = maps
                    .iter()
                    .copied()
                    .filter(|k| !w.hint || k.takes_hint())
                    .collect();
                eprintln!(
                    "== {} ({}, key space 2^{}, prefill {:.0}%, {} ops) at {} thread(s)",
                    w.name,
                    w.mix_str(),
                    w.capacity_log2,
                    w.prefill * 100.0,
                    plan.total_ops(),
                    threads
                );
                for trial in 0..cfg.trials {
                    for j in 0..run.len() {
                        let k = run[(j + trial) % run.len()];
                        let t = with_map!(k, M => workload::run_trial::<M>(&plan));
                        tput.entry((wi, threads, k)).or_default().0.push(t.mops());
                        *errors.entry((wi, threads, k)).or_default() += t.errors;
                        eprintln!(
                            "   trial {} {:<16} {:7.2} Mops/s  ({:.2} s, prefill {:.2} s{})",
                            trial + 1,
                            k.name(),
                            t.mops(),
                            t.elapsed.as_secs_f64(),
                            t.prefill.as_secs_f64(),
                            if t.errors > 0 {
                                format!(", {} WRONG RESULTS", t.errors)
                            } else {
                                String::new()
                            }
                        );
                    }
                }
                let load = other_load(wp, cpu_probe());
                eprintln!("   (other processes kept {load:.2} CPUs busy meanwhile)");
                loads.push((format!("{} at {threads} thread(s)", w.name), load));
                block_load.insert((wi, threads), load);
            }
        }
        probe = cpu_probe();
    }
    for (&(wi, threads, k), &e) in &errors {
        if e > 0 {
            oddities.push(format!(
                "{} gave {e} wrong results in {} at {threads} thread(s)",
                k.name(),
                cfg.workloads[wi].name
            ));
        }
    }

    // ---- 2. single-thread ns/op
    let seq_kinds: Vec<SeqKind> = std::iter::once(SeqKind::Std)
        .chain(maps.iter().map(|&k| SeqKind::Conc(k)))
        .collect();
    let mut seq: BTreeMap<(SeqOp, usize, SeqKind), Samples> = BTreeMap::new();
    if !cfg.skip.iter().any(|s| s == "seq") {
        eprintln!("== single-thread ns/op");
        let orders: Vec<Vec<u32>> = cfg
            .seq_sizes
            .iter()
            .map(|&n| {
                let mut o: Vec<u32> = (0..n as u32).collect();
                workload::shuffle(&mut o, &mut workload::Rng::new(n as u64));
                o
            })
            .collect();
        for trial in 0..cfg.trials {
            for (si, &n) in cfg.seq_sizes.iter().enumerate() {
                for j in 0..seq_kinds.len() {
                    let k = seq_kinds[(j + trial) % seq_kinds.len()];
                    let r = seq_run(k, n, &orders[si], cfg.seq_target_ops);
                    if r.errors > 0 {
                        oddities.push(format!(
                            "{} gave {} wrong results in the single-thread loops at n={n}",
                            k.name(),
                            r.errors
                        ));
                    }
                    for op in [SeqOp::Get, SeqOp::Insert, SeqOp::Remove] {
                        seq.entry((op, n, k)).or_default().0.push(r.of(op));
                    }
                }
            }
            eprintln!(
                "   trial {} done ({:.0} s so far)",
                trial + 1,
                t_start.elapsed().as_secs_f64()
            );
        }
        loads.push(("single-thread loops".into(), other_load(probe, cpu_probe())));
    }
    let total_load = other_load(run_probe, cpu_probe());

    // ---- tables
    let mut out = String::new();
    let names: Vec<&str> = maps.iter().map(|k| k.name()).collect();
    // (goal, what was measured: the ratio and whether it meets the goal)
    let mut goals: Vec<(String, Option<(f64, bool)>)> = Vec::new();
    let median_of =
        |wi: usize, threads: usize, k: Kind| tput.get(&(wi, threads, k)).map(Samples::median);
    if !tput.is_empty() {
        let _ = writeln!(out, "## Throughput (Mops/s, higher is better)\n");
        let _ = writeln!(
            out,
            "Per trial: {}. u64 keys and values; ± = half the min–max spread of the trials.\n",
            cfg.workloads
                .iter()
                .map(|w| format!(
                    "{} key space 2^{}, prefill {:.0}%, {} ops",
                    w.name,
                    w.capacity_log2,
                    w.prefill * 100.0,
                    w.total_ops()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let _ = write!(out, "| workload (get/ins/rem/upd) | threads |");
        for n in &names {
            let _ = write!(out, " {n} |");
        }
        let _ = writeln!(out, " ours/dashmap | other load |");
        let _ = write!(out, "|---|---:|");
        for _ in &names {
            let _ = write!(out, "---:|");
        }
        let _ = writeln!(out, "---:|---:|");
        for (wi, w) in cfg.workloads.iter().enumerate() {
            for &threads in &THREADS {
                let _ = write!(out, "| {} ({}) | {threads} |", w.name, w.mix_str());
                for &k in &maps {
                    let _ = write!(out, " {} |", fmt_mops(tput.get(&(wi, threads, k))));
                }
                // Ours never takes a hint: in the hinted workload compare ours without a hint.
                let ours_wi = if w.hint && !Kind::Ours.takes_hint() {
                    cfg.workloads
                        .iter()
                        .position(|x| x.id == "rapidgrow")
                        .unwrap_or(wi)
                } else {
                    wi
                };
                let ratio = match (
                    tput.get(&(ours_wi, threads, Kind::Ours)),
                    tput.get(&(wi, threads, Kind::Dashmap)),
                ) {
                    (Some(o), Some(d)) => Some(o.median() / d.median()),
                    _ => None,
                };
                let mark = if ours_wi != wi { "†" } else { "" };
                let _ = writeln!(
                    out,
                    " {} | {} |",
                    ratio.map_or("—".into(), |r| format!("{r:.2}x{mark}")),
                    block_load
                        .get(&(wi, threads))
                        .map_or("—".into(), |l| format!("{l:.2}"))
                );
                // The goals: at 2 threads ours >= 1.0x papaya and ahead of contrie
                // and flurry on each workload without hints.
                if threads == 2 && !w.hint {
                    let ours = median_of(wi, threads, Kind::Ours);
                    for (peer, at_least, how) in [
                        (Kind::Papaya, 1.0, ">= 1.0x"),
                        (Kind::Contrie, 1.0, "ahead of"),
                        (Kind::Flurry, 1.0, "ahead of"),
                    ] {
                        let r = ours.zip(median_of(wi, threads, peer)).map(|(o, p)| o / p);
                        let pass = |r: f64| {
                            if how == "ahead of" {
                                r > at_least
                            } else {
                                r >= at_least
                            }
                        };
                        goals.push((
                            format!("{}, 2 threads: ours {how} {}", w.name, peer.name()),
                            r.map(|r| (r, pass(r))),
                        ));
                    }
                }
                if w.id == "exchange" && threads == 2 {
                    let r = median_of(wi, 2, Kind::Ours)
                        .zip(median_of(wi, 1, Kind::Ours))
                        .map(|(two, one)| two / one);
                    goals.push((
                        "Exchange scales: ours at 2 threads >= 1.6x ours at 1 thread".into(),
                        r.map(|r| (r, r >= 1.6)),
                    ));
                }
            }
        }
        let _ = writeln!(
            out,
            "\n— = not run: in the hinted RapidGrow only maps that take a capacity hint run \
             (ours and contrie have no such constructor). † ours without a hint vs dashmap with \
             one. *other load*: CPUs kept busy by other processes while the row was measured \
             (average; above ~0.1 the row is disturbed).\n"
        );
    }
    if !seq.is_empty() {
        let _ = writeln!(out, "## Single thread (ns/op, lower is better)\n");
        let _ = writeln!(
            out,
            "insert: fresh keys into a map growing from empty to the given size (no hint); get: \
             present keys in random order; remove: present keys in random order from the full \
             map (all of them at 10^3 and 10^5 keys, the first {} at 10^6). Small sizes are \
             repeated until about {} operations of each kind were timed.\n",
            cfg.seq_target_ops, cfg.seq_target_ops
        );
        let _ = write!(out, "| op | keys |");
        for k in &seq_kinds {
            let _ = write!(out, " {} |", k.name());
        }
        let _ = writeln!(out, " ours/dashmap | ours/std |");
        let _ = write!(out, "|---|---:|");
        for _ in &seq_kinds {
            let _ = write!(out, "---:|");
        }
        let _ = writeln!(out, "---:|---:|");
        for op in [SeqOp::Get, SeqOp::Insert, SeqOp::Remove] {
            for &n in &cfg.seq_sizes {
                let _ = write!(out, "| {} | 10^{} |", op.name(), (n as f64).log10().round());
                for &k in &seq_kinds {
                    let s = seq.get(&(op, n, k));
                    let _ = write!(
                        out,
                        " {} |",
                        s.map_or("—".into(), |s| format!("{:.1}", s.median()))
                    );
                }
                let get = |k| seq.get(&(op, n, k)).map(|s: &Samples| s.median());
                let ours = get(SeqKind::Conc(Kind::Ours));
                let r = |b: Option<f64>| match (ours, b) {
                    (Some(o), Some(b)) => format!("{:.2}x", o / b),
                    _ => "—".into(),
                };
                let _ = writeln!(
                    out,
                    " {} | {} |",
                    r(get(SeqKind::Conc(Kind::Dashmap))),
                    r(get(SeqKind::Std))
                );
                // The goals: get within 1.5x / 2.5x / 3x of dashmap at 10^3 / 10^5 /
                // 10^6 keys, insert within 3x, remove within 4x (ns/op: lower is better).
                let limit = match (op, (n as f64).log10().round() as i32) {
                    (SeqOp::Get, 3) => Some(1.5),
                    (SeqOp::Get, 5) => Some(2.5),
                    (SeqOp::Get, 6) => Some(3.0),
                    (SeqOp::Get, _) => None,
                    (SeqOp::Insert, _) => Some(3.0),
                    (SeqOp::Remove, _) => Some(4.0),
                };
                if let Some(limit) = limit {
                    let ratio = ours
                        .zip(get(SeqKind::Conc(Kind::Dashmap)))
                        .map(|(o, d)| o / d);
                    goals.push((
                        format!(
                            "single-thread {} at 10^{}: ours within {limit}x dashmap",
                            op.name(),
                            (n as f64).log10().round()
                        ),
                        ratio.map(|r| (r, r <= limit)),
                    ));
                }
            }
        }
        let _ = writeln!(out);
    }
    if !mem.is_empty() {
        let _ = writeln!(
            out,
            "## Memory at {MEM_ENTRIES} u64 -> u64 entries (bytes per entry, lower is better)\n"
        );
        let _ = writeln!(
            out,
            "Filled from one thread with no capacity hint, in a fresh process per map. \
             *requested*: live bytes asked of the allocator after filling minus before, / 10^6 \
             (includes garbage not yet reclaimed at that moment). *heap*: the same in glibc \
             block sizes (usable size + 8-byte header per block). *peak*: highest requested \
             live bytes during the fill (e.g. old + new table while resizing).\n"
        );
        let _ = writeln!(out, "| map | requested B/entry | heap B/entry | allocations/entry | peak B/entry | vs dashmap (requested) |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        let dash = mem.get(&Kind::Dashmap).map(|m| m.requested);
        for (&k, m) in &mem {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {:.3} | {:.1} | {} |",
                k.name(),
                m.requested,
                m.malloc,
                m.blocks,
                m.peak,
                dash.map_or("—".into(), |d| format!("{:.2}x", m.requested / d))
            );
            if m.retained_after_drop.abs() > 64 * 1024 {
                oddities.push(format!(
                    "{}: {} bytes still live right after dropping the filled map (deferred reclamation or a leak)",
                    k.name(),
                    m.retained_after_drop
                ));
            }
        }
        let _ = writeln!(out);
        if !string_mem.is_empty() {
            let _ = writeln!(
                out,
                "`String` keys and values (a 20-byte key and a 7-12 byte value per entry, the \
                 strings' own heap blocks included), {MEM_ENTRIES} entries:\n"
            );
            let _ = writeln!(out, "| map | requested B/entry | heap B/entry | allocations/entry | vs dashmap (heap) |");
            let _ = writeln!(out, "|---|---:|---:|---:|---:|");
            let dash = string_mem
                .iter()
                .find(|(w, _)| *w == "dashmap")
                .map(|(_, m)| m.malloc);
            for (which, m) in &string_mem {
                let name = if *which == "ours" {
                    "ours (Hamt<String, String>, leaves)"
                } else {
                    "dashmap"
                };
                let _ = writeln!(
                    out,
                    "| {name} | {:.1} | {:.1} | {:.3} | {} |",
                    m.requested,
                    m.malloc,
                    m.blocks,
                    dash.map_or("—".into(), |d| format!("{:.2}x", m.malloc / d))
                );
            }
            let _ = writeln!(out);
        }
        // The goal: heap bytes (glibc block overhead included) at most 1.25x
        // dashmap's.
        let heap = |k| mem.get(&k).map(|m: &Mem| m.malloc);
        goals.push((
            "heap bytes per entry at 10^6: ours <= 1.25x dashmap".into(),
            heap(Kind::Ours)
                .zip(heap(Kind::Dashmap))
                .map(|(o, d)| (o / d, o / d <= 1.25)),
        ));
    }
    if !goals.is_empty() {
        let _ = writeln!(out, "## Goals\n");
        for (g, r) in &goals {
            let status = match r {
                None => "not measured (a map is missing from this run)".to_string(),
                Some((r, pass)) => format!("{} ({r:.2}x)", if *pass { "PASS" } else { "FAIL" }),
            };
            let _ = writeln!(out, "- {g}: {status}");
        }
        let _ = writeln!(out);
    }
    if !has_ours {
        oddities.push("our map (concurrent_hamt::Hamt) was not part of this run".into());
    }
    let busiest =
        loads.iter().cloned().fold(
            (String::new(), 0.0f64),
            |a, b| if b.1 > a.1 { b } else { a },
        );
    if busiest.1 > 0.15 {
        oddities.push(format!(
            "other processes were using the CPUs during the run (on average {total_load:.2} of {} \
             CPUs over the whole run; most during {}: {:.2}); figures taken then are less reliable",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            busiest.0,
            busiest.1
        ));
    }
    let _ = writeln!(out, "## Notes from this run\n");
    if oddities.is_empty() {
        let _ = writeln!(
            out,
            "- nothing unusual: every operation returned the expected result"
        );
    }
    for o in &oddities {
        let _ = writeln!(out, "- {o}");
    }
    let _ = writeln!(
        out,
        "- total run time: {:.0} s; other processes kept {total_load:.2} CPUs busy on average",
        t_start.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        out,
        "- CPUs kept busy by other processes, per part: {}",
        loads
            .iter()
            .map(|(part, l)| format!("{part} {l:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    print!("{out}");
    md.push('\n');
    md.push_str(&out);

    // ---- files
    if let Err(e) = std::fs::create_dir_all(&cfg.out_dir) {
        eprintln!("cannot create {}: {e}", cfg.out_dir.display());
        return;
    }
    let md_path = cfg.out_dir.join("map.md");
    match std::fs::write(&md_path, &md) {
        Ok(()) => println!("\nwrote {}", md_path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", md_path.display()),
    }
    if !tput.is_empty() {
        if !plot::font_available() {
            println!("no TrueType font found (set MAP_BENCH_FONT=path.ttf): plots have no text");
        }
        let series: Vec<String> = THREADS
            .iter()
            .map(|t| format!("{t} thread{}", if *t == 1 { "" } else { "s" }))
            .collect();
        let series: Vec<&str> = series.iter().map(String::as_str).collect();
        for (wi, w) in cfg.workloads.iter().enumerate() {
            let groups: Vec<Group> = maps
                .iter()
                .map(|&k| Group {
                    label: k.name().to_string(),
                    values: THREADS
                        .iter()
                        .map(|&t| tput.get(&(wi, t, k)).map(Samples::median))
                        .collect(),
                })
                .collect();
            let title = format!(
                "{}: {} get/ins/rem/upd, 2^{} keys, prefill {:.0}%, median of {}",
                w.name,
                w.mix_str(),
                w.capacity_log2,
                w.prefill * 100.0,
                cfg.trials
            );
            let path = cfg.out_dir.join(format!("{}.png", w.id));
            let highlight = maps.iter().position(|&k| k == Kind::Ours);
            match plot::grouped_bars(
                &path,
                &title,
                "Mops/s (higher is better)",
                &series,
                &groups,
                highlight,
            ) {
                Ok(()) => println!("wrote {}", path.display()),
                Err(e) => eprintln!("cannot draw {}: {e}", path.display()),
            }
        }
    }
}
