#!/usr/bin/env bash
# apt-install-missing.sh PKG...: install, from the Debian archive, those of the
# named packages that are not installed yet; quiet on success, prints apt's
# output and fails otherwise. Run as root.
set -euo pipefail
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
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
