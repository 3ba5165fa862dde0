#!/usr/bin/env bash
# Install the protobuf compiler (Debian package protobuf-compiler) and the pinned
# protoc-gen-go into .bin/, idempotently. `go generate ./proto` and the staleness
# test in proto/ need both. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "install-protoc: $*" >&2; exit 1; }

PROTOC_GEN_GO_VERSION=v1.36.12
APT_PACKAGES="protobuf-compiler" # install-test-deps.sh reads this line
if ! command -v protoc >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  scripts/apt-install-missing.sh $APT_PACKAGES || die "apt-get install protobuf-compiler failed"
fi
mkdir -p .bin
if ! .bin/protoc-gen-go --version 2>/dev/null | grep -q "${PROTOC_GEN_GO_VERSION}"; then
  GOBIN="$PWD/.bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}" \
    || die "go install protoc-gen-go@${PROTOC_GEN_GO_VERSION} failed (needs the Go module proxy)"
fi
