//! The demonstration: several threads share one map (each through its own clone of the
//! handle), insert, read, update and remove concurrently, and the result is checked and timed.
//!
//! Run: `cargo run --release -p concurrent-hamt --example threads [threads] [keys per thread]`

use concurrent_hamt::Hamt;
use std::time::Instant;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let threads = args.next().unwrap_or(4);
    let per_thread = args.next().unwrap_or(250_000);
    let map: Hamt<u64, u64> = Hamt::new();
    let shared_counters = 64;

    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let map = map.clone(); // a handle on the same map
            std::thread::spawn(move || {
                let base = t * per_thread;
                for i in 0..per_thread {
                    map.insert(base + i, i * 2);
                }
                for i in 0..per_thread {
                    assert_eq!(*map.get(&(base + i)).expect("own key present"), i * 2);
                }
                // Every thread bumps the same counters: lock-free read-modify-write.
                for i in 0..per_thread {
                    let key = u64::MAX - (i % shared_counters);
                    map.update(key, |v| Some(v.copied().unwrap_or(0) + 1));
                }
                // Remove the odd keys again.
                for i in (1..per_thread).step_by(2) {
                    assert_eq!(*map.remove(&(base + i)).expect("own key present"), i * 2);
                }
            })
        })
        .collect();
    // Meanwhile, O(1) snapshots of the map as it changes: each is frozen and consistent
    // (its exact `len` matches its iteration, every value is its key's).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = {
        let (map, done) = (map.clone(), done.clone());
        std::thread::spawn(move || {
            let mut taken = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let snap = map.read_only_snapshot();
                let mut entries = 0;
                for (k, v) in &snap {
                    let own = k % per_thread * 2;
                    assert!(
                        *k > u64::MAX - shared_counters || *v == own,
                        "value of key {k}"
                    );
                    entries += 1;
                }
                assert_eq!(snap.len(), entries, "a snapshot's len is exact");
                taken += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            taken
        })
    };
    for h in handles {
        h.join().expect("worker panicked");
    }
    let elapsed = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let snapshots = observer.join().expect("observer panicked");

    // Check: every even key with its value, no odd key, counters summing exactly.
    let ops = threads * per_thread * 3 + threads * (per_thread / 2);
    let evens = threads * per_thread.div_ceil(2);
    assert_eq!(map.len() as u64, evens + shared_counters.min(per_thread));
    for t in 0..threads {
        for i in 0..per_thread {
            let v = map.get(&(t * per_thread + i));
            if i % 2 == 0 {
                assert_eq!(*v.expect("even key present"), i * 2);
            } else {
                assert!(v.is_none(), "odd key removed");
            }
        }
    }
    let total: u64 = (0..shared_counters.min(per_thread))
        .map(|k| *map.get(&(u64::MAX - k)).expect("counter"))
        .sum();
    assert_eq!(total, threads * per_thread, "no lost update");
    assert_eq!(
        map.iter().count(),
        map.len(),
        "iteration sees every entry once"
    );

    println!(
        "{threads} threads, {ops} operations on one shared map in {:.3} s ({:.2} M ops/s); \
         checked: {} entries, counters sum to {total}; {snapshots} consistent snapshots taken \
         during the run",
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64() / 1e6,
        map.len(),
    );
    let stats = map.stats();
    println!(
        "reclamation: {} nodes retired, {} freed, {} pending; {} hazard records in the process",
        stats.retired, stats.reclaimed, stats.pending, stats.records_allocated
    );
}
