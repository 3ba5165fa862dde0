package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestAdminForwardEndsWhenTheLeaderMoves: an admin command a follower
// forwards to a leader that does not answer ends leaderMoveGrace after
// another coordinator leads, a 503 leader_unreachable with Retry-After, as a
// /v1 request does (not after the proxy's 30 s); a backup the leader has
// started to stream is not cut when leadership moves on meanwhile: the
// operator gets the whole copy.
func TestAdminForwardEndsWhenTheLeaderMoves(t *testing.T) {
	const chunks = 12 // one per 250 ms: 3 s, past the grace
	leaderSrv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/internal/admin/cluster/backup":
			rw.Header().Set("Content-Type", "application/octet-stream")
			rw.WriteHeader(http.StatusOK)
			for i := range chunks {
				fmt.Fprintf(rw, "chunk %02d\n", i)
				_ = http.NewResponseController(rw).Flush()
				time.Sleep(250 * time.Millisecond)
			}
		default: // hung
			<-r.Context().Done()
		}
	}))
	t.Cleanup(leaderSrv.Close)
	leaderAddr := strings.TrimPrefix(leaderSrv.URL, "http://")

	w, lead := followerOf(t, leaderAddr)
	admin := adminURL(t, w.a)

	// The backup: its headers come, then leadership moves on.
	resp, err := http.Get(admin + "/admin/cluster/backup")
	if err != nil {
		t.Fatal(err)
	}
	lead("10.0.0.9:8443")
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || strings.Count(string(body), "chunk") != chunks {
		t.Errorf("a backup streaming from the leader through a follower while leadership moved: %s, %d of %d chunks, %v; want it whole",
			resp.Status, strings.Count(string(body), "chunk"), chunks, err)
	}

	// A command the leader does not answer.
	lead(leaderAddr)
	go func() {
		time.Sleep(300 * time.Millisecond)
		lead("10.0.0.9:8443")
	}()
	start := time.Now()
	resp, err = http.Get(admin + "/admin/accounts/acc_1")
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	var e api.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != 503 || e.Code != "leader_unreachable" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("an admin read forwarded to a leader that does not answer, another leading: %s %q, Retry-After %q; want 503 leader_unreachable with Retry-After",
			resp.Status, e.Code, resp.Header.Get("Retry-After"))
	}
	if took < leaderMoveGrace || took > leaderMoveGrace+3*time.Second {
		t.Errorf("answered after %s; want %s (the grace) after the leader moved, not much more", took, leaderMoveGrace)
	}
}

// followerOf is a coordinator with a cluster secret that follows the leader
// whose API is at leaderAddr (the address its state records for the
// leader); lead(addr) makes the forwarder's watch see addr lead.
func followerOf(t *testing.T, leaderAddr string) (w *whAPI, lead func(addr string)) {
	w = newWHAPI(t)
	w.a.cfg.ClusterSecret = "follower-of-secret"
	w.apply(fsm.CmdNodeRegister, fsm.NodeRegister{ID: w.a.raft.LeaderID(), APIAddr: leaderAddr})
	w.a.raft = followerView{w.a.raft, new(atomic.Bool)}
	var leader atomic.Pointer[string]
	lead = func(addr string) { leader.Store(&addr) }
	lead(leaderAddr)
	w.a.fwd.runs.leader = func() string { return *leader.Load() }
	return w, lead
}
