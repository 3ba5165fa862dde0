#!/bin/sh
# hostplane-coordinator postrm (deb: $1 = remove|purge|upgrade|...; RPM %postun:
# $1 = 0 on erase, 1 on upgrade). remove keeps /etc/hostplane/coordinator.json,
# the hostplane user and /var/lib/hostplane/coordinator (the Raft state); purge
# removes them.
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl daemon-reload >/dev/null 2>&1 || true
    fi
    ;;
  purge)
    rm -f /etc/systemd/system/multi-user.target.wants/hostplane-coordinator.service
    rm -rf /etc/systemd/system/hostplane-coordinator.service.d
    rm -rf /var/lib/hostplane/coordinator
    rm -f /etc/hostplane/coordinator.json /etc/hostplane/coordinator.json.dpkg-* /etc/hostplane/cluster-secret
    rm -rf /run/hostplane/coordinator
    rmdir /etc/hostplane /var/lib/hostplane /run/hostplane 2>/dev/null || true
    if getent passwd hostplane >/dev/null; then
      userdel hostplane >/dev/null 2>&1 || true
    fi
    if getent group hostplane >/dev/null; then
      groupdel hostplane >/dev/null 2>&1 || true
    fi
    if [ -d /run/systemd/system ]; then
      systemctl daemon-reload >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
