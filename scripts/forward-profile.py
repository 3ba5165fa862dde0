#!/usr/bin/env python3
"""Where a forwarded write's extra CPU goes, from hostplane-bench's profiles.

`hostplane-bench --writes-only --no-etcd --profile DIR` (no --rounds) saves a
CPU profile of each coordinator over the leader phase (every write to the
leader) and over the spread phase (each client's writes go round the three
coordinators, so two thirds are forwarded by a follower):
DIR/{leader,spread}-writes-node{0,1,2}.pprof. This script puts each sample
in a category (the first whose pattern a frame of its stack matches, with
sub-categories for the HTTP server's and the channel worker's parts) and
prints, per category and per role (leader, the two followers together):

  (spread CPU / spread writes - leader-phase CPU / leader-phase writes)
      * spread writes / forwarded writes

that is, what the spread phase costs more than the leader phase per
forwarded write. The rows sum to the profiled part of the difference. Then it
prints named items of the spread phase (the forwarding code's steps, the
leader's handler chain) per forwarded write.

  scripts/forward-profile.py --writes 101714,96491 [--leader 0] [--phase 45] DIR

--writes are the two phases' ok counts as the benchmark printed them, --phase
the phase length in seconds (the profiles cover one second less; the counts
are scaled by profile length / phase length), --leader the node that led.

Not in the profiles: the runtime's sysmon thread (it runs without a P and
SIGPROF does not sample it: the benchmark's "Go sysmon threads" figure is its
CPU) and samples lost under load. A phase's store grows while it runs, and
without --rounds the spread phase meets a bigger store: the raft row (FSM
apply included) moves with that, not with forwarding.
"""
import argparse
import collections
import re
import subprocess
import sys

SEP = '-----------+-------------------------------------------------------'

# (name, stack pattern, sub-pattern or None): the first row whose stack
# pattern and sub-pattern (if any) both match a frame of the sample's stack.
CATEGORIES = [
    ('channel worker: handler chain', r'channelServer\)\.handleLoop', r'secureHeaders'),
    ('channel worker: the rest', r'channelServer\)\.handleLoop', None),
    ('channel reader (leader)', r'channelServer\)\.serve$', None),
    ('channel writers (frameWriter)', r'frameWriter\)\.loop', None),
    ('channel reader (follower)', r'muxClient\)\.readLoop', None),
    ('HTTP: forwardOnChannel', r'net/http\.\(\*conn\)\.serve$', r'forwardOnChannel'),
    ('HTTP: handler chain (the rest)', r'net/http\.\(\*conn\)\.serve$', r'secureHeaders'),
    ('HTTP: finishRequest', r'net/http\.\(\*conn\)\.serve$', r'finishRequest'),
    ('HTTP: readRequest', r'net/http\.\(\*conn\)\.serve$', r'readRequest'),
    ('HTTP: the rest of conn.serve', r'net/http\.\(\*conn\)\.serve$', None),
    ('HTTP: background read', r'backgroundRead', None),
    ('raft (FSM apply included)', r'raft\.|raftnode|raft-wal', None),
    ('scheduler (park, netpoll, idle)', r'runtime\.mcall|runtime\.morestack$', None),
    ('GC', r'gcBgMarkWorker|bgsweep|bgscavenge', None),
]

# (label, role, root pattern, item pattern, exclude pattern or None): the
# samples with a frame matching root, one matching item and none matching
# exclude; role f: the followers' profiles, l: the leader's.
ITEMS = [
    ('follower: forwardOnChannel', 'f', r'conn\)\.serve$', r'forwardOnChannel', None),
    ('  reading the body (readBodyAny)', 'f', r'forwardOnChannel', r'readBodyAny', None),
    ('  the forwarded header (forwardedHeader)', 'f', r'forwardOnChannel', r'\(\*forwarder\)\.forwardedHeader$', None),
    ('  sendCut (framing, queueing, waiting)', 'f', r'forwardOnChannel', r'sendCut', None),
    ('    frameWriter.send (the frame appended)', 'f', r'sendCut', r'frameWriter\)\.send', None),
    ("  the answer's header decoded (headerInto)", 'f', r'forwardOnChannel', r'fwdResponse\)\.headerInto', None),
    ('  WriteHeader', 'f', r'forwardOnChannel', r'WriteHeader', None),
    ('  writing the body', 'f', r'forwardOnChannel', r'statusWriter\)\.Write$|response\)\.Write$', None),
    ('  deadlines set', 'f', r'forwardOnChannel', r'SetReadDeadline|SetWriteDeadline', None),
    ('  header deletes', 'f', r'forwardOnChannel', r'mapdelete|Header\)\.Del|MIMEHeader\)\.Del', None),
    ('follower: handler chain outside forwardOnChannel', 'f', r'secureHeaders', r'.', r'forwardOnChannel'),
    ('follower: frame writer', 'f', r'frameWriter\)\.loop', r'.', None),
    ('  its write system calls', 'f', r'frameWriter\)\.loop', r'syscall\.write', None),
    ('follower: channel reader', 'f', r'muxClient\)\.readLoop', r'.', None),
    ('  its read system calls', 'f', r'muxClient\)\.readLoop', r'syscall\.read', None),
    ('leader: channel reader', 'l', r'channelServer\)\.serve$', r'.', None),
    ('  read system calls', 'l', r'channelServer\)\.serve$', r'syscall\.read', None),
    ('  readFrame', 'l', r'channelServer\)\.serve$', r'readFrame', None),
    ('  decodeRequest', 'l', r'channelServer\)\.serve$', r'decodeRequest', None),
    ('  dispatch to a worker', 'l', r'channelServer\)\.serve$', r'dispatch', None),
    ('leader: channel worker outside the handler chain', 'l', r'handleLoop', r'.', r'secureHeaders'),
    ('  request (the http.Request built)', 'l', r'handleLoop', r'channelServer\)\.request$', None),
    ('  idle timer reset, select', 'l', r'handleLoop', r'Timer\)\.Reset|selectgo', r'secureHeaders'),
    ('  the answer framed and queued', 'l', r'handleLoop', r'frameWriter\)\.send', r'secureHeaders'),
    ('leader: handler chain of a channel request', 'l', r'handleLoop', r'secureHeaders', None),
    ('  authenticate', 'l', r'handleLoop', r'\(\*API\)\.authenticate', None),
    ('  rateLimit', 'l', r'handleLoop', r'\(\*API\)\.rateLimit', None),
    ('  DecodeTicketCreate', 'l', r'handleLoop', r'DecodeTicketCreate', None),
    ('  propose (Raft, the wait for the apply)', 'l', r'handleLoop', r'\(\*API\)\.propose', None),
    ('  middleware above wrap', 'l', r'handleLoop', r'secureHeaders', r'API\)\.Handler\.\(\*API\)\.wrap'),
    ('leader: frame writer', 'l', r'frameWriter\)\.loop', r'.', None),
]


