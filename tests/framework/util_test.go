package framework

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/client"
)

// TestScanFilesPassesOverVanishedFiles: a file removed between the walk
// listing it and reading it (a running daemon renames and removes its
// files) is passed over, not an error; a missing root is one.
func TestScanFilesPassesOverVanishedFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	n, err := ScanFiles(dir, func(_ string, raw []byte) {
		seen = append(seen, string(raw))
		if err := os.Remove(filepath.Join(dir, "b")); err != nil {
			t.Fatal(err)
		}
	})
	if n != 1 || err != nil || !slices.Equal(seen, []string{"a"}) {
		t.Fatalf("ScanFiles read %d files %q, %v; want a alone and no error", n, seen, err)
	}
	if _, err := ScanFiles(filepath.Join(dir, "none"), func(string, []byte) {}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing root: %v, want it not found", err)
	}
}

// TestWaitUp: the launchers' start-up wait returns once the probe answers,
// says so when the daemon exits first, and gives the probe's last error when
// the time runs out.
func TestWaitUp(t *testing.T) {
	n := 0
	gone, err := waitUp(nil, time.Minute, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if gone || err != nil || n != 3 {
		t.Fatalf("answering on the third probe: gone %v, err %v, probes %d", gone, err, n)
	}
	exited := make(chan struct{})
	close(exited)
	gone, err = waitUp(exited, time.Minute, time.Hour, func() error { return errors.New("refused") })
	if !gone || err == nil || err.Error() != "refused" {
		t.Fatalf("exited daemon: gone %v, err %v", gone, err)
	}
	start := time.Now()
	gone, err = waitUp(nil, 50*time.Millisecond, 10*time.Millisecond, func() error { return errors.New("still starting") })
	if gone || err == nil || err.Error() != "still starting" || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("timeout: gone %v, err %v after %s", gone, err, time.Since(start))
	}
}

// TestAnswers200: nil for 200 only; another status is the error's text, and
// the header asked for is sent.
func TestAnswers200(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "k" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	if err := answers200(http.DefaultClient, srv.URL, "X-API-Key", "k"); err != nil {
		t.Fatalf("200: %v", err)
	}
	if err := answers200(http.DefaultClient, srv.URL, "", ""); err == nil || err.Error() != "401 Unauthorized" {
		t.Fatalf("401: %v", err)
	}
	srv.Close()
	if err := answers200(http.DefaultClient, srv.URL, "", ""); err == nil || strings.Contains(err.Error(), "200") {
		t.Fatalf("closed server: %v", err)
	}
}

// TestParallel: every index is called once, by no more goroutines at a time
// than workers; a worker stops at its error, and the first error is returned.
func TestParallel(t *testing.T) {
	const n, workers = 1000, 7
	var mu sync.Mutex
	calls := make([]int, n)
	var running, most int
	err := Parallel(n, workers, func(i int) error {
		mu.Lock()
		calls[i]++
		running++
		most = max(most, running)
		mu.Unlock()
		time.Sleep(10 * time.Microsecond)
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range calls {
		if c != 1 {
			t.Fatalf("index %d called %d times, want 1", i, c)
		}
	}
	if most > workers {
		t.Fatalf("%d calls at once, want at most %d workers", most, workers)
	}

	// One worker: it stops at its error, so no index after it is called.
	var seen []int
	boom := errors.New("boom")
	err = Parallel(10, 1, func(i int) error {
		seen = append(seen, i)
		if i == 3 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || !slices.Equal(seen, []int{0, 1, 2, 3}) {
		t.Fatalf("error at 3 with one worker: %v after calls %v, want boom after 0..3", err, seen)
	}
}

// TestWaitAction: the action is polled through GET /v1/actions/{id} past
// a failed call and unfinished states, and returned once it has finished.
func TestWaitAction(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	answers := []string{"503", api.ActionPending, api.ActionRunning, api.ActionFailed}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.URL.Path)
		next := answers[min(len(seen), len(answers))-1]
		if next == "503" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(api.Action{ID: "act_1", Command: "server.reboot", Status: next})
	}))
	defer srv.Close()
	a := WaitAction(t, client.New(srv.URL, "k"), "act_1", time.Minute)
	if a.ID != "act_1" || a.Status != api.ActionFailed {
		t.Fatalf("finished action %+v, want act_1 failed", a)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(answers) || seen[0] != "/v1/actions/act_1" {
		t.Fatalf("requests %q, want %d of /v1/actions/act_1", seen, len(answers))
	}
}

// TestMetrics: every series of the page by name and labels as printed (a
// label value with a space included), comments left out, asked for
// uncompressed.
func TestMetrics(t *testing.T) {
	var encoding string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		encoding = r.Header.Get("Accept-Encoding")
		_, _ = w.Write([]byte("# HELP hostplane_fsm_applied_index The index.\n# TYPE hostplane_fsm_applied_index gauge\n" +
			"hostplane_fsm_applied_index 42\n" +
			`hostplane_http_requests_total{method="GET",route="GET /v1/account",status="200"} 3` + "\n" +
			`hostplane_raft_apply_duration_seconds_bucket{le="+Inf"} 7` + "\n"))
	}))
	defer srv.Close()
	got := Metrics(t, srv.URL)
	want := map[string]float64{
		"hostplane_fsm_applied_index": 42,
		`hostplane_http_requests_total{method="GET",route="GET /v1/account",status="200"}`: 3,
		`hostplane_raft_apply_duration_seconds_bucket{le="+Inf"}`:                          7,
	}
	if !maps.Equal(got, want) || encoding != "identity" {
		t.Fatalf("Metrics = %v (Accept-Encoding %q), want %v (identity)", got, encoding, want)
	}
}

