# hostplane build and test entry points. See README.md.
SHELL := /bin/bash
GO ?= go
GOBIN_DIR := $(CURDIR)/.bin
BIN := $(CURDIR)/bin
export PATH := $(GOBIN_DIR):$(HOME)/go/bin:/usr/local/go/bin:$(PATH)
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/hostplane/hostplane/pkg/version.Version=$(VERSION)

.PHONY: build run run-clean test test-deps lint bench generate clean packages

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./coordinator/cmd/... ./agent/cmd/...

# Single-node coordinator on the embedded default; data dir reused across runs.
run: build
	scripts/run-local.sh

# Removes what make run left in libvirt for its data dir (its domains and pool); the data dir stays.
run-clean:
	scripts/run-clean.sh

test-deps:
	scripts/install-test-deps.sh

lint:
	gofmt -l . | (! grep .) || (echo "gofmt needed on the files above" >&2; exit 1)
	$(GO) vet ./...
	staticcheck ./...

# The installs (mostly downloads and disk: npm, apt, the test guest's
# images) run beside lint and build (CPU), not before them: in a clean
# clone they take about a minute that lint and build need not wait for.
# staticcheck, which lint runs, is installed first.
test:
	scripts/install-staticcheck.sh
	$(MAKE) --no-print-directory -j3 --output-sync=target test-deps lint build
	scripts/run-tests.sh

bench: test-deps build
	scripts/run-bench.sh

# .deb and .rpm of hostplane-coordinator and hostplane-agent (amd64) into dist/.
packages:
	scripts/build-packages.sh

generate:
	$(GO) generate ./...

clean:
	rm -rf $(BIN) $(GOBIN_DIR) build dist
