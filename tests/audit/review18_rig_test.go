package audit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestRigCallSendsAgainOnlyAfterALeadershipChange: rig.call (and so
// rig.write, and its keyless PUT or PATCH) sends a read again after a 503
// with Retry-After that a leadership change answers (no_leader), and
// returns any other 503 with
// Retry-After (node_busy: the node's stats calls all taken, which
// TestStatsStreamsCannotStarveActions asserts) at once, after one request:
// sent again for 15 s, a product 503 a test asserts would be hidden, or
// turn into the 200 it asserts is not served. No cluster: a fake
// coordinator answering as httpapi does (Retry-After, the rate-limit
// headers, the error envelope).
func TestRigCallSendsAgainOnlyAfterALeadershipChange(t *testing.T) {
	doc := []byte(`{"openapi":"3.0.3","info":{"title":"t","version":"1"},"paths":{
	 "/account":{"get":{"responses":{"200":{"description":"ok"},"503":{"description":"unavailable"}}}},
	 "/servers/{id}/stats":{"parameters":[{"name":"id","in":"path","required":true,"schema":{"type":"string"}}],
	   "get":{"responses":{"200":{"description":"ok"},"503":{"description":"unavailable"}}}},
	 "/webhooks/{id}":{"parameters":[{"name":"id","in":"path","required":true,"schema":{"type":"string"}}],
	   "patch":{"responses":{"200":{"description":"ok"},"503":{"description":"unavailable"}}},
	   "delete":{"responses":{"200":{"description":"ok"},"404":{"description":"gone"},"503":{"description":"unavailable"}}}}}}`)
	// Each path answers its code's 503 refusals times (-1: always), then
	// 200 (or then, when set); sent counts its requests.
	type script struct {
		code     string
		refusals int32
		then     int
		sent     atomic.Int32
	}
	scripts := map[string]*script{
		"/v1/account":             {code: "no_leader", refusals: 2},
		"/v1/servers/srv_1/stats": {code: "node_busy", refusals: -1},
		"/v1/webhooks/wh_1":       {code: "no_leader", refusals: 2},
		"/v1/webhooks/wh_2":       {code: "node_busy", refusals: -1},
		"/v1/webhooks/wh_3":       {code: "no_leader", refusals: 1, then: http.StatusNotFound},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
			w.Header().Set(h, "60")
		}
		w.Header().Set("Content-Type", "application/json")
		if sc := scripts[r.URL.Path]; sc != nil {
			if n := sc.sent.Add(1); sc.refusals < 0 || n <= sc.refusals {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusServiceUnavailable)
				_ = json.NewEncoder(w).Encode(api.NewError(http.StatusServiceUnavailable, sc.code, "retry shortly"))
				return
			}
			if sc.then != 0 {
				w.WriteHeader(sc.then)
				_ = json.NewEncoder(w).Encode(api.NewError(sc.then, "not_found", "no such webhook"))
				return
			}
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	r := &rig{t: t, apis: []*framework.API{framework.NewAPI(t, srv.URL, doc)}}

	if rep := r.call(0, "k", "GET", "/v1/account", nil, nil); rep.Status != 200 || scripts["/v1/account"].sent.Load() != 3 {
		t.Errorf("a read answered 503 no_leader twice: %s after %d requests; want the 200 after 3", rep, scripts["/v1/account"].sent.Load())
	}
	start := time.Now()
	rep := r.call(0, "k", "GET", "/v1/servers/srv_1/stats", nil, nil)
	if rep.Status != 503 || rep.Code() != "node_busy" || scripts["/v1/servers/srv_1/stats"].sent.Load() != 1 {
		t.Errorf("a read answered 503 node_busy with Retry-After: %s after %d requests and %v; want that 503 after one request",
			rep, scripts["/v1/servers/srv_1/stats"].sent.Load(), time.Since(start).Round(time.Millisecond))
	}

	if rep := r.write(0, "k", "PATCH", "/v1/webhooks/wh_1", map[string]any{"isActive": true}); rep.Status != 200 || scripts["/v1/webhooks/wh_1"].sent.Load() != 3 {
		t.Errorf("a keyless PATCH answered 503 no_leader twice: %s after %d requests; want the 200 after 3", rep, scripts["/v1/webhooks/wh_1"].sent.Load())
	}
	if rep := r.write(0, "k", "PATCH", "/v1/webhooks/wh_2", map[string]any{"isActive": true}); rep.Status != 503 || scripts["/v1/webhooks/wh_2"].sent.Load() != 1 {
		t.Errorf("a keyless PATCH answered 503 node_busy: %s after %d requests; want that 503 after one request", rep, scripts["/v1/webhooks/wh_2"].sent.Load())
	}
	// rig.remove: a DELETE refused with no_leader (which may have deleted,
	// as a leader_unreachable may) is sent again, and the 404 that answers
	// it means an earlier send deleted it.
	r.remove(t, 0, "k", "/v1/webhooks/wh_3")
	if n := scripts["/v1/webhooks/wh_3"].sent.Load(); n != 2 {
		t.Errorf("a DELETE answered 503 no_leader once: %d requests; want 2 (the 404 after it taken as deleted)", n)
	}
}
