# Sourced by scripts/run-local.sh (make run) and scripts/run-clean.sh (make
# run-clean): the data directory and libvirt pool of a run.
#
# DATA is HOSTPLANE_DATA_DIR, else $XDG_DATA_HOME/hostplane, else .hostplane,
# as an absolute path (created only with run_env mkdir). POOL is the agent's
# libvirt pool, named after DATA (hostplane-local-<hash of its path>), so runs
# from other checkouts or data directories each get their own.
DATA=${HOSTPLANE_DATA_DIR:-}
if [ -z "$DATA" ]; then
  if [ -n "${XDG_DATA_HOME:-}" ]; then DATA=$XDG_DATA_HOME/hostplane; else DATA=.hostplane; fi
fi
if [ "${1:-}" = mkdir ]; then mkdir -p "$DATA"; fi
if [ -d "$DATA" ]; then DATA=$(cd "$DATA" && pwd); else DATA=$(realpath -m -s "$DATA"); fi
POOL=hostplane-local-$(printf '%s' "$DATA" | sha256sum | cut -c1-12)
