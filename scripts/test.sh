#!/usr/bin/env bash
# The Rust suite (npm test runs it after the Node suite). Takes ~10-15 minutes on 2 cores.
#
#   scripts/test.sh          # unit, integration and doc tests, loom models, quick
#                            # linearizability, fuzzing and sanitizer runs
#   FULL=1 scripts/test.sh   # the long versions of each (hours; see RELIABILITY.md)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "=== formatting (cargo fmt --check)"
cargo fmt --all --check

echo "=== cargo test (workspace, optimised test profile with debug assertions)"
cargo test --locked --workspace --exclude benches

echo "=== the trie's tests again with the level cache in every map (--cfg hamt_cache_always)"
RUSTFLAGS="--cfg hamt_cache_always" cargo test --locked -p concurrent-hamt \
  --target-dir target/cache-always

echo "=== benchmarks compile"
cargo build --locked -p benches --benches --release

echo "=== loom models (scripts/loom.sh: per-model bounds, and the weakened-ordering check)"
if [ "${FULL:-0}" = 1 ]; then
  scripts/loom.sh --long
  scripts/loom.sh --weakened
else
  scripts/loom.sh
fi

echo "=== linearizability (scripts/lincheck.sh)"
if [ "${FULL:-0}" = 1 ]; then scripts/lincheck.sh; else scripts/lincheck.sh --quick; fi

echo "=== fuzzing (scripts/fuzz.sh)"
if [ "${FULL:-0}" = 1 ]; then scripts/fuzz.sh; else scripts/fuzz.sh --quick; fi

echo "=== sanitizers"
if [ "${FULL:-0}" = 1 ]; then
  scripts/sanitizers.sh
else
  scripts/sanitizers.sh --quick
fi
echo "=== all tests passed"