def traces(path):
    """The samples of a profile: (µs, frames leaf first), and its length in s."""
    out = subprocess.run(['go', 'tool', 'pprof', '-traces', path], capture_output=True, text=True, check=True).stdout
    m = re.search(r'Duration: ([\d.]+)(m?s)', out)
    if not m:
        sys.exit(f'{path}: no Duration in the profile')
    secs = float(m.group(1)) / (1000 if m.group(2) == 'ms' else 1)
    samples = []
    for block in out.split(SEP)[1:]:
        lines = [l for l in block.strip('\n').split('\n') if l.strip()]
        if not lines:
            continue
        m = re.match(r'\s*([\d.]+)(ms|s|us)\s+(.*)', lines[0])
        if not m:
            continue
        v = float(m.group(1)) * {'ms': 1e3, 's': 1e6, 'us': 1}[m.group(2)]
        samples.append((v, [m.group(3).strip()] + [l.strip() for l in lines[1:]]))
    return samples, secs


def matches(rx, frames):
    return any(re.search(rx, f) for f in frames)


def category(frames):
    for name, rx, sub in CATEGORIES:
        if matches(rx, frames) and (sub is None or matches(sub, frames)):
            return name
    return 'other'


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--writes', required=True, help='leader-phase and spread-phase ok writes: L,S')
    ap.add_argument('--leader', type=int, default=0, help='the node that led (default 0)')
    ap.add_argument('--phase', type=float, default=0, help='phase length in s (default: the profile length + 1)')
    ap.add_argument('dir')
    a = ap.parse_args()
    lw, sw = (float(x) for x in a.writes.split(','))
    nodes = [a.leader] + [i for i in range(3) if i != a.leader]
    prof = {}
    for phase in ('leader', 'spread'):
        for i in range(3):
            prof[phase, i] = traces(f'{a.dir}/{phase}-writes-node{i}.pprof')
    # Writes inside each profile's span.
    def writes(phase, n):
        secs = prof[phase, nodes[0]][1]
        return n * secs / (a.phase or secs + 1)
    nl, ns = writes('leader', lw), writes('spread', sw)
    nf = ns * 2 / 3
    sums = {}
    for key, (samples, _) in prof.items():
        c = collections.Counter()
        for v, fr in samples:
            c[category(fr)] += v
        sums[key] = c
    print('spread phase minus leader phase, µs per forwarded write (%.0f forwarded writes profiled)' % nf)
    print(f"{'category':40s} {'leader':>8s} {'followers':>10s} {'both':>8s}")
    tot = [0.0, 0.0]
    for name in [c[0] for c in CATEGORIES] + ['other']:
        row = []
        for role in (nodes[:1], nodes[1:]):
            row.append(sum((sums['spread', i][name] / ns - sums['leader', i][name] / nl) * ns / nf for i in role))
        tot[0] += row[0]
        tot[1] += row[1]
        print(f'{name:40s} {row[0]:8.1f} {row[1]:10.1f} {row[0] + row[1]:8.1f}')
    print(f"{'total (profiled)':40s} {tot[0]:8.1f} {tot[1]:10.1f} {tot[0] + tot[1]:8.1f}")
    print()
    print('spread phase, µs per forwarded write')
    for label, role, root, item, exclude in ITEMS:
        v = 0.0
        for i in (nodes[1:] if role == 'f' else nodes[:1]):
            for us, fr in prof['spread', i][0]:
                if matches(root, fr) and matches(item, fr) and not (exclude and matches(exclude, fr)):
                    v += us
        print(f'{label:52s} {v / nf:6.1f}')


if __name__ == '__main__':
    main()
