#!/bin/sh
# changelog.sh PACKAGE VERSION: a one-entry Debian changelog for a native
# package built from the current git commit (gzip -9n'd by the caller).
set -eu
when=$(git log -1 --format=%cd --date=rfc2822)
commit=$(git rev-parse HEAD)
printf '%s (%s) unstable; urgency=medium\n\n  * Built from git commit %s.\n\n -- hostplane packaging <packaging@hostplane.example>  %s\n' \
  "$1" "$2" "$commit" "$when"
