//! Concurrent fuzzing, checked for linearizability: the input chooses a hasher, the number of
//! threads (2 to 4), the key set, and each thread's operations; the threads run them at once on
//! one map, recording invocation and response times, and the history is checked by the
//! `lincheck` crate, split per key and whole (with `len`, snapshot contents and snapshot
//! `len`). A history that is not linearizable panics with the checker's explanation.
//!
//! Layout: byte 0 picks the hasher (as in `map_model`), byte 1 the threads and keys, then
//! each operation takes two bytes (what, and key and choice), dealt to the threads in turn;
//! at most 48 operations per thread, so that the unsplit check stays small. Every 10,000
//! operations run, the count goes to stderr as `concurrent ops: N`.
#![no_main]

#[path = "../../crates/hamt/tests/common/mod.rs"]
#[allow(dead_code, unused_imports)]
mod common;

use common::ops::apply;
use common::Masked;
use concurrent_hamt::Hamt;
use libfuzzer_sys::fuzz_target;
use lincheck::map::{check_per_key, check_whole, set_len_tolerances, Call, MapOperation, Ret};
use lincheck::{Clock, Recorder};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

const SIP_HASH: Masked = Masked { keep: !0, fixed: 0 };
const HASHERS: [Masked; 4] = [
    SIP_HASH,
    Masked::CONSTANT,
    Masked::LOW_BITS,
    Masked::TOP_LEVELS_COLLIDE,
];
const MAX_OPS_PER_THREAD: usize = 48;

static OPS: AtomicU64 = AtomicU64::new(0);

/// The operation a thread's `step`-th pair of bytes asks for. Written values are unique to
/// the thread and step; compare-exchanges expect the value the thread saw last for the key
/// (or a value never written), so that both outcomes happen.
fn decode(what: u8, pick: u8, keys: &[u64], value: u64, last: Option<u64>) -> Call {
    let k = key_of(pick, keys);
    let current = if pick & 0x80 != 0 {
        last.unwrap_or(value)
    } else {
        value
    };
    match what % 16 {
        0 | 1 => Call::Get(k),
        2 => Call::ContainsKey(k),
        3 | 4 => Call::Insert(k, value),
        5 => Call::InsertIfAbsent(k, value),
        6 => Call::Remove(k),
        7 => Call::RemoveIf {
            key: k,
            expected: current,
        },
        8 | 9 => Call::CompareExchange {
            key: k,
            current,
            new: value,
        },
        10 => Call::Update {
            key: k,
            delta: 1 + u64::from(pick % 3),
        },
        11 => Call::SnapshotGet(k),
        12 => Call::CopyGet(k),
        13 => Call::Contents,
        14 => match pick % 3 {
            0 => Call::SnapshotLen,
            1 => Call::Len { tolerance: 0 },
            _ => Call::Clear,
        },
        _ => Call::Get(k),
    }
}

fn key_of(pick: u8, keys: &[u64]) -> u64 {
    keys[usize::from(pick) % keys.len()]
}

fn run(hasher: Masked, plans: &[Vec<(u8, u8)>], keys: &[u64]) -> Vec<MapOperation> {
    let map: Hamt<u64, u64, Masked> = Hamt::with_hasher(hasher);
    let clock = Clock::new();
    let ready = AtomicUsize::new(0);
    let threads = plans.len();
    let logs: Vec<Vec<MapOperation>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .enumerate()
            .map(|(client, plan)| {
                let (map, clock, ready) = (&map, &clock, &ready);
                s.spawn(move || {
                    let mut rec = Recorder::new(clock, client);
                    let mut last = std::collections::HashMap::new();
                    // Start together. Relaxed: a rendezvous only.
                    ready.fetch_add(1, Relaxed);
                    while ready.load(Relaxed) < threads {
                        std::hint::spin_loop();
                    }
                    for (step, &(what, pick)) in plan.iter().enumerate() {
                        let value = ((client as u64 + 1) << 32) | step as u64;
                        let k = key_of(pick, keys);
                        let call = decode(what, pick, keys, value, last.get(&k).copied());
                        let out = rec.record(call, |call| apply(map, call, pick % 2 == 0));
                        match *out {
                            Ret::Value(Some(v))
                            | Ret::Exchanged(Ok(v))
                            | Ret::Exchanged(Err(Some(v))) => {
                                last.insert(k, v);
                            }
                            _ => {}
                        }
                    }
                    rec.into_ops()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    logs.into_iter().flatten().collect()
}

fuzz_target!(|data: &[u8]| {
    let [h, shape, rest @ ..] = data else {
        return;
    };
    let threads = 2 + usize::from(shape % 3);
    let keys: Vec<u64> = (0..1 + u64::from(shape / 3 % 4))
        .map(|i| i * 7 + 1)
        .collect();
    let mut plans = vec![Vec::new(); threads];
    for (i, pair) in rest.chunks_exact(2).enumerate() {
        let plan = &mut plans[i % threads];
        if plan.len() < MAX_OPS_PER_THREAD {
            plan.push((pair[0], pair[1]));
        }
    }
    let mut history = run(HASHERS[usize::from(h % 4)], &plans, &keys);
    let n = history.len() as u64;
    // Relaxed: a statistic.
    let before = OPS.fetch_add(n, Relaxed);
    if (before + n) / 10_000 != before / 10_000 {
        eprintln!("concurrent ops: {}", before + n);
    }
    set_len_tolerances(&mut history, keys.len());
    if let Err(f) = check_per_key(&history, &keys) {
        panic!("split per key: {f}");
    }
    if let Err(f) = check_whole(&history) {
        panic!("whole map: {f}");
    }
});
