#!/usr/bin/env bash
# Install and start everything `make test` needs, idempotently: Go tools pinned
# into .bin/, libvirtd + QEMU (started without systemd), and the tiny test guest.
# Run as root on Debian 12. Quiet on success; says what failed otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "install-test-deps: $*" >&2; exit 1; }

# Every Debian package the scripts below install, in one apt-get run first
# (those not installed yet): on a fresh machine the scripts made up to ten
# apt-get runs of their own, each paying an apt-get update and dpkg's
# triggers again (ci-A at 2ccd8b3, load ≈ 20: man-db's trigger 5, 19, 23
# and 17 s in the first four runs, and 53 s between the end of one run
# and the start of the next, mostly apt-get update). The scripts still
# install what they need themselves (nothing, after this) and say what
# failed: a package missing from this list is only installed later, and a
# failure here leaves them to try again one by one.
APT_PACKAGES="protobuf-compiler lintian rpmlint rpm
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils e2fsprogs cpio gzip
  chromium nginx libnginx-mod-http-lua
  libvirt-daemon-config-nwfilter ebtables iptables iproute2 iputils-ping
  pdns-server pdns-backend-sqlite3 sqlite3 genisoimage
  php8.2-fpm php8.2-mysql mariadb-server mariadb-client openssh-server openssh-client sshpass curl btrfs-progs
  novnc"
# shellcheck disable=SC2086
scripts/apt-install-missing.sh $APT_PACKAGES \
  || echo "install-test-deps: installing the Debian packages at once failed (above); the scripts install theirs one by one" >&2

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
