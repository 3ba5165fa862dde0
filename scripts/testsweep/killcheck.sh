#!/usr/bin/env bash
# killcheck.sh PKG TESTRE WHAT: shows that testsweep leaves nothing of a test
# process killed midway. It runs PKG's tests matching TESTRE as
# scripts/run-tests.sh runs a package (a root of its own in a run directory
# as TMPDIR and HP_TEST_ROOT, go test -exec testsweep exec, testsweep's ip
# first in PATH), waits until the test has made WHAT, then SIGKILLs the test
# binary (as go test's -timeout or a stopped CI does: no cleanup runs),
# lists what the dead test left, sweeps the root, and lists again: it fails
# unless the second list is empty.
#   WHAT guest:   a libvirt domain with files under the root
#   WHAT hosting: a hosting root (/var/lib/hostplane-test) of the test
#                 binary, with a user of its prefix
# Guest packages only under flock /tmp/hp-guests.lock; hosting packages under
# flock -s /tmp/hp-hosting.lock (as run-tests.sh takes them). Run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# = 3 ] || {
  echo "usage: $0 PKG TESTRE guest|hosting" >&2
  exit 2
}
pkg=$1 re=$2 what=$3
bin=$(mktemp -d)
go build -o "$bin/" ./scripts/testsweep
mkdir "$bin/shim"
ln -s "$bin/testsweep" "$bin/shim/ip"
run=$(mktemp -d /tmp/hprXXXX)
chmod 0711 "$run"
"$bin/testsweep" owner "$run"
root=$run/k1
mkdir -m 0711 "$root"
trap '"$bin/testsweep" sweep "$root" >/dev/null 2>&1 || true; rm -rf "$bin" "$run"' EXIT

TMPDIR=$root GOTMPDIR=$root HP_TEST_ROOT=$root PATH="$bin/shim:$PATH" \
  go test -count=1 -timeout 20m -run "$re" -exec "$bin/testsweep exec" "$pkg" >"$bin/out" 2>&1 &
gotest=$!

hostingroots() { # the hosting roots of the package's test binaries
  local d
  [ -f "$root/.testbins" ] || return 0
  for d in /var/lib/hostplane-test/hpt??????; do
    [ -f "$d/.owner" ] && grep -qxF "$(tr -s ' ' <"$d/.owner" | sed 's/ *$//')" "$root/.testbins" && echo "$d"
  done 2>/dev/null || true
}
domains() { # the domains with a file under the root
  local d
  for d in $(virsh -q -c qemu:///system list --all --name); do
    virsh -q -c qemu:///system dumpxml "$d" 2>/dev/null | grep -qF "$root/" && echo "$d"
  done
}
made() {
  case "$what" in
    guest) [ -n "$(domains)" ] && virsh -q -c qemu:///system list --state-running --name | grep -qxF "$(domains | head -n 1)" ;;
    hosting) [ -n "$(hostingroots)" ] && getent passwd | grep -q "^$(basename "$(hostingroots | head -n 1)")" ;;
    *) return 1 ;;
  esac
}
t0=$SECONDS
until made; do
  if ! kill -0 "$gotest" 2>/dev/null || [ $((SECONDS - t0)) -gt 900 ]; then
    echo "killcheck: the test ended or took 15 min before it made a $what" >&2
    tail -n 30 "$bin/out" >&2
    exit 1
  fi
  sleep 1
done
testbin=$(head -n 1 "$root/.testbins" | cut -d' ' -f1)
echo "killcheck: after $((SECONDS - t0)) s the test has made a $what: SIGKILL of the test binary (pid $testbin)"
kill -KILL "$testbin"
wait "$gotest" || true
sleep 1
cp "$root/.created" "$bin/created" 2>/dev/null || : >"$bin/created"
cp "$root/.testbins" "$bin/testbins"
prefixes=$(hostingroots | xargs -r -n1 basename)

