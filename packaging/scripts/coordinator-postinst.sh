#!/bin/sh
# hostplane-coordinator postinst (deb: $1 = configure [old-version]; RPM %post:
# $1 = 1 on install, 2 on upgrade). Idempotent; touches systemd only when it runs.
set -e
case "$1" in
  configure) upgrade=${2:+yes} ;;
  1) upgrade= ;;
  2) upgrade=yes ;;
  *) exit 0 ;;
esac
if ! getent group hostplane >/dev/null; then
  groupadd --system hostplane
fi
if ! getent passwd hostplane >/dev/null; then
  useradd --system --gid hostplane --home-dir /var/lib/hostplane/coordinator --no-create-home \
    --shell /usr/sbin/nologin --comment "hostplane coordinator" hostplane
fi
install -d -m 0755 -o root -g root /var/lib/hostplane
install -d -m 0700 -o hostplane -g hostplane /var/lib/hostplane/coordinator
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  if [ -n "$upgrade" ]; then
    # A running coordinator restarts on the new version (hand leadership off
    # first: hostplanectl cluster transfer-leadership); a stopped one stays stopped.
    systemctl try-restart hostplane-coordinator.service >/dev/null 2>&1 || true
  fi
fi
exit 0
