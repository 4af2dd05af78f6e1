#!/usr/bin/env bash
# The test command: everything CI runs. Takes ~10-15 minutes on 2 cores.
#
#   scripts/test.sh          # unit, integration and doc tests, loom models, quick sanitizers
#   FULL=1 scripts/test.sh   # with deeper loom exploration and the full sanitizer runs
set -euo pipefail
cd "$(dirname "$0")/.."

echo "=== cargo test (workspace, optimised test profile with debug assertions)"
cargo test --locked --workspace --exclude benches

echo "=== benchmarks compile"
cargo build --locked -p benches --benches --release

echo "=== loom models (fallback fence; see crates/hazard/src/fence.rs)"
preempt=2
[ "${FULL:-0}" = 1 ] && preempt=3
for pkg in concurrent-hamt-hazard concurrent-hamt; do
  RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=$preempt \
    cargo test --locked --release -p "$pkg" --test loom --target-dir target/loom
done

echo "=== sanitizers"
if [ "${FULL:-0}" = 1 ]; then
  scripts/sanitizers.sh
else
  scripts/sanitizers.sh --quick
fi
echo "=== all tests passed"
