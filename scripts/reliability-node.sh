#!/usr/bin/env bash
# The Node half of the reliability checks (issue #10), at their full sizes, and valgrind
# memcheck over a representative workload; prints the figures. RELIABILITY.md (its Node section) says what
# each check tests and gives the figures of a full run.
#
#   scripts/reliability-node.sh                 # full sizes, then valgrind (about 15-30 min on 2 cores)
#   scripts/reliability-node.sh --quick         # the quick sizes (what npm test and CI run), then valgrind
#   scripts/reliability-node.sh --no-valgrind   # the checks only
#   scripts/reliability-node.sh --valgrind-only # valgrind only
#
# The checks are the ava tests in __test__/reliability/ (npm test runs them at their quick
# sizes); HAMT_RELIABILITY=full selects the full sizes, and HAMT_RELIABILITY_REPORT names the
# file where each check appends its figures (one JSON line each).
#
# valgrind: Node (--jitless, so that V8 generates no machine code for valgrind to
# re-translate; --expose-gc) runs __test__/reliability/valgrind-driver.ts (every method, every
# error path, snapshots, iteration, close and finalizers, workers that return, exit, throw and
# are terminated) with the addon rebuilt with debug information (target/reliability-node, the
# package's own binary is left alone) so that reports name our functions. Leak records and
# errors whose stacks contain a frame of the addon (crates/node, crates/hamt, crates/hazard,
# and the napi crates linked into it) are "ours": the script fails if any of them is
# "definitely lost" or an error. Node's and V8's own reports are suppressed by
# scripts/reliability-node.supp (each entry says why); everything else is counted and printed.
#
# Needs: node and npm, cargo (the addon is built from source), valgrind (installed with
# apt-get when missing). Environment: FC_SEED / TEST_SEED repeat a run's random choices;
# VALGRIND_WORKERS and VALGRIND_ENTRIES size the valgrind workload (default 4 and 2000);
# SKIP_BUILD=1 uses the addon and index.js already built.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0 checks=1 valgrind=1
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --no-valgrind) valgrind=0 ;;
    --valgrind-only) checks=0 ;;
    *) echo "unknown option $a (see the top of $0)"; exit 2 ;;
  esac
done

out=target/reliability-node/report
mkdir -p "$out"
figures="$out/figures.jsonl"
: > "$figures"

if [ ! -d node_modules/ava ]; then
  echo "=== npm ci"
  npm ci
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "=== build (release addon, TypeScript, tests)"
  node scripts/build.js
fi
npx tsc -p tsconfig.test.json

