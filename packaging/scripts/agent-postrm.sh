#!/bin/sh
# hostplane-agent postrm (deb: $1 = remove|purge|upgrade|...; RPM %postun: $1 = 0
# on erase, 1 on upgrade). remove keeps /etc/hostplane/agent.json and
# /var/lib/hostplane/agent (journal, node certificate); purge removes them, and
# the pool directory when it holds no disk images (guest disks are never deleted
# by a purge: remove the servers first, or the directory by hand).
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ]; then
      systemctl daemon-reload >/dev/null 2>&1 || true
    fi
    ;;
  purge)
    rm -f /etc/systemd/system/multi-user.target.wants/hostplane-agent.service
    rm -rf /etc/systemd/system/hostplane-agent.service.d
    rm -rf /var/lib/hostplane/agent
    rm -f /etc/hostplane/agent.json /etc/hostplane/agent.json.dpkg-*
    rm -f /run/hostplane/agent.sock
    if ! rmdir /var/lib/hostplane/pool 2>/dev/null && [ -d /var/lib/hostplane/pool ]; then
      echo "hostplane-agent: /var/lib/hostplane/pool still holds disk images; left in place" >&2
    fi
    rmdir /etc/hostplane /var/lib/hostplane /run/hostplane 2>/dev/null || true
    if [ -d /run/systemd/system ]; then
      systemctl daemon-reload >/dev/null 2>&1 || true
    fi
    ;;
esac
exit 0
