#!/usr/bin/env bash
# apt-install-missing.sh PKG...: install, from the Debian archive, those of the
# named packages that are not installed yet; quiet on success, prints apt's
# output and fails otherwise. Run as root.
set -euo pipefail
# One dpkg-query for all of them: one a package took ≈ 0.5 s each at load
# 20-25 (16.6 s for install-test-deps.sh's 34 packages, all installed).
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null | awk '/ install ok installed$/ { print $1 }' || true)
missing=""
for p in "$@"; do
  grep -qxF "$p" <<<"$installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
log=$(mktemp)
# shellcheck disable=SC2086
if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends $missing; } >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"
  echo "apt-install-missing: apt-get install failed for:$missing" >&2
  exit 1
fi
rm -f "$log"
