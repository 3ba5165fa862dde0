#!/usr/bin/env python3
"""Per-call CPU of processes from `perf record -g` data, split by subsystem.

BenchmarkOrderCPU (tests/orders) with ORDERS_PERF_DIR set records every
process it measures over each kind's calls (orders.perf.data,
tickets.perf.data) and logs the pids (leader, followers, agent). This script
puts each sample of the pids named in one subsystem, the first of these
whose pattern a frame of its stack matches:

  log             log/slog (any caller's)
  agent exchange  the dispatcher, the agent sessions (both ends), quic-go
  FSM apply       raft's runFSM (the FSM's ApplyBatch and below)
  raft            the rest of hashicorp/raft, raftnode, the WAL
  HTTP API        httpapi (handlers, forwarding channel), net/http
  GC              the collector's workers, sweeping, scavenging
  sysmon          runtime.sysmon (its wake-ups)
  scheduler       the Go scheduler, netpoll
  other           anything else

and prints each subsystem's µs per call (samples / calls / F), for the first
recording and, with a second one, beside it with the difference:

  scripts/perf-split.py --pids 101,102 --calls 960 [--freq 3999] \\
      orders.perf.data [tickets.perf.data]

--calls is the calls times the processes (two followers over 480 calls:
960). perf's own overhead inflates the figures (under perf a process spends
more CPU per call than the benchmark reads without it): read them as shares.
"""
import argparse
import collections
import re
import subprocess

CATEGORIES = [
    ('log', re.compile(r'log/slog\.')),
    ('agent exchange', re.compile(
        r'hostplane/coordinator/internal/(dispatch|session)\.|'
        r'hostplane/agent/internal/session\.|quic-go|^main\.')),
    ('FSM apply', re.compile(r'hashicorp/raft\.\(\*Raft\)\.runFSM')),
    ('raft', re.compile(r'hashicorp/raft|internal/raftnode|raft-wal')),
    ('HTTP API', re.compile(r'internal/httpapi\.|net/http\.')),
    ('GC', re.compile(r'runtime\.(gcBgMarkWorker|gcStart|bgsweep|bgscavenge|gcMarkDone)')),
    ('sysmon', re.compile(r'runtime\.sysmon')),
    ('scheduler', re.compile(r'runtime\.(mcall|schedule|findRunnable|park_m|netpoll)')),
]
NAMES = [n for n, _ in CATEGORIES] + ['other']


def split(path, pids, calls, freq):
    """µs per call of each subsystem in path's samples of pids."""
    out = subprocess.run(['perf', 'script', '-i', path, '-F', 'pid,ip,sym'],
                         capture_output=True, text=True, check=True).stdout
    count = collections.Counter()
    pid, frames = None, []

    def flush():
        if pid not in pids or not frames:
            return
        for name, rx in CATEGORIES:
            if any(rx.search(f) for f in frames):
                count[name] += 1
                return
        count['other'] += 1

    for line in out.splitlines():
        if not line.strip():
            continue
        if not line.startswith('\t'):  # a sample's header: its pid (padded with spaces)
            flush()
            pid, frames = line.split()[0], []
            continue
        parts = line.split(None, 1)
        frames.append(parts[1] if len(parts) > 1 else '')
    flush()
    us = 1e6 / freq / calls
    return {n: count[n] * us for n in NAMES}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('data', nargs='+', help='one or two perf.data files')
    ap.add_argument('--pids', required=True, help='comma-separated pids whose samples count')
    ap.add_argument('--calls', type=float, required=True, help='calls times processes')
    ap.add_argument('--freq', type=float, default=3999, help='perf record -F (samples per second)')
    a = ap.parse_args()
    pids = set(a.pids.split(','))
    runs = [split(p, pids, a.calls, a.freq) for p in a.data[:2]]
    print('%-16s' % 'µs per call' + ''.join('%18s' % p.rsplit('/', 1)[-1] for p in a.data[:2]) +
          ('%12s' % 'difference' if len(runs) == 2 else ''))
    for n in NAMES + ['all']:
        vals = [sum(r.values()) if n == 'all' else r[n] for r in runs]
        line = '%-16s' % n + ''.join('%18.0f' % v for v in vals)
        if len(vals) == 2:
            line += '%+12.0f' % (vals[0] - vals[1])
        print(line)


if __name__ == '__main__':
    main()
