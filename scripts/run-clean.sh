#!/usr/bin/env bash
# `make run-clean`: removes from libvirt what `make run` (scripts/run-local.sh)
# left there for a data directory: the domains with a disk in <data dir>/pool
# (the servers its agent created, hp-srv-…), stopped first if they run, and its
# pool hostplane-local-<hash of the data directory> when it is defined at
# <data dir>/pool. Nothing else: domains of other runs, data directories or
# agents, and a pool of that name at another path, are left alone. The data
# directory itself (the disks in <data dir>/pool, the coordinator's state) stays;
# remove it by hand for a fresh start. Run it again: it finds nothing to remove.
# Environment: HOSTPLANE_DATA_DIR (the same directory make run used).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/run-env.sh # DATA, POOL

if [ -f "$DATA/coordinator.lock" ] && ! flock -n "$DATA/coordinator.lock" true 2>/dev/null; then
  echo "make run-clean: a coordinator is running on $DATA: stop that make run first (Ctrl-C where it runs); nothing removed." >&2
  exit 1
fi
if [ ! -S /var/run/libvirt/libvirt-sock ] || ! command -v virsh >/dev/null; then
  echo "make run-clean: libvirtd is not running here (scripts/start-libvirt.sh): nothing removed." >&2
  exit 1
fi
v=(virsh -q -c qemu:///system)

doms=()
for d in $("${v[@]}" list --all --name); do
  # Not piped to grep -q: under pipefail, virsh killed by the pipe grep closed is a miss.
  x=$("${v[@]}" dumpxml "$d" 2>/dev/null) || continue
  if [[ $x == *"file='$DATA/pool/"* ]]; then doms+=("$d"); fi
done
for d in "${doms[@]}"; do
  if [ "$("${v[@]}" domstate "$d" 2>/dev/null)" != "shut off" ]; then
    "${v[@]}" destroy "$d" >/dev/null 2>&1 || true
  fi
  # The agent's own flags (hypervisor UndefineDomain): a managed save image
  # (libvirt-guests' ON_SHUTDOWN=suspend at a host shutdown) makes undefine
  # refuse otherwise.
  "${v[@]}" undefine "$d" --snapshots-metadata --nvram --managed-save --checkpoints-metadata >/dev/null
  echo "make run-clean: domain $d removed"
done

if x=$("${v[@]}" pool-dumpxml "$POOL" 2>/dev/null); then
  if [[ $x == *"<path>$DATA/pool</path>"* ]]; then
    if [ "$("${v[@]}" pool-info "$POOL" | sed -n 's/^State: *//p')" = running ]; then
      "${v[@]}" pool-destroy "$POOL" >/dev/null
    fi
    "${v[@]}" pool-undefine "$POOL" >/dev/null
    echo "make run-clean: pool $POOL removed (its files stay in $DATA/pool)"
  else
    echo "make run-clean: pool $POOL is defined at another path, not $DATA/pool: left alone" >&2
  fi
elif [ ${#doms[@]} -eq 0 ]; then
  echo "make run-clean: nothing of $DATA in libvirt"
fi
