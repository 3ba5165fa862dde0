package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/socktest"
)

// serveSocket serves h on a new unix socket (a coordinator's admin socket,
// an agent's local API) until the test ends, and returns its path.
func serveSocket(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	return socktest.Serve(t, filepath.Join(t.TempDir(), "s.sock"), h)
}

// stallingAdmin serves GET /admin/cluster/backup as a leader that hangs
// after it started the stream does: the headers and what send writes, then
// nothing, the connection kept open. gone gets a value when the client has
// dropped the request.
func stallingAdmin(t *testing.T, send func(w http.ResponseWriter)) (socket string, gone chan struct{}) {
	t.Helper()
	gone = make(chan struct{}, 8)
	return serveSocket(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Hostplane-Node", "c1")
		w.Header().Set("X-Hostplane-Applied-Index", "42")
		send(w)
		<-r.Context().Done()
		gone <- struct{}{}
	}), gone
}

// runBounded runs `cluster backup args` and fails t when it has not ended
// within limit (hostplanectl before the stall guard waited without end).
func runBounded(t *testing.T, socket string, limit time.Duration, args ...string) (time.Duration, error) {
	t.Helper()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		done <- execQuiet(newClusterCmd(&globals{socket: socket}), append([]string{"backup"}, args...)...)
	}()
	select {
	case err := <-done:
		return time.Since(start), err
	case <-time.After(limit):
		t.Fatalf("cluster backup %v still waiting after %s for a coordinator that stopped sending", args, limit)
		return 0, nil
	}
}

// TestClusterBackupStallEnds: a backup whose coordinator stops sending after
// the stream started (a leader that hangs: its connection stays open) ends
// after --stall-timeout with an error that says it stalled, drops the
// request, leaves a regular FILE as it was, and says that what went to a
// pipe is not a backup. A coordinator that answers slowly, and an output
// that takes the copy slowly, are not taken for a stall. Before, hostplanectl
// waited for the stalled stream without end (a pipe) or 5 minutes (the admin
// client's overall limit, which also failed a large backup to a slow output).
func TestClusterBackupStallEnds(t *testing.T) {
	first := bytes.Repeat([]byte{'b'}, 64<<10)
	socket, gone := stallingAdmin(t, func(w http.ResponseWriter) {
		_, _ = w.Write(first)
		w.(http.Flusher).Flush()
	})

	// A regular file that holds an earlier backup.
	file := filepath.Join(t.TempDir(), "state.hpsnap")
	if err := os.WriteFile(file, []byte("earlier backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	took, err := runBounded(t, socket, 10*time.Second, file, "--stall-timeout", "500ms")
	if err == nil || !strings.Contains(err.Error(), "stalled") || !strings.Contains(err.Error(), "500ms") ||
		!strings.Contains(err.Error(), file+" was not written") || !strings.Contains(err.Error(), "run the backup again") {
		t.Fatalf("after %s: %v; want the stall, that %s was not written, and what to do", took, err, file)
	}
	if took < 500*time.Millisecond {
		t.Fatalf("ended after %s, before the stall timeout", took)
	}
	if b, _ := os.ReadFile(file); string(b) != "earlier backup" {
		t.Fatalf("the stalled backup changed %s: %d bytes", file, len(b))
	}
	if es, _ := os.ReadDir(filepath.Dir(file)); len(es) != 1 {
		t.Fatalf("a stalled backup left %d files beside %s", len(es)-1, file)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the coordinator still holds the stalled request")
	}

	// "-": what went to standard output is said to be no backup.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 1)
	go func() { b, _ := io.ReadAll(r); got <- len(b) }()
	stdout := os.Stdout
	os.Stdout = w
	_, err = runBounded(t, socket, 10*time.Second, "-", "--stall-timeout", "500ms")
	os.Stdout = stdout
	w.Close()
	if n := <-got; err == nil || n != len(first) || !strings.Contains(err.Error(), "stalled") ||
		!strings.Contains(err.Error(), "65536 bytes written to standard output are an incomplete copy, not a backup") {
		t.Fatalf("backup -: %d bytes out, %v; want the stall and that the 65536 bytes are not a backup", n, err)
	}

	// Nothing answers at all (hostplanectl on the socket of a leader that hangs).
	mute, _ := stallingAdmin(t, func(http.ResponseWriter) {})
	_, err = runBounded(t, mute, 10*time.Second, filepath.Join(t.TempDir(), "x"), "--stall-timeout", "500ms")
	if err == nil || !strings.Contains(err.Error(), "no answer from the coordinator for 500ms") {
		t.Fatalf("a coordinator that never answers: %v", err)
	}

	// Slow but moving: a chunk every 300 ms for 2.4 s, under a 3 s guard (a
	// loaded machine can pause a process for a second and more).
	const total = 512 << 10
	slow := serveSocket(t, func(w http.ResponseWriter, _ *http.Request) {
		for range 8 {
			_, _ = w.Write(first[:1024])
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
		}
		_, _ = w.Write(bytes.Repeat([]byte{'c'}, total-8*1024))
	})
	slowFile := filepath.Join(t.TempDir(), "slow.hpsnap")
	if took, err := runBounded(t, slow, 20*time.Second, slowFile, "--stall-timeout", "3s"); err != nil {
		t.Fatalf("a coordinator sending every 300 ms, after %s: %v", took, err)
	}
	if st, err := os.Stat(slowFile); err != nil || st.Size() != total {
		t.Fatalf("the slow backup: %v %v, want %d bytes", st, err, total)
	}

	// An output that takes nothing for 4 s (a pipe read late), under a 2 s
	// guard, from a coordinator that sends it all at once.
	fast := serveSocket(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte{'d'}, total))
	})
	r, w, err = os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(4 * time.Second)
		b, _ := io.ReadAll(r)
		got <- len(b)
	}()
	os.Stdout = w
	_, err = runBounded(t, fast, 20*time.Second, "-", "--stall-timeout", "2s")
	os.Stdout = stdout
	w.Close()
	if n := <-got; err != nil || n != total {
		t.Fatalf("backup - to an output read late: %d bytes, %v; want %d and no error", n, err, total)
	}
}

