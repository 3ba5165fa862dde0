package mcpserver

import (
	"net/http"
	"strings"
	"sync"

	"github.com/hostplane/hostplane/tests/framework"
)

// InitializeBody is an initialize request for protocol 2025-11-25.
const InitializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`

// RPCRequest is a JSON-RPC POST to url (an /mcp endpoint, or the path /mcp
// for a handler called in-process) as MCP clients send it: on session sess
// when set, with the bearer key when set.
func RPCRequest(url, key, sess, body string) *http.Request {
	req, err := http.NewRequest("POST", url, strings.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return framework.MCPHeaders(req, key, sess, "2025-11-25")
}

// SetFastCalls turns the plain tools/call fast path on or off (on by default)
// for every /mcp handler of the process; it returns the previous setting.
func SetFastCalls(on bool) bool { return !fastOff.Swap(!on) }

// DecodeFast exposes the fast path's JSON-RPC decoder.
var DecodeFast = decodeFast

// HoldSessionCleanup holds back the fast path's clean-up of the sessions
// that end until release is called.
func HoldSessionCleanup() (release func()) {
	g := make(chan struct{})
	cleanupGate.Store(&g)
	return func() { cleanupGate.Store(nil); close(g) }
}

// FastServed is how many calls the fast path answered so far.
func FastServed() int64 { return fastServed.Load() }

var (
	capsMu sync.Mutex
	caps   []*sessionCap
)

func init() {
	sessionCapBuilt = func(c *sessionCap) {
		capsMu.Lock()
		defer capsMu.Unlock()
		caps = append(caps, c)
	}
}

// SessionsHeld is how many MCP sessions account holds against its cap, at
// all the /mcp handlers of the process.
func SessionsHeld(account string) int {
	capsMu.Lock()
	defer capsMu.Unlock()
	n := 0
	for _, c := range caps {
		n += c.count(account)
	}
	return n
}