// TestSimDiesWithTheTest: the test agent (StartSim) is killed when the test
// binary that started it dies without cleaning up.
func TestSimDiesWithTheTest(t *testing.T) {
	DiesWithTheTest(t, func(cmd *exec.Cmd, _ string) error { return startSim(cmd) })
}

// TestChildrenDieWithTheTest: a process started by StartInGroup is killed
// when the test binary that started it dies without cleaning up (as go
// test's -timeout kills it).
func TestChildrenDieWithTheTest(t *testing.T) {
	DiesWithTheTest(t, func(cmd *exec.Cmd, dir string) error {
		_, err := StartInGroup(cmd, filepath.Join(dir, "sleep.log"))
		return err
	})
}

// TestSendSendsThePlainRequest: Send sends the body as JSON (a request
// without one has no Content-Type), hdr after it (overriding), and returns
// the status and the whole body; an answer cut short is still its status,
// with the error and what was read; a refused connection is status 0.
func TestSendSendsThePlainRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cut" {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusTeapot)
			_, _ = w.Write([]byte("partial"))
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]string{"method": r.Method, "type": r.Header.Get("Content-Type"), "x": r.Header.Get("X-Probe"), "body": string(b)})
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, c := range []struct {
		name, method string
		body         []byte
		hdr          map[string]string
		want         map[string]string
	}{
		{"a body", "POST", []byte(`{"a":1}`), map[string]string{"X-Probe": "p"}, map[string]string{"method": "POST", "type": "application/json", "x": "p", "body": `{"a":1}`}},
		{"no body", "GET", nil, nil, map[string]string{"method": "GET", "type": "", "x": "", "body": ""}},
		{"hdr overrides", "PUT", []byte("{}"), map[string]string{"Content-Type": "text/plain"}, map[string]string{"method": "PUT", "type": "text/plain", "x": "", "body": "{}"}},
	} {
		st, raw, err := Send(ctx, srv.Client(), c.method, srv.URL+"/echo", c.body, c.hdr)
		if err != nil || st != http.StatusAccepted {
			t.Fatalf("%s: %d %v", c.name, st, err)
		}
		var got map[string]string
		if err := json.Unmarshal(raw, &got); err != nil || !maps.Equal(got, c.want) {
			t.Errorf("%s: the server saw %s (%v), want %v", c.name, raw, err, c.want)
		}
	}
	st, raw, err := Send(ctx, nil, "GET", srv.URL+"/cut", nil, nil)
	if st != http.StatusTeapot || err == nil || string(raw) != "partial" {
		t.Errorf("an answer cut short: %d %q %v; want 418, \"partial\" and an error", st, raw, err)
	}
	addr := srv.Listener.Addr().String()
	srv.Close()
	if st, _, err := Send(ctx, nil, "GET", "http://"+addr+"/", nil, nil); st != 0 || err == nil {
		t.Errorf("a refused connection: %d %v; want 0 and an error", st, err)
	}
}
