package audit

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// jsonrpcError is the JSON-RPC error object of an answer body (plain JSON or
// the last SSE data line), or nil.
func jsonrpcError(body string) map[string]any {
	data := body
	if strings.Contains(body, "data:") {
		for _, l := range strings.Split(body, "\n") {
			if d, ok := strings.CutPrefix(l, "data:"); ok {
				data = strings.TrimSpace(d)
			}
		}
	}
	var out map[string]any
	if json.Unmarshal([]byte(data), &out) != nil {
		return nil
	}
	e, _ := out["error"].(map[string]any)
	return e
}

// TestMCPMalformedJSONRPC: what a broken or hostile client posts to /mcp
// (before and within a session, through the leader and a follower) gets a
// 4xx or a JSON-RPC error within seconds: never a 5xx, never a hang, never a
// result. Batches (removed from MCP in 2025-06-18), a wrong or missing
// jsonrpc version, ids and params of the wrong type, deep nesting, a body
// over 1 MiB, invalid UTF-8, the wrong Content-Type or Accept, an unknown
// protocol version header, unknown methods and tools. After all of it every
// coordinator still answers a well-formed call.
func TestMCPMalformedJSONRPC(t *testing.T) {
	r := sharedMCPRig(t, "mcp")
	ld, _ := r.c.LeaderIndex(20 * time.Second)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"audit","version":"1"}}}`
	deep := strings.Repeat("[", 200000) + strings.Repeat("]", 200000)
	deepObj := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	bodies := map[string]string{
		"batch":               `[` + init + `,` + init + `]`,
		"empty batch":         `[]`,
		"jsonrpc 1.0":         strings.Replace(init, `"2.0"`, `"1.0"`, 1),
		"no jsonrpc":          strings.Replace(init, `"jsonrpc":"2.0",`, ``, 1),
		"jsonrpc number":      strings.Replace(init, `"2.0"`, `2`, 1),
		"id object":           strings.Replace(init, `"id":1`, `"id":{"a":1}`, 1),
		"id array":            strings.Replace(init, `"id":1`, `"id":[1]`, 1),
		"id huge":             strings.Replace(init, `"id":1`, `"id":1e400`, 1),
		"method number":       `{"jsonrpc":"2.0","id":1,"method":5}`,
		"no method":           `{"jsonrpc":"2.0","id":1}`,
		"params string":       `{"jsonrpc":"2.0","id":1,"method":"initialize","params":"x"}`,
		"params deep array":   `{"jsonrpc":"2.0","id":1,"method":"initialize","params":` + deep + `}`,
		"params deep object":  `{"jsonrpc":"2.0","id":1,"method":"initialize","params":` + deepObj + `}`,
		"unclosed deep":       `{"jsonrpc":"2.0","id":1,"method":"initialize","params":` + strings.Repeat("[", 300000),
		"over 1 MiB":          `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"` + strings.Repeat("a", 1<<20+10) + `"}}`,
		"invalid utf-8":       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"init\xff\xfe\"}",
		"null":                `null`,
		"number":              `42`,
		"string":              `"x"`,
		"empty":               ``,
		"not json":            `hello`,
		"two objects":         init + init,
		"result without call": `{"jsonrpc":"2.0","id":99,"result":{}}`,
	}
	check := func(t *testing.T, what string, st int, body string, allowOK bool) {
		t.Helper()
		switch {
		case st == 0:
			t.Errorf("%s: no answer in 15 s (%s)", what, body)
		case st >= 500:
			t.Errorf("%s: %d %.300s; want a 4xx or a JSON-RPC error", what, st, body)
		case st == 202 || allowOK:
			// Taken as a notification or a response: nothing answered.
		case st/100 == 2 && jsonrpcError(body) == nil && !strings.Contains(body, `"isError":true`):
			t.Errorf("%s: %d %.300s; want a 4xx, a JSON-RPC error or a tool error", what, st, body)
		}
	}
	for _, i := range []int{ld, r.follower()} {
		ep := r.c.URL(i) + "/mcp"
		m := &mcpSession{t: t, endpoint: ep, token: r.keyA}
		m.initialize()
		for name, b := range bodies {
			st, _, body := rawMCP(t, "POST", ep, r.keyA, "", b, nil, 15*time.Second)
			// Before a session the SDK still takes a batch (protocol
			// versions before 2025-06-18 had them) and reads the first of
			// two concatenated objects: an initialize answered, no harm.
			check(t, fmt.Sprintf("coordinator %d, no session, %s", i, name), st, body, name == "batch" || name == "two objects")
			st, _, body = rawMCP(t, "POST", ep, r.keyA, m.session, b, nil, 15*time.Second)
			// A response the server did not ask for is accepted (202).
			check(t, fmt.Sprintf("coordinator %d, in a session, %s", i, name), st, body, name == "result without call")
		}
		for name, tc := range map[string]struct {
			body string
			hdr  map[string]string
		}{
			"text/plain":              {init, map[string]string{"Content-Type": "text/plain"}},
			"no Content-Type":         {init, map[string]string{"Content-Type": ""}},
			"Accept json only":        {init, map[string]string{"Accept": "application/json"}},
			"Accept html":             {init, map[string]string{"Accept": "text/html"}},
			"protocol version 1999":   {`{"jsonrpc":"2.0","id":2,"method":"ping"}`, map[string]string{"MCP-Protocol-Version": "1999-01-01"}},
			"protocol version garble": {`{"jsonrpc":"2.0","id":2,"method":"ping"}`, map[string]string{"MCP-Protocol-Version": "latest; DROP"}},
		} {
			st, _, body := rawMCP(t, "POST", ep, r.keyA, m.session, tc.body, tc.hdr, 15*time.Second)
			check(t, fmt.Sprintf("coordinator %d, %s", i, name), st, body, false)
			if name == "protocol version 1999" && st != 400 {
				t.Errorf("coordinator %d: MCP-Protocol-Version 1999-01-01: %d %.200s; want 400 (MCP: an unsupported version)", i, st, body)
			}
		}
		for name, b := range map[string]string{
			"unknown method":       `{"jsonrpc":"2.0","id":3,"method":"admin/shutdown","params":{}}`,
			"unknown tool":         `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_everything","arguments":{}}}`,
			"arguments array":      `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_account","arguments":[1,2]}}`,
			"arguments string":     `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"get_account","arguments":"x"}}`,
			"name number":          `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":7}}`,
			"resources/read file":  `{"jsonrpc":"2.0","id":8,"method":"resources/read","params":{"uri":"file:///etc/passwd"}}`,
			"prompts/get":          `{"jsonrpc":"2.0","id":9,"method":"prompts/get","params":{"name":"x"}}`,
			"sampling from client": `{"jsonrpc":"2.0","id":10,"method":"sampling/createMessage","params":{"messages":[]}}`,
			"second initialize":    init,
		} {
			st, _, body := rawMCP(t, "POST", ep, r.keyA, m.session, b, nil, 15*time.Second)
			check(t, fmt.Sprintf("coordinator %d, %s", i, name), st, body, name == "second initialize")
			if strings.Contains(body, "root:") {
				t.Errorf("coordinator %d, %s: %.300s", i, name, body)
			}
		}
	}
	for i := range r.c.Len() {
		m := &mcpSession{t: t, endpoint: r.c.URL(i) + "/mcp", token: r.keyA}
		m.initialize()
		if _, out := m.post("tools/call", map[string]any{"name": "get_account", "arguments": map[string]any{}}, false); !strings.Contains(fmt.Sprint(out), r.accA.ID) {
			t.Errorf("coordinator %d after the malformed requests: %v", i, out)
		}
	}
}
