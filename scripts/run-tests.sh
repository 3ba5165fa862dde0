#!/usr/bin/env bash
# Run the whole suite: unit tests (with -race) in parallel, then the heavy
# packages in two lanes (below), since they start Raft clusters of processes
# and boot real guests on a 2-core machine.
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
$mod/packaging/packagetest
$mod/agent/internal/sitetls
$mod/coordinator/internal/certjob
$mod/coordinator/internal/renewal
$mod/coordinator/internal/domainreg
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
# Heavy packages run in two lanes at once, each lane one package at a time:
# the packages that boot real guests (or drive libvirtd) share one lane so no
# two of them boot guests together; every other heavy package (process
# clusters, nginx/PHP-FPM/MariaDB/PowerDNS, pebble, Chromium) runs in the
# other. Each package's output is printed whole when it ends.
GUESTS="
$mod/agent/internal/libvirttest
$mod/tests/e2e
$mod/tests/upgrade
$mod/packaging/packagetest
"
# BALANCE runs after the guests in their lane, so the two lanes end at about
# the same time (the other lane was twice as long: ≈ 19 min against ≈ 10 in a
# loaded run). tests/audit's process clusters mostly wait, and boot no guest.
BALANCE="
$mod/tests/audit
"
guests=$(grep -xF -f <(echo "$GUESTS") <<<"$heavy" || true)
balance=$(grep -xF -f <(echo "$BALANCE") <<<"$heavy" || true)
others=$(grep -vxF -f <(printf '%s\n%s\n' "$GUESTS" "$BALANCE") <<<"$heavy" || true)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
lane() { # lane NAME PKG...: 0 when every package passed
  local name=$1 rc=0 i=0 p
  shift
  for p in "$@"; do
    i=$((i + 1))
    if go test -race -count=1 -timeout 15m "$p" >"$logs/$name.$i" 2>&1; then :; else rc=1; fi
    cat "$logs/$name.$i"
  done
  return $rc
}
status=0
# shellcheck disable=SC2086
go test -race -count=1 -timeout 15m $units || status=1
# shellcheck disable=SC2086
lane guests $guests $balance &
g=$!
# shellcheck disable=SC2086
lane others $others || status=1
wait $g || status=1
exit $status
