//! Reporting helpers shared by the benchmark programs: the description of the machine and
//! commit, the CPU time other processes used while a part ran, and [`Samples`] (median and
//! spread of repeated measurements).
//!
//! Besides the `benches` library, `benches/baseline/runner.rs` (the standalone baseline
//! comparison built by `benches/baseline.sh`) includes this file with `#[path]`, so it only
//! depends on `libc`, `std` and `crate::workload::median`.

use crate::workload::median;
use std::process::Command;
use std::time::Instant;

/// A reading of the CPU time used by the whole machine and by this process, see [`other_load`].
#[derive(Clone, Copy)]
pub struct CpuProbe {
    at: Instant,
    busy_all: u64,
    busy_self: u64,
}

/// Read the counters now.
pub fn cpu_probe() -> CpuProbe {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy_all = if f.len() >= 8 {
        f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    } else {
        0
    };
    let me = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = me.rsplit_once(')').map_or("", |(_, r)| r);
    // After the command name: state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt,
    // cminflt, majflt, cmajflt, utime, stime, cutime, cstime, ...
    let g: Vec<i64> = after
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let busy_self = if g.len() >= 14 {
        (g[10] + g[11] + g[12] + g[13]).max(0) as u64
    } else {
        0
    };
    CpuProbe {
        at: Instant::now(),
        busy_all,
        busy_self,
    }
}

/// Average number of CPUs kept busy by other processes between two probes.
pub fn other_load(a: CpuProbe, b: CpuProbe) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let other = (b.busy_all.saturating_sub(a.busy_all)) as f64
        - (b.busy_self.saturating_sub(a.busy_self)) as f64;
    (other.max(0.0) / hz) / (b.at - a.at).as_secs_f64().max(1e-9)
}

/// The measurements of one figure.
#[derive(Default, Clone)]
pub struct Samples(pub Vec<f64>);

impl Samples {
    /// Median.
    pub fn median(&self) -> f64 {
        median(&self.0)
    }
    /// Half the min-max spread relative to the median, in percent.
    pub fn spread_pct(&self) -> f64 {
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(0.0, f64::max);
        (max - min) / 2.0 / self.median() * 100.0
    }
}

/// Run a command; its trimmed stdout if it succeeded.
pub fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Lines describing the run: machine (CPU model, CPU count, caches, RAM, kernel), toolchain
/// (with `profile`, e.g. "profile bench (opt-level 3)") and the git commit of the checkout
/// containing `git_dir` (marked when the working tree has uncommitted changes).
pub fn machine(git_dir: &str, profile: &str) -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let caches: Vec<String> = (0..8)
        .filter_map(|i| {
            let d = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
            let level = std::fs::read_to_string(format!("{d}/level")).ok()?;
            let kind = std::fs::read_to_string(format!("{d}/type")).ok()?;
            let size = std::fs::read_to_string(format!("{d}/size")).ok()?;
            (kind.trim() != "Instruction").then(|| format!("L{} {}", level.trim(), size.trim()))
        })
        .collect();
    let rustc = sh("rustc", &["--version"]).unwrap_or_else(|| "rustc unknown".into());
    let date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let dir = git_dir;
    let git = sh("git", &["-C", dir, "rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".into());
    let dirty = sh(
        "git",
        &["-C", dir, "status", "--porcelain", "--untracked-files=no"],
    )
    .is_some_and(|s| !s.is_empty());
    vec![
        format!(
            "machine: {model}, {cpus} CPUs ({}), {mem_gib:.1} GiB RAM, Linux {}",
            caches.join(", "),
            kernel.trim()
        ),
        format!("toolchain: {rustc}, {profile}"),
        format!(
            "commit: {git}{} on {date}",
            if dirty {
                " (with uncommitted changes)"
            } else {
                ""
            }
        ),
    ]
}

/// The 1, 5 and 15-minute load averages, as in `/proc/loadavg` (empty if unreadable).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
