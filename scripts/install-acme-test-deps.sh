#!/usr/bin/env bash
# What the custom-domain / TLS / ACME tests need, idempotently: nginx with
# Debian's lua module (the per-handshake certificate cache), and pebble (the
# ACME test server) pinned into .bin/. Quiet on success. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "install-acme-test-deps: $*" >&2; exit 1; }

scripts/apt-install-missing.sh nginx libnginx-mod-http-lua

PEBBLE_VERSION=v2.10.1
mkdir -p .bin
if ! [ -x .bin/pebble ] || ! grep -qx "$PEBBLE_VERSION" .bin/pebble.version 2>/dev/null; then
  GOBIN="$PWD/.bin" go install "github.com/letsencrypt/pebble/v2/cmd/pebble@${PEBBLE_VERSION}" \
    || die "go install pebble@${PEBBLE_VERSION} failed (needs the Go module proxy)"
  echo "$PEBBLE_VERSION" > .bin/pebble.version
fi
