#!/usr/bin/env bash
# install-novnc.sh: install Debian's novnc package (the browser console's client,
# served by the agent from /usr/share/novnc), idempotently. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f /usr/share/novnc/vnc.html ] && exit 0
APT_PACKAGES="novnc" # install-test-deps.sh reads this line
# shellcheck disable=SC2086
scripts/apt-install-missing.sh $APT_PACKAGES
[ -f /usr/share/novnc/vnc.html ] || { echo "install-novnc: novnc is installed but /usr/share/novnc/vnc.html is missing" >&2; exit 1; }
