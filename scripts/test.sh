#!/usr/bin/env bash
# The Rust suite (npm test runs it after the Node suite). Takes ~10-15 minutes on 2 cores.
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
# Preemption bounds: the hazard models at 2 (3 with FULL=1), the trie's at 1 (2 with FULL=1),
# and the trie's four write-against-a-snapshot models (`against_a_snapshot`) one deeper: a trie
# operation is dozens of atomic steps, and each bound multiplies the interleavings.
hazard_preempt=2 hamt_preempt=1 snapshot_preempt=2
[ "${FULL:-0}" = 1 ] && hazard_preempt=3 hamt_preempt=2 snapshot_preempt=3
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=$hazard_preempt \
  cargo test --locked --release -p concurrent-hamt-hazard --test loom --target-dir target/loom
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=$hamt_preempt \
  cargo test --locked --release -p concurrent-hamt --test loom --target-dir target/loom
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=$snapshot_preempt \
  cargo test --locked --release -p concurrent-hamt --test loom --target-dir target/loom against_a_snapshot

echo "=== sanitizers"
if [ "${FULL:-0}" = 1 ]; then
  scripts/sanitizers.sh
else
  scripts/sanitizers.sh --quick
fi
echo "=== all tests passed"