left() { # what belongs to the root (or to its hosting roots), one line each
  local d n p
  for d in $(domains); do echo "domain $d"; done
  for p in $(virsh -q -c qemu:///system pool-list --all --name); do
    virsh -q -c qemu:///system pool-dumpxml "$p" 2>/dev/null | grep -qF "<path>$root/" && echo "pool $p"
  done
  while read -r d n _; do
    case "$d" in
      netns) [ -e "/run/netns/$n" ] && echo "netns $n" ;;
      link) [ -e "/sys/class/net/$n" ] && echo "link $n" ;;
    esac
  done <"$bin/created"
  local hosted=() uids=() u
  for n in $prefixes; do
    hosted+=(-e "/var/lib/hostplane-test/$n/")
    while read -r u; do uids+=("$u"); done < <(getent passwd | awk -F: -v n="$n" 'index($1, n) == 1 { print $3 }')
  done
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = $$ ] && continue
    if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxE "(TMPDIR|HP_TEST_ROOT)=$root(/.*)?" ||
      { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -e "$root/" "${hosted[@]}" ||
      { [ "${#uids[@]}" -gt 0 ] && printf '%s\n' "${uids[@]}" | grep -qxF "$(stat -c %u "$p" 2>/dev/null)"; }; then
      echo "process ${p#/proc/} $({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | cut -c1-100)"
    fi
  done
  for n in $prefixes; do
    [ -d "/var/lib/hostplane-test/$n" ] && echo "hosting root $n"
    getent passwd | cut -d: -f1 | grep "^$n" | sed 's/^/user /' || true
    getent group | cut -d: -f1 | grep "^$n" | sed 's/^/group /' || true
  done
  grep -F " $root/" /proc/self/mountinfo | cut -d' ' -f5 | sed 's/^/mount /' || true
  [ -d "$root" ] && find "$root" -mindepth 1 -maxdepth 1 ! -name '.testbins' ! -name '.created' -printf 'file %f\n'
  return 0
}
# tree PID...: those processes and all their descendants, "pid start" a
# line (start: field 22 of /proc/PID/stat, so a reused pid is not taken for
# the process). A descendant need show nothing of the root (an nginx worker:
# environment cleared, "nginx: worker process", www-data), and once its
# parent is killed it is init's child: so it is taken before the sweep and
# looked for after it.
tree() {
  local -A in=()
  local p pid ppid changed=1
  for p in "$@"; do in[$p]=1; done
  while [ $changed = 1 ]; do
    changed=0
    for p in /proc/[0-9]*; do
      pid=${p#/proc/}
      [ -n "${in[$pid]:-}" ] && continue
      ppid=$(awk '/^PPid:/ { print $2 }' "$p/status" 2>/dev/null) || continue
      if [ -n "$ppid" ] && [ -n "${in[$ppid]:-}" ]; then
        in[$pid]=1
        changed=1
      fi
    done
  done
  for pid in "${!in[@]}"; do
    echo "$pid $(cut -d' ' -f22 "/proc/$pid/stat" 2>/dev/null)"
  done
}
echo "killcheck: what the killed test left:"
before=$(left)
echo "$before" | sed 's/^/  /'
# shellcheck disable=SC2046
procs=$(tree $(echo "$before" | awk '$1 == "process" { print $2 }'))
echo "killcheck: $(echo "$procs" | grep -c . || true) processes of it and their descendants"
"$bin/testsweep" sweep "$root"
after=$(left
  while read -r pid start; do
    [ -n "$pid" ] && [ "$(cut -d' ' -f22 "/proc/$pid/stat" 2>/dev/null)" = "$start" ] &&
      echo "process $pid $({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | cut -c1-100) (a descendant)"
  done <<<"$procs"
  true)
if [ -n "$after" ]; then
  echo "killcheck: FAIL: the sweep left:" >&2
  echo "$after" | sed 's/^/  /' >&2
  exit 1
fi
echo "killcheck: PASS: nothing of $root left after the sweep"
