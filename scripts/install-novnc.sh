#!/usr/bin/env bash
# install-novnc.sh: install Debian's novnc package (the browser console's client,
# served by the agent from /usr/share/novnc), idempotently. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f /usr/share/novnc/vnc.html ] && exit 0
scripts/apt-install-missing.sh novnc
[ -f /usr/share/novnc/vnc.html ] || { echo "install-novnc: novnc is installed but /usr/share/novnc/vnc.html is missing" >&2; exit 1; }
