#!/usr/bin/env bash
# Install what the hosting role and its tests need, idempotently: nginx, PHP-FPM,
# MariaDB, OpenSSH (sftp), sshpass and btrfs-progs (sites as subvolumes with disk
# limits where sites/ is on btrfs with quotas; the quota tests mount a loop btrfs)
# and logrotate (the packaged /etc/logrotate.d/hostplane-agent is tested with it)
# from the Debian archive. Nothing is started
# (Debian's policy-rc.d keeps postinst from starting services; the tests start
# their own instances). Run as root. Quiet on success.
set -euo pipefail
die() { echo "install-hosting: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
APT_PACKAGES="nginx php8.2-fpm php8.2-mysql mariadb-server mariadb-client openssh-server openssh-client sshpass curl btrfs-progs logrotate" # install-test-deps.sh reads this line
# shellcheck disable=SC2086
"$(dirname "$0")/apt-install-missing.sh" $APT_PACKAGES || die "could not install $APT_PACKAGES"
getent group www-data >/dev/null || die "group www-data missing after installing nginx"
