#!/usr/bin/env bash
# Instruction and cache profile of single-thread `get` (see BENCHMARKS.md, "Where a get's time
# goes"). This VM exposes no hardware counters to `perf stat` (every hardware event is "not
# supported"), so the counts come from valgrind's callgrind with its cache simulator:
# instructions, L1 data misses and last-level misses per get, with a 48 KiB 12-way L1d (this
# machine's) and a 4 MiB 16-way last level (its L2; the simulator models two levels, and the
# 105 MiB L3 of the host would hold the whole map). No TLB is simulated.
#
#   benches/profile.sh [maps] [entries]     # default: "ours dashmap" at 1000000
#
# Only `timed_gets` of benches/examples/probe.rs is counted: the fill is not. It is called
# twice (an untimed pass of min(entries, GETS) lookups, then the timed GETS), and the figures
# are per lookup of both.
set -euo pipefail
cd "$(dirname "$0")/.."
maps=${1:-"ours dashmap"}
entries=${2:-1000000}
gets=${GETS:-200000}
out=${PROFILE_OUT:-target/profile}
mkdir -p "$out"
cargo build --release -p benches --example probe >&2
for m in $maps; do
  f="$out/callgrind-$m-$entries.out"
  valgrind --tool=callgrind --cache-sim=yes --D1=49152,12,64 --LL=4194304,16,64 \
    --toggle-collect='*timed_gets*' --callgrind-out-file="$f" \
    target/release/examples/probe "$m" "$entries" "$gets" >/dev/null 2>&1
  # Totals line: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
  read -r ir dr dw i1 d1r d1w ilr dlr dlw < <(grep '^summary:' "$f" | cut -d' ' -f2-)
  awk -v m="$m" -v n="$entries" -v g=$((gets + (entries < gets ? entries : gets))) -v ir="$ir" -v d1="$d1r" -v dlr="$dlr" \
    'BEGIN { printf "%-8s %8d entries: %6.1f instructions, %5.2f L1d misses, %5.2f LL misses per get\n", m, n, ir/g, d1/g, dlr/g }'
done
