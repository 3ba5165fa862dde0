package mcpserver_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// BenchmarkServerCostInProcess measures what one call costs the coordinator
// alone, through its public handler without a network or a client: rest is
// GET /v1/tickets/{id}; mcp the get_ticket tools/call POST on an initialized
// /mcp session (which runs that same request in-process), answered by the
// fast path; mcp_sdkpath the same POST with the fast path off (the SDK's
// transport); ping a JSON-RPC ping on the session, the SDK's floor for one
// message. Each reports the process's CPU time per call (cpu_µs/call): the
// coordinator's, the client being only the request's construction.
func BenchmarkServerCostInProcess(b *testing.B) {
	c := testcluster.New(b, 1, testcluster.WithRateLimit(100_000_000))
	_, key := c.NewAccount("bench-inproc@example.com", api.AllScopes...)
	tk, err := c.Client(0, key).CreateTicket(context.Background(), api.TicketCreateRequest{Subject: "b", Message: "m"}, "")
	if err != nil {
		b.Fatal(err)
	}
	h := c.Nodes[0].Server.APIHandler()
	post := func(sess, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, mcpserver.RPCRequest("/mcp", key, sess, body))
		return w
	}
	w := post("", mcpserver.InitializeBody)
	sess := w.Header().Get("Mcp-Session-Id")
	if sess == "" {
		b.Fatalf("initialize: %d %s", w.Code, w.Body)
	}
	post(sess, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_ticket","arguments":{"id":"` + tk.ID + `"}}}`
	b.Run("rest", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, processCPU(b))
		for i := 0; i < b.N; i++ {
			req := httptest.NewRequest("GET", "/v1/tickets/"+tk.ID, nil)
			req.Header.Set("Authorization", "Bearer "+key)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
		}
	})
	b.Run("mcp", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, processCPU(b))
		for i := 0; i < b.N; i++ {
			w := post(sess, call)
			if w.Code != 200 || !strings.Contains(w.Body.String(), "structuredContent") {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
	b.Run("mcp_sdkpath", func(b *testing.B) {
		defer mcpserver.SetFastCalls(mcpserver.SetFastCalls(false))
		b.ReportAllocs()
		defer reportCPU(b, processCPU(b))
		for i := 0; i < b.N; i++ {
			w := post(sess, call)
			if w.Code != 200 || !strings.Contains(w.Body.String(), "structuredContent") {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
	b.Run("ping", func(b *testing.B) {
		b.ReportAllocs()
		defer reportCPU(b, processCPU(b))
		for i := 0; i < b.N; i++ {
			w := post(sess, `{"jsonrpc":"2.0","id":3,"method":"ping"}`)
			if w.Code != 200 {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
}

// reportCPU reports the process's CPU time per iteration since cpu0.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu_µs/call")
}
