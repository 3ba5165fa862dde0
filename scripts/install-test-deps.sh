#!/usr/bin/env bash
# Install and start everything `make test` needs, idempotently: Go tools pinned
# into .bin/, libvirtd + QEMU (started without systemd), and the tiny test guest.
# Run as root on Debian 12. Quiet on success; says what failed otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "install-test-deps: $*" >&2; exit 1; }

# The steps, scripts of scripts/ run in this order.
STEPS="install-staticcheck.sh install-protoc.sh install-packaging-tools.sh install-libvirt.sh start-libvirt.sh
  build-test-guest.sh install-chromium.sh install-mcp-conformance.sh install-acme-test-deps.sh install-nwfilter.sh
  install-pdns.sh install-hosting.sh install-novnc.sh"
# isoinfo (genisoimage): the seed tests read the NoCloud ISO with an independent reader.
APT_PACKAGES="genisoimage" # in the union below, with the steps' own lines

# Every Debian package the steps install, in one apt-get run first (those
# not installed yet): on a fresh machine the scripts made up to ten apt-get
# runs of their own, each paying an apt-get update and dpkg's triggers
# again (ci-A at 2ccd8b3, load ≈ 20: man-db's trigger 5, 19, 23 and 17 s
# in the first four runs, and 53 s between the end of one run and the start
# of the next, mostly apt-get update). Each script names what it installs
# on one line, APT_PACKAGES="..." at the start of a line, and installs
# $APT_PACKAGES; the union is read from those lines (this file's and the
# steps'), and scripts/installdeps_test.go fails when a step hands apt a
# package the union lacks. The scripts still install what they need
# themselves (nothing, after this) and say what failed, so a failure here
# leaves them to try again one by one.
apt_packages() { # apt_packages FILE...: the packages the files' APT_PACKAGES lines name, each once
  sed -n 's/^APT_PACKAGES="\([^"]*\)".*/\1/p' "$@" | tr -s ' \t' '\n\n' | awk 'NF && !seen[$0]++'
}
# shellcheck disable=SC2086
ALL_APT_PACKAGES=$(cd scripts && apt_packages install-test-deps.sh $STEPS)
# shellcheck disable=SC2086
case "${1:-}" in
  --apt-packages) echo "$ALL_APT_PACKAGES"; exit 0 ;;
  --steps) printf '%s\n' $STEPS; exit 0 ;;
  "") ;;
  *) die "usage: $0 [--apt-packages | --steps] (the options print the union of the packages, or the steps, and install nothing)" ;;
esac
# shellcheck disable=SC2086
if ! scripts/apt-install-missing.sh $ALL_APT_PACKAGES; then
  # An apt-get that died mid-dpkg leaves packages unpacked but not
  # configured, and every later apt-get refusing until they are.
  echo "install-test-deps: installing the Debian packages at once failed (above); dpkg --configure -a, then the scripts install theirs one by one" >&2
  DEBIAN_FRONTEND=noninteractive dpkg --configure -a >&2 || echo "install-test-deps: dpkg --configure -a failed (above)" >&2
fi

for s in $STEPS; do
  "scripts/$s"
done
# shellcheck disable=SC2086
scripts/apt-install-missing.sh $APT_PACKAGES || die "apt-get install $APT_PACKAGES failed"