status=0
if [ "$checks" = 1 ]; then
  mode=full
  [ "$quick" = 1 ] && mode=quick
  echo "=== reliability checks ($mode sizes), one file at a time"
  start=$(date +%s)
  # One file at a time: the checks measure resident memory and count process-wide statistics,
  # and each wants the machine's two cores for its own threads.
  env HAMT_RELIABILITY="$([ "$quick" = 1 ] && echo quick || echo full)" HAMT_RELIABILITY_REPORT="$figures" \
    npx ava --concurrency 1 --timeout 60m build/__test__/reliability/*.test.js 2>&1 | tee "$out/ava.log" || status=1
  echo "=== checks took $(( $(date +%s) - start )) s (exit status $status)"
fi

if [ "$valgrind" = 1 ]; then
  if ! command -v valgrind > /dev/null; then
    echo "=== installing valgrind"
    apt-get update -qq && apt-get install -y -qq valgrind
  fi
  echo "=== addon with debug information (target/reliability-node)"
  CARGO_PROFILE_RELEASE_DEBUG=true cargo build --locked --release -p concurrent-hamt-node --target-dir target/reliability-node
  addon="$PWD/target/reliability-node/release/libconcurrent_hamt_node.so"
  cp "$addon" target/reliability-node/concurrent-hamt.valgrind.node
  log="$out/valgrind.log"
  echo "=== valgrind memcheck: node --jitless build/__test__/reliability/valgrind-driver.js"
  start=$(date +%s)
  vg_status=0
  NAPI_RS_NATIVE_LIBRARY_PATH="$PWD/target/reliability-node/concurrent-hamt.valgrind.node" \
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible \
      --errors-for-leak-kinds=definite --num-callers=40 --error-limit=no \
      --suppressions=scripts/reliability-node.supp --log-file="$log" \
      node --jitless --expose-gc build/__test__/reliability/valgrind-driver.js \
        --workers "${VALGRIND_WORKERS:-4}" --entries "${VALGRIND_ENTRIES:-2000}" \
    || vg_status=$?
  echo "=== valgrind took $(( $(date +%s) - start )) s (driver exit status $vg_status)"
  [ "$vg_status" = 0 ] || status=1
  # Split the log into records (blank-line separated) and classify them.
  FIGURES="$figures" node - "$log" << 'EOF' || status=1
const fs = require('fs')
const text = fs.readFileSync(process.argv[2], 'utf8').replace(/^==\d+== ?/gm, '')
const records = text.split(/\n\s*\n/).map((r) => r.trim()).filter(Boolean)
const ours = (r) => /concurrent[-_]hamt|libconcurrent_hamt_node|concurrent-hamt\.valgrind\.node|hazard::|napi::/.test(r)
// napi-rs 3.4.0 (bindgen_runtime/module_register.rs) makes one napi_ref per class per
// environment for the class constructors when the module registers, and never deletes it:
// upstream, two 40-byte blocks per environment (main thread and each worker), counted apart.
const upstream = (r) => /napi_register_module_v1/.test(r) && /napi_create_reference/.test(r)
// Node 20's own 40-byte finalizer record (v8impl::Reference, allocated by
// napi_create_external for a finalizer) is not freed for externals still alive when an
// environment is torn down (at process exit, and at a worker's exit): measured with a script
// that makes 100 handles and exits, 100 such blocks are lost with or without close(), none
// when the externals were collected first. The memory is Node's; ours (the handle's slot and
// cell, the map) is freed by the environment's clean-up hook and the thread's exit. Counted
// apart, and only when the record's allocation is exactly that call.
const nodeExternal = (r) => /by 0x[0-9A-F]+: napi_create_external \(in [^)]*node\)\n\s+by 0x[0-9A-F]+: concurrent_hamt_node::handle::open/.test(r)
const counts = { definite: 0, indirect: 0, possible: 0, errors: 0 }
const mine = { definite: [], indirect: [], possible: [], errors: [] }
const napiRs = []
const nodeExternals = []
for (const r of records) {
  const head = r.split('\n')[0]
  let kind = null
  if (/are definitely lost/.test(head)) kind = 'definite'
  else if (/are indirectly lost/.test(head)) kind = 'indirect'
  else if (/are possibly lost/.test(head)) kind = 'possible'
  else if (/^(Invalid|Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination|Argument .* of function)/.test(head)) kind = 'errors'
  if (kind === null) continue
  counts[kind]++
  if (kind === 'definite' && upstream(r)) napiRs.push(r)
  else if (kind === 'definite' && nodeExternal(r)) nodeExternals.push(r)
  else if (ours(r)) mine[kind].push(r)
}
const summary = (re) => (text.match(re) || [])[0] || '(not found)'
console.log(summary(/ERROR SUMMARY:.*$/m))
console.log(summary(/definitely lost:.*$/m))
console.log(summary(/indirectly lost:.*$/m))
console.log(summary(/possibly lost:.*$/m))
console.log(summary(/still reachable:.*$/m))
console.log(summary(/suppressed:.*$/m))
console.log(`records shown (after suppressions): ${JSON.stringify(counts)}`)
console.log(`of those, with a frame of our addon: ${JSON.stringify(Object.fromEntries(Object.entries(mine).map(([k, v]) => [k, v.length])))}`)
console.log(`napi-rs's class constructor references (upstream, definitely lost): ${napiRs.length} records: ${napiRs.map((r) => r.split('\n')[0]).join('; ')}`)
console.log(`Node's finalizer records of handles alive at an environment's tear-down (definitely lost): ${nodeExternals.length} records: ${nodeExternals.map((r) => r.split('\n')[0]).join('; ')}`)
for (const kind of ['definite', 'errors', 'indirect']) {
  for (const r of mine[kind]) console.log(`--- ours (${kind}):\n${r}\n`)
}
fs.appendFileSync(process.env.FIGURES, JSON.stringify({ check: 'valgrind', shown: counts, ours: Object.fromEntries(Object.entries(mine).map(([k, v]) => [k, v.length])), napiRsUpstream: napiRs.map((r) => r.split('\n')[0]), nodeExternalRecords: nodeExternals.map((r) => r.split('\n')[0]), errorSummary: summary(/ERROR SUMMARY:.*$/m), definitelyLost: summary(/definitely lost:.*$/m) }) + '\n')
process.exit(mine.definite.length + mine.errors.length > 0 ? 1 : 0)
EOF
fi

echo "=== figures ($figures)"
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)
for (const l of lines) {
  const f = JSON.parse(l)
  const { check, ...rest } = f
  console.log(`${check}:`)
  for (const [k, v] of Object.entries(rest)) console.log(`  ${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`)
}' "$figures"
exit "$status"
