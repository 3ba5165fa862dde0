#!/usr/bin/env bash
# Regenerate hostplane.pb.go into the directory given (default: this one) with
# protoc and the protoc-gen-go pinned in ../.bin (scripts/install-protoc.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
export PATH="$here/../.bin:$PATH"
command -v protoc >/dev/null || { echo "protoc not found: run scripts/install-protoc.sh" >&2; exit 1; }
command -v protoc-gen-go >/dev/null || { echo "protoc-gen-go not found: run scripts/install-protoc.sh" >&2; exit 1; }
cd "$here"
protoc --proto_path=. --go_out="$out" --go_opt=paths=source_relative hostplane.proto
