#!/usr/bin/env bash
# Install Debian's chromium (headless browser for the OAuth consent-page test,
# coordinator/internal/oauthtest), idempotently. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES="chromium" # install-test-deps.sh reads this line
# shellcheck disable=SC2086
scripts/apt-install-missing.sh $APT_PACKAGES || { echo "install-chromium: apt-get install chromium failed" >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || { echo "install-chromium: chromium is not on PATH after installing" >&2; exit 1; }
