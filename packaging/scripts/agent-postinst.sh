#!/bin/sh
# hostplane-agent postinst (deb: $1 = configure [old-version]; RPM %post: $1 = 1 on
# install, 2 on upgrade). Idempotent; touches systemd only when it runs.
set -e
case "$1" in
  configure) upgrade=${2:+yes} ;;
  1) upgrade= ;;
  2) upgrade=yes ;;
  *) exit 0 ;;
esac
install -d -m 0755 -o root -g root /var/lib/hostplane
install -d -m 0711 -o root -g root /var/lib/hostplane/agent /var/lib/hostplane/pool
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  if [ -n "$upgrade" ]; then
    # Guests run under libvirtd and keep running while the agent restarts.
    systemctl try-restart hostplane-agent.service >/dev/null 2>&1 || true
  fi
fi
exit 0
