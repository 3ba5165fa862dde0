#!/bin/sh
# The maintainer scripts of hostplane-coordinator and hostplane-agent, one text
# for both packages and every hook. scripts/build-packages.sh generates
# build/pkg/scripts/PKG-HOOK.sh from it by setting PKG (coordinator|agent) and
# HOOK (postinst|prerm|postrm) on its first lines and keeping, of the functions
# postinst, prerm and postrm, only HOOK's; the package ships that.
#
# postinst: deb $1 = configure [old-version]; RPM %post $1 = 1 on install, 2 on
#   upgrade. Idempotent; touches systemd only when it runs. A running daemon
#   restarts on the new version (the coordinator: hand leadership off first with
#   hostplanectl cluster transfer-leadership; guests run under libvirtd and keep
#   running while the agent restarts); a stopped one stays stopped.
# prerm: deb $1 = remove|upgrade|...; RPM %preun $1 = 0 on erase, 1 on upgrade.
#   On removal the service is stopped and disabled (the agent's hourly
#   hostplane-agent-logrotate.timer, started by its Wants=, is stopped too); on
#   an upgrade it keeps running until postinst restarts it.
# postrm: deb $1 = remove|purge|upgrade|...; RPM %postun $1 = 0 on erase, 1 on
#   upgrade. remove keeps /etc/hostplane/PKG.json and /var/lib/hostplane/PKG (the
#   coordinator's Raft state and the hostplane user; the agent's journal and node
#   certificate); purge removes them. The agent's pool directory is removed only
#   when it holds no disk image (guest disks are never deleted by a purge: remove
#   the servers first, or the directory by hand).
set -e
: "${PKG:?}" "${HOOK:?}"
unit=hostplane-$PKG.service

reload() {
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
  fi
}

postinst() {
  case "$1" in
    configure) upgrade=${2:+yes} ;;
    1) upgrade= ;;
    2) upgrade=yes ;;
    *) return 0 ;;
  esac
  if [ "$PKG" = coordinator ]; then
    if ! getent group hostplane >/dev/null; then
      groupadd --system hostplane
    fi
    if ! getent passwd hostplane >/dev/null; then
      useradd --system --gid hostplane --home-dir /var/lib/hostplane/coordinator --no-create-home \
        --shell /usr/sbin/nologin --comment "hostplane coordinator" hostplane
    fi
  fi
  install -d -m 0755 -o root -g root /var/lib/hostplane
  # coordinator.json may hold a secret ("cluster-secret" is a flag name too):
  # readable by the service's group, not by every local user. An edited copy
  # from an earlier release (0644) is tightened too; a group the operator chose
  # is kept.
  conf=/etc/hostplane/coordinator.json
  if [ "$PKG" = coordinator ] && [ -f "$conf" ]; then
    if [ "$(stat -c %G "$conf")" = root ]; then
      chgrp hostplane "$conf"
    fi
    chmod o-rwx "$conf"
  fi
  case "$PKG" in
    coordinator) install -d -m 0700 -o hostplane -g hostplane /var/lib/hostplane/coordinator ;;
    agent) install -d -m 0711 -o root -g root /var/lib/hostplane/agent /var/lib/hostplane/pool ;;
  esac
  reload
  if [ -n "$upgrade" ] && [ -d /run/systemd/system ]; then
    systemctl try-restart "$unit" >/dev/null 2>&1 || true
  fi
}

prerm() {
  case "$1" in
    remove|0)
      if [ -d /run/systemd/system ]; then
        systemctl stop "$unit" >/dev/null 2>&1 || true
        if [ "$PKG" = agent ]; then
          systemctl stop hostplane-agent-logrotate.timer >/dev/null 2>&1 || true
        fi
      fi
      rm -f "/etc/systemd/system/multi-user.target.wants/$unit"
      ;;
  esac
}

postrm() {
  case "$1" in
    remove|0) reload ;;
    purge)
      rm -f "/etc/systemd/system/multi-user.target.wants/$unit"
      rm -rf "/etc/systemd/system/$unit.d"
      rm -rf "/var/lib/hostplane/$PKG"
      rm -f "/etc/hostplane/$PKG.json" "/etc/hostplane/$PKG.json".dpkg-*
      case "$PKG" in
        coordinator)
          rm -f /etc/hostplane/cluster-secret
          rm -rf /run/hostplane/coordinator
          ;;
        agent)
          rm -f /run/hostplane/agent.sock /etc/systemd/system/timers.target.wants/hostplane-agent-logrotate.timer
          if ! rmdir /var/lib/hostplane/pool 2>/dev/null && [ -d /var/lib/hostplane/pool ]; then
            echo "hostplane-agent: /var/lib/hostplane/pool still holds disk images; left in place" >&2
          fi
          ;;
      esac
      rmdir /etc/hostplane /var/lib/hostplane /run/hostplane 2>/dev/null || true
      if [ "$PKG" = coordinator ]; then
        if getent passwd hostplane >/dev/null; then
          userdel hostplane >/dev/null 2>&1 || true
        fi
        if getent group hostplane >/dev/null; then
          groupdel hostplane >/dev/null 2>&1 || true
        fi
      fi
      reload
      ;;
  esac
}

"$HOOK" "$@"
exit 0
