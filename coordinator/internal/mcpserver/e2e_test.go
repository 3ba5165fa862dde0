package mcpserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// bearer adds the key to every request of the MCP client.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

// mcpClient connects the Go SDK's client to node 0's /mcp with key.
func mcpClient(t *testing.T, c *testcluster.Cluster, key string) *mcp.ClientSession {
	t.Helper()
	return mcpClientOn(t, c, 0, key)
}

// mcpClientOn connects the Go SDK's client to node i's /mcp with key.
func mcpClientOn(t *testing.T, c *testcluster.Cluster, i int, key string) *mcp.ClientSession {
	t.Helper()
	tr := &mcp.StreamableClientTransport{
		Endpoint:   c.URL(i) + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{key: key, next: http.DefaultTransport}, Timeout: 30 * time.Second},
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "hp-e2e", Version: "1"}, nil).Connect(context.Background(), tr, nil)
	if err != nil {
		t.Fatalf("connect /mcp: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func listTools(t *testing.T, cs *mcp.ClientSession) map[string]*mcp.Tool {
	t.Helper()
	out := map[string]*mcp.Tool{}
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		out[tool.Name] = tool
	}
	return out
}

func callTool(t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	r, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return r
}

// initSession opens a session on base's /mcp with key over plain HTTP
// (initialize, then notifications/initialized) and returns its id.
func initSession(t *testing.T, base, key string) string {
	t.Helper()
	resp, raw := framework.Fetch(t, nil, mcpserver.RPCRequest(base+"/mcp", key, "", mcpserver.InitializeBody))
	sess := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != 200 || sess == "" {
		t.Fatalf("initialize: %d %s", resp.StatusCode, raw)
	}
	if resp, raw := framework.Fetch(t, nil, mcpserver.RPCRequest(base+"/mcp", key, sess, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %d %s", resp.StatusCode, raw)
	}
	return sess
}

func resultText(t *testing.T, r *mcp.CallToolResult) string {
	t.Helper()
	if len(r.Content) != 1 {
		t.Fatalf("content %+v", r.Content)
	}
	return r.Content[0].(*mcp.TextContent).Text
}

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	return v
}

// rest sends one REST call to node 0 and returns its status and JSON body.
func rest(t *testing.T, c *testcluster.Cluster, key, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, c.URL(0)+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, raw := framework.Fetch(t, nil, req)
	return resp.StatusCode, string(raw)
}

type docOp struct {
	method, path, scope, name string
}

