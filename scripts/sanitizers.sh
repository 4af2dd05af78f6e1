#!/usr/bin/env bash
# Runs the stress tests under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer.
#
#   scripts/sanitizers.sh          # full: every stress test of every crate
#   scripts/sanitizers.sh --quick  # the CI subset
#
# Sanitizers need nightly flags; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain
# (see shared/PLATFORMS.md). The standard library is not instrumented, so ThreadSanitizer runs
# with the fallback fence (HAZARD_NO_MEMBARRIER=1): it does not understand membarrier.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
target=x86_64-unknown-linux-gnu

# package:test pairs
tests=("concurrent-hamt-hazard:treiber" "concurrent-hamt-hazard:reclaim")
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
  ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1 \
    run address -p "$pkg" --test "$test" -- "${filter[@]}"
  # One test thread: libtest then runs each test on its main thread, so no report comes from
  # its (uninstrumented) result channel. Tests join their threads explicitly for the same
  # reason: std's scoped-thread wait is invisible to ThreadSanitizer.
  HAZARD_NO_MEMBARRIER=1 TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/scripts/tsan.supp" \
    run thread -p "$pkg" --test "$test" -- --test-threads=1 "${filter[@]}"
done
echo "sanitizers: all clean"
