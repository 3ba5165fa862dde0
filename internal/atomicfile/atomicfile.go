// Package atomicfile replaces files atomically (a temporary file beside the
// target, fsynced, then renamed over it), for the agent's configuration,
// credentials and state files, and fsyncs directories (SyncDir).
package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Write writes b to a temporary file beside path (mode applied before the
// rename), fsyncs it and renames it over path: a reader sees the old content
// or the new, never a part; the temporary file is removed on failure.
func Write(path string, b []byte, mode os.FileMode) error {
	return write(path, mode, time.Time{}, writeBytes(b))
}

// WriteFrom is Write for content too large to hold: fill writes it to the
// temporary file; if fill fails, nothing replaces path and the temporary
// file is removed.
func WriteFrom(path string, mode os.FileMode, fill func(io.Writer) error) error {
	return write(path, mode, time.Time{}, fill)
}

// WriteStamped is Write with the new file's access and modification times
// set to mtime before the rename: a reader never sees the new content with
// another mtime.
func WriteStamped(path string, b []byte, mode os.FileMode, mtime time.Time) error {
	return write(path, mode, mtime, writeBytes(b))
}

func writeBytes(b []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// tempPrefix is the name Write's temporary files for path begin with.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// RemoveStale removes the temporary files that a Write of path interrupted
// by a crash left beside it (a finished or failed Write leaves none). Call it
// where path's owner opens the file, before anything writes it: a Write of
// path running at the same time would lose its temporary file.
func RemoveStale(path string) error {
	es, err := os.ReadDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range es {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), tempPrefix(path)) {
			if err := os.Remove(filepath.Join(filepath.Dir(path), e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func write(path string, mode os.FileMode, mtime time.Time, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix(path)+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

// SyncDir fsyncs the directory dir, so that a file created, renamed or
// removed in it stays so after a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	return err
}
