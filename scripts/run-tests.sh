#!/usr/bin/env bash
# Run the whole suite: unit tests (with -race) in parallel, and beside them
# the heavy packages in four lanes (below), since they start Raft clusters of
# processes and boot real guests on a 2-core machine; with -race too, but for
# those that only drive processes (DRIVERS below).
#
# Heavy, by rule: every package under tests/ (whole-system tests) except the
# framework itself (its test runs one coordinator and stays with the unit
# tests), plus the packages named in GUESTS, HOSTING1/2 and CLUSTERS below.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.bin:$PATH"

mod=$(go list -m)
# Heavy packages run in four lanes at once, each lane one package at a time
# (the suite was ≈ 31 min with two lanes while the machine's two cores were
# busy only about half the time: these tests mostly wait on processes):
# - guests: the packages that boot real guests (or drive libvirtd; QEMU runs
#   without KVM here, so they are CPU-heavy) share one lane so no two of them
#   boot guests together (agent/internal/hypervisor too: its domain tests
#   boot the guest, and the lanes run beside the unit tests);
#   packaging/packagetest, which boots none (it starts the packaged agent on
#   a pool of its own), runs in the clusters lanes;
# - hosting: the packages that start nginx, PHP-FPM, MariaDB and sshd for
#   a hosting node on this machine (HOSTING1, then HOSTING2), in one lane.
#   Two hosting lanes could run side by side (their user changes wait for
#   each other on glibc's lckpwdf rather than fail: shadow 4.13's useradd
#   with the lock held 3 s by another process waited and succeeded; 12
#   useradd and then 12 userdel at once all exited 0; everything else of
#   theirs is per test), but a fifth lane made the suite slower, not
#   faster: the clean-clone CI at 61de960 (five lanes) took 25 m 05 s,
#   run-tests 1346 s, 1957 CPU-s, its guests lane 1341 s with libvirttest
#   938 s (661 s at b6d87d2 with four lanes: 1233 s, 1849 CPU-s): the two
#   cores were already the limit, and the guests' boots waited for them. agent/internal/sitetls, which adds no
#   user (its nginx runs on free ports from a temporary directory, as
#   www-data), runs in the clusters lanes;
# - clusters1 and clusters2: every other heavy package (process clusters,
#   pebble, PowerDNS, Chromium), tests/audit (≈ 15 min) included, in two
#   lanes that take the next package from one queue, the longest first
#   (LONGEST below, then the rest): the fixed split it replaces (tests/audit
#   alone, the others in one lane) left one lane ≈ 5 min longer than the
#   other (clean-clone CI at 33f99eb: 702 s and 1007 s), and a package's time
#   changes from stop to stop. The other lanes, when their own packages
#   have ended, take packages from the same queue.
# A package in SHARDS runs as two go test invocations (its two shards), each
# an entry of its own in a lane or the queue: tests/audit (911 s at b6d87d2,
# longer than any lane should be) in two halves, and tests/upgrade's tests
# that boot no guest out of the guests lane.
# Each package's output is printed whole when it ends, and each lane's and
# the unit tests' wall time at the end, with each heavy package's and the
# slowest tests' (go test runs with -json, which testsweep testjson turns
# back into go test's usual text: an ok line for a package that passed, the
# output of the tests that failed, and each test's time for the list).
GUESTS="
$mod/agent/internal/libvirttest
$mod/tests/e2e
$mod/tests/upgrade
$mod/agent/internal/hypervisor
"
HOSTING1="
$mod/agent/internal/hosting
$mod/tests/brand
"
HOSTING2="
$mod/tests/hosting
$mod/agent/internal/hostinge2e
"
HOSTING="$HOSTING1$HOSTING2"
# The heavy packages outside tests/ that neither boot guests nor start the
# hosting services: they go to the clusters lanes (certjob runs pebble on
# free ports, renewal and domainreg in-process clusters, sitetls its own
# nginx and pebble on free ports).
CLUSTERS="
$mod/agent/internal/sitetls
$mod/coordinator/internal/clustertest
$mod/coordinator/internal/oauthtest
$mod/coordinator/internal/ipam/clustertest
$mod/coordinator/internal/mcpserver/conformance
$mod/packaging/packagetest
$mod/coordinator/internal/certjob
$mod/coordinator/internal/renewal
$mod/coordinator/internal/domainreg
"
# SHARDS: one line a package, the package then a regular expression of
# test names (no slash: top-level tests only): its first shard (@1) runs
# the tests it matches (go test -run), its second (@2) every other test (go
# test -skip of the same expression), so each test runs in exactly one
# shard whatever tests are added. Before the first shard runs, go test
# -list checks that each shard has a test (an expression that matches none
# or all would leave a shard empty unseen) and prints how many each has.
# tests/audit (922 s alone at load 21-28, go test -json: 847 s of
# sequential tests, ≈ 8 s each on a cluster of its own, then its 7
# parallel ones, ≈ 70 s) splits by name. Since 43 of its tests share
# clusters (tests/audit/shared_rig_test.go; 752 s at load 20-28 beside a
# run of the tests before, which took 874 s), go test -json's test times
# were 343 s for the Probe, Hook, MCP and Ops tests, 454 s for the others;
# the Domain tests (58 s) joined the first shard: ≈ 400 s each.
SHARDS="
$mod/tests/audit ^Test(Probe|Hook|MCP|Ops|Domain)
$mod/tests/upgrade ^TestRollingUpgrade$
"
# DRIVERS: heavy packages whose test binary only drives processes (the
# binaries the tests start, built without -race, and real servers), run
# without -race: the race detector checks the test binary alone, here test
# code and the pkg/ clients (which have -race unit tests of their own), at
# ≈ 0.4 CPU-s a test in tests/audit (below). Each must import no package
# under coordinator/ or agent/ (checked below: such a package runs product
# code in the test binary, which keeps -race). tests/audit, six tests (a
# cluster of three coordinators each), load 24-38, test binaries with and
# without -race interleaved: 14.5 and 13.5 CPU-s with, 11.4 and 11.0
# without, the test binary and every process it reaped.
DRIVERS="
$mod/tests/apikeys
$mod/tests/audit
$mod/tests/brand
$mod/tests/domains
$mod/tests/e2e
$mod/tests/hosting
$mod/tests/orders
$mod/tests/rdns
$mod/tests/robustness
$mod/tests/upgrade
$mod/packaging/packagetest
"
# shellcheck disable=SC2086
deps=$(go list -test -deps $DRIVERS)
if inproc=$(grep -E "^$mod/(coordinator|agent)/" <<<"$deps"); then
  echo "run-tests: a package in DRIVERS imports product code, which needs -race: $(tr '\n' ' ' <<<"$inproc")" >&2
  exit 1
