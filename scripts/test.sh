#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, lint + typecheck, then each tier in turn.
#   scripts/test.sh                 all tiers
#   scripts/test.sh unit operator   only the named tiers (lint, unit, integration, operator, e2e, cluster)
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh --tests || { echo "setup failed"; exit 1; }
tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(lint unit integration operator e2e cluster)

failed=()
passed_total=0
failed_total=0
log=$(mktemp)
# The cluster tier tears its node down in its own after hook; this catches a runner killed before that ran.
trap 'rm -f "$log"; [[ " ${tiers[*]} " == *" cluster "* ]] && bash scripts/cluster/down.sh' EXIT
for tier in "${tiers[@]}"; do
  tier_start=$(date +%s)
  echo "=== $tier"
  if [ "$tier" = lint ]; then
    npm run -s lint || failed+=(lint)
    continue
  fi
  # One file at a time: integration tests start real servers and child processes of their own. The cluster tier's
  # set-up (images, node) runs in a before hook and can take most of a cold run's time.
  timeout=900000
  [ "$tier" = cluster ] && timeout=3600000
  node_modules/.bin/node --test --test-concurrency=1 --test-timeout=$timeout "test/$tier/**/*.test.ts" 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  p=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -1)
  passed_total=$((passed_total + ${p:-0}))
  failed_total=$((failed_total + ${f:-0}))
  [ "$status" -eq 0 ] || failed+=("$tier")
  echo "=== $tier: ${p:-0} passed, ${f:-0} failed in $(( $(date +%s) - tier_start )) s"
done
echo "=== tiers: ${tiers[*]}; failed tiers: ${failed[*]:-none}; $(( $(date +%s) - start )) s"
echo "tests: $passed_total passed, $failed_total failed"
[ ${#failed[@]} -eq 0 ]
