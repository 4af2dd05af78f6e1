//! A small driver for instruction and cache profiles of single-thread `get` (callgrind on this
//! VM, which exposes no hardware counters to `perf stat`; see BENCHMARKS.md, "Where a get's
//! time goes").
//!
//! `cargo run --release -p benches --example probe -- <ours|dashmap|papaya> <entries> <gets>`
//! fills a `u64 -> u64` map with `entries` keys (the `map` bench's keys), then looks up `gets`
//! present keys in a pseudo-random order inside `timed_gets`, and prints ns per get. Under
//! `valgrind --tool=callgrind --toggle-collect=*timed_gets*` only the gets are counted.

use benches::maps::ConcMap;
use benches::workload::key;
use std::hint::black_box;
use std::time::Instant;

#[inline(never)]
fn timed_gets<M: ConcMap>(map: &M, entries: u64, gets: u64) -> u64 {
    let mut sum = 0u64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..gets {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let i = (x >> 24) % entries;
        sum = sum.wrapping_add(map.get(key(0, i)).expect("present"));
    }
    sum
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
    let entries: u64 = args.get(2).map_or(1_000_000, |s| s.parse().expect("entries"));
    let gets: u64 = args.get(3).map_or(1_000_000, |s| s.parse().expect("gets"));
    match which {
        "ours" => run::<benches::hamt::Ours>(entries, gets),
        "dashmap" => run::<benches::maps::Dash>(entries, gets),
        "papaya" => run::<benches::maps::Papaya>(entries, gets),
        "leaves" => run::<benches::hamt::OursLeaves>(entries, gets),
        other => panic!("unknown map {other}"),
    }
}
