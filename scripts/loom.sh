#!/usr/bin/env bash
# The loom models, each at its own preemption bound, and the check that they catch a weakened
# memory ordering.
#
#   scripts/loom.sh             # CI: every model at its CI bound, then --weakened
#   scripts/loom.sh --long      # every model one bound deeper than CI (about an hour)
#   scripts/loom.sh --weakened  # only the weakened-ordering check
#
# Three suites (see RELIABILITY.md):
#   hazard    the hazard-pointer protocol (crates/hazard/tests/loom.rs), on the fallback fence
#   hamt      the trie's models (crates/hamt/tests/loom.rs) on the fallback fence: readers
#             fence on every protection, which checks reclamation against concurrent scans
#   unfenced  the same trie models with --cfg hazard_loom_asymmetric: readers without a fence,
#             as on the membarrier fast path, so that loom checks the trie's own orderings on
#             node contents (loom cells, crates/hamt/src/sync.rs); no scan runs concurrently
# Each model prints "loom model NAME: bound B, N iterations, T s"; the summary lists them all.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=ci
case "${1:-}" in
  --long) mode=long ;;
  --weakened) mode=weakened ;;
  "") ;;
  *) echo "usage: $0 [--long|--weakened]" >&2; exit 2 ;;
esac

# suite, model, CI bound (the long run adds one). Bounds are chosen so that the CI run takes
# about 5 minutes on 2 cores; RELIABILITY.md gives each model's iterations and time.
plan="
hazard protection_against_concurrent_retirement 2
hazard thread_exit_hands_off_records_and_retired_list 2
hazard threshold_scan_against_a_reader 4
hazard back_off_loop 4
hazard batch_retire_against_a_reader 2
hazard batches_of_exited_threads_are_handed_off 2
hazard block_pool_against_reclaim 3
hamt insert_against_remove_and_contraction 2
hamt concurrent_removals_contract_once 1
hamt updates_on_one_key_sum_exactly 2
hamt gcas_below_the_root_against_a_snapshot 2
hamt renewal_below_the_root_against_a_snapshot 2
hamt removal_and_contraction_against_a_snapshot 2
hamt gcas_at_the_root_against_a_snapshot 2
hamt two_snapshots_against_an_insert 1
hamt pair_pushed_down_against_a_removal 2
hamt fold_through_the_parent_against_an_insert 1
hamt inline_ref_protects_its_main_node 1
hamt lookup_against_a_fold 4
hamt lookup_against_a_pair_pushed_down 4
hamt cache_filled_against_a_fold 3
hamt cached_lookup_against_a_fold_and_a_write 2
hamt cache_filled_against_clear 3
hamt cached_lookup_against_a_snapshot_and_a_write 2
hamt cached_tomb_against_a_write_then_a_read 2
hamt cached_old_generation_against_a_write_then_a_read 2
hamt cached_writes_against_a_fold 1
hamt cached_gcas_against_a_snapshot 2
hamt cached_removal_against_a_snapshot 1
unfenced insert_against_remove_and_contraction 2
unfenced concurrent_removals_contract_once 2
unfenced updates_on_one_key_sum_exactly 2
unfenced gcas_below_the_root_against_a_snapshot 2
unfenced renewal_below_the_root_against_a_snapshot 1
unfenced removal_and_contraction_against_a_snapshot 2
unfenced gcas_at_the_root_against_a_snapshot 2
unfenced two_snapshots_against_an_insert 0
unfenced pair_pushed_down_against_a_removal 2
unfenced fold_through_the_parent_against_an_insert 2
unfenced inline_ref_protects_its_main_node 3
unfenced lookup_against_a_fold 6
unfenced lookup_against_a_pair_pushed_down 6
unfenced cache_filled_against_a_fold 3
unfenced cached_lookup_against_a_fold_and_a_write 3
unfenced cached_lookup_against_a_snapshot_and_a_write 1
unfenced cached_tomb_against_a_write_then_a_read 2
unfenced cached_old_generation_against_a_write_then_a_read 1
unfenced cached_writes_against_a_fold 3
unfenced cached_gcas_against_a_snapshot 2
unfenced cached_removal_against_a_snapshot 2
"

# Every model in the two loom files must be in the plan (a model left out is never run).
missing=""
for f in crates/hazard/tests/loom.rs crates/hamt/tests/loom.rs; do
  for t in $(grep -A1 '^#\[test\]' "$f" | sed -n 's/^fn \([a-z0-9_]*\).*/\1/p'); do
    grep -q " $t " <<<"$plan" || missing="$missing $t"
  done
done
if [ -n "$missing" ]; then
  echo "loom.sh: models missing from the plan:$missing" >&2
  exit 1
fi

flags_of() {
  case $1 in
    hazard | hamt) echo "--cfg loom" ;;
    unfenced) echo "--cfg loom --cfg hazard_loom_asymmetric" ;;
    weakened) echo "--cfg loom --cfg hazard_loom_asymmetric --cfg hamt_weak_publication" ;;
  esac
}
package_of() { [ "$1" = hazard ] && echo concurrent-hamt-hazard || echo concurrent-hamt; }
# One target directory per set of flags (each is a separate build).
dir_of() { case $1 in hazard | hamt) echo target/loom ;; *) echo "target/loom-$1" ;; esac; }

cargo_loom() {
  local suite=$1
  shift
  RUSTFLAGS="$(flags_of "$suite")" cargo test --locked --release -p "$(package_of "$suite")" \
    --test loom --target-dir "$(dir_of "$suite")" "$@"
}

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
start=$(date +%s)

if [ $mode != weakened ]; then
  for suite in hamt unfenced; do
    echo "=== loom: building the $suite suite"
    cargo_loom "$suite" --no-run
    [ "$suite" = hamt ] && cargo_loom hazard --no-run
  done
  while read -r suite model bound; do
    [ -z "$suite" ] && continue
    [ $mode = long ] && bound=$((bound + 1))
    echo "=== loom: $suite $model (bound $bound)"
    out=$(LOOM_MAX_PREEMPTIONS=$bound cargo_loom "$suite" -- --exact "$model" --nocapture 2>&1) || {
      echo "$out" | tail -40
      echo "loom: $suite $model failed at bound $bound"
      exit 1
    }
    line=$(echo "$out" | grep "loom model" | tail -1 || true)
    echo "$line"
    echo "$suite: $line" >>"$summary"
  done <<<"$plan"
fi

if [ $mode != long ]; then
  # The trie built with its main-node publication weakened to Relaxed (test-only cfg, see
  # `PUBLISH` in crates/hamt/src/raw.rs), readers unfenced: a model must report it.
  echo "=== loom: a Relaxed main-node publication must be caught"
  cargo_loom weakened --no-run
  if out=$(LOOM_MAX_PREEMPTIONS=1 LOOM_LOCATION=1 cargo_loom weakened -- --exact \
      updates_on_one_key_sum_exactly --nocapture 2>&1); then
    echo "loom: the weakened ordering went unnoticed"
    exit 1
  fi
  if ! echo "$out" | grep -q "Causality violation"; then
    echo "$out" | tail -30
    echo "loom: the weakened build failed, but not with a causality violation"
    exit 1
  fi
  echo "$out" | grep -A3 "Causality violation" | head -4
  echo "weakened: caught (updates_on_one_key_sum_exactly, bound 1)" >>"$summary"
fi

echo "=== loom summary ($mode, $(($(date +%s) - start)) s)"
cat "$summary"
