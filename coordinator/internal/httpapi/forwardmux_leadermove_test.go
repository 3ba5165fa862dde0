package httpapi

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestChannelRequestEndsWhenTheLeaderMoves: a write a follower forwards on
// the channel to a leader that does not answer ends leaderMoveGrace after
// another coordinator leads, as the proxy's request does (its context ends):
// the client gets the 503 leader_unreachable with Retry-After, the leader's
// handler sees its request cancelled, and the channel goes on carrying other
// requests.
func TestChannelRequestEndsWhenTheLeaderMoves(t *testing.T) {
	h, cancelled := neverAnswering(http.StatusCreated)
	c, _ := channelEnds(t, h)
	a := &API{cfg: Config{NodeID: "f1", ClusterSecret: "the-secret", Timeouts: DefaultTimeouts()}, log: slog.New(slog.DiscardHandler)}
	a.fwd = newForwarder(a)
	lead := followLeader(a.fwd, "leader:1")
	forward := func(path string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "http://f1:8080"+path, bytes.NewReader([]byte(`{}`)))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		run := a.fwd.joinRun("leader:1")
		defer a.fwd.leaveRun(run)
		a.fwd.forwardOnChannel(w, r, "req_1", c, "leader:1", run.done)
		return w
	}

	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() { answered <- forward("/v1/never") }()
	select {
	case w := <-answered:
		t.Fatalf("answered while the leader still leads: %d %s", w.Code, w.Body)
	case <-time.After(leaderMoveGrace + time.Second):
	}
	lead("other:1")
	start := time.Now()
	select {
	case w := <-answered:
		if el := time.Since(start); el < leaderMoveGrace {
			t.Errorf("the request ended %s after the leader moved, within the grace %s", el, leaderMoveGrace)
		}
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "leader_unreachable") || w.Header().Get("Retry-After") != "1" {
			t.Errorf("cut request: %d %q Retry-After %q, want 503 leader_unreachable with Retry-After: 1", w.Code, w.Body, w.Header().Get("Retry-After"))
		}
	case <-time.After(leaderMoveGrace + 5*time.Second):
		t.Fatalf("the request still waits %s after another coordinator leads", leaderMoveGrace+5*time.Second)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the leader's handler was not cancelled")
	}
	lead("leader:1") // it leads again: a new run, the channel serves on
	if w := forward("/v1/again"); w.Code != http.StatusCreated || w.Body.String() != "/v1/again" {
		t.Fatalf("after the cut: %d %q", w.Code, w.Body)
	}
}
