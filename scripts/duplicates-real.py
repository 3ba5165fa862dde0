#!/usr/bin/env python3
"""Duplicate pairs of the tree, with and without Go import blocks.

The `duplicates` tool passes over single import lines but not the lines of a
grouped `import ( ... )` block, so files whose code no longer repeats stay
paired on their import lists. This script reports, for the git checkout it is
run in (default: the current directory):

  1. `duplicates --most N` over the tree as it is (the tool's own count);
  2. of the rows that lists, how many are import-block-only: the named run
     starts inside the import block of both files and the pair is gone once
     both blocks are blanked (lines kept, so numbers do not move); the rest
     are real;
  3. the count with generated files (`// Code generated ... DO NOT EDIT.`)
     left out;
  4. the count with generated files left out and every Go import block
     blanked: the real pairs.

Usage: scripts/duplicates-real.py [--most N] [--seconds S] [--rows | --real-rows] [DIR]
(--rows prints each row of the tree as it is with its class; --real-rows runs
only the last count, generated left out and import blocks blanked, and prints
its rows: the real pairs, with line numbers that are the checkout's). It only
reads the checkout; the copies live in a temporary directory removed at the
end.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROW = re.compile(r'^(D\d+) (\S+):(\d+)-(\d+) ~ (\S+):(\d+)-(\d+)')
GENERATED = re.compile(r'^// Code generated .* DO NOT EDIT\.$', re.M)


def read(path):
    with open(path, encoding='utf-8', errors='replace') as f:
        return f.read()


def import_block(path):
    """The 1-based inclusive line range of a Go file's grouped import block."""
    if not path.endswith('.go'):
        return None
    lines = read(path).split('\n')
    for i, line in enumerate(lines):
        if re.match(r'^import\s*\(', line):
            for j in range(i + 1, len(lines)):
                if lines[j].strip() == ')':
                    return (i + 1, j + 1)
    return None


def copy_blanked(src, dst):
    lines = read(src).split('\n')
    block = import_block(src)
    if block:
        for k in range(block[0] - 1, block[1]):
            lines[k] = ''
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))


def tracked(root):
    out = subprocess.run(['git', '-C', root, 'ls-files', '-co', '--exclude-standard'],
                         capture_output=True, text=True, check=True).stdout.split('\n')
    return [f for f in out if f and os.path.isfile(os.path.join(root, f))
            and not os.path.islink(os.path.join(root, f))]


def copy_tree(root, dest, blank_imports):
    for f in tracked(root):
        src, dst = os.path.join(root, f), os.path.join(dest, f)
        if GENERATED.search(read(src)[:4096]):
            continue
        if blank_imports and f.endswith('.go'):
            copy_blanked(src, dst)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)


def duplicates(repo, most, seconds):
    return subprocess.run(['duplicates', '--repo', repo, '--most', str(most), '--seconds', str(seconds)],
                          capture_output=True, text=True, check=True).stdout


def pair_survives(root, a, b, tmp):
    d = tempfile.mkdtemp(dir=tmp)
    copy_blanked(os.path.join(root, a), os.path.join(d, 'a', os.path.basename(a)))
    if a != b:
        copy_blanked(os.path.join(root, b), os.path.join(d, 'b', os.path.basename(b)))
    out = duplicates(d, 200, 20)
    shutil.rmtree(d)
    return any(ROW.match(line) for line in out.split('\n'))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--most', type=int, default=200)
    ap.add_argument('--seconds', type=int, default=120)
    ap.add_argument('--rows', action='store_true')
    ap.add_argument('--real-rows', action='store_true')
    ap.add_argument('dir', nargs='?', default='.')
    o = ap.parse_args()
    root = os.path.abspath(o.dir)
    if shutil.which('duplicates') is None:
        sys.exit('duplicates is not on PATH (see /work/.library/duplicates)')
    tmp = tempfile.mkdtemp(prefix='dups-real-')
    try:
        if o.real_rows:
            copy_tree(root, os.path.join(tmp, 'real'), blank_imports=True)
            blanked = duplicates(os.path.join(tmp, 'real'), o.most, o.seconds)
            print('generated left out, import blocks blanked:', blanked.rstrip('\n'))
            return
        as_is = duplicates(root, o.most, o.seconds)
        imports = real = 0
        for line in as_is.split('\n'):
            m = ROW.match(line)
            if not m:
                continue
            _, fa, a1, _, fb, b1, _ = m.groups()
            ba, bb = import_block(os.path.join(root, fa)), import_block(os.path.join(root, fb))
            starts_in = ba and bb and int(a1) <= ba[1] and int(b1) <= bb[1]
            if starts_in and not pair_survives(root, fa, fb, tmp):
                imports += 1
                kind = 'import-block-only'
            else:
                real += 1
                kind = 'real'
            if o.rows:
                print(kind, line)
        copy_tree(root, os.path.join(tmp, 'nogen'), blank_imports=False)
        nogen = duplicates(os.path.join(tmp, 'nogen'), o.most, o.seconds)
        copy_tree(root, os.path.join(tmp, 'real'), blank_imports=True)
        blanked = duplicates(os.path.join(tmp, 'real'), o.most, o.seconds)
        first = lambda out: out.split('\n', 1)[0]
        print('tree as is:                              ', first(as_is))
        print('  of the %d rows listed: %d import-block-only, %d real' % (imports + real, imports, real))
        print('generated files left out:                ', first(nogen))
        print('generated left out, import blocks blanked:', first(blanked))
    finally:
        shutil.rmtree(tmp)


if __name__ == '__main__':
    main()
