package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// TestClusterBackupTargets: `cluster backup FILE` where FILE is not a plain
// new or regular file. A symbolic link to a regular file stays a link, its
// target gets the backup; a pipe (as /dev/stdout is when the output is piped)
// stays a pipe and receives the backup; "-" writes it to standard output; a
// directory or a link to a missing file is a usage error that creates
// nothing. `cluster restore -` reads standard input. Before, the backup's
// temporary file was renamed over FILE itself: `cluster backup /dev/stdout`
// replaced the machine's /dev/stdout symlink with a regular file (seen on a
// make run probe), a link or a pipe likewise.
func TestClusterBackupTargets(t *testing.T) {
	_, g, adm := cliCluster(t)
	dir := t.TempDir()
	restores := func(what string, b []byte) {
		t.Helper()
		if len(b) == 0 {
			t.Fatalf("%s: no backup received", what)
		}
		if _, err := adm.Restore(context.Background(), bytes.NewReader(b)); err != nil {
			t.Fatalf("%s: restoring what it received: %v", what, err)
		}
	}

	// A symbolic link to a regular file.
	real, link := filepath.Join(dir, "real.hpsnap"), filepath.Join(dir, "link.hpsnap")
	if err := os.WriteFile(real, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	// With --json on stdout: the summary's byte count is the file's size.
	jr, jw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	summary := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(jr); summary <- b }()
	stdout := os.Stdout
	os.Stdout = jw
	err = execQuiet(newClusterCmd(&globals{socket: g.socket, json: true}), "backup", link)
	os.Stdout = stdout
	jw.Close()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("backup to a symbolic link replaced the link: %v %v", st.Mode(), err)
	}
	b, _ := os.ReadFile(real)
	restores("link target", b)
	var sum struct {
		Bytes int64 `json:"bytes"`
	}
	if out := <-summary; json.Unmarshal(out, &sum) != nil || sum.Bytes != int64(len(b)) {
		t.Fatalf("summary %s: want bytes %d", out, len(b))
	}

	// A pipe, read by another process's end.
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	if err := execQuiet(newClusterCmd(g), "backup", fifo); err != nil {
		t.Fatal(err)
	}
	restores("pipe", <-got)
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&fs.ModeNamedPipe == 0 {
		t.Fatalf("backup to a pipe replaced the pipe: %v %v", st.Mode(), err)
	}

	// "-": standard output (the summary goes to standard error).
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = w
	go func() { b, _ := io.ReadAll(r); got <- b }()
	err = execQuiet(newClusterCmd(g), "backup", "-")
	os.Stdout = stdout
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	b = <-got
	restores("-", b)

	// restore - reads standard input.
	in, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = w2.Write(b); w2.Close() }()
	stdin := os.Stdin
	os.Stdin = in
	err = execQuiet(newClusterCmd(g), "restore", "-")
	os.Stdin = stdin
	if err != nil {
		t.Fatalf("restore -: %v", err)
	}

	// Refused, nothing created.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "missing"), dangling); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(dir)
	for _, f := range []string{sub, dangling} {
		var ue usageError
		if err := execQuiet(newClusterCmd(g), "backup", f); !errors.As(err, &ue) || !strings.Contains(err.Error(), f) {
			t.Fatalf("backup %s: want a usage error naming it, got %v", f, err)
		}
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Fatalf("refused backups left files: %d entries, were %d", len(after), len(before))
	}
	if es, _ := os.ReadDir(sub); len(es) != 0 {
		t.Fatalf("a refused backup wrote into the directory: %d entries", len(es))
	}
}
