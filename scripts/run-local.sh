#!/usr/bin/env bash
# `make run`: the embedded default — a single-node coordinator with its data
# directory, plus a hypervisor agent on this machine when libvirtd is running.
# Ctrl-C stops both, and the servers (libvirt domains) the agent started with
# disks in this data directory's pool. Data is reused on the next run.
#
# The agent's libvirt pool is named after the data directory
# (hostplane-local-<hash of its path>), so runs from other checkouts or data
# directories each get their own pool instead of finding one defined elsewhere.
# If the agent fails, the coordinator keeps running and the script says what to do.
# The agent's browser console listens on a free loopback port (the coordinator
# learns its URL from the agent), not the fixed 8423 a packaged agent uses, so a
# second run from another checkout, or another program on 8423, does not take it.
# Environment: HOSTPLANE_DATA_DIR, HOSTPLANE_AGENT_LISTEN, HOSTPLANE_AGENT_CONSOLE_LISTEN
# (default 127.0.0.1:0, any free port), HOSTPLANE_BIN (default bin), and the
# coordinator's own HOSTPLANE_* settings. make run-clean (scripts/run-clean.sh)
# removes what runs on a data directory left in libvirt.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${HOSTPLANE_BIN:-bin}

. scripts/run-env.sh mkdir # DATA, POOL

# A second `make run` on the same data directory: the coordinator would refuse
# the directory (it is locked), but the agent below would enrol with the
# running one and share its agent's directory. Say so and stop instead. The
# test is the coordinator's own lock (a flock the kernel drops however the
# holder ends), tried without waiting: it answers at once also when the
# running coordinator is stopped (Ctrl-Z) or hung, where its admin socket
# would not.
if [ -f "$DATA/coordinator.lock" ] && ! flock -n "$DATA/coordinator.lock" true 2>/dev/null; then
  holder=$(tr -dc 0-9 < "$DATA/coordinator.lock" 2>/dev/null || true)
  echo "make run: a coordinator is already running on $DATA (process ${holder:-unknown} holds its lock)." >&2
  echo "          Stop it (Ctrl-C where it runs, or kill ${holder:-<pid>}), or set HOSTPLANE_DATA_DIR to another directory" >&2
  echo "          (and HOSTPLANE_API_ADDR, HOSTPLANE_RAFT_ADDR, HOSTPLANE_METRICS_ADDR, HOSTPLANE_AGENT_LISTEN to free ports)." >&2
  exit 1
fi

