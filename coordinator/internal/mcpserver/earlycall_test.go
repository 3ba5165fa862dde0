package mcpserver_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/tests/framework"
)

// TestMCPCallBeforeInitializedCountedOnce: a tools/call on a session whose
// initialize was answered but whose notifications/initialized the SDK has not
// handled yet (its POST is answered 202 before it is handled, and a client
// may send it late or not at all: the SDK serves the call either way) costs
// the key one request, as on any session: the /v1 route counts it, /mcp does
// not count it again.
func TestMCPCallBeforeInitializedCountedOnce(t *testing.T) {
	c := testcluster.New(t, 1, testcluster.WithRateLimit(20))
	_, key := c.NewAccount("mcp-early@example.com", readScopes...)
	base := c.URL(0)
	resp, raw := framework.Fetch(t, nil, mcpserver.RPCRequest(base+"/mcp", key, "", mcpserver.InitializeBody))
	sess := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sess == "" {
		t.Fatalf("initialize: %d %s", resp.StatusCode, raw)
	}
	remaining := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/v1/account", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, raw := framework.Fetch(t, nil, req)
		n, err := strconv.Atoi(resp.Header.Get("X-RateLimit-Remaining"))
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("GET /v1/account: %d %q %s", resp.StatusCode, resp.Header.Get("X-RateLimit-Remaining"), raw)
		}
		return n
	}
	before := remaining()
	const calls = 3
	for i := 0; i < calls; i++ {
		resp, raw := framework.Fetch(t, nil, mcpserver.RPCRequest(base+"/mcp", key, sess,
			fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get_account","arguments":{}}}`, i+2)))
		if resp.StatusCode != 200 || !strings.Contains(string(raw), "mcp-early@example.com") {
			t.Fatalf("tools/call %d before notifications/initialized: %d %s", i, resp.StatusCode, raw)
		}
	}
	// The REST read itself costs one.
	if used := before - remaining() - 1; used != calls {
		t.Fatalf("%d tools/call on a session not yet initialized cost %d requests of the key's limit, want %d", calls, used, calls)
	}
}
