#!/usr/bin/env bash
# Install and start everything `make test` needs, idempotently: Go tools pinned
# into .bin/, libvirtd + QEMU (started without systemd), and the tiny test guest.
# Run as root on Debian 12. Quiet on success; says what failed otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "install-test-deps: $*" >&2; exit 1; }

scripts/install-staticcheck.sh
scripts/install-protoc.sh
scripts/install-packaging-tools.sh
scripts/install-libvirt.sh
scripts/start-libvirt.sh
scripts/build-test-guest.sh
scripts/install-chromium.sh
scripts/install-mcp-conformance.sh
scripts/install-acme-test-deps.sh
scripts/install-nwfilter.sh
scripts/install-pdns.sh     # PowerDNS Authoritative + sqlite backend for the reverse-DNS tests

# isoinfo (genisoimage): the seed tests read the NoCloud ISO with an independent reader.
if ! dpkg-query -W -f='${Status}' genisoimage 2>/dev/null | grep -q "install ok installed"; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends genisoimage; } >/dev/null 2>&1 \
    || die "apt-get install genisoimage failed"
fi
scripts/install-hosting.sh
scripts/install-novnc.sh
