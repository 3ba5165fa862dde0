#!/usr/bin/env bash
# Install what `make packages` and the packaging checks need, idempotently: nfpm
# (pinned) into .bin/, and lintian, rpmlint and rpm from the Debian archive.
# Run as root on Debian 12. Quiet on success; says what failed otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "install-packaging-tools: $*" >&2; exit 1; }

NFPM_VERSION=v2.45.2
APT_PACKAGES="lintian rpmlint rpm" # install-test-deps.sh reads this line
mkdir -p .bin
if ! .bin/nfpm --version 2>/dev/null | grep -q "${NFPM_VERSION#v}"; then
  GOBIN="$PWD/.bin" go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@${NFPM_VERSION}" \
    || die "go install nfpm@${NFPM_VERSION} failed (needs the Go module proxy)"
fi

[ "${1:-}" = "--nfpm-only" ] && exit 0
[ "$(id -u)" -eq 0 ] || die "must run as root to install lintian, rpmlint and rpm"
# shellcheck disable=SC2086
scripts/apt-install-missing.sh $APT_PACKAGES || die "could not install lintian, rpmlint and rpm"
