#!/usr/bin/env bash
# Build the tiny real test guest used by hostplane's agent tests, from Debian packages
# only (downloaded, not installed): a cloud kernel for direct kernel boot, a busybox
# initramfs and small ext4 qcow2 base disks.
#
# The guest's /init mounts /dev/vda (formats it if blank), increments /bootcount,
# appends to /boot.log, prints "GUEST-READY bootcount=N install-id=..." on the serial
# console and (in initrd.img) runs busybox acpid so an ACPI power button writes
# "clean-shutdown N" to /boot.log and powers off (GUEST-READY comes once acpid
# has opened the input devices, so a power button pressed after it is heard). initrd-ga.img also runs the
# real QEMU guest agent (qemu-ga from Debian's qemu-guest-agent package, with the
# shared libraries ldd names) on the virtio-serial port org.qemu.guest_agent.0,
# with /etc/passwd, /etc/shadow and a chpasswd (busybox, SHA-512) so
# guest-set-user-password works; it prints "GUEST-GA ..." on the console. It
# also mounts the NoCloud seed CD-ROM (iso9660, as cloud-init does) and prints
# "GUEST-SEED files=... instance-id=... user-data=<first line>".
#
# Output ($OUT, default <repo>/.cache/test-guest):
#   vmlinuz            kernel
#   initrd.img         initramfs that honours ACPI shutdown
#   initrd-noacpi.img  same init without acpid: ignores ACPI shutdown (forced-stop tests)
#   initrd-ga.img      initrd.img plus qemu-ga (password-reset tests)
#   disk.qcow2         base disk, install-id A
#   disk-alt.qcow2     base disk, install-id B (reinstall onto another template)
#   cmdline            kernel command line
#   SHA256SUMS         checksums of the above
#   VERSION            what this script builds; a guest of another version is rebuilt
#   net-vN/            the networked guest, version N (a new directory for each version, so a
#                      running test keeps its files): vmlinuz, initrd.img (initrd-ga.img plus
#                      virtio_net and guest-netcfg, built from scripts/guest-netcfg, which applies
#                      the seed's network-config v2 and prints "GUEST-NET <if> inet|inet6 ADDR",
#                      "GUEST-NET <if> route4|route6 via GW" and "GUEST-NET-READY"), disk.qcow2,
#                      cmdline, SHA256SUMS, VERSION
# Idempotent: does nothing when every output file exists and VERSION matches (FORCE=1 rebuilds);
# the networked guest is built on its own when only it is missing.
# Run as root (mknod). Quiet on success.
set -euo pipefail

die() { echo "build-test-guest: $*" >&2; exit 1; }
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$REPO/.cache/test-guest}
FLAVOR=${FLAVOR:-cloud-amd64}
DISK_SIZE=${DISK_SIZE:-32M}
CMDLINE=${CMDLINE:-console=ttyS0 quiet panic=-1 mitigations=off tsc=reliable no_timer_check i8042.noaux i8042.nopnp cryptomgr.notests}
FILES="vmlinuz initrd.img initrd-noacpi.img initrd-ga.img disk.qcow2 disk-alt.qcow2 cmdline SHA256SUMS VERSION"
VERSION=5 # bump when the guest changes (2: initrd-ga.img with qemu-ga; 3: it also reads the seed ISO; 4: GUEST-READY after acpid listens; 5: virtio_balloon)
NET_VERSION=3 # the networked guest's directory, net-v$NET_VERSION: bump when it changes (2: as VERSION 4; 3: virtio_balloon)
NET_OUT=$OUT/net-v$NET_VERSION
NET_FILES="vmlinuz initrd.img disk.qcow2 cmdline SHA256SUMS VERSION"

built_ok() { # $1 = dir, $2 = files, $3 = version
  local f
  for f in $2; do [ -s "$1/$f" ] || return 1; done
  [ "$(cat "$1/VERSION")" = "$3" ]
}
main_ok=0; net_ok=0
if [ "${FORCE:-0}" != 1 ]; then
  built_ok "$OUT" "$FILES" "$VERSION" && main_ok=1
  built_ok "$NET_OUT" "$NET_FILES" "net-$NET_VERSION" && net_ok=1
  [ "$main_ok" = 1 ] && [ "$net_ok" = 1 ] && exit 0
