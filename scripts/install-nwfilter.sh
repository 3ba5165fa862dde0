#!/usr/bin/env bash
# Install what bridged guests and their test network need, idempotently:
# libvirt's standard network filters (libvirt-daemon-config-nwfilter: clean-traffic
# and the filters it includes), the firewall tools libvirt's nwfilter driver runs
# (ebtables, iptables, ip6tables), iproute2 for the test network (netns, bridge,
# veth) and ping. libvirtd reads filter files only when it starts; a running
# libvirtd gets the missing ones defined through virsh, so it is never
# restarted (other guests may be running). Run as root on Debian 12, after
# scripts/start-libvirt.sh. Quiet on success.
set -euo pipefail
die() { echo "install-nwfilter: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"

APT_PACKAGES="libvirt-daemon-config-nwfilter ebtables iptables iproute2 iputils-ping" # install-test-deps.sh reads this line
# shellcheck disable=SC2086
"$(dirname "$0")/apt-install-missing.sh" $APT_PACKAGES || die "could not install $APT_PACKAGES"

URI=qemu:///system
virsh -q -c "$URI" version >/dev/null 2>&1 || die "libvirtd is not reachable at $URI: run scripts/start-libvirt.sh"
have=$(virsh -q -c "$URI" nwfilter-list | awk '{print $2}')
for f in /etc/libvirt/nwfilter/*.xml /usr/share/libvirt/nwfilter/*.xml; do
  [ -f "$f" ] || continue
  name=$(sed -n "s/.*<filter name=['\"]\([^'\"]*\)['\"].*/\1/p" "$f" | head -n1)
  [ -n "$name" ] || continue
  grep -qxF "$name" <<<"$have" && continue
  out=$(virsh -q -c "$URI" nwfilter-define "$f" 2>&1) || die "virsh nwfilter-define $f: $out"
  have="$have
$name"
done
virsh -q -c "$URI" nwfilter-list | grep -qw clean-traffic || die "clean-traffic is still not defined in libvirt"
