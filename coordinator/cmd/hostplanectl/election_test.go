package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestOperatorSeesTheElection runs the real binary against a socket whose
// coordinator answers 503 no_leader with Retry-After (an election) once: a
// read is sent again, and stderr says why the command waits; a write
// without an Idempotency-Key is not, and its error comes with what to do.
func TestOperatorSeesTheElection(t *testing.T) {
	bin := buildCtl(t)
	var reads atomic.Int32
	sock := serveSocket(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method != "GET" || reads.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(503)
			_ = json.NewEncoder(w).Encode(api.NewError(503, "no_leader", "leadership is changing; retry shortly"))
			return
		}
		_ = json.NewEncoder(w).Encode(api.Account{ID: "acc_1", Email: "a@example.com"})
	})

	out, errOut, code := runCtl(t, bin, "--socket", sock, "account", "show", "acc_1")
	if code != 0 || !strings.Contains(out, "acc_1") || reads.Load() != 2 ||
		errOut != "hostplanectl: no leader yet (503 no_leader): sending the command again in 1s\n" {
		t.Errorf("account show during an election: exit %d after %d requests, stdout %q, stderr %q; want the account after 2, one line saying it waits",
			code, reads.Load(), out, errOut)
	}

	_, errOut, code = runCtl(t, bin, "--socket", sock, "account", "create", "--email", "b@example.com")
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], "error: 503 Service Unavailable: leadership is changing") ||
		!strings.HasPrefix(lines[1], "(no leader answered: the cluster is electing one") {
		t.Errorf("account create during an election: exit %d, stderr %q; want exit 1, the 503 and the hint on what to do", code, errOut)
	}
}
