#!/usr/bin/env bash
# Run the whole suite: unit tests (with -race) in parallel, then the heavy
# packages in four lanes (below), since they start Raft clusters of processes
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
# Heavy packages run in four lanes at once, each lane one package at a time
# (the suite was ≈ 31 min with two lanes while the machine's two cores were
# busy only about half the time: these tests mostly wait on processes):
# - guests: the packages that boot real guests (or drive libvirtd; QEMU runs
#   without KVM here, so they are CPU-heavy) share one lane so no two of them
#   boot guests together;
# - hosting: the packages that start nginx, PHP-FPM, MariaDB, sshd and the
#   site TLS listener on this machine, which had always run one at a time;
# - audit: tests/audit alone (≈ 10 min of process clusters that mostly wait);
# - clusters: every other heavy package (process clusters, pebble, PowerDNS,
#   Chromium).
# Each package's output is printed whole when it ends, and each lane's and
# the unit tests' wall time at the end.
GUESTS="
$mod/agent/internal/libvirttest
$mod/tests/e2e
$mod/tests/upgrade
$mod/packaging/packagetest
"
HOSTING="
$mod/agent/internal/hosting
$mod/tests/hosting
$mod/agent/internal/hostinge2e
$mod/agent/internal/sitetls
$mod/tests/brand
$mod/coordinator/internal/certjob
$mod/coordinator/internal/renewal
$mod/coordinator/internal/domainreg
"
AUDIT="
$mod/tests/audit
"
pick() { grep -xF -f <(echo "$1") <<<"$heavy" || true; }
guests=$(pick "$GUESTS")
hosting=$(pick "$HOSTING")
audit=$(pick "$AUDIT")
clusters=$(grep -vxF -f <(printf '%s\n%s\n%s\n' "$GUESTS" "$HOSTING" "$AUDIT") <<<"$heavy" || true)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
lane() { # lane NAME PKG...: 0 when every package passed
  local name=$1 rc=0 i=0 p t0=$SECONDS
  shift
  for p in "$@"; do
    i=$((i + 1))
    if go test -race -count=1 -timeout 15m "$p" >"$logs/$name.$i" 2>&1; then :; else rc=1; fi
    cat "$logs/$name.$i"
  done
  echo "$name: $((SECONDS - t0)) s" >>"$logs/times"
  return $rc
}
status=0
t0=$SECONDS
# shellcheck disable=SC2086
go test -race -count=1 -timeout 15m $units || status=1
echo "unit tests: $((SECONDS - t0)) s" >>"$logs/times"
pids=()
# shellcheck disable=SC2086
lane guests $guests & pids+=($!)
# shellcheck disable=SC2086
lane hosting $hosting & pids+=($!)
# shellcheck disable=SC2086
lane audit $audit & pids+=($!)
# shellcheck disable=SC2086
lane clusters $clusters & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "wall time: $((SECONDS - t0)) s" >>"$logs/times"
sed 's/^/run-tests: /' "$logs/times"
exit $status
