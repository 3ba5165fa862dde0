package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestClusterBackupCLI: `cluster backup FILE` writes the state to FILE (a
// backup the coordinator restores), leaving nothing else beside it; a backup
// that fails (no coordinator on the socket) leaves neither FILE nor a
// partial file.
func TestClusterBackupCLI(t *testing.T) {
	_, g, adm := cliCluster(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "state.hpsnap")
	if err := execQuiet(newClusterCmd(g), "backup", file); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(file)
	if err != nil || st.Size() == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st, err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("%d entries beside the backup, want none", len(es)-1)
	}
	in, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := adm.Restore(context.Background(), in); err != nil {
		t.Fatalf("restoring the CLI's backup: %v", err)
	}

	empty := t.TempDir()
	gone := &globals{socket: filepath.Join(empty, "no.sock"), json: true}
	if err := execQuiet(newClusterCmd(gone), "backup", filepath.Join(empty, "state.hpsnap")); err == nil {
		t.Fatal("backup without a coordinator succeeded")
	}
	if es, _ := os.ReadDir(empty); len(es) != 0 {
		t.Fatalf("a failed backup left %d files", len(es))
	}
}