# stop_guests shuts down the running domains with a disk in $DATA/pool: the
# servers this data directory's agent started. A packaged agent leaves its
# guests running when it stops (it restarts under them), but a run that ended
# left them running unseen, and a removed data directory left them orphaned.
# An ACPI shutdown first, then power off what still runs after 10 s; the next
# run shows them stopped (POST /v1/servers/ID/power/start starts one).
stop_guests() {
  [ -S /var/run/libvirt/libvirt-sock ] && command -v virsh >/dev/null || return 0
  local v=(virsh -q -c qemu:///system) doms=() left=() d x
  for d in $("${v[@]}" list --name 2>/dev/null); do
    # Not piped to grep -q: under pipefail, virsh killed by the pipe grep closed is a miss.
    x=$("${v[@]}" dumpxml "$d" 2>/dev/null) || continue
    if [[ $x == *"file='$DATA/pool/"* ]]; then doms+=("$d"); fi
  done
  [ ${#doms[@]} -gt 0 ] || return 0
  echo "make run: shutting down this run's servers: ${doms[*]} (their disks stay in $DATA/pool; the next make run shows them stopped)" >&2
  for d in "${doms[@]}"; do "${v[@]}" shutdown "$d" >/dev/null 2>&1 || true; done
  local end=$((SECONDS + 10))
  while :; do
    left=()
    for d in "${doms[@]}"; do
      if [ "$("${v[@]}" domstate "$d" 2>/dev/null)" = running ]; then left+=("$d"); fi
    done
    [ ${#left[@]} -gt 0 ] || return 0
    [ "$SECONDS" -lt "$end" ] || break
    sleep 0.5
  done
  echo "make run: powering off what did not shut down within 10 s: ${left[*]}" >&2
  for d in "${left[@]}"; do "${v[@]}" destroy "$d" >/dev/null 2>&1 || true; done
}

pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_guests
}
trap cleanup EXIT
# Ctrl-C (or a TERM) is how a run ends: stop both, exit 0.
trap 'cleanup; exit 0' INT TERM

AGENT_ADDR=${HOSTPLANE_AGENT_LISTEN:-127.0.0.1:8422}
HOSTPLANE_DATA_DIR=$DATA "$BIN/hostplane-coordinator" run --log-format text --agent-listen "$AGENT_ADDR" &
coord=$!
pids+=("$coord")

agent_args=(--data-dir "$DATA/agent" --socket "$DATA/agent.sock" --pool-name "$POOL" --pool-path "$DATA/pool"
  --log-level warn --coordinators "$AGENT_ADDR" --node-id local --console-listen "${HOSTPLANE_AGENT_CONSOLE_LISTEN-127.0.0.1:0}")
agent_help() { # $1: what happened
  echo "agent: $1 — the coordinator keeps running (Ctrl-C stops it)." >&2
  echo "       Fix the cause named above, then start the agent by hand:" >&2
  echo "       ${2:+HOSTPLANE_AGENT_JOIN_TOKEN=\$($BIN/hostplanectl node token create --admin-socket $DATA/admin.sock) }$BIN/hostplane-agent ${agent_args[*]}" >&2
  echo "       A libvirt pool defined at another path: virsh pool-dumpxml $POOL shows it;" >&2
  echo "       if nothing uses it, virsh pool-destroy $POOL; virsh pool-undefine $POOL." >&2
}

agent=
if [ -S /var/run/libvirt/libvirt-sock ]; then
  # Wait for the coordinator, then enrol the local agent once (its certificate
  # is kept in $DATA/agent/session and reused on the next run).
  # The token goes in the agent's environment, not on its command line, which
  # every user of the machine can read (ps).
  token=
  if [ ! -f "$DATA/agent/session/node.crt" ]; then
    tok=
    for _ in $(seq 150); do # the coordinator elects itself within a few seconds
      tok=$("$BIN/hostplanectl" node token create --admin-socket "$DATA/admin.sock" --ttl 10m --json 2>/dev/null | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p') && [ -n "$tok" ] && break
      kill -0 "$coord" 2>/dev/null || break
      sleep 0.2
    done
    token=$tok
  fi
  if [ -f "$DATA/agent/session/node.crt" ] || [ -n "$token" ]; then
    agent_env=()
    [ -z "$token" ] || agent_env=(HOSTPLANE_AGENT_JOIN_TOKEN="$token")
    env "${agent_env[@]}" "$BIN/hostplane-agent" "${agent_args[@]}" &
    agent=$!
    pids+=("$agent")
    echo "agent: node 'local' joins the coordinator (pool $POOL at $DATA/pool; $BIN/hostplanectl node list --admin-socket $DATA/admin.sock);"
    echo "       import a template with $BIN/hostplanectl node --socket $DATA/agent.sock template import …, then"
    echo "       $BIN/hostplanectl --socket $DATA/admin.sock server create --account ACCOUNT --plan nano --template NAME"
  elif kill -0 "$coord" 2>/dev/null; then
    agent_help "not started: could not make a join token (see the coordinator's log above)" token
  fi
else
  echo "agent: not started — libvirtd is not running here (scripts/install-libvirt.sh && scripts/start-libvirt.sh, then make run again)"
fi

# The coordinator's exit ends the run; the agent's only says so.
while :; do
  done_pid=
  rc=0
  wait -n -p done_pid "${pids[@]}" || rc=$?
  # wait leaves done_pid unset when a signal interrupts it (the trap exits).
  if [ -n "$agent" ] && [ "${done_pid:-}" = "$agent" ]; then
    pids=("$coord")
    agent=
    agent_help "exited with status $rc" "$([ -f "$DATA/agent/session/node.crt" ] || echo token)"
    continue
  fi
  exit "$rc"
done
