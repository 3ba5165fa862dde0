#!/bin/sh
# hostplane-agent prerm (deb: $1 = remove|upgrade|...; RPM %preun: $1 = 0 on erase,
# 1 on upgrade). Guests are libvirtd's and keep running when the agent stops.
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl stop hostplane-agent.service >/dev/null 2>&1 || true
    fi
    rm -f /etc/systemd/system/multi-user.target.wants/hostplane-agent.service
    ;;
esac
exit 0