fi

for c in apt-get apt-cache dpkg-deb qemu-img mkfs.ext4 gzip sha256sum ldd; do
  command -v "$c" >/dev/null || die "$c not found: run scripts/install-libvirt.sh first"
done
[ "$net_ok" = 1 ] || command -v go >/dev/null || die "go not found: the networked guest's guest-netcfg is built from scripts/guest-netcfg"

WORK=$(mktemp -d /tmp/hostplane-guest.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/debs" "$WORK/x" "$OUT"

# 1. fetch packages (download only)
KPKG=$(apt-cache depends "linux-image-$FLAVOR" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}' || true)
if [ -z "$KPKG" ]; then
  apt-get update -q >/dev/null 2>&1 || die "apt-get update failed"
  KPKG=$(apt-cache depends "linux-image-$FLAVOR" | awk '/Depends: linux-image-/{print $2; exit}')
fi
[ -n "$KPKG" ] || die "cannot resolve linux-image-$FLAVOR"
( cd "$WORK/debs" && apt-get -q -o APT::Sandbox::User=root download "$KPKG" busybox-static qemu-guest-agent >/dev/null 2>"$WORK/apt.err" ) \
  || { cat "$WORK/apt.err" >&2; die "apt-get download failed"; }
for d in "$WORK"/debs/*.deb; do dpkg-deb -x "$d" "$WORK/x"; done
KVER=${KPKG#linux-image-}
MODDIR=$WORK/x/lib/modules/$KVER/kernel

# 2. initramfs root (two variants: with and without acpid)
build_initrd() { # $1 = output file, $2 = 1 to run acpid, $3 = 1 to run qemu-ga, $4 = 1 for the network (with $3)
  local R=$WORK/initramfs-$2-${3:-0}-${4:-0}
  rm -rf "$R"
  mkdir -p "$R/bin" "$R/dev" "$R/proc" "$R/sys" "$R/mnt" "$R/tmp" "$R/lib/modules" "$R/etc/acpi/PWRF"
  cp "$WORK/x/bin/busybox" "$R/bin/busybox"
  ln -s busybox "$R/bin/sh"
  mknod -m 600 "$R/dev/console" c 5 1 2>/dev/null || true
  # virtio_balloon reports the guest's memory figures through the domain's
  # memballoon (the agent's memory stat), in every guest.
  local MODS="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk button evdev virtio_balloon"
  local GA='true'
  if [ "${3:-0}" = 1 ]; then
    # virtio_console for the agent's port; the IDE CD-ROM and isofs to read
    # the NoCloud seed as cloud-init would (mount -t iso9660).
    MODS="$MODS virtio_console scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs"
    if [ "${4:-0}" = 1 ]; then
      MODS="$MODS failover net_failover virtio_net"
      cp "$WORK/guest-netcfg" "$R/bin/guest-netcfg"
    fi
    mkdir -p "$R/usr/sbin" "$R/etc" "$R/root"
    cp "$WORK/x/usr/sbin/qemu-ga" "$R/usr/sbin/qemu-ga"
    # Its shared libraries as this host resolves them (the loader included).
    for lib in $(ldd "$WORK/x/usr/sbin/qemu-ga" | awk '/=> \//{print $3} /^\t\/[^ ]*ld-linux/{print $1}'); do
      mkdir -p "$R$(dirname "$lib")"
      cp -L "$lib" "$R$lib"
    done
    [ -e "$R/lib64/ld-linux-x86-64.so.2" ] || die "qemu-ga: the loader was not copied (ldd output changed?)"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
    printf 'root:x:0:\n' > "$R/etc/group"
    printf 'root:*:19000:0:99999:7:::\n' > "$R/etc/shadow"
    chmod 600 "$R/etc/shadow"
    # qemu-ga runs "chpasswd" (with -e for a crypted password) from PATH, fed
    # "user:password" lines. Debian's busybox-static has no chpasswd applet, so
    # this one hashes with busybox mkpasswd (SHA-512) and rewrites /etc/shadow.
    cat > "$R/usr/sbin/chpasswd" <<'EOC'
#!/bin/sh
enc=0; [ "$1" = "-e" ] && enc=1
while IFS= read -r line || [ -n "$line" ]; do
  user=${line%%:*}; pw=${line#*:}
  if [ "$enc" = 1 ]; then hash=$pw; else hash=$(/bin/busybox mkpasswd -m sha512 "$pw") || exit 1; fi
  grep -q "^$user:" /etc/shadow || { echo "chpasswd: unknown user $user" >&2; exit 1; }
  awk -F: -v OFS=: -v u="$user" -v h="$hash" '$1 == u { $2 = h } 1' /etc/shadow > /etc/shadow.new || exit 1
  mv /etc/shadow.new /etc/shadow || exit 1
  line=
done
EOC
    chmod +x "$R/usr/sbin/chpasswd"
    GA='i=0; while [ ! -b /dev/sr0 ] && [ $i -lt 300 ]; do usleep 10000; i=$((i+1)); done
mkdir -p /seed
if mount -t iso9660 -o ro /dev/sr0 /seed; then echo "GUEST-SEED files=$(ls /seed | tr "\n" ,) instance-id=$(sed -n "s/.*\"instance-id\": *\"\([^\"]*\)\".*/\1/p" /seed/meta-data) user-data=$(head -n1 /seed/user-data)"; if [ -x /bin/guest-netcfg ]; then i=0; while [ ! -e /sys/class/net/eth0 ] && ! ls /sys/class/net | grep -qv "^lo$" && [ $i -lt 300 ]; do usleep 10000; i=$((i+1)); done; /bin/guest-netcfg /seed/network-config; fi; umount /seed; else echo "GUEST-SEED mount failed"; fi
i=0; while ! ls /sys/class/virtio-ports/*/name >/dev/null 2>&1 && [ $i -lt 300 ]; do usleep 10000; i=$((i+1)); done
ga=; for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] && ga=/dev/${p##*/}; done
if [ -n "$ga" ]; then PATH=/usr/sbin:/bin qemu-ga -m virtio-serial -p "$ga" -t /tmp -f /tmp/qemu-ga.pid -l /tmp/qemu-ga.log & echo "GUEST-GA started on $ga"; else echo "GUEST-GA no org.qemu.guest_agent.0 port"; fi'
  fi
  for m in $MODS; do
    f=$(find "$MODDIR" -name "$m.ko*" | head -n1)
    [ -n "$f" ] || die "module $m not found"
    cp "$f" "$R/lib/modules/"
  done
  echo "$MODS" > "$R/lib/modules/order"
  # busybox acpid daemonizes before it opens /dev/input/event*, and a power
  # button pressed before that is lost: wait for its pid file, written after the
  # opens, so GUEST-READY means ACPI requests are heard.
  if [ "$2" = 1 ]; then
    ACPID='acpid -c /etc/acpi -l /tmp/acpid.log -p /tmp/acpid.pid
