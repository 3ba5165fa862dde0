#!/usr/bin/env bash
# Build the hostplane-coordinator and hostplane-agent .deb and .rpm (amd64) into
# dist/ with nfpm (pinned, installed into .bin/ by install-packaging-tools.sh).
# The version comes from `git describe` (scripts/pkg-version.sh); binaries carry
# the same string (hostplane-coordinator version). HOSTPLANE_VERSION overrides the
# version, DIST the output directory (the packaging tests build an upgrade with both),
# PACKAGERS the formats (default "deb rpm"; the packaging tests' upgrade is a .deb
# only: the .rpms' nfpm runs are about 40 % of a rebuild's CPU, 02bb703).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.bin:/usr/local/go/bin:$PATH"
scripts/install-packaging-tools.sh --nfpm-only

VERSION=$(scripts/pkg-version.sh)
export HOSTPLANE_PKG_VERSION="$VERSION"
B=build/pkg
rm -rf "$B"
DIST=${DIST:-dist}
mkdir -p "$B/bin" "$DIST"
# PIE (ASLR) without cgo: no shared library is loaded, only the ELF interpreter.
LDFLAGS="-s -w -X github.com/hostplane/hostplane/pkg/version.Version=$VERSION"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -buildmode=pie -trimpath -ldflags "$LDFLAGS" -o "$B/bin/" \
  ./coordinator/cmd/hostplane-coordinator ./coordinator/cmd/hostplanectl ./agent/cmd/hostplane-agent

env -u HOSTPLANE_DATA_DIR -u XDG_DATA_HOME -u HOSTPLANE_ADMIN_SOCKET "$B/bin/hostplanectl" gen-docs --man "$B/ctl/man" --completions "$B/ctl/completions"
"$B/bin/hostplane-coordinator" gen-docs --man "$B/coordinator/man"
mkdir -p "$B/agent/man"
cp packaging/man/hostplane-agent.8 "$B/agent/man/"
for pkg in coordinator agent; do
  packaging/scripts/changelog.sh "hostplane-$pkg" "$VERSION" >"$B/$pkg/changelog"
done
# The maintainer scripts (build/pkg/scripts/PKG-HOOK.sh, named in packaging/nfpm-*.yaml):
# one text for both packages and every hook, packaging/scripts/maint.sh, with PKG and
# HOOK set and only that hook's function kept (besides the shared ones).
mkdir -p "$B/scripts"
for pkg in coordinator agent; do
  for hook in postinst prerm postrm; do
    { printf '#!/bin/sh\n# hostplane-%s %s, generated from packaging/scripts/maint.sh.\nPKG=%s\nHOOK=%s\n' \
        "$pkg" "$hook" "$pkg" "$hook"
      awk -v hook="$hook" '
        NR == 1 { next }
        /^[a-z]+\(\) \{$/ { name = substr($0, 1, index($0, "(") - 1); infn = 1
          keep = name == hook || name !~ /^(postinst|prerm|postrm)$/ }
        !infn || keep { print }
        infn && /^}$/ { infn = 0 }' packaging/scripts/maint.sh
    } >"$B/scripts/$pkg-$hook.sh"
    chmod 0755 "$B/scripts/$pkg-$hook.sh"
  done
done
find "$B" \( -name '*.[18]' -o -name changelog \) -exec gzip -9n {} +

# nfpm expands no glob in "doc" entries (RPM %doc): list the man pages one by one.
for pkg in coordinator agent; do
  {
    sed '/^contents:/q' "packaging/nfpm-$pkg.yaml"
    dirs="$B/$pkg/man"; [ "$pkg" = coordinator ] && dirs="$dirs $B/ctl/man"
    for m in $(find $dirs -name '*.gz' | sort); do
      sec=${m%.gz}; sec=${sec##*.}
      for t in deb rpm; do  # nfpm leaves "doc" entries out of the .deb
        printf '  - src: %s\n    dst: /usr/share/man/man%s/%s\n    file_info: {mode: 0644}\n    packager: %s\n' "$m" "$sec" "${m##*/}" "$t"
        [ "$t" = rpm ] && printf '    type: doc\n'
      done
    done
    sed '1,/^contents:/d' "packaging/nfpm-$pkg.yaml"
  } >"$B/nfpm-$pkg.yaml"
done

rm -f "$DIST"/hostplane-coordinator_* "$DIST"/hostplane-agent_* "$DIST"/hostplane-coordinator-[0-9]* "$DIST"/hostplane-agent-[0-9]*
for pkg in coordinator agent; do
  for fmt in ${PACKAGERS:-deb rpm}; do
    nfpm package --config "$B/nfpm-$pkg.yaml" --packager "$fmt" --target "$DIST/" >/dev/null || { echo "nfpm $pkg $fmt failed" >&2; exit 1; }
  done
done
ls -l "$DIST/"
