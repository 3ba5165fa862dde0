package framework

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBuildBinaryTakesTheSharedBuild: with SharedBinDirEnv set, a default
// build of a package is the shared directory's binary of that name (no go
// build: the package here does not exist), a variant (Version) is still
// built, and a shared directory without the binary is passed over.
func TestBuildBinaryTakesTheSharedBuild(t *testing.T) {
	dir := t.TempDir()
	shared := filepath.Join(dir, "hp-shared-probe")
	if err := os.WriteFile(shared, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SharedBinDirEnv, dir)
	if p, err := BuildBinary("./no/such/hp-shared-probe", BuildOptions{}); err != nil || p != shared {
		t.Errorf("default build: %q, %v; want the shared %q", p, err, shared)
	}
	if p, err := BuildBinary("./no/such/hp-shared-probe", BuildOptions{Version: "v-other"}); err == nil || p != "" {
		t.Errorf("a Version build: %q, %v; want go build's failure for the missing package", p, err)
	}
	if p, err := BuildBinary("./no/such/hp-shared-absent", BuildOptions{}); err == nil || p != "" {
		t.Errorf("a binary the shared directory lacks: %q, %v; want go build's failure for the missing package", p, err)
	}
}
