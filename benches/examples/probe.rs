//! A small driver for instruction and cache profiles of single-thread `get` (callgrind on this
//! VM, which exposes no hardware counters to `perf stat`; see BENCHMARKS.md, "Where a get's
//! time goes").
//!
//! `cargo run --release -p benches --example probe -- <ours|leaves|dashmap|papaya> <entries> <gets>`
//! fills a `u64 -> u64` map with `entries` keys (the `map` bench's keys), then looks up `gets`
//! present keys in a pseudo-random order inside `timed_gets`, and prints ns per get. Under
//! `valgrind --tool=callgrind --toggle-collect=*timed_gets*` only the gets are counted.
//! With a fifth argument `insert` or `remove`, it times the fill (`timed_inserts`) and then
//! the removal of every key in a scrambled order (`timed_removes`), for `entries` rounded up
//! to a power of two; with `churn`, rounds of filling and emptying the map; with `rewrite`,
//! a full map read once, then every key removed and inserted again (`timed_rewrites`).

use benches::maps::ConcMap;
use benches::workload::key;
use std::hint::black_box;
use std::time::Instant;

#[inline(never)]
fn timed_gets<M: ConcMap>(map: &M, entries: u64, gets: u64) -> u64 {
    let mut sum = 0u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..gets {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (x >> 24) % entries;
        sum = sum.wrapping_add(map.get(key(0, i)).expect("present"));
    }
    sum
}

#[inline(never)]
fn timed_inserts<M: ConcMap>(map: &M, entries: u64) {
    for i in 0..entries {
        assert!(map.insert(key(0, i), i));
    }
}

#[inline(never)]
fn timed_removes<M: ConcMap>(map: &M, entries: u64) {
    // A permutation of 0..entries (entries is rounded down to a power of two by the caller).
    let mask = entries - 1;
    for j in 0..entries {
        // An odd multiplier is a bijection modulo a power of two.
        let i = j.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask;
        assert!(map.remove(key(0, i)));
    }
}

#[inline(never)]
fn timed_rewrites<M: ConcMap>(map: &M, entries: u64) {
    let mask = entries - 1;
    for j in 0..entries {
        let i = j.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask;
        assert!(map.remove(key(0, i)));
        assert!(map.insert(key(0, i), i));
    }
}

fn run_writes<M: ConcMap>(entries: u64, op: &str) {
    let entries = entries.next_power_of_two();
    let map = M::create(None);
    let start = Instant::now();
    timed_inserts(&map, entries);
    let ins = start.elapsed().as_nanos() as f64 / entries as f64;
    if op == "fill" {
        // Fresh maps filled to `entries` and dropped, as the map bench's insert loop does.
        drop(map);
        let rounds = (1 << 21) / entries;
        let mut timed = std::time::Duration::ZERO;
        for _ in 0..rounds {
            let map = M::create(None);
            let start = Instant::now();
            timed_inserts(&map, entries);
            timed += start.elapsed();
            drop(map);
        }
        let ns = timed.as_nanos() as f64 / (rounds * entries) as f64;
        println!("{} entries={entries}: fill {ns:.1} ns per insert", M::NAME);
        return;
    }
    if op == "rewrite" {
        // A full map that has been read (so that a map with a level cache has filled it),
        // then each key removed and inserted again, in a scrambled order: writes at full size.
        black_box(timed_gets(&map, entries, entries));
        let start = Instant::now();
        timed_rewrites(&map, entries);
        let ns = start.elapsed().as_nanos() as f64 / (2 * entries) as f64;
        println!(
            "{} entries={entries}: rewrite {ns:.1} ns per write",
            M::NAME
        );
        return;
    }
    if op == "churn" {
        // Rounds of filling and emptying the same (small) map, for profiles of the write path
        // without cache misses.
        timed_removes(&map, entries);
        let rounds = (1 << 22) / entries;
        let start = Instant::now();
        for _ in 0..rounds {
            timed_inserts(&map, entries);
            timed_removes(&map, entries);
        }
        let ns = start.elapsed().as_nanos() as f64 / (2 * rounds * entries) as f64;
        println!("{} entries={entries}: churn {ns:.1} ns per write", M::NAME);
        return;
    }
    let start = Instant::now();
    if op == "remove" {
        timed_removes(&map, entries);
    }
    let rem = start.elapsed().as_nanos() as f64 / entries as f64;
    println!(
        "{} entries={entries}: insert {ins:.1} ns, remove {rem:.1} ns",
        M::NAME
    );
}

fn run<M: ConcMap>(entries: u64, gets: u64) {
    let map = M::create(None);
    for i in 0..entries {
        map.insert(key(0, i), i);
    }
    // One untimed pass, so that lazily finished work (papaya's incremental resize) is done.
    black_box(timed_gets(&map, entries, entries.min(gets)));
    let start = Instant::now();
    black_box(timed_gets(&map, entries, gets));
    let ns = start.elapsed().as_nanos() as f64 / gets as f64;
    println!("{} entries={entries} gets={gets}: {ns:.1} ns/get", M::NAME);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("ours", String::as_str);
    let entries: u64 = args
        .get(2)
        .map_or(1_000_000, |s| s.parse().expect("entries"));
    let gets: u64 = args.get(3).map_or(1_000_000, |s| s.parse().expect("gets"));
    if let Some(op) = args.get(4).filter(|op| *op != "get") {
        match which {
            "ours" => run_writes::<benches::hamt::Ours>(entries, op),
            "leaves" => run_writes::<benches::hamt::OursLeaves>(entries, op),
            "dashmap" => run_writes::<benches::maps::Dash>(entries, op),
            "papaya" => run_writes::<benches::maps::Papaya>(entries, op),
            other => panic!("unknown map {other}"),
        }
        return;
    }
    match which {
        "ours" => run::<benches::hamt::Ours>(entries, gets),
        "dashmap" => run::<benches::maps::Dash>(entries, gets),
        "papaya" => run::<benches::maps::Papaya>(entries, gets),
        "leaves" => run::<benches::hamt::OursLeaves>(entries, gets),
        other => panic!("unknown map {other}"),
    }
}
