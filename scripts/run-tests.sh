#!/usr/bin/env bash
# Run the whole suite: unit tests (with -race) in parallel, then the integration
# packages one at a time, since they start Raft clusters and boot real guests on a
# 2-core machine and timing-sensitive parts should not share the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.bin:$PATH"

integ=$(go list ./... | grep '/integration$' || true)
units=$(go list ./... | grep -v '/integration$')
status=0
# shellcheck disable=SC2086
go test -race -count=1 -timeout 15m $units || status=1
for p in $integ; do
  go test -race -count=1 -timeout 15m "$p" || status=1
done
exit $status
