#!/usr/bin/env bash
# Print the package version derived from `git describe`, valid for both dpkg and
# rpm and increasing from commit to commit:
#   tag v1.2.3 on HEAD          -> 1.2.3
#   5 commits after v1.2.3      -> 1.2.3+git20261201091500.5.gabc1234
#   no tag at all               -> 0.0.0+git20261201091500.gabc1234
#   uncommitted changes         -> ... .dirty
# The commit's UTC time keeps untagged builds ordered. HOSTPLANE_VERSION overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${HOSTPLANE_VERSION:-}" ]; then echo "$HOSTPLANE_VERSION"; exit 0; fi
git rev-parse HEAD >/dev/null 2>&1 || { echo "pkg-version: not a git checkout: set HOSTPLANE_VERSION" >&2; exit 1; }
desc=$(git describe --tags --long --match 'v[0-9]*' --dirty 2>/dev/null || true)
when=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
hash=$(git rev-parse --short=7 HEAD)
dirty=""
git diff --quiet HEAD 2>/dev/null || dirty=".dirty"
if [[ "$desc" =~ ^v([0-9]+(\.[0-9]+)*)-([0-9]+)-g([0-9a-f]+)(-dirty)?$ ]]; then
  base=${BASH_REMATCH[1]} n=${BASH_REMATCH[3]}
  if [ "$n" = 0 ] && [ -z "$dirty" ]; then echo "$base"; exit 0; fi
  echo "${base}+git${when}.${n}.g${hash}${dirty}"
else
  echo "0.0.0+git${when}.g${hash}${dirty}"
fi
