#!/bin/sh
# hostplane-coordinator prerm (deb: $1 = remove|upgrade|...; RPM %preun: $1 = 0 on
# erase, 1 on upgrade). On removal the service is stopped and disabled; on an
# upgrade it keeps running until postinst restarts it.
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl stop hostplane-coordinator.service >/dev/null 2>&1 || true
    fi
    rm -f /etc/systemd/system/multi-user.target.wants/hostplane-coordinator.service
    ;;
esac
exit 0