i=0; while [ ! -s /tmp/acpid.pid ] && [ $i -lt 3000 ]; do usleep 10000; i=$((i+1)); done
[ -s /tmp/acpid.pid ] || echo "GUEST-ACPID-NOT-READY after 30 s"'
  else
    ACPID='echo "GUEST-NOACPI acpid not started"'
  fi
  cat > "$R/init" <<EOS
#!/bin/sh
export PATH=/bin
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
up() { cut -d' ' -f1 /proc/uptime; }
echo "GUEST-INIT uptime=\$(up)"
for m in \$(cat /lib/modules/order); do insmod /lib/modules/\$m.ko* || echo "insmod \$m failed"; done
i=0; while [ ! -b /dev/vda ] && [ \$i -lt 500 ]; do usleep 10000; i=\$((i+1)); done
magic=\$(dd if=/dev/vda bs=1 skip=1080 count=2 2>/dev/null | hexdump -e '1/2 "%04x"')
if [ "\$magic" != "ef53" ]; then echo "GUEST-MKFS blank disk"; mke2fs -q -L guestroot /dev/vda; fi
mount -t ext4 -o sync /dev/vda /mnt || { echo "GUEST-ERROR mount failed"; sleep 2; poweroff -f; }
n=\$(cat /mnt/bootcount 2>/dev/null || echo 0); n=\$((n+1))
echo "\$n" > /mnt/bootcount
echo "boot \$n uptime=\$(up)" >> /mnt/boot.log
sync
cat > /etc/acpi/PWRF/00000080 <<'EOA'
#!/bin/sh
exec >/dev/console 2>&1
echo "GUEST-SHUTDOWN acpi power button uptime=\$(cut -d' ' -f1 /proc/uptime)"
echo "clean-shutdown \$(cat /mnt/bootcount)" >> /mnt/boot.log
echo "clean-shutdown \$(cat /mnt/bootcount)"
sync; umount /mnt || mount -o remount,ro /mnt; sync
poweroff -f
EOA
chmod +x /etc/acpi/PWRF/00000080
$ACPID
$GA
echo "GUEST-READY bootcount=\$n install-id=\$(cat /mnt/install-id 2>/dev/null) uptime=\$(up)"
while :; do sleep 3600; done
EOS
  chmod +x "$R/init"
  ( cd "$R" && find . | "$R/bin/busybox" cpio -o -H newc 2>/dev/null ) | gzip -9 > "$1.tmp"
  mv "$1.tmp" "$1"
}
# 3. base disks: ext4 with an install-id
build_disk() { # $1 = output, $2 = install-id
  local D=$WORK/diskroot
  rm -rf "$D" "$WORK/disk.raw"; mkdir -p "$D"
  echo "$2" > "$D/install-id"
  mkfs.ext4 -q -F -L guestroot -O ^has_journal -d "$D" "$WORK/disk.raw" "$DISK_SIZE" >/dev/null
  qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$1.tmp"
  mv "$1.tmp" "$1"
}