fi
race() { # race PKG: -race, unless PKG is in DRIVERS
  grep -qxF "$1" <<<"$DRIVERS" || echo -race
}
all=$(go list ./...)
heavy=$(for p in $all; do
  case "$p" in
    "$mod"/tests/framework | "$mod"/tests/framework/*) ;;
    "$mod"/tests/*) echo "$p" ;;
    *) if grep -qxF "$p" <<<"$GUESTS$HOSTING$CLUSTERS"; then echo "$p"; fi ;;
  esac
done)
units=$(grep -vxF -f <(echo "$heavy") <<<"$all")
# The clusters lanes' queue starts with these, longest first (tests/audit's
# shards ≈ 455 s each of its 911; 377, 260, 258, 106, 95, 43 and 48 s in the
# clean-clone CI at b6d87d2); the other packages (under 40 s each) follow.
LONGEST="
$mod/tests/audit@1
$mod/tests/audit@2
$mod/tests/robustness
$mod/coordinator/internal/clustertest
$mod/packaging/packagetest
$mod/coordinator/internal/oauthtest
$mod/tests/orders
$mod/tests/domains
$mod/coordinator/internal/ipam/clustertest
"
# shardre PKG: the expression of PKG's first shard, or nothing.
shardre() { awk -v p="$1" '$1 == p { print $2 }' <<<"$SHARDS"; }
# entries PKG...: what runs PKG in a lane or the queue: PKG, or PKG@1 and
# PKG@2 for a package in SHARDS.
entries() {
  local p
  for p in "$@"; do
    if [ -n "$(shardre "$p")" ]; then printf '%s@1\n%s@2\n' "$p" "$p"; else echo "$p"; fi
  done
}
pick() { grep -xF -f <(echo "$heavy") <<<"$1" || true; } # pick LIST: LIST's heavy packages, in LIST's order
# The guests lane in GUESTS' order: agent/internal/hypervisor, whose domain
# tests give the whole test 2 minutes with the guest's boot, last, when the
# unit tests beside the lanes have ended. A guests package's second shard
# (tests that boot no guest) goes to the queue.
# shellcheck disable=SC2046
guests=$(entries $(pick "$GUESTS") | grep -v '@2$' || true)
# shellcheck disable=SC2046
hosting1=$(entries $(pick "$HOSTING1"))
# shellcheck disable=SC2046
hosting2=$(entries $(pick "$HOSTING2"))
# shellcheck disable=SC2046
rest=$(entries $(grep -vxF -f <(printf '%s\n%s\n' "$GUESTS" "$HOSTING") <<<"$heavy" || true)
  entries $(pick "$GUESTS") | grep '@2$' || true)
logs=$(mktemp -d)
run= # the run directory (below), once made
pids=()
# finish: on any exit (INT and TERM exit through it too), stop the lanes
# still running and sweep every package root of the run, then remove it.
finish() {
  if [ "${#pids[@]}" -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
  if [ -n "$run" ]; then
    "$logs/bin/testsweep" sweep "$run"/*/ 2>&1 | sed 's/^/run-tests: /' || true
    if [ -z "${HOSTPLANE_TEST_KEEP:-}" ]; then rm -rf "$run"; else echo "run-tests: test files kept in $run (HOSTPLANE_TEST_KEEP)"; fi
  fi
  rm -rf "$logs"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
{
  grep -xF -f <(echo "$rest") <<<"$LONGEST" || true
  grep -vxF -f <(echo "$LONGEST") <<<"$rest" || true
} | grep . >"$logs/queue" || true
# -timeout 25m: a guard against a hung package, not a budget. tests/audit
# takes ≈ 13 min on a quiet machine (772 s in the clean-clone CI at 1ce0b50)
# and now starts beside the unit tests: 15 min left it too little room (in a
# clean-clone CI at load 20–54, agent/internal/hosting, 390 s quiet, was
# stopped at 15 min mid-test with no test failed; tests/audit and
# libvirttest reached 15 min too, after failures of their own at that load).
#
# Each package's wall and CPU time go to the list printed at the end. Its CPU
# is user + system time of go test and every process it waited for (the
# compile, the test binary and the processes the tests start and reap: the
# coordinators, nginx, PHP-FPM, MariaDB…), not that of processes another
# process reaps (QEMU, which libvirtd starts): so the guests lane's figures
# leave out its guests.
cpu() { # cpu FILE CMD...: CMD, its CPU seconds then written to FILE
  local f=$1
  shift
  (
    rc=0
    "$@" || rc=$?
    times >"$f"
    exit $rc
  )
}
cpus() { # cpus FILE: the CPU seconds (whole) written by cpu
  awk 'NR == 2 { gsub(",", "."); split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.0f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1"
}
lanecpu() { # lanecpu NAME: the CPU seconds of lane NAME's packages so far
  awk -v n="$1" '$3 == n { s += $1 } END { print s + 0 }' "$logs/pkgtimes" 2>/dev/null || echo 0
}
shardcheck() { # shardcheck PKG: fails, saying why, unless both of PKG's shards have a test
  local all one n1 n
  # shellcheck disable=SC2046
  all=$(go test $(race "$1") -list . "$1" | grep -E '^(Test|Fuzz|Example)') || {
    echo "run-tests: go test -list $1 failed" >&2
    return 1
  }
  one=$(grep -E "$(shardre "$1")" <<<"$all" || true)
  n=$(grep -c . <<<"$all")
  n1=$(grep -c . <<<"$one" || true)
  echo "run-tests: ${1#"$mod"/}@1 ($(shardre "$1")) runs $n1 of its $n tests, @2 the other $((n - n1))"
  case "$(shardre "$1")" in
    */*)
      echo "run-tests: the SHARDS expression of ${1#"$mod"/} has a slash (subtests)" >&2
      return 1
      ;;
  esac
  if [ "$n1" = 0 ] || [ "$n1" = "$n" ]; then
    echo "run-tests: a shard of ${1#"$mod"/} would run no test: SHARDS' expression matches none or all of its tests" >&2
    return 1
  fi
}
run1() { # run1 NAME I ENTRY: one package's (or shard's) tests, its output printed whole
  local rc=0 t0=$SECONDS lock=() pkg=${3%@*} args=() re
  case "$3" in
    *@1 | *@2)
      re=$(shardre "$pkg")
      if [ "${3##*@}" = 1 ]; then args=(-run "$re"); else args=(-skip "$re"); fi
      ;;
  esac
  # HP_LOCK_guests / HP_LOCK_hosting: a lock file the packages of GUESTS or
  # HOSTING each take (flock) while they run, for a machine shared with
  # other test runs (not a guests package's second shard, which boots no
  # guest); the hosting packages' lock is shared (flock -s), since this
  # run's two hosting lanes run them two at a time.
  if grep -qxF "$pkg" <<<"$GUESTS" && [ "${3: -2}" != @2 ] && [ -n "${HP_LOCK_guests:-}" ]; then lock=(flock "$HP_LOCK_guests"); fi
  if grep -qxF "$pkg" <<<"$HOSTING" && [ -n "${HP_LOCK_hosting:-}" ]; then lock=(flock -s "$HP_LOCK_hosting"); fi
  if [ "${3: -2}" = @1 ] && ! shardcheck "$pkg" >"$logs/$1.$2" 2>&1; then
    rc=1
  else
    # shellcheck disable=SC2046
    cpu "$logs/$1.$2.cpu" inroot "$run/$(tag "$1")$2" "${lock[@]}" go test -json $(race "$pkg") -count=1 -timeout 25m \
      -exec "$logs/bin/testsweep exec" "${args[@]}" "$pkg" >"$logs/$1.$2.json" 2>&1 || rc=1
    "$logs/bin/testsweep" testjson "$logs/tests" <"$logs/$1.$2.json" >>"$logs/$1.$2" 2>&1 || true
    "$logs/bin/testsweep" sweep "$run/$(tag "$1")$2" >>"$logs/$1.$2" 2>&1 || true
  fi
  cat "$logs/$1.$2"
  echo "$(cpus "$logs/$1.$2.cpu" 2>/dev/null || echo 0) $((SECONDS - t0)) $1 ${3#"$mod"/}" >>"$logs/pkgtimes"
  return $rc
}
tag() { # tag LANE: the letter of LANE's package roots
  case "$1" in
    guests) echo g ;;
    hosting) echo h ;;
    clusters1) echo a ;;
    *) echo b ;;
  esac
}
lane() { # lane NAME ENTRY...: its entries, then the queue's; 0 when every package passed
  local name=$1 rc=0 i=0 p t0=$SECONDS
  shift
  for p in "$@"; do
    i=$((i + 1))
    run1 "$name" "$i" "$p" || rc=1
  done
  while p=$(next) && [ -n "$p" ]; do
    i=$((i + 1))
    run1 "$name" "$i" "$p" || rc=1
  done
  echo "$name: $((SECONDS - t0)) s, $(lanecpu "$name") CPU-s ($i packages, from $((t0 - T0)) s)" >>"$logs/times"
  return $rc
}
next() { # next: the first package left in the queue (removed from it), or nothing
  flock "$logs/queue.lock" sh -c 'head -n 1 "$1" && sed -i 1d "$1"' _ "$logs/queue"
}
status=0
T0=$SECONDS
# The binaries the tests start (tests/framework's BuildBinary, default build
# options), built once here for every test binary instead of once by each
# (≈ 4 CPU-s a link of hostplane-coordinator, and most heavy packages link
# it and one to three others). When this build fails the suite stops here,
# saying so: with no shared binaries every test binary would build its own
# (minutes of CPU) only to fail the same way.
if ! go build -o "$logs/bin/" ./coordinator/cmd/hostplane-coordinator ./coordinator/cmd/hostplanectl \
  ./agent/cmd/hostplane-agent ./agent/cmd/hostplane-agent-sim ./agent/internal/session/testdata/testagent \
  ./tests/eppd/cmd/eppd ./scripts/testsweep; then
  echo "run-tests: building the binaries the tests start failed (go build's errors above)" >&2
  exit 1
fi
export HOSTPLANE_TEST_BIN_DIR="$logs/bin"
# The MariaDB datadir the first hosting test process bootstraps, copied by
# the others instead of a bootstrap of their own (tests/framework/hostenv's
# SeedEnv); removed with $logs.
export HOSTPLANE_TEST_MARIADB_SEED="$logs/mariadb-seed"
# Nothing left behind when a test process dies. A package killed midway
# (its -timeout's panic, a SIGKILL, this run stopped) runs none of its
# cleanups, and its guests, pools, namespaces, processes, hosting users and
# temporary directories stayed (stop 58: a libvirttest guest left running
# by ci-S's timeout). So each package (or shard) runs with a root of its own,
# /tmp/hprXXXX/<lane letter><n>, as TMPDIR and GOTMPDIR (its t.TempDir()s,
# the framework's run directories, go test's build) and HP_TEST_ROOT, and after
# it ends, passed or failed, scripts/testsweep removes what belongs to that
# root and nothing else (testsweep's doc says how it tells). The root stays
# short, 16 bytes at most: a t.TempDir() is the root + at most 79 bytes (/,
# the test's name cut to 64, up to 10 digits, /001), so a socket in it named
# in 11 bytes (/notify.sock) is at most 16 + 79 + 12 = 107 bytes and its
# NUL, sun_path's 108 (the tests' sockets in a t.TempDir(): admin.sock,
# agent.sock, acme.sock, notify.sock, s.sock). go test's
# -exec runs each test binary through testsweep, which records its pid (the
# owner hostenv writes in a hosting root's .owner), and an ip(8) of
# testsweep's first in PATH records the namespaces and links the tests make.
# The run directories of a run-tests.sh that no longer runs (killed) are
# swept first.
"$logs/bin/testsweep" stale /tmp | sed 's/^/run-tests: /'
run=$(mktemp -d /tmp/hprXXXX)
chmod 0711 "$run" # as /tmp: a daemon a test runs as another user reaches the files it was given
"$logs/bin/testsweep" owner "$run"
mkdir "$logs/shim"
ln -s "$logs/bin/testsweep" "$logs/shim/ip"
# inroot ROOT CMD...: CMD with ROOT (made, 0711) its package root.
inroot() {
  local root=$1
  shift
  mkdir -m 0711 "$root"
  TMPDIR=$root GOTMPDIR=$root HP_TEST_ROOT=$root PATH="$logs/shim:$PATH" "$@"
}
units() { # the unit tests
  local rc=0
  # -p 2 (go test's default here, the CPUs): it caps the unit tests'
  # compiles, links and running test binaries together. Alone they ran with
  # -p 4 (with -p 2 their phase kept 0.9 of the 2 cores busy); beside the
  # lanes, which start their first packages, builds and guests at the same
  # time, -p 2 leaves the lanes the other core: the unit tests take longer
  # but end long before the lanes.
  # shellcheck disable=SC2086
  # (testjson prints each package's text when go test reports it: the
  # unit tests' output comes package by package, as without -json.)
  cpu "$logs/units.cpu" inroot "$run/u" go test -json -p 2 -race -count=1 -timeout 15m -exec "$logs/bin/testsweep exec" $units \
    2>&1 | "$logs/bin/testsweep" testjson "$logs/tests" || rc=1
  "$logs/bin/testsweep" sweep "$run/u" || true
  echo "unit tests: $((SECONDS - T0)) s, $(cpus "$logs/units.cpu") CPU-s" >>"$logs/times"
  return $rc
}
# The lanes start with the unit tests, not after them: the lanes wait on
# processes most of the time (the run before this change kept the 2 cores
# ≈ 71 % busy), and the 4 m 09 s of unit tests before them made the suite's
# critical path unit tests + the hosting lane (clean-clone CI at 1ce0b50:
# 249 + 958 of 1207 s).
# shellcheck disable=SC2086
lane guests $guests & pids+=($!)
# shellcheck disable=SC2086
lane hosting $hosting1 $hosting2 & pids+=($!)
lane clusters1 & pids+=($!)
lane clusters2 & pids+=($!)
units & pids+=($!)
for p in "${pids[@]}"; do wait "$p" || status=1; done
pids=()
times >"$logs/all.cpu"
echo "wall time: $((SECONDS - T0)) s, $(cpus "$logs/all.cpu") CPU-s (not counted: processes another process reaps, QEMU)" >>"$logs/times"
sed 's/^/run-tests: /' "$logs/times"
# The heavy packages, most CPU first: CPU-s, wall s, lane, package.
sort -rn "$logs/pkgtimes" | sed 's/^/run-tests: package /'
# The slowest tests of the run (go test -json's time of each top-level
# test): wall s, package, test, result.
sort -rn "$logs/tests" 2>/dev/null | head -n 25 | sed "s|^|run-tests: test |; s| $mod/| |" || true
exit $status