// documentedOps reads every operation of /openapi.json with the tool name
// the naming rule gives it.
func documentedOps(t *testing.T) []docOp {
	t.Helper()
	d, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	var out []docOp
	for path, item := range d.Paths.Map() {
		for method, op := range item.Operations() {
			scope, _ := op.Extensions["x-scope"].(string)
			o := mcpserver.Operation{Method: method, Path: "/v1" + path, Scope: scope}
			out = append(out, docOp{method: method, path: "/v1" + path, scope: scope, name: mcpserver.ToolName(o, op.OperationID)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// readScopes are every *:read scope: a read-only key.
var readScopes = func() []string {
	var out []string
	for _, s := range api.AllScopes {
		if strings.HasSuffix(s, ":read") {
			out = append(out, s)
		}
	}
	return out
}()

// TestMCPEndToEnd runs the Go SDK's client against /mcp of a real coordinator.
func TestMCPEndToEnd(t *testing.T) {
	c := testcluster.New(t, 1)
	acc, fullKey := c.NewAccount("mcp-full@example.com", api.AllScopes...)
	ctx := context.Background()

	t.Run("401 names the protected-resource metadata", func(t *testing.T) {
		for _, auth := range []string{"", "Bearer snc_notakeyatall000000000000000000000000000000", "Basic Zm9vOmJhcg=="} {
			req, _ := http.NewRequest("POST", c.URL(0)+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, raw := framework.Fetch(t, nil, req)
			want := `Bearer resource_metadata="` + c.URL(0) + `/.well-known/oauth-protected-resource/mcp", scope="` + strings.Join(api.DefaultScopes(), " ") + `"`
			if strings.HasPrefix(auth, "Bearer ") { // sent, not good: RFC 6750 §3.1's error code
				want += `, error="invalid_token", error_description="invalid API key"`
			}
			if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != want {
				t.Errorf("Authorization %q: %d, WWW-Authenticate %q; want 401 with %s", auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
			}
			var e api.Error
			if json.Unmarshal(raw, &e) != nil || e.Code == "" {
				t.Errorf("401 body %s: want a JSON error with a code", raw)
			}
			// Without credentials the message says how to send them, as
			// written in the raw body (encoding/json escapes < and >).
			if auth == "" && (!strings.Contains(e.Message, "Authorization: Bearer ") || !strings.Contains(string(raw), e.Message)) {
				t.Errorf("401 body without credentials %s: want a message naming Authorization: Bearer, as written in the body", raw)
			}
		}
	})

	t.Run("a key's IP allow-list applies to /mcp", func(t *testing.T) {
		var k api.KeyCreated
		c.Retry503(func() (err error) {
			k, err = c.Admin(0).CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "office-only", Scopes: readScopes, AllowedCIDRs: []string{"10.0.0.0/8"}})
			return err
		})
		req := mcpserver.RPCRequest(c.URL(0)+"/mcp", k.Key, "", mcpserver.InitializeBody)
		resp, raw := framework.Fetch(t, nil, req)
		if resp.StatusCode != 403 || !strings.Contains(string(raw), "ip_not_allowed") || resp.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("/mcp from 127.0.0.1 with a 10.0.0.0/8 key: %d %s (WWW-Authenticate %q)", resp.StatusCode, raw, resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("the 401's resource_metadata describes /mcp", func(t *testing.T) {
		resp, err := http.Get(c.URL(0) + "/.well-known/oauth-protected-resource/mcp")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var meta struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&meta); err != nil || resp.StatusCode != 200 {
			t.Fatalf("metadata: %d %v", resp.StatusCode, err)
		}
		if meta.Resource != c.URL(0)+"/mcp" || len(meta.AuthorizationServers) == 0 {
			t.Errorf("metadata %+v: want resource %s/mcp and an authorization server", meta, c.URL(0))
		}
	})

	t.Run("protocol versions up to 2025-11-25", func(t *testing.T) {
		for asked, want := range map[string]string{"2026-07-28": "2025-11-25", "2025-11-25": "2025-11-25", "2025-06-18": "2025-06-18", "2024-11-05": "2024-11-05"} {
			req, _ := http.NewRequest("POST", c.URL(0)+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"`+asked+`","capabilities":{},"clientInfo":{"name":"v","version":"1"}}}`))
			req.Header.Set("Authorization", "Bearer "+fullKey)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, raw := framework.Fetch(t, nil, req)
			if resp.StatusCode != 200 || !strings.Contains(string(raw), `"protocolVersion":"`+want+`"`) {
				t.Errorf("initialize asking %s: %d %s; want %s", asked, resp.StatusCode, raw, want)
			}
		}
	})

	t.Run("every /v1 operation is a tool, with its hints", func(t *testing.T) {
		cs := mcpClient(t, c, fullKey)
		if v := cs.InitializeResult().ProtocolVersion; v != "2025-11-25" {
			t.Errorf("negotiated protocol version %q, want 2025-11-25", v)
		}
		tools := listTools(t, cs)
		ops := documentedOps(t)
		if len(tools) != len(ops) {
			t.Errorf("%d tools for %d documented operations", len(tools), len(ops))
		}
		for _, op := range ops {
			tool := tools[op.name]
			if tool == nil {
				t.Errorf("%s %s: no tool %q", op.method, op.path, op.name)
				continue
			}
			a := tool.Annotations
			if a == nil {
				t.Errorf("%s: no annotations", op.name)
				continue
			}
			wantRO := op.method == "GET"
			wantDestructive := op.method == "DELETE" || strings.HasSuffix(op.scope, ":destroy")
			if a.ReadOnlyHint != wantRO {
				t.Errorf("%s: readOnlyHint %v, want %v", op.name, a.ReadOnlyHint, wantRO)
			}
			if !wantRO && (a.DestructiveHint == nil || *a.DestructiveHint != wantDestructive) {
				t.Errorf("%s: destructiveHint %v, want %v", op.name, a.DestructiveHint, wantDestructive)
			}
			in, _ := tool.InputSchema.(map[string]any)
			if in["type"] != "object" || !strings.Contains(tool.Description, op.method+" "+op.path) {
				t.Errorf("%s: input schema %v, description %q", op.name, in, tool.Description)
			}
		}
	})

	t.Run("the document alone gives the route table's operations (hostplane-mcp)", func(t *testing.T) {
		fromDoc, err := mcpserver.OperationsFromDoc(httpapi.OpenAPI)
		if err != nil {
			t.Fatal(err)
		}
		byKey := func(ops []mcpserver.Operation) map[string]mcpserver.Operation {
			m := map[string]mcpserver.Operation{}
			for _, o := range ops {
				m[o.Key()] = o
			}
			return m
		}
		if got, want := byKey(fromDoc), byKey(mcpserver.FromRoutes(c.Nodes[0].Server.API.Routes())); !reflect.DeepEqual(got, want) {
			t.Errorf("operations from openapi.json:\n%v\nfrom the route table:\n%v", got, want)
		}
	})

	_, roKey := c.NewAccount("mcp-ro@example.com", readScopes...)
	t.Run("a read-only key lists only read tools", func(t *testing.T) {
		tools := listTools(t, mcpClient(t, c, roKey))
		want := 0
		for _, op := range documentedOps(t) {
			if op.method == "GET" {
				want++
			}
		}
		if len(tools) != want {
			t.Errorf("%d tools, want the %d read operations", len(tools), want)
		}
		for name, tool := range tools {
			if !tool.Annotations.ReadOnlyHint {
				t.Errorf("read-only key lists %s (not read-only)", name)
			}
		}
	})

	_, hostingKey := c.NewAccount("mcp-hosting@example.com", api.ScopeHostingRead)
	t.Run("a hosting-only key lists the action tool its route serves it", func(t *testing.T) {
		// GET /v1/actions/{id} takes hosting:read for hosting actions
		// (Route.AltScope): the tool is listed for such a key, as its REST
		// route serves it, and tools for servers:read only are not.
		tools := listTools(t, mcpClient(t, c, hostingKey))
		for _, name := range []string{"get_action", "list_actions"} {
			if tools[name] == nil {
				t.Errorf("a hosting:read key does not list %s (%d tools)", name, len(tools))
			}
		}
		if tools["list_servers"] != nil {
			t.Errorf("a hosting:read key lists list_servers")
		}
	})

	cs := mcpClient(t, c, fullKey)
	t.Run("a tool call returns what the REST call returns", func(t *testing.T) {
		st, created := rest(t, c, fullKey, "POST", "/v1/tickets", `{"subject":"Disk full","message":"help","department":"technical","priority":"high"}`)
		if st != 201 {
			t.Fatalf("create ticket: %d %s", st, created)
		}
		id := decode(t, created).(map[string]any)["id"].(string)
		for _, tc := range []struct {
			tool string
			args map[string]any
			path string
		}{
			{"get_ticket", map[string]any{"id": id}, "/v1/tickets/" + id},
			{"list_tickets", map[string]any{"limit": 10}, "/v1/tickets?limit=10"},
			{"get_account", nil, "/v1/account"},
			{"get_wallet", nil, "/v1/billing/wallet"},
		} {
			r := callTool(t, cs, tc.tool, tc.args)
			st, body := rest(t, c, fullKey, "GET", tc.path, "")
			if r.IsError || st != 200 {
				t.Fatalf("%s: tool error %v (%s), REST %d", tc.tool, r.IsError, resultText(t, r), st)
			}
			if got, want := decode(t, resultText(t, r)), decode(t, body); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: tool answered\n%s\nREST answered\n%s", tc.tool, resultText(t, r), body)
			}
			sc, _ := json.Marshal(r.StructuredContent)
			if !reflect.DeepEqual(decode(t, string(sc)), decode(t, body)) {
				t.Errorf("%s: structured content %s differs from REST %s", tc.tool, sc, body)
			}
		}
		// An error is the REST error (each has its own request id).
		r := callTool(t, cs, "get_ticket", map[string]any{"id": "tkt_doesnotexist"})
		st, body := rest(t, c, fullKey, "GET", "/v1/tickets/tkt_doesnotexist", "")
		got, want := decode(t, resultText(t, r)).(map[string]any), decode(t, body).(map[string]any)
		delete(got, "request_id")
		delete(want, "request_id")
		if !r.IsError || st != 404 || r.Meta["hostplane/status"] != 404.0 || !reflect.DeepEqual(got, want) {
			t.Errorf("get_ticket of no ticket: tool %v %s, REST %d %s", r.IsError, resultText(t, r), st, body)
		}
	})

	t.Run("writes go through idempotency and the audit log", func(t *testing.T) {
		args := map[string]any{"idempotency_key": "mcp-idem-1",
			"body": map[string]any{"subject": "From an agent", "message": "hello", "department": "billing", "priority": "low"}}
		r1 := callTool(t, cs, "create_ticket", args)
		r2 := callTool(t, cs, "create_ticket", args)
		if r1.IsError || r2.IsError {
			t.Fatalf("create_ticket: %s / %s", resultText(t, r1), resultText(t, r2))
		}
		id1 := decode(t, resultText(t, r1)).(map[string]any)["id"]
		id2 := decode(t, resultText(t, r2)).(map[string]any)["id"]
		if id1 != id2 || r1.Meta["hostplane/status"] != 201.0 {
			t.Fatalf("idempotent retry made another ticket (%v, %v) or status %v", id1, id2, r1.Meta["hostplane/status"])
		}
		// Another body with the same key is the REST 422.
		args["body"].(map[string]any)["subject"] = "Other"
		if r := callTool(t, cs, "create_ticket", args); !r.IsError || r.Meta["hostplane/status"] != 422.0 {
			t.Errorf("same key, other body: %s", resultText(t, r))
		}
		if st, _ := rest(t, c, fullKey, "GET", "/v1/tickets/"+id1.(string), ""); st != 200 {
			t.Errorf("the ticket made through MCP is not readable over REST: %d", st)
		}
		keys, err := c.Admin(0).Keys(ctx, acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		keyID := ""
		for _, k := range keys {
			if k.Name == "test" { // fullKey, as testcluster names it
				keyID = k.ID
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			usage, err := c.Admin(0).KeyUsage(ctx, keyID)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, u := range usage {
				if u.Method == "POST" && u.Path == "/v1/tickets" && u.Status == 201 && u.IP == "127.0.0.1" {
					n++
				}
			}
			if n >= 3 { // one REST create, two MCP creates
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("key usage shows %d POST /v1/tickets 201s from 127.0.0.1, want 3: %+v", n, usage)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("bad arguments are refused naming the field", func(t *testing.T) {
		r := callTool(t, cs, "get_ticket", map[string]any{})
		if !r.IsError || !strings.Contains(resultText(t, r), `\"id\"`) {
			t.Errorf("missing id: %s", resultText(t, r))
		}
		r = callTool(t, cs, "get_ticket", map[string]any{"id": "tkt_x", "colour": "red"})
		if !r.IsError || !strings.Contains(resultText(t, r), "colour") {
			t.Errorf("unknown argument: %s", resultText(t, r))
		}
		r = callTool(t, cs, "create_ticket", map[string]any{"body": map[string]any{"subject": 5, "message": "m"}})
		if !r.IsError || r.Meta["hostplane/status"] != 400.0 || !strings.Contains(resultText(t, r), "subject") {
			t.Errorf("wrong body type: %s", resultText(t, r))
		}
	})

	t.Run("a destructive tool without servers:destroy is refused", func(t *testing.T) {
		_, key := c.NewAccount("mcp-nodestroy@example.com") // default scopes: no servers:destroy
		ncs := mcpClient(t, c, key)
		tools := listTools(t, ncs)
		for _, name := range []string{"terminate_server", "reinstall_server", "revert_server_snapshot"} {
			if tools[name] != nil {
				t.Errorf("%s listed for a key without servers:destroy", name)
			}
		}
		if tools["list_servers"] == nil || tools["create_ticket"] == nil {
			t.Errorf("default-scope key misses list_servers/create_ticket: %d tools", len(tools))
		}
		// The MCP authorization spec's insufficient-scope error: HTTP 403
		// with a challenge naming the scope to step up to.
		_, err := ncs.CallTool(ctx, &mcp.CallToolParams{Name: "terminate_server", Arguments: map[string]any{"id": "srv_doesnotexist"}})
		if err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Errorf("terminate_server without the scope: %v; want the HTTP 403 insufficient_scope challenge", err)
		}
		sess := initSession(t, c.URL(0), key)
		resp, raw := framework.Fetch(t, nil, mcpserver.RPCRequest(c.URL(0)+"/mcp", key, sess,
			`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"terminate_server","arguments":{"id":"srv_doesnotexist"}}}`))
		var e api.Error
		_ = json.Unmarshal(raw, &e)
		wa := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != 403 || e.Code != "missing_scope" || !strings.Contains(wa, `error="insufficient_scope"`) ||
			!strings.Contains(wa, `servers:destroy"`) || !strings.Contains(wa, `resource_metadata="`+c.URL(0)+`/.well-known/oauth-protected-resource/mcp"`) {
			t.Errorf("terminate_server without the scope: %d %s WWW-Authenticate %q", resp.StatusCode, raw, wa)
		}
		// With the scope the same call reaches the handler (no such server).
		r := callTool(t, cs, "terminate_server", map[string]any{"id": "srv_doesnotexist"})
		if !r.IsError || r.Meta["hostplane/status"] != 404.0 {
			t.Errorf("terminate_server with the scope: %s", resultText(t, r))
		}
	})
}

// TestMCPRateLimit: tool calls count against the key's REST rate limit.
func TestMCPRateLimit(t *testing.T) {
	// The session's own requests (the Go SDK client's server/discover
	// probe, initialize, the GET of its stream, notifications/initialized)
	// count too: at 8 a minute, 3 to 7 of 7 calls, then 429.
	c := testcluster.New(t, 1, testcluster.WithRateLimit(8))
	_, key := c.NewAccount("mcp-rl@example.com", readScopes...)
	cs := mcpClient(t, c, key)
	var last *mcp.CallToolResult
	ok := 0
	for i := 0; i < 7; i++ {
		if last = callTool(t, cs, "get_account", nil); !last.IsError {
			ok++
		}
	}
	if ok < 3 || ok > 6 || !last.IsError || last.Meta["hostplane/status"] != 429.0 || !strings.Contains(resultText(t, last), "rate_limited") {
		t.Fatalf("7 calls at 8/min: %d answered, the last %s", ok, resultText(t, last))
	}
	if st, _ := rest(t, c, key, "GET", "/v1/account", ""); st != 429 {
		t.Fatalf("REST after the tool calls: %d, want 429 (one shared limit)", st)
	}
}

// TestMCPOnFollower: /mcp on a follower serves the tools; each call's /v1
// request is forwarded to the leader like a REST call to that follower, so a
// write through a follower's /mcp is read back through another's.
func TestMCPOnFollower(t *testing.T) {
	c := testcluster.New(t, 3)
	_, key := c.NewAccount("mcp-follower@example.com")
	leader := c.WaitLeader(10 * time.Second)
	f1, f2 := (leader+1)%3, (leader+2)%3
	cs1, cs2 := mcpClientOn(t, c, f1, key), mcpClientOn(t, c, f2, key)
	var created *mcp.CallToolResult
	c.Retry503(func() error {
		created = callTool(t, cs1, "create_ticket", map[string]any{"idempotency_key": "follower-1",
			"body": map[string]any{"subject": "Via a follower", "message": "hello"}})
		if created.IsError && created.Meta["hostplane/status"] == 503.0 {
			return &api.Error{StatusCode: 503}
		}
		return nil
	})
	if created.IsError || created.Meta["hostplane/status"] != 201.0 {
		t.Fatalf("create_ticket on follower %d: %s", f1, resultText(t, created))
	}
	id := decode(t, resultText(t, created)).(map[string]any)["id"].(string)
	got := callTool(t, cs2, "get_ticket", map[string]any{"id": id})
	if got.IsError || decode(t, resultText(t, got)).(map[string]any)["subject"] != "Via a follower" {
		t.Fatalf("get_ticket on follower %d: %s", f2, resultText(t, got))
	}
}
