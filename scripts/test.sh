#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set-up, lint + typecheck, then each tier in turn.
#   scripts/test.sh                 all tiers
#   scripts/test.sh unit operator   only the named tiers (unit, integration, operator, e2e)
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh --tests || exit 1
tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(lint unit integration operator e2e)

failed=()
for tier in "${tiers[@]}"; do
  echo "=== $tier"
  if [ "$tier" = lint ]; then
    npm run -s lint || failed+=(lint)
    continue
  fi
  # One file at a time: integration tests start real servers and child processes of their own.
  node_modules/.bin/node --test --test-concurrency=1 --test-timeout=600000 "test/$tier/**/*.test.ts" || failed+=("$tier")
done
echo "=== test tiers: ${tiers[*]}; failed: ${failed[*]:-none}; $(( $(date +%s) - start )) s"
[ ${#failed[@]} -eq 0 ]
