#!/usr/bin/env bash
# Runs the stress tests under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer.
#
#   scripts/sanitizers.sh          # full: every test file below, then LeakSanitizer alone
#                                  # over the trie's stress, snapshot and lincheck tests
#   scripts/sanitizers.sh --quick  # the CI subset: ASan (leak detection on) and TSan only
#
# Test files: the hazard crate's treiber, reclaim and pool tests, and every integration test of the
# trie (stress, snapshot, model, original, lincheck) except the loom models (they need
# --cfg loom) and memory.rs (its counting global allocator is its own, exact leak check; it
# runs in the plain suite). The lincheck histories are smaller here (sanitized code is 5-15x
# slower): LINCHECK_HISTORIES=4, LINCHECK_SHORT=100 unless set.
#
# Every run fails on the first report (ASan always, TSan with halt_on_error=1, LSan at exit);
# "sanitizers: all clean" at the end means zero reports. scripts/tsan.supp explains its three
# suppressions (all inside the uninstrumented standard library and libtest).
#
# Sanitizers need nightly flags; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain
# (see shared/PLATFORMS.md). The standard library is not instrumented, so ThreadSanitizer runs
# with the fallback fence (HAZARD_NO_MEMBARRIER=1): it does not understand membarrier.
set -euo pipefail
cd "$(dirname "$0")/.."
export LINCHECK_HISTORIES=${LINCHECK_HISTORIES:-4} LINCHECK_SHORT=${LINCHECK_SHORT:-100}

quick=0
[ "${1:-}" = "--quick" ] && quick=1
target=x86_64-unknown-linux-gnu

# package:test pairs
tests=("concurrent-hamt-hazard:treiber" "concurrent-hamt-hazard:reclaim" "concurrent-hamt-hazard:pool")
if [ -d crates/hamt/tests ]; then
  for t in crates/hamt/tests/*.rs; do
    name=$(basename "$t" .rs)
    case "$name" in loom*|memory*) continue ;; esac  # loom needs --cfg loom; memory has its own allocator
    tests+=("concurrent-hamt:$name")
  done
fi

run() {
  local san=$1
  shift
  echo "=== ${san}Sanitizer: $*"
  RUSTC_BOOTSTRAP=1 \
  RUSTFLAGS="-Zsanitizer=${san} -Cunsafe-allow-abi-mismatch=sanitizer -Cdebug-assertions=on" \
  RUSTDOCFLAGS="-Zsanitizer=${san} -Cunsafe-allow-abi-mismatch=sanitizer" \
    cargo test --release --target "$target" --target-dir "target/san-${san}" "$@"
}

for entry in "${tests[@]}"; do
  pkg=${entry%%:*}
  test=${entry##*:}
  filter=()
  [ $quick = 1 ] && [ -n "${QUICK_FILTER:-}" ] && filter=("$QUICK_FILTER")
  SECONDS=0
  ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1 \
    run address -p "$pkg" --test "$test" -- "${filter[@]}"
  # One test thread, so that tests do not race each other's harness work. (libtest 1.95 still
  # runs each test on a thread of its own: scripts/tsan.supp explains the harness reports this
  # causes.) Tests join their threads explicitly: std's scoped-thread wait is invisible to
  # ThreadSanitizer.
  HAZARD_NO_MEMBARRIER=1 TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/scripts/tsan.supp" \
    run thread -p "$pkg" --test "$test" -- --test-threads=1 "${filter[@]}"
  echo "--- $pkg:$test clean under ASan+LSan and TSan (${SECONDS} s)"
done
if [ $quick = 0 ]; then
  # LeakSanitizer alone (no ASan): leaks only, at full speed, so the lincheck histories run
  # at their default size.
  for test in stress snapshot lincheck; do
    SECONDS=0
    LINCHECK_HISTORIES=8 LINCHECK_SHORT=300 LSAN_OPTIONS=report_objects=1 run leak -p concurrent-hamt --test "$test"
    echo "--- concurrent-hamt:$test clean under LSan (${SECONDS} s)"
  done
fi
echo "sanitizers: all clean"
