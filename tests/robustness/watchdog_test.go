package robustness

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/tests/framework"
)

// TestIdleUnderWatchdogStaysReady: three coordinators run as systemd runs them
// with WatchdogSec= (NOTIFY_SOCKET and WATCHDOG_USEC set; a 200 ms watchdog,
// so the leader's progress check commits a Raft barrier about every 100 ms).
// Left idle — no command, only barriers — for over 64 of them, every member
// still answers /readyz 200 and serves a linearizable read, and each sent
// READY=1. Before the fix the FSM's applied index (commands only) was compared
// with the commit index: the leader's /readyz said "catching up" until the next
// write, READY=1 could be missed for ever (the packaging test failed so), and
// after 64 barriers every linearizable read answered 503 no_leader.
func TestIdleUnderWatchdogStaysReady(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	readies := make(chan struct{}, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if strings.Contains(string(buf[:n]), "READY=1") {
				readies <- struct{}{}
			}
		}
	}()
	// The coordinators inherit this process's environment.
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	pc := framework.NewProcessCluster(t, framework.ProcessOptions{Bin: coordinatorBin(t), NodePrefix: "w", RaftTimeout: framework.RaftTimeout})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, key, err := pc.NewAccount(ctx, "watchdog@example.com")
	if err != nil {
		t.Fatal(err)
	}
	leader := pc.Leader()
	start := readyz(t, leader.URL())
	// Idle: only the watchdog's barriers go through the log. Wait until the
	// case holds: over 64 barriers since the last command. A command of the
	// cluster's own landing meanwhile (under load, say, one a new leader
	// writes after an election) starts the count again rather than failing
	// the test; the case must still be seen within 60 s.
	for deadline := time.Now().Add(60 * time.Second); ; {
		time.Sleep(time.Second)
		st := readyz(t, leader.URL())
		if st.CommitIndex >= start.CommitIndex+100 && st.FSMApplied < st.CommitIndex-64 {
			t.Logf("idle: the leader's commit index went from %d to %d, its FSM is at %d", start.CommitIndex, st.CommitIndex, st.FSMApplied)
			break
		}
		if time.Now().After(deadline) {
			if st.CommitIndex >= start.CommitIndex+100 {
				t.Fatalf("the FSM is at %d, commit index %d: fewer than 64 barriers since the last command after 60 s, the case is not shown", st.FSMApplied, st.CommitIndex)
			}
			t.Fatalf("the leader's commit index moved from %d to %d in 60s: no watchdog barriers?", start.CommitIndex, st.CommitIndex)
		}
	}
	for _, p := range pc.Nodes {
		if st := readyz(t, p.URL()); st.code != http.StatusOK {
			t.Errorf("%s idle under the watchdog: /readyz %d %q (applied %d of %d)", p.ID, st.code, st.Status, st.FSMApplied, st.CommitIndex)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/v1/account", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s idle under the watchdog: linearizable GET /v1/account %d %s", p.ID, resp.StatusCode, body)
		}
	}
	for i := range pc.Nodes {
		select {
		case <-readies:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d READY=1 of %d coordinators", i, len(pc.Nodes))
		}
	}
}

type readyzState struct {
	code        int
	Status      string `json:"status"`
	CommitIndex uint64 `json:"commit_index"`
	FSMApplied  uint64 `json:"fsm_applied_index"`
}

func readyz(t *testing.T, base string) readyzState {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	st := readyzState{code: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("%s/readyz: %v", base, err)
	}
	return st
}
