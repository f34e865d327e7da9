#!/usr/bin/env bash
# `npm run test:deploy`: offline checks of what deploy/ ships (run by `npm test`, so by .ci/run).
# The tools come from test/tools/install.sh (npm's pretest).
set -euo pipefail
cd "$(dirname "$0")/../.."
for check in test/deploy/compose-check.sh test/deploy/helm-check.sh; do
  if [ -x "$check" ]; then
    echo "test:deploy: $check"
    "$check"
  else
    echo "test:deploy: $check is missing" >&2
    exit 1
  fi
done
echo "test:deploy: passed"
