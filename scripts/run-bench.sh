#!/usr/bin/env bash
# Whole-system benchmarks: coordinator writes vs etcd and reads vs a bare handler
# (real processes, same run), then the Go benchmarks. Figures are ratios against the
# baseline of the same run; these machines are shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.bin:$PATH"
if ! command -v etcd >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends etcd-server >/dev/null; }
fi
# The two hostplane write phases in rounds (leader, spread, spread, leader):
# measured one after the other, their ratio moved with the machine's load more
# than with the code (0.50-0.87 for one build within minutes at load 9-11).
bin/hostplane-bench --clients "${BENCH_CLIENTS:-64}" --duration "${BENCH_DURATION:-15s}" --rounds "${BENCH_ROUNDS:-4}"
echo
# shellcheck disable=SC2046
go test -run '^$' -bench . -skip '^BenchmarkForwardedWrite$' -benchtime "${BENCH_TIME:-5x}" -timeout 30m $(go list ./coordinator/... ./agent/... | grep -v '/tests/e2e$' | grep -v '/agent/internal/sitetls$') 2>&1 | grep -vE '^(ok|PASS|\?)' || true
echo
# The hop of a write sent to a follower (issue 10 item 8), in one process:
# CPU per write forwarded against the same write served by the leader
# (cpu-us/op of .../forwarded minus .../direct); a few thousand writes each, as
# 5 would measure the warm-up.
go test -run '^$' -bench '^BenchmarkForwardedWrite$' -benchtime "${BENCH_HOP_WRITES:-5000x}" -count "${BENCH_HOP_COUNT:-3}" -timeout 30m ./coordinator/internal/httpapi 2>&1 | grep -vE '^(ok|PASS|\?)' || true
echo
# Hosting TLS (issue 13), side by side on one machine: attach on a node of
# 10,000 domains vs a server block per domain + nginx -t + reload; TLS
# handshakes/s static vs per-handshake lookup (variable path, lua cache);
# nginx memory before/after 1,000 attaches. Once each (the baseline alone
# takes minutes at 10,000 TLS server blocks).
scripts/install-acme-test-deps.sh
go test -run '^$' -bench . -benchtime 1x -timeout 40m ./agent/internal/sitetls 2>&1 | grep -vE '^(ok|PASS|\?)' || true
echo
# End to end: a forced reboot through the API (3 coordinators, a real agent, a
# real guest) against the same libvirt calls made directly, alternating.
go test -run '^$' -bench RebootLatency -benchtime "${BENCH_REBOOTS:-24x}" -timeout 20m ./tests/e2e/ 2>&1 | grep -vE '^(ok|PASS|\?)' || true
