package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWrite: the file is replaced with the new content and mode, and no
// temporary file is left beside it; a write into a missing directory fails
// and leaves nothing.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "creds.pem")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "new" {
		t.Fatalf("content %q %v, want new", b, err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("%d entries in the directory, want only the file", len(es))
	}
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("%d entries after a failed write, want 1", len(es))
	}
}

// TestWriteFrom: what fill writes replaces the file; a fill that fails
// leaves the old file and no temporary file, and its error is returned.
func TestWriteFrom(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "backup.hpsnap")
	if err := WriteFrom(p, 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, "first")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("stream broke")
	if err := WriteFrom(p, 0o600, func(w io.Writer) error {
		_, _ = io.WriteString(w, "part of the second")
		return broken
	}); !errors.Is(err, broken) {
		t.Fatalf("failed fill: %v, want its error", err)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "first" {
		t.Fatalf("after a failed fill: %q %v, want the first content", b, err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 1 {
		t.Fatalf("%d entries in the directory, want only the file", len(es))
	}
}

// TestWriteStamped: the replaced file has the new content and exactly the
// given modification time, to the nanosecond.
func TestWriteStamped(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.pem")
	want := time.Unix(1_900_000_000, 123_456_789)
	if err := WriteStamped(p, []byte("new"), 0o640, want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" || !st.ModTime().Equal(want) {
		t.Fatalf("content %q mtime %v, want new and %v", b, st.ModTime(), want)
	}
}

// TestSyncDir: a directory fsyncs; a missing one is a not-exist error.
func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(dir); err != nil {
		t.Fatalf("SyncDir(%s): %v", dir, err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Fatalf("SyncDir of a missing directory: %v, want not-exist", err)
	}
}

// TestRemoveStale: the temporary files an interrupted Write of the path left
// are removed; the file itself, another file's temporary files and other
// names stay; a missing directory is no error.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "used.log")
	keep := []string{"used.log", ".other.log.tmp-1", "used.log.tmp-2", ".used.log.new"}
	stale := []string{".used.log.tmp-123", ".used.log.tmp-"}
	for _, n := range append(append([]string{}, keep...), stale...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveStale(p); err != nil {
		t.Fatal(err)
	}
	es, _ := os.ReadDir(dir)
	var got []string
	for _, e := range es {
		got = append(got, e.Name())
	}
	if len(got) != len(keep) {
		t.Fatalf("left %q, want %q", got, keep)
	}
	for _, n := range keep {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Fatalf("%s removed: %v", n, err)
		}
	}
	if err := RemoveStale(filepath.Join(dir, "missing", "f")); err != nil {
		t.Fatalf("missing directory: %v", err)
	}
}
