#!/usr/bin/env bash
# What the custom-domain / TLS / ACME tests need, idempotently: nginx with
# Debian's lua module (the per-handshake certificate cache), and pebble (the
# ACME test server) pinned into .bin/. Quiet on success. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "install-acme-test-deps: $*" >&2; exit 1; }

APT_PACKAGES="nginx libnginx-mod-http-lua" # install-test-deps.sh reads this line
# shellcheck disable=SC2086
scripts/apt-install-missing.sh $APT_PACKAGES

PEBBLE_VERSION=v2.10.3
mkdir -p .bin
if ! [ -x .bin/pebble ] || ! grep -qx "$PEBBLE_VERSION" .bin/pebble.version 2>/dev/null; then
  GOBIN="$PWD/.bin" go install "github.com/letsencrypt/pebble/v2/cmd/pebble@${PEBBLE_VERSION}" \
    || die "go install pebble@${PEBBLE_VERSION} failed (needs the Go module proxy)"
  echo "$PEBBLE_VERSION" > .bin/pebble.version
fi
# pebble's TLS certificate for its own listeners and the CA that signed it (from its module).
if ! [ -f .bin/pebble-certs/localhost/cert.pem ] || ! grep -qx "$PEBBLE_VERSION" .bin/pebble-certs/version 2>/dev/null; then
  src="$(go env GOMODCACHE)/github.com/letsencrypt/pebble/v2@${PEBBLE_VERSION}/test/certs"
  [ -d "$src" ] || go mod download "github.com/letsencrypt/pebble/v2@${PEBBLE_VERSION}" >/dev/null 2>&1 || true
  [ -f "$src/localhost/cert.pem" ] || die "pebble's test certificates not found in $src"
  rm -rf .bin/pebble-certs && mkdir -p .bin/pebble-certs/localhost
  cp "$src/pebble.minica.pem" .bin/pebble-certs/ && cp "$src/localhost/cert.pem" "$src/localhost/key.pem" .bin/pebble-certs/localhost/
  echo "$PEBBLE_VERSION" > .bin/pebble-certs/version
fi
