//! What one reclamation scan costs the thread that runs it, with and without another thread of
//! the process running, in both fence modes of the hazard crate.
//!
//! `cargo run --release -p benches --example scan_cost`
//!
//! A scan in the asymmetric mode calls `membarrier(PRIVATE_EXPEDITED)`, which interrupts every
//! CPU that is running a thread of this process and waits until each has executed a barrier.
//! Alone, that is a plain system call; with a second thread running, it is an inter-processor
//! interrupt and its acknowledgement, which on a virtual machine may exit to the hypervisor on
//! both sides. The fallback mode's scan issues a `fence(SeqCst)` instead (and every reader
//! pays one per protection). This prints the median time of `Domain::reclaim()` for one
//! retired object (one scan that frees it, with its barrier, then one that finds nothing and
//! issues none), for each mode, alone and beside a thread that spins on a shared flag.

use hazard::Domain;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

const SCANS: usize = 20_000;

/// Median ns of one `reclaim()` of one retired box, over `SCANS` calls.
fn scan_ns(domain: &Domain) -> f64 {
    let mut samples = Vec::with_capacity(SCANS);
    for i in 0..SCANS {
        let p = Box::into_raw(Box::new(i as u64));
        // Safety: `p` is fresh, never shared (so unreachable for readers), retired once, and
        // no guard of this domain exists.
        unsafe { domain.retire_without_scan(p.cast(), free_u64) };
        let t = Instant::now();
        let n = domain.reclaim();
        samples.push(t.elapsed());
        assert_eq!(n, 1, "the scan frees the one retired object");
    }
    samples.sort_unstable();
    samples[SCANS / 2].as_nanos() as f64
}

/// # Safety
/// `p` came from `Box::<u64>::into_raw` and is freed once.
unsafe fn free_u64(p: *mut (), _: &Domain) {
    // Safety: the function's contract.
    drop(unsafe { Box::from_raw(p.cast::<u64>()) });
}

fn main() {
    println!(
        "asymmetric fence (membarrier) available: {}",
        hazard::asymmetric_fence_available()
    );
    let modes = [
        ("asymmetric (membarrier)", Domain::new()),
        ("fallback (fence(SeqCst))", Domain::with_fallback_fence()),
    ];
    let mut alone = Vec::new();
    for (_, d) in &modes {
        alone.push(scan_ns(d));
    }
    let stop = AtomicBool::new(false);
    let beside: Vec<f64> = std::thread::scope(|s| {
        s.spawn(|| {
            // Relaxed: a stop flag; the join orders everything else.
            while !stop.load(Relaxed) {
                std::hint::spin_loop();
            }
        });
        // Let the spinner get onto its CPU before measuring.
        std::thread::sleep(Duration::from_millis(50));
        let r = modes.iter().map(|(_, d)| scan_ns(d)).collect();
        stop.store(true, Relaxed);
        r
    });
    println!("| fence mode | scan, alone (ns) | scan, another thread running (ns) |");
    println!("|---|---:|---:|");
    for (i, (name, _)) in modes.iter().enumerate() {
        println!("| {name} | {:.0} | {:.0} |", alone[i], beside[i]);
    }
}
