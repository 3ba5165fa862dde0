#!/usr/bin/env bash
# `make run`: the embedded default — a single-node coordinator with its data
# directory, plus a hypervisor agent on this machine when libvirtd is running.
# Ctrl-C stops both. Data is reused on the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${HOSTPLANE_DATA_DIR:-}
if [ -z "$DATA" ]; then
  if [ -n "${XDG_DATA_HOME:-}" ]; then DATA=$XDG_DATA_HOME/hostplane; else DATA=.hostplane; fi
fi
mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)

pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -S /var/run/libvirt/libvirt-sock ]; then
  bin/hostplane-agent --data-dir "$DATA/agent" --socket "$DATA/agent.sock" \
    --pool-name hostplane-local --pool-path "$DATA/pool" --log-level warn &
  pids+=($!)
  echo "agent: local socket $DATA/agent.sock  (bin/hostplanectl node --socket $DATA/agent.sock …)"
else
  echo "agent: not started — libvirtd is not running here (scripts/install-libvirt.sh && scripts/start-libvirt.sh, then make run again)"
fi

HOSTPLANE_DATA_DIR=$DATA bin/hostplane-coordinator run --log-format text &
pids+=($!)
wait -n "${pids[@]}"
