#!/usr/bin/env bash
# Install staticcheck, pinned, into .bin/ (make lint runs it), idempotently.
# Quiet on success; says what failed otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "install-staticcheck: $*" >&2; exit 1; }

STATICCHECK_VERSION=v0.8.2
mkdir -p .bin
if ! .bin/staticcheck -version 2>/dev/null | grep -q "(${STATICCHECK_VERSION#v})"; then
  GOBIN="$PWD/.bin" go install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}" \
    || die "go install staticcheck@${STATICCHECK_VERSION} failed (needs the Go module proxy)"
fi
