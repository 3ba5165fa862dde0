#!/usr/bin/env bash
# Install PowerDNS Authoritative with the sqlite backend (and the sqlite3 tool
# that loads its schema) for the reverse-DNS tests, idempotently. The tests
# start pdns_server themselves, on loopback ports with a per-test config; the
# package's own service is never started (Debian's policy-rc.d keeps postinst
# from starting it) and this script does not start it either.
# Run as root on Debian 12. Quiet on success.
set -euo pipefail
die() { echo "install-pdns: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"
APT_PACKAGES="pdns-server pdns-backend-sqlite3 sqlite3" # install-test-deps.sh reads this line
# shellcheck disable=SC2086
"$(dirname "$0")/apt-install-missing.sh" $APT_PACKAGES || die "could not install $APT_PACKAGES"
command -v pdns_server >/dev/null || die "pdns_server not found after installing pdns-server"
dpkg -L pdns-backend-sqlite3 | grep -q '/schema\.sqlite3\.sql$' \
  || die "pdns-backend-sqlite3 ships no schema.sqlite3.sql"
