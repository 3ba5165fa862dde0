package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestProbe56MCPIntegerArgumentsAsTheirSchemaSays: a tool's inputSchema
// declares `limit` and `page` as {"type": "integer"}; in JSON Schema (every
// draft since 6, and the 2020-12 that MCP's tool schemas follow) 2.0 is an
// integer: "any number with a zero fractional part". A client that checks
// its arguments against the schema (or writes numbers as floats: Python's
// json.dumps(2.0) is 2.0) sends {"limit": 2.0}; every tool without a
// required argument that takes an integer argument runs with it as with 2,
// through the leader and a follower. 2.5 and 1e400 stay a refusal naming the
// argument. Before, each of these calls was refused: the tool passed "2.0"
// on to the query string, and the operation answered 400 invalid_query
// ("query parameter \"limit\" must be an integer from 1 to 200").
func TestProbe56MCPIntegerArgumentsAsTheirSchemaSays(t *testing.T) {
	r := sharedLightRig(t, "probe56mcp")
	for range 3 {
		r.ticket(0, r.keyA, "probe56 mcp")
	}
	f := r.follower()
	for _, i := range []int{0, f} {
		s := newProbe56MCP(t, r.c.URL(i)+"/mcp", r.keyA)
		list := s.tools(t)
		tried := 0
		for _, tool := range list.Tools {
			if len(tool.InputSchema.Required) > 0 {
				continue
			}
			for arg, p := range tool.InputSchema.Properties {
				if p.Type != "integer" {
					continue
				}
				tried++
				for _, v := range []string{"2", "2.0", "20e-1"} {
					res := s.tool(t, tool.Name, fmt.Sprintf(`{%q: %s}`, arg, v))
					if res.IsError {
						t.Errorf("coordinator %d: %s with %s %s (an integer, as its inputSchema says): refused: %s", i, tool.Name, arg, v, res.text())
					} else if arg == "limit" && strings.Contains(res.text(), `"limit":`) && !strings.Contains(res.text(), `"limit":2`) {
						t.Errorf("coordinator %d: %s with limit %s: %.300s; want a page of limit 2", i, tool.Name, v, res.text())
					}
				}
				for _, v := range []string{"2.5", "1e400"} {
					if res := s.tool(t, tool.Name, fmt.Sprintf(`{%q: %s}`, arg, v)); !res.IsError || !strings.Contains(res.text(), arg) {
						t.Errorf("coordinator %d: %s with %s %s (not an integer): %s; want a refusal naming %s", i, tool.Name, arg, v, res.text(), arg)
					}
				}
			}
		}
		if tried < 8 {
			t.Errorf("coordinator %d: %d integer arguments of tools without a required argument; want the list tools' limit and page", i, tried)
		}
	}
}

// probe56MCP is an MCP session of key at endpoint: JSON-RPC over
// Streamable HTTP, written from the MCP specification.
// probe56Tools is the tools/list answer the MCP probes read: each tool's
// name, read-only hint, and its arguments' JSON types, enums and which are
// required.
type probe56Tools struct {
	Tools []struct {
		Name        string `json:"name"`
		Annotations struct {
			ReadOnly bool `json:"readOnlyHint"`
		} `json:"annotations"`
		InputSchema struct {
			Properties map[string]struct {
				Type any   `json:"type"`
				Enum []any `json:"enum"`
			} `json:"properties"`
			Required []string `json:"required"`
		} `json:"inputSchema"`
	} `json:"tools"`
}

// tools is the session's tools/list answer.
func (s *probe56MCP) tools(t *testing.T) probe56Tools {
	t.Helper()
	var list probe56Tools
	s.call(t, "tools/list", map[string]any{}, &list)
	return list
}

type probe56MCP struct {
	endpoint, key, session string
	next                   int
	hc                     *http.Client
}

func newProbe56MCP(t *testing.T, endpoint, key string) *probe56MCP {
	t.Helper()
	s := &probe56MCP{endpoint: endpoint, key: key, hc: &http.Client{Timeout: 30 * time.Second}}
	var init map[string]any
	s.call(t, "initialize", map[string]any{"protocolVersion": "2025-06-18", "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "probe56", "version": "1"}}, &init)
	s.post(t, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return s
}

// post sends one JSON-RPC message and returns the response's messages.
func (s *probe56MCP) post(t *testing.T, msg string) []json.RawMessage {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.endpoint, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+s.key)
	if s.session != "" {
		req.Header.Set("Mcp-Session-Id", s.session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s %.100s: %s", s.endpoint, msg, resp.Status)
	}
	if id := resp.Header.Get("Mcp-Session-Id"); id != "" {
		s.session = id
	}
	var out []json.RawMessage
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				out = append(out, json.RawMessage(strings.TrimSpace(d)))
			}
		}
		return out
	}
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if b.Len() > 0 {
		out = append(out, b.Bytes())
	}
	return out
}

// call sends request method with params and decodes its result into v.
func (s *probe56MCP) call(t *testing.T, method string, params any, v any) {
	t.Helper()
	s.next++
	p, _ := json.Marshal(params)
	msgs := s.post(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, s.next, method, p))
	for _, m := range msgs {
		var rpc struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal(m, &rpc) != nil || rpc.ID != s.next {
			continue
		}
		if rpc.Error != nil {
			t.Fatalf("%s: %s", method, rpc.Error)
		}
		if err := json.Unmarshal(rpc.Result, v); err != nil {
			t.Fatalf("%s: %v: %s", method, err, rpc.Result)
		}
		return
	}
	t.Fatalf("%s: no answer to request %d among %d messages", method, s.next, len(msgs))
}

// probe56Result is a tools/call result.
type probe56Result struct {
	IsError bool `json:"isError"`
	Content []struct {
		Text string `json:"text"`
	} `json:"content"`
}

func (r probe56Result) text() string {
	var b strings.Builder
	for _, c := range r.Content {
		b.WriteString(c.Text)
	}
	return b.String()
}

// tool calls tool name with args, the arguments' JSON as written, again
// while the answer is the operation's 503 (an election under load: a
// read, sent again as its Retry-After asks), for up to 15 s.
func (s *probe56MCP) tool(t *testing.T, name, args string) probe56Result {
	t.Helper()
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(time.Second) {
		var res probe56Result
		s.call(t, "tools/call", map[string]any{"name": name, "arguments": json.RawMessage(args)}, &res)
		if !res.IsError || !strings.Contains(res.text(), `"statusCode":503`) || time.Now().After(end) {
			return res
		}
		t.Logf("%s %s: %s: called again in 1 s", name, args, res.text())
	}
}
