package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestForwardedStatsStreamEndsWithAnErrorEvent: a stats stream a customer
// reads through a follower ends, when the leader goes away mid-stream, as the
// leader's own stream ends when the node drops: the events the leader sent
// whole, then one `event: error` whose data is the error (503
// leader_unreachable), then the end of the response. An event the leader had
// sent only part of is not passed on. The leader goes away by hanging (the
// follower's cut, leaderMoveGrace after another coordinator leads) and by its
// connection breaking; a stream the leader ends itself is passed on as it is.
func TestForwardedStatsStreamEndsWithAnErrorEvent(t *testing.T) {
	const whole = "event: stats\ndata: {\"server_id\":\"srv_1\",\"cpu_percent\":1}\n\n"
	const partial = "event: stats\ndata: {\"server_id\":\"srv_1\",\"cpu"
	const leaderError = "event: error\ndata: {\"statusCode\":503,\"error\":\"Service Unavailable\",\"message\":\"m\",\"code\":\"node_offline\"}\n\n"
	var how atomic.Value // "hang", "break" or "end"
	leaderSrv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/event-stream")
		rw.WriteHeader(http.StatusOK)
		io.WriteString(rw, whole)
		_ = http.NewResponseController(rw).Flush()
		switch how.Load() {
		case "end":
			io.WriteString(rw, leaderError)
			return
		case "break":
			io.WriteString(rw, partial)
			_ = http.NewResponseController(rw).Flush()
			time.Sleep(100 * time.Millisecond)
			panic(http.ErrAbortHandler)
		default:
			io.WriteString(rw, partial)
			_ = http.NewResponseController(rw).Flush()
			<-r.Context().Done()
		}
	}))
	t.Cleanup(leaderSrv.Close)
	leaderAddr := strings.TrimPrefix(leaderSrv.URL, "http://")

	w, lead := followerOf(t, leaderAddr)

	for _, c := range []struct{ how, want string }{
		{"hang", whole + "event: error\ndata: "},
		{"break", whole + "event: error\ndata: "},
		{"end", whole + leaderError},
	} {
		how.Store(c.how)
		lead(leaderAddr)
		resp := w.openGet(context.Background(), "/v1/servers/srv_1/stats?stream=1", "hp_anything")
		if c.how == "hang" {
			lead("10.0.0.9:8443")
		}
		start := time.Now()
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("leader %s mid-stream: the stream ended after %s", c.how, time.Since(start).Round(time.Millisecond))
		got := string(body)
		if resp.StatusCode != 200 || err != nil || !strings.HasPrefix(got, c.want) || !strings.HasSuffix(got, "\n\n") {
			t.Errorf("leader %s mid-stream: %s, %v, the stream as a follower's client read it:\n%q\nwant it to start %q and end at an event's end", c.how, resp.Status, err, got, c.want)
			continue
		}
		if c.how == "end" {
			if got != c.want {
				t.Errorf("a stream the leader ended: %q; want it as sent, %q", got, c.want)
			}
			continue
		}
		var e api.Error
		data := strings.TrimSuffix(strings.TrimPrefix(got, c.want), "\n\n")
		if err := json.Unmarshal([]byte(data), &e); err != nil || e.StatusCode != 503 || e.Code != "leader_unreachable" || e.Message == "" || strings.Contains(data, "\n") {
			t.Errorf("leader %s mid-stream: the error event's data %q (%v); want one line, the 503 leader_unreachable error", c.how, data, err)
		}
	}
}
