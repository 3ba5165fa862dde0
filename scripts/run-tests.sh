#!/usr/bin/env bash
# Run the whole suite: unit tests (with -race) in parallel, then the heavy
# packages one at a time, since they start Raft clusters of processes and boot
# real guests on a 2-core machine and timing-sensitive parts should not share
# the CPU.
#
# Heavy, by rule: every package under tests/ (whole-system tests) except the
# framework itself (its test runs one coordinator and stays with the unit
# tests), plus the packages named in HEAVY below.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.bin:$PATH"

mod=$(go list -m)
HEAVY="
$mod/coordinator/internal/clustertest
$mod/coordinator/internal/oauthtest
$mod/coordinator/internal/ipam/clustertest
$mod/agent/internal/libvirttest
$mod/agent/internal/hosting
$mod/agent/internal/hostinge2e
$mod/packaging/integration
$mod/agent/internal/sitetls
$mod/coordinator/internal/certjob
$mod/coordinator/internal/mcpserver/conformance
"
all=$(go list ./...)
heavy=$(for p in $all; do
  case "$p" in
    "$mod"/tests/framework | "$mod"/tests/framework/*) ;;
    "$mod"/tests/*) echo "$p" ;;
    *) if grep -qxF "$p" <<<"$HEAVY"; then echo "$p"; fi ;;
  esac
done)
units=$(grep -vxF -f <(echo "$heavy") <<<"$all")
status=0
# shellcheck disable=SC2086
go test -race -count=1 -timeout 15m $units || status=1
for p in $heavy; do
  go test -race -count=1 -timeout 15m "$p" || status=1
done
exit $status
