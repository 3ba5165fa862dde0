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

AGENT_ADDR=${HOSTPLANE_AGENT_LISTEN:-127.0.0.1:8422}
HOSTPLANE_DATA_DIR=$DATA bin/hostplane-coordinator run --log-format text --agent-listen "$AGENT_ADDR" &
pids+=($!)

if [ -S /var/run/libvirt/libvirt-sock ]; then
  # Wait for the coordinator, then enrol the local agent once (its certificate
  # is kept in $DATA/agent/session and reused on the next run).
  token=()
  if [ ! -f "$DATA/agent/session/node.crt" ]; then
    tok=
    for _ in $(seq 150); do # the coordinator elects itself within a few seconds
      tok=$(bin/hostplanectl node token create --admin-socket "$DATA/admin.sock" --ttl 10m --json 2>/dev/null | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p') && [ -n "$tok" ] && break
      sleep 0.2
    done
    if [ -z "$tok" ]; then echo "agent: could not make a join token (is the coordinator up? see its log above)" >&2; exit 1; fi
    token=(--join-token "$tok")
  fi
  bin/hostplane-agent --data-dir "$DATA/agent" --socket "$DATA/agent.sock" \
    --pool-name hostplane-local --pool-path "$DATA/pool" --log-level warn \
    --coordinators "$AGENT_ADDR" --node-id local "${token[@]}" &
  pids+=($!)
  echo "agent: node 'local' joined the coordinator (bin/hostplanectl node list --admin-socket $DATA/admin.sock);"
  echo "       import a template with bin/hostplanectl node --socket $DATA/agent.sock template import …, then"
  echo "       bin/hostplanectl --socket $DATA/admin.sock server create --account ACCOUNT --plan nano --template NAME"
else
  echo "agent: not started — libvirtd is not running here (scripts/install-libvirt.sh && scripts/start-libvirt.sh, then make run again)"
fi
wait -n "${pids[@]}"
