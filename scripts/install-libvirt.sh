#!/usr/bin/env bash
# Install libvirtd + QEMU and prepare users, groups and qemu.conf for hostplane tests
# and nodes. Idempotent: installs only missing packages, appends to qemu.conf once.
# Run as root. Quiet on success.
set -euo pipefail

die() { echo "install-libvirt: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"

APT_PACKAGES="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils e2fsprogs cpio gzip" # install-test-deps.sh reads this line
# shellcheck disable=SC2086
"$(dirname "$0")/apt-install-missing.sh" $APT_PACKAGES || die "could not install libvirtd and QEMU"

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
