#!/usr/bin/env python3
"""Per-call CPU of processes from `perf record -g` data, one kind beside another.

BenchmarkOrderCPU (tests/orders) with ORDERS_PERF_DIR set records every
process it measures over each kind's calls (orders.perf.data,
tickets.perf.data) and logs the pids (leader, followers, agent); this script
prints, for the samples of the processes named, the samples per call of each
function on the stack (inclusive: a function counts once per sample it is
anywhere in), for the first recording and, with a second one, beside it with
the difference, largest first: where one kind's extra cost goes.

  scripts/perf-calls.py --pids 101,102 --calls 960 orders.perf.data \
      tickets.perf.data [--match REGEX] [--under FUNC] [--top N]

--calls is the calls times the processes (two followers over 480 calls: 960),
so the figures are per call and process. A sample is 1/F s of CPU (perf
record -F F; the benchmark uses 3999 Hz: 0.25 ms). --under FUNC counts only
the part of each stack below the first frame containing FUNC (the functions
FUNC calls), --match keeps the functions matching REGEX.
"""
import argparse
import collections
import re
import subprocess
import sys


def per_call(path, pids, calls, under):
    """Samples per call of each function, and of all, in path's samples of pids."""
    out = subprocess.run(['perf', 'script', '-i', path, '-F', 'pid,ip,sym'],
                         capture_output=True, text=True, check=True).stdout
    incl, total = collections.Counter(), 0
    pid, frames = None, []

    def flush():
        nonlocal total
        if pid not in pids or not frames:
            return
        stack = frames
        if under:
            at = next((i for i, f in enumerate(frames) if under in f), None)
            if at is None:
                return
            stack = frames[:at]
        total += 1
        incl.update(set(stack))

    for line in out.split('\n'):
        if not line.strip():
            flush()
            pid, frames = None, []
        elif not line.startswith('\t'):  # a sample's header: its pid
            flush()
            pid, frames = line.split()[0], []
        else:  # a frame: address and symbol+offset
            parts = line.split(None, 1)
            frames.append((parts[1] if len(parts) > 1 else '?').split('+0x')[0])
    flush()
    return {k: v / calls for k, v in incl.items()}, total / calls


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--pids', required=True, help='comma-separated pids whose samples count')
    ap.add_argument('--calls', required=True, type=float, help='calls times processes')
    ap.add_argument('--match', help='only functions matching this regular expression')
    ap.add_argument('--under', help='only the frames below the first one containing this')
    ap.add_argument('--top', type=int, default=60)
    ap.add_argument('data', nargs='+', help='one or two perf.data files')
    args = ap.parse_args()
    if len(args.data) > 2:
        sys.exit('at most two recordings')
    pids = set(args.pids.split(','))
    runs = [per_call(p, pids, args.calls, args.under) for p in args.data]
    a, ta = runs[0]
    b, tb = runs[1] if len(runs) == 2 else ({}, 0.0)
    print('samples per call: %s %.3f' % (args.data[0], ta) + ('; %s %.3f; difference %+.3f' % (args.data[1], tb, ta - tb) if len(runs) == 2 else ''))
    names = set(a) | set(b)
    if args.match:
        names = {n for n in names if re.search(args.match, n)}
    for n in sorted(names, key=lambda n: -(a.get(n, 0) - b.get(n, 0)))[:args.top]:
        if len(runs) == 2:
            print('%8.3f %8.3f %+8.3f  %s' % (a.get(n, 0), b.get(n, 0), a.get(n, 0) - b.get(n, 0), n))
        else:
            print('%8.3f  %s' % (a.get(n, 0), n))


if __name__ == '__main__':
    main()