// TestClusterBackupBrokenStream: a coordinator that aborts the copy after
// part of it (its copy failed, or the leader a follower relays went away)
// is said to have broken the backup after so many bytes, FILE left as it
// was; not "is the coordinator running?", which it was.
func TestClusterBackupBrokenStream(t *testing.T) {
	socket := serveSocket(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Hostplane-Node", "c1")
		_, _ = w.Write(make([]byte, 65536))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	file := filepath.Join(t.TempDir(), "state.hpsnap")
	_, err := runBounded(t, socket, 10*time.Second, file)
	if err == nil || !strings.Contains(err.Error(), "the backup broke after 65536 bytes: unexpected EOF") ||
		!strings.Contains(err.Error(), file+" was not written") || strings.Contains(err.Error(), "is the coordinator running") {
		t.Fatalf("a stream aborted after 64 KiB: %v", err)
	}
	if _, serr := os.Stat(file); serr == nil {
		t.Fatalf("a broken backup left %s", file)
	}
}

// TestClusterBackupRestoreFileRefusals: a restore of a directory and a
// backup into a directory that does not exist are usage errors naming what
// the operator typed, before any coordinator is asked. Before, the first was
// "admin socket …: read DIR: is a directory (is the coordinator running?)",
// the second named the temporary file ("open DIR/.x.tmp-…: no such file").
// A FILE whose directory is a file (or sits below one), or a restore of a
// FILE that does not exist, names which component is wrong; before, "stat
// FILE: not a directory" or "open FILE: no such file or directory" (exit 1).
func TestClusterBackupRestoreFileRefusals(t *testing.T) {
	g := &globals{socket: filepath.Join(t.TempDir(), "none.sock")}
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-dir", "state.hpsnap")
	// A file where FILE's directory, or one above it, should be.
	afile := filepath.Join(dir, "afile")
	if err := os.WriteFile(afile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	inFile, belowFile := filepath.Join(afile, "state.hpsnap"), filepath.Join(afile, "sub", "state.hpsnap")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"restore", dir}, "FILE " + dir + " is a directory"},
		{[]string{"backup", missing}, "FILE " + missing + ": its directory " + filepath.Dir(missing) + " does not exist"},
		{[]string{"backup", inFile}, "FILE " + inFile + ": its directory " + afile + " is not a directory"},
		{[]string{"backup", belowFile}, "FILE " + belowFile + ": its directory " + filepath.Dir(belowFile) + " does not exist: " + afile + " is not a directory"},
		{[]string{"restore", missing}, "FILE " + missing + ": its directory " + filepath.Dir(missing) + " does not exist"},
		{[]string{"restore", inFile}, "FILE " + inFile + ": its directory " + afile + " is not a directory"},
		{[]string{"restore", filepath.Join(dir, "none.hpsnap")}, "FILE " + filepath.Join(dir, "none.hpsnap") + " does not exist"},
	} {
		var ue usageError
		if err := execQuiet(newClusterCmd(g), tc.args...); !errors.As(err, &ue) || err.Error() != tc.want {
			t.Errorf("cluster %v: %v; want the usage error %q", tc.args, err, tc.want)
		}
	}
}
