package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestForwardedWriteOnChannelEndsWithItsLeaderRun: a write a client sends to
// a follower, which forward() sends on its channel to a leader that takes it
// and never answers, ends when forward()'s leader run ends: leaderMoveGrace
// after another coordinator leads, and leaderMoveGrace after the follower
// stopped knowing any leader (it is the one cut off). The client gets the
// 503 leader_unreachable with Retry-After then, not after the channel's 30 s
// (forwardTimeout). TestChannelRequestEndsWhenTheLeaderMoves hands the run's
// end to forwardOnChannel itself; this one goes through the public handler
// and forward(), which must pass it on.
func TestForwardedWriteOnChannelEndsWithItsLeaderRun(t *testing.T) {
	const secret = "follower-of-secret" // followerOf's
	reached := make(chan string, 2)
	hung := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.URL.Path
		<-r.Context().Done() // the follower's cancel frame, or the channel closing
	})
	la := &API{cfg: Config{NodeID: "leader", ClusterSecret: secret, Timeouts: DefaultTimeouts()}, log: slog.New(slog.DiscardHandler)}
	la.fwd = newForwarder(la)
	mux := http.NewServeMux()
	mux.Handle("POST "+forwardPath, la.requireClusterToken(la.serveForwardChannel(hung)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("%s %s was proxied to the leader, not sent on the channel", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusBadGateway)
	})
	leaderSrv := httptest.NewServer(mux)
	t.Cleanup(leaderSrv.Close)
	leaderAddr := strings.TrimPrefix(leaderSrv.URL, "http://")

	w, lead := followerOf(t, leaderAddr)
	// The follower's channel closes before the leader's server (its served
	// channel then ends, and with it the hung handlers).
	t.Cleanup(func() { w.a.CloseForwarding(t.Context()) })

	for _, tc := range []struct {
		name string
		path string
		then string // who leads once the request is at the leader ("": no one)
	}{
		{"another coordinator leads", "/v1/tickets/tkt_moved/close", "10.0.0.9:8443"},
		{"no leader is known", "/v1/tickets/tkt_lost/close", ""},
	} {
		lead(leaderAddr)
		answered := make(chan *http.Response, 1)
		go func() {
			req, _ := http.NewRequest("POST", w.srv.URL+tc.path, strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer snc_0123456789012345678901234567890123456789")
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				close(answered)
				return
			}
			answered <- resp
		}()
		select {
		case p := <-reached:
			if p != tc.path {
				t.Fatalf("%s: the leader got %s, want %s", tc.name, p, tc.path)
			}
		case resp := <-answered:
			t.Fatalf("%s: answered before the leader got the request: %v", tc.name, resp)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the request did not reach the leader in 10 s", tc.name)
		}
		lead(tc.then)
		start := time.Now()
		select {
		case resp, ok := <-answered:
			if !ok {
				return
			}
			took := time.Since(start)
			var e api.Error
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || e.Code != "leader_unreachable" || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("%s: %s %q, Retry-After %q; want 503 leader_unreachable with Retry-After: 1",
					tc.name, resp.Status, e.Code, resp.Header.Get("Retry-After"))
			}
			if took < leaderMoveGrace {
				t.Errorf("%s: answered %s after, within the grace %s", tc.name, took, leaderMoveGrace)
			}
		case <-time.After(leaderMoveGrace + 10*time.Second):
			t.Fatalf("%s: the client still waits %s after; its leader run ended %s after (forward() did not hand the run's end to the channel?)",
				tc.name, leaderMoveGrace+10*time.Second, leaderMoveGrace)
		}
	}
}
