#!/usr/bin/env bash
# Start virtlogd and libvirtd if they are not running and wait for libvirtd's socket.
# Idempotent; works without systemd as PID 1. Run as root. Quiet on success.
set -euo pipefail

die() { echo "start-libvirt: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
command -v libvirtd >/dev/null || die "libvirtd not installed: run scripts/install-libvirt.sh first"

SOCK=${LIBVIRT_SOCK:-/var/run/libvirt/libvirt-sock}
mkdir -p /var/log/libvirt /var/run/libvirt
pgrep -x virtlogd >/dev/null || virtlogd -d || die "virtlogd failed to start"
pgrep -x libvirtd >/dev/null || libvirtd -d || die "libvirtd failed to start (see /var/log/libvirt)"

for _ in $(seq 1 100); do
  if [ -S "$SOCK" ] && virsh -q -c qemu:///system version >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.1
done
die "libvirtd socket $SOCK not answering after 10s"
