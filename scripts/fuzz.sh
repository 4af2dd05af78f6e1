#!/usr/bin/env bash
# cargo-fuzz targets (fuzz/), on the stable toolchain (RUSTC_BOOTSTRAP=1), under
# AddressSanitizer and LeakSanitizer (cargo-fuzz's default) with debug assertions:
#   map_model   operation sequences with snapshots, against std's HashMap, four hashers
#   concurrent  2-4 threads chosen by the input, histories checked for linearizability
#
#   scripts/fuzz.sh          # map_model until 10^7 operations, then concurrent for 10 minutes
#   scripts/fuzz.sh --quick  # the CI version: 45 s + 30 s
#
# Builds the targets as `cargo fuzz build -O -a` does (the same sanitizer-coverage and ASan
# flags, set here, so that CI does not spend minutes compiling cargo-fuzz itself) and runs the
# libFuzzer binaries directly. The corpora stay in fuzz/corpus/ (ignored by git) and grow from
# run to run; a crash leaves its input in fuzz/artifacts/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
target_ops=${FUZZ_OPS:-10000000}
concurrent_time=${FUZZ_CONCURRENT_TIME:-600}
chunk=${FUZZ_CHUNK:-300}
if [ $quick = 1 ]; then
  target_ops=0 chunk=45 concurrent_time=30
fi

export RUSTC_BOOTSTRAP=1
triple=x86_64-unknown-linux-gnu
# cargo-fuzz 0.13's flags for `build -O -a` on Linux: libFuzzer's coverage instrumentation,
# --cfg fuzzing, AddressSanitizer (the standard library is not instrumented, see
# shared/PLATFORMS.md, hence the ABI-mismatch allowance), debug assertions, one codegen unit.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0 -Zsanitizer=address \
  -Cllvm-args=-sanitizer-coverage-stack-depth -Cdebug-assertions -Ccodegen-units=1 \
  -Cunsafe-allow-abi-mismatch=sanitizer"
start=$(date +%s)
echo "=== building the fuzz targets"
cargo build --manifest-path fuzz/Cargo.toml --release --target $triple \
  --config 'profile.release.debug="line-tables-only"' --bin map_model --bin concurrent
bin=fuzz/target/$triple/release
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

# Runs target $1 for $2 seconds with libFuzzer options $3...; prints its last figures and
# sets $ops to the operations it ran.
run() {
  local name=$1 secs=$2
  shift 2
  mkdir -p "fuzz/corpus/$name" "fuzz/artifacts/$name"
  if ! "$bin/$name" -artifact_prefix="fuzz/artifacts/$name/" -max_total_time="$secs" -len_control=0 \
      -timeout=60 -print_final_stats=1 "$@" "fuzz/corpus/$name" >"$log/$name.txt" 2>&1; then
    grep -E "panicked|ERROR|SUMMARY|not linearizable|Failure|^  Operation" "$log/$name.txt" | head -40
    echo "fuzz: $name failed (input saved in fuzz/artifacts/$name/)"
    exit 1
  fi
  ops=$(grep -E "^$name ops: " "$log/$name.txt" | tail -1 | awk '{print $3}' || true)
  ops=${ops:-0}
  local done_line runs
  done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log/$name.txt" | tail -1 || true)
  runs=$(grep -E "stat::number_of_executed_units" "$log/$name.txt" | awk '{print $2}' || true)
  echo "  $name: ${secs} s, $runs inputs, >= $ops operations; libFuzzer: $done_line"
}

echo "=== map_model"
total=0 rounds=0
while :; do
  run map_model "$chunk" -max_len=4096
  total=$((total + ops)) rounds=$((rounds + 1))
  [ "$total" -ge "$target_ops" ] && break
done
echo "map_model: >= $total operations in $rounds run(s) of ${chunk} s"

echo "=== concurrent"
run concurrent "$concurrent_time" -max_len=400
echo "concurrent: >= $ops operations in histories checked for linearizability"
echo "fuzz: passed in $(( $(date +%s) - start )) s"