if [ "$main_ok" != 1 ]; then
  build_initrd "$OUT/initrd.img" 1
  build_initrd "$OUT/initrd-noacpi.img" 0
  build_initrd "$OUT/initrd-ga.img" 1 1
  cp "$WORK/x/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
  build_disk "$OUT/disk.qcow2" "a-$(date +%s%N)"
  build_disk "$OUT/disk-alt.qcow2" "b-$(date +%s%N)"
  printf '%s\n' "$CMDLINE" > "$OUT/cmdline"
  ( cd "$OUT" && sha256sum vmlinuz initrd.img initrd-noacpi.img initrd-ga.img disk.qcow2 disk-alt.qcow2 > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS )
  echo "$VERSION" > "$OUT/VERSION"
fi

# 4. the networked guest, in a directory of its own (a kernel of its own: its modules must match)
if [ "$net_ok" != 1 ]; then
  ( cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$WORK/guest-netcfg" ./scripts/guest-netcfg ) \
    || die "go build ./scripts/guest-netcfg failed"
  mkdir -p "$NET_OUT"
  rm -f "$NET_OUT/VERSION"
  build_initrd "$NET_OUT/initrd.img" 1 1 1
  cp "$WORK/x/boot/vmlinuz-$KVER" "$NET_OUT/vmlinuz"
  build_disk "$NET_OUT/disk.qcow2" "n-$(date +%s%N)"
  printf '%s\n' "$CMDLINE" > "$NET_OUT/cmdline"
  ( cd "$NET_OUT" && sha256sum vmlinuz initrd.img disk.qcow2 > SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS )
  echo "net-$NET_VERSION" > "$NET_OUT/VERSION"
fi
