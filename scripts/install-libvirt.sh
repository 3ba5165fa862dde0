#!/usr/bin/env bash
# Install libvirtd + QEMU and prepare users, groups and qemu.conf for hostplane tests
# and nodes. Idempotent: installs only missing packages, appends to qemu.conf once.
# Run as root. Quiet on success.
set -euo pipefail

die() { echo "install-libvirt: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"

PKGS="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils e2fsprogs cpio gzip"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log=$(mktemp)
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing; } >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; die "apt-get install failed for:$missing"
  fi
  rm -f "$log"
fi

mkdir -p /var/log/libvirt /var/run/libvirt
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
id libvirt-qemu >/dev/null 2>&1 || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

# Guests run as root and libvirt leaves file ownership alone: the agent owns its pool directory.
CONF=/etc/libvirt/qemu.conf
MARK="# hostplane: begin"
mkdir -p /etc/libvirt
[ -f "$CONF" ] || : >"$CONF"   # minimal installs may ship no qemu.conf; defaults + ours suffice
if ! grep -qF "$MARK" "$CONF"; then
  printf '%s\nuser = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n# hostplane: end\n' "$MARK" >>"$CONF"
fi
