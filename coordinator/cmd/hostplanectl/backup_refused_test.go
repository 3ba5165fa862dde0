package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestClusterBackupUnavailableNamesStale: a coordinator that cannot vouch
// for its state (a follower cut off from the leader) answers a backup 503;
// hostplanectl says no copy was written and names `cluster backup --stale
// FILE`, and FILE is not written. Asked with --stale, or answered another
// error, it says only what the coordinator said.
func TestClusterBackupUnavailableNamesStale(t *testing.T) {
	status := http.StatusServiceUnavailable
	socket := serveSocket(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(api.NewError(status, "read_unconfirmed", "this coordinator cannot confirm it is up to date"))
	})
	file := filepath.Join(t.TempDir(), "state.hpsnap")
	hint := "(no copy was written; to copy this coordinator's own state, which may miss writes acknowledged elsewhere: hostplanectl cluster backup --stale " + file + ")"
	for _, tc := range []struct {
		status int
		args   []string
		hint   bool
	}{
		{http.StatusServiceUnavailable, []string{file}, true},
		{http.StatusServiceUnavailable, []string{"--stale", file}, false},
		{http.StatusInternalServerError, []string{file}, false},
	} {
		status = tc.status
		err := execQuiet(newClusterCmd(&globals{socket: socket}), append([]string{"backup"}, tc.args...)...)
		if api.StatusOf(err) != tc.status || !strings.Contains(err.Error(), "cannot confirm it is up to date") {
			t.Fatalf("backup %q answered %d: %v; want the coordinator's %d and its message", tc.args, tc.status, err, tc.status)
		}
		if got := strings.Contains(err.Error(), hint); got != tc.hint {
			t.Fatalf("backup %q answered %d: %q; want the --stale hint %v", tc.args, tc.status, err, tc.hint)
		}
		if _, serr := os.Stat(file); serr == nil {
			t.Fatalf("backup %q answered %d left %s", tc.args, tc.status, file)
		}
	}
}
