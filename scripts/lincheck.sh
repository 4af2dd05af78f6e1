#!/usr/bin/env bash
# Linearizability checking of the trie (crates/hamt/tests/lincheck.rs, checker in
# crates/lincheck): recorded histories of 2-4 threads, checked split per key, plus short
# unsplit histories with len and snapshots, plus the proof that the checker rejects a
# non-atomic compare_exchange.
#
#   scripts/lincheck.sh          # 1,000 histories of 20,000 operations, 10,000 short ones
#   scripts/lincheck.sh --quick  # the CI version: 100 histories, 1,000 short ones
#
# LINCHECK_SEED=<n> changes the seeds (each history's seed is printed on failure).
set -euo pipefail
cd "$(dirname "$0")/.."

histories=1000 short=10000
if [ "${1:-}" = "--quick" ]; then
  histories=100 short=1000
fi
start=$(date +%s)
LINCHECK_HISTORIES=${LINCHECK_HISTORIES:-$histories} LINCHECK_OPS=${LINCHECK_OPS:-20000} \
LINCHECK_SHORT=${LINCHECK_SHORT:-$short} \
  cargo test --locked -p concurrent-hamt --test lincheck -- --nocapture --test-threads=1 2>&1 |
  grep -E "^lincheck|^test |test result|panicked|not linearizable|undecided|^  Operation"
echo "lincheck: passed in $(( $(date +%s) - start )) s"
