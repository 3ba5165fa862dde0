package mcpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/jsonmembers"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// standInDoc documents two stand-in operations: an order that spends money
// and the quote that prices it (orders, issue 14, do not exist yet), plus a
// read and a delete.
const standInDoc = `{
  "openapi": "3.0.3",
  "info": {"title": "stand-in", "version": "1"},
  "servers": [{"url": "/v1"}],
  "paths": {
    "/widgets": {
      "post": {
        "operationId": "orderWidget",
        "summary": "Order a widget (charged to the wallet)",
        "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
          "type": "object", "additionalProperties": false, "required": ["size"],
          "properties": {"size": {"type": "string", "enum": ["s", "m"]}, "note": {"type": "string", "nullable": true}}}}}},
        "responses": {"201": {"description": "ordered", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}}}}
      }
    },
    "/widgets/quote": {
      "post": {
        "operationId": "quoteWidget",
        "summary": "Price a widget",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {"200": {"description": "quote", "content": {"application/json": {"schema": {"type": "object"}}}}}
      }
    },
    "/widgets/{id}": {
      "get": {
        "operationId": "getWidget",
        "summary": "One widget",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "exclusiveMaximum": true, "maximum": 10}},
                       {"name": "stream", "in": "query", "x-mcp-omit": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}}}}
      },
      "delete": {
        "operationId": "deleteWidget",
        "summary": "Scrap a widget",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "array", "items": {"type": "string"}}}}}}
      }
    }
  },
  "components": {"schemas": {"Widget": {"type": "object", "properties": {
    "id": {"type": "string"}, "size": {"type": "string"}, "parent": {"$ref": "#/components/schemas/Widget"}}}}}
}`

var standInOps = []Operation{
	{Method: "POST", Path: "/v1/widgets", Scope: "orders:write", Idempotent: true, SpendsMoney: true, Quote: "POST /v1/widgets/quote"},
	{Method: "POST", Path: "/v1/widgets/quote", Scope: "orders:write"},
	{Method: "GET", Path: "/v1/widgets/{id}", Scope: "widgets:read"},
	{Method: "DELETE", Path: "/v1/widgets/{id}", Scope: "widgets:write"},
}

func standIn(tb testing.TB) *Tools {
	tb.Helper()
	ts, err := Generate([]byte(standInDoc), standInOps)
	if err != nil {
		tb.Fatal(err)
	}
	return ts
}

func TestGenerateSchemasAndHints(t *testing.T) {
	ts := standIn(t)
	get := ts.ByName("get_widget")
	if get == nil {
		t.Fatalf("no get_widget; tools: %v", names(ts))
	}
	in := get.Def.InputSchema.(map[string]any)
	props := in["properties"].(map[string]any)
	if _, ok := props["stream"]; ok {
		t.Error("x-mcp-omit parameter stream became an argument")
	}
	lim := props["limit"].(map[string]any)
	if lim["type"] != "integer" || lim["exclusiveMaximum"] != 10.0 || lim["maximum"] != nil {
		t.Errorf("limit schema %v: want integer with exclusiveMaximum 10 (3.0 boolean bound converted)", lim)
	}
	if req := in["required"].([]string); len(req) != 1 || req[0] != "id" {
		t.Errorf("required %v, want [id]", req)
	}
	if in["additionalProperties"] != false {
		t.Error("input schema accepts unknown arguments")
	}
	out, ok := get.Def.OutputSchema.(map[string]any)
	if !ok || out["type"] != "object" {
		t.Fatalf("output schema %v", get.Def.OutputSchema)
	}
	// The recursive $ref is inlined to a bounded depth, never as a $ref.
	raw, _ := json.Marshal(out)
	if strings.Contains(string(raw), "$ref") {
		t.Errorf("output schema keeps a $ref: %s", raw)
	}
	if a := get.Def.Annotations; !a.ReadOnlyHint || a.DestructiveHint != nil || !a.IdempotentHint {
		t.Errorf("get annotations %+v: want read-only, idempotent", a)
	}
	del := ts.ByName("delete_widget")
	if a := del.Def.Annotations; a.ReadOnlyHint || a.DestructiveHint == nil || !*a.DestructiveHint {
		t.Errorf("delete annotations %+v: want destructive", a)
	}
	if del.Def.OutputSchema != nil {
		t.Error("an array response became an output schema (structured content is an object)")
	}
	order := ts.ByName("order_widget")
	oin := order.Def.InputSchema.(map[string]any)["properties"].(map[string]any)
	for _, k := range []string{"body", "idempotency_key", "confirmation_token"} {
		if _, ok := oin[k]; !ok {
			t.Errorf("order_widget lacks argument %s: %v", k, oin)
		}
	}
	note := oin["body"].(map[string]any)["properties"].(map[string]any)["note"].(map[string]any)
	if ty, _ := note["type"].([]string); len(ty) != 2 || ty[1] != "null" {
		t.Errorf("nullable note: type %v, want [string null]", note["type"])
	}
	if a := order.Def.Annotations; a.ReadOnlyHint || *a.DestructiveHint {
		t.Errorf("order annotations %+v", a)
	}
}

func TestGenerateRefusesUndocumented(t *testing.T) {
	_, err := Generate([]byte(standInDoc), append(standInOps, Operation{Method: "GET", Path: "/v1/gadgets", Scope: "x"}))
	if err == nil || !strings.Contains(err.Error(), "GET /v1/gadgets") {
		t.Fatalf("err %v, want the undocumented operation named", err)
	}
	_, err = Generate([]byte(standInDoc), []Operation{{Method: "POST", Path: "/v1/widgets", Scope: "x", SpendsMoney: true, Quote: "POST /v1/nope"}})
	if err == nil || !strings.Contains(err.Error(), "POST /v1/nope") {
		t.Fatalf("err %v, want the missing quote operation named", err)
	}
}

func TestToolNames(t *testing.T) {
	for in, want := range map[string]string{
		"getAccount": "get_account", "listServerIPs": "list_server_ips", "setServerPTR": "set_server_ptr",
		"listWalletTransactions": "list_wallet_transactions", "redeliverWebhook": "redeliver_webhook",
		"getServerStats": "get_server_stats", "deleteServerPTR": "delete_server_ptr",
	} {
		if got := ToolName(Operation{}, in); got != want {
			t.Errorf("ToolName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := ToolName(Operation{Method: "POST", Path: "/v1/tickets/{id}/reply"}, ""); got != "post_tickets_reply" {
		t.Errorf("without operationId: %q", got)
	}
}

func TestBuild(t *testing.T) {
	ts := standIn(t)
	get, order := ts.ByName("get_widget"), ts.ByName("order_widget")
	c, err := get.Build([]byte(`{"id":"w/../1 x","limit":5}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Method != "GET" || c.Path != "/v1/widgets/w%2F..%2F1%20x?limit=5" || c.Body != nil {
		t.Errorf("call %+v", c)
	}
	c, err = order.Build([]byte(`{"body":{"size":"s"},"idempotency_key":"k1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "/v1/widgets" || string(c.Body) != `{"size":"s"}` || c.Header.Get("Idempotency-Key") != "k1" || c.Header.Get("Content-Type") != "application/json" {
		t.Errorf("call %+v body %s", c, c.Body)
	}
	for args, field := range map[string]string{
		`{}`:                     "id",
		`{"id":""}`:              "id",
		`{"id":".."}`:            "id",
		`{"id":{"a":1}}`:         "id",
		`{"id":"1","bogus":1}`:   "bogus",
		`{"id":"1","limit":[1]}`: "limit",
		`{"id":"1","":1}`:        "", // an unknown argument with the empty name
	} {
		_, err := get.Build([]byte(args))
		var ae *ArgError
		if !errors.As(err, &ae) || ae.Field != field {
			t.Errorf("Build(%s) = %v, want an error naming %q", args, err, field)
		}
	}
	if _, err := order.Build([]byte(`{}`)); err == nil || !strings.Contains(err.Error(), `"body"`) {
		t.Errorf("missing required body: %v", err)
	}
	if _, err := order.Build([]byte(`{"body":{},"idempotency_key":"a\r\nX-Evil: 1"}`)); err == nil {
		t.Error("a header argument with CRLF was accepted")
	}
	if _, err := get.Build([]byte(`[1]`)); err == nil {
		t.Error("non-object arguments accepted")
	}
}

// FuzzBuild: any arguments either fail with an error or give a request on the
// operation's own path template (no extra segment, no dot segment, the query
// only after '?'), never a panic.
func FuzzBuild(f *testing.F) {
	for _, s := range []string{`{"id":"1"}`, `{"id":"a/b","limit":3}`, `{"id":".."}`, `{"id":"%2e%2e"}`, `null`, `{"id":"x?y#z"}`, `{"id":1e400}`} {
		f.Add(s)
	}
	get := standIn(f).ByName("get_widget")
	f.Fuzz(func(t *testing.T, args string) {
		c, err := get.Build([]byte(args))
		if err != nil {
			return
		}
		u, perr := url.Parse(c.Path)
		if perr != nil {
			t.Fatalf("built path %q does not parse: %v", c.Path, perr)
		}
		segs := strings.Split(u.EscapedPath(), "/")
		if len(segs) != 4 || segs[1] != "v1" || segs[2] != "widgets" {
			t.Fatalf("args %s built path %q outside /v1/widgets/{id}", args, c.Path)
		}
		id, _ := url.PathUnescape(segs[3])
		if id == "" || id == "." || id == ".." || u.Fragment != "" {
			t.Fatalf("args %s built path %q", args, c.Path)
		}
	})
}

// fakeAPI stands in for the REST router in the confirmation test (pure
// logic): it records the calls and answers the quote and the order.
type fakeAPI struct {
	mu    sync.Mutex
	calls []*Call
}

func (f *fakeAPI) Dispatch(_ context.Context, c *Call, _ Who) (*Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	switch c.Path {
	case "/v1/widgets/quote":
		return &Response{Status: 200, Body: []byte(`{"total_cents":1200,"currency":"USD"}`)}, nil
	case "/v1/widgets":
		return &Response{Status: 201, Body: []byte(`{"id":"wdg_1","size":"s"}`)}, nil
	}
	return &Response{Status: 404, Body: []byte(`{"statusCode":404}`)}, nil
}

func (f *fakeAPI) orders() (n int, last *Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.Path == "/v1/widgets" {
			n, last = n+1, c
		}
	}
	return n, last
}

func connect(t *testing.T, s *mcp.Server) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := s.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func textOf(t *testing.T, r *mcp.CallToolResult) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.Content[0].(*mcp.TextContent).Text), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOrderDoubleConfirmation drives the mechanism on the stand-in order:
// the first call answers the quote and a token and orders nothing; only a
// second call with the token and the same arguments orders, once.
func TestOrderDoubleConfirmation(t *testing.T) {
	ts := standIn(t)
	api := &fakeAPI{}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	cs := connect(t, NewServer(ts, api, Options{Now: clock, ConfirmTTL: time.Minute}))
	ctx := context.Background()
	call := func(args map[string]any) *mcp.CallToolResult {
		t.Helper()
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "order_widget", Arguments: args})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	body := map[string]any{"size": "s", "note": "gift"}

	first := call(map[string]any{"body": body})
	q := textOf(t, first)
	if first.IsError || q["confirmation_required"] != true || q["quote"].(map[string]any)["total_cents"] != 1200.0 {
		t.Fatalf("first call: %+v", q)
	}
	if n, _ := api.orders(); n != 0 {
		t.Fatalf("the first call ordered (%d orders)", n)
	}
	tok := q["confirmation_token"].(string)

	// Other arguments with the token: refused, nothing ordered (and the token is kept).
	if r := call(map[string]any{"body": map[string]any{"size": "m"}, "confirmation_token": tok}); !r.IsError {
		t.Fatalf("token accepted for other arguments: %+v", textOf(t, r))
	}
	if n, _ := api.orders(); n != 0 {
		t.Fatal("ordered with other arguments")
	}
	// The same arguments (keys in another order) with the token: ordered once.
	second := call(map[string]any{"confirmation_token": tok, "body": map[string]any{"note": "gift", "size": "s"}})
	if second.IsError || textOf(t, second)["id"] != "wdg_1" {
		t.Fatalf("second call: %+v", second)
	}
	n, last := api.orders()
	if n != 1 || last.Header.Get("Idempotency-Key") != "mcp-confirm-"+tok {
		t.Fatalf("orders %d, idempotency key %q", n, last.Header.Get("Idempotency-Key"))
	}
	// The token confirmed again with the same arguments (a client whose
	// answer was lost retries): the call is sent again with the first one's
	// Idempotency-Key, which the API answers with the first answer (its
	// replay; the stand-in API counts the request), and spends nothing more.
	// With other arguments the spent token is still refused.
	if r := call(map[string]any{"body": body, "confirmation_token": tok}); r.IsError || textOf(t, r)["id"] != "wdg_1" {
		t.Fatalf("a retried confirmation: %+v", r)
	}
	if n, again := api.orders(); n != 2 || again.Header.Get("Idempotency-Key") != "mcp-confirm-"+tok {
		t.Fatalf("after the retried confirmation: %d order requests, the retry's idempotency key %q; want 2, the first one's", n, again.Header.Get("Idempotency-Key"))
	}
	if r := call(map[string]any{"body": map[string]any{"size": "m"}, "confirmation_token": tok}); !r.IsError || !strings.Contains(textOf(t, r)["message"].(string), "arguments differ") {
		t.Fatalf("the spent token with other arguments: %+v", r)
	}
	// An expired token is refused.
	tok2 := textOf(t, call(map[string]any{"body": body}))["confirmation_token"].(string)
	clockMu.Lock()
	now = now.Add(2 * time.Minute)
	clockMu.Unlock()
	if r := call(map[string]any{"body": body, "confirmation_token": tok2}); !r.IsError || !strings.Contains(textOf(t, r)["message"].(string), "expired") {
		t.Fatalf("an expired token was accepted: %+v", r)
	}
	// A made-up token is refused.
	if r := call(map[string]any{"body": body, "confirmation_token": "mcpc_guess"}); !r.IsError {
		t.Fatal("a made-up token was accepted")
	}
	if n, _ := api.orders(); n != 2 {
		t.Fatalf("%d order requests, want exactly 2 (the confirmation and its retry, under one Idempotency-Key)", n)
	}
}

func TestConfirmationBoundToCaller(t *testing.T) {
	c := newConfirmations(time.Now, time.Minute)
	tok, _ := c.issue("acc_a", "order_widget", "d1")
	if why := c.take(tok, "acc_b", "order_widget", "d1", true); why == "" {
		t.Fatal("another account spent the token")
	}
	if why := c.take(tok, "acc_a", "order_widget", "d1", true); why != "" {
		t.Fatalf("the owner could not spend it: %s", why)
	}
	if why := c.take(tok, "acc_b", "order_widget", "d1", true); why == "" {
		t.Fatal("another account retried the spent token")
	}
	if why := c.take(tok, "acc_a", "order_widget", "d1", true); why != "" {
		t.Fatalf("the owner could not retry its confirmation: %s", why)
	}
	// An operation without Idempotency-Key: a token is good once.
	once, _ := c.issue("acc_a", "order_gadget", "d2")
	if why := c.take(once, "acc_a", "order_gadget", "d2", false); why != "" {
		t.Fatalf("the owner could not spend it: %s", why)
	}
	if why := c.take(once, "acc_a", "order_gadget", "d2", false); !strings.Contains(why, "already used") {
		t.Fatalf("a token of an operation without Idempotency-Key spent twice: %q", why)
	}
}

func names(ts *Tools) []string {
	var out []string
	for _, t := range ts.List {
		out = append(out, t.Def.Name)
	}
	return out
}

// TestDispatchRecoversPanics: a handler panic during an in-process call is a
// 500 (not the end of the coordinator) carrying the /mcp request's id as
// the handlers' own errors do, a cut-off forwarded response an error.
func TestDispatchRecoversPanics(t *testing.T) {
	boom := HandlerDispatcher{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })}
	resp, err := boom.Dispatch(context.Background(), &Call{Method: "GET", Path: "/v1/x", Header: http.Header{}}, Who{RequestID: "req-panic-1"})
	if err != nil || resp.Status != 500 || strings.Contains(string(resp.Body), "boom") {
		t.Fatalf("panic: %v %+v", err, resp)
	}
	var e api.Error
	if err := json.Unmarshal(resp.Body, &e); err != nil || e.Code != "internal_error" || e.RequestID != "req-panic-1" {
		t.Fatalf("panic's answer %s (%v): want internal_error with request_id req-panic-1", resp.Body, err)
	}
	abort := HandlerDispatcher{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })}
	if resp, err := abort.Dispatch(context.Background(), &Call{Method: "GET", Path: "/v1/x", Header: http.Header{}}, Who{}); err == nil || resp != nil {
		t.Fatalf("abort: %v %+v", err, resp)
	}
}

// TestDispatchReleaseRecycles: a released answer's memory serves the next
// call with nothing of the first left in it (status, headers, body), and a
// Response Dispatch did not make, or one released twice, is left alone.
func TestDispatchReleaseRecycles(t *testing.T) {
	hd := HandlerDispatcher{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/first" {
			w.Header().Set("X-First", "1")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"first":"a longer body than the second"}`))
			return
		}
		_, _ = w.Write([]byte(`{"b":2}`))
	})}
	call := func(path string) *Response {
		resp, err := hd.Dispatch(context.Background(), &Call{Method: "GET", Path: path, Header: http.Header{}}, Who{})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i := 0; i < 20; i++ { // the pool may drop a recorder now and then
		first := call("/v1/first")
		if first.Status != 201 || first.Header.Get("X-First") != "1" || string(first.Body) != `{"first":"a longer body than the second"}` {
			t.Fatalf("first: %d %v %s", first.Status, first.Header, first.Body)
		}
		first.Release()
		first.Release()
		second := call("/v1/second")
		if second.Status != 200 || len(second.Header) != 0 || string(second.Body) != `{"b":2}` {
			t.Fatalf("after a release: %d %v %s", second.Status, second.Header, second.Body)
		}
		second.Release()
	}
	own := &Response{Status: 200, Body: []byte("x")}
	own.Release()
	if own.Status != 200 || string(own.Body) != "x" {
		t.Fatalf("a Response Dispatch did not make was changed: %+v", own)
	}
}

// FuzzDecodeArgsMatches: the arguments read in place are what json.Unmarshal
// makes of them (the former decoding), errors included, but for a repeated
// name (json.Unmarshal keeps the last; refused since), and a parameter's
// text is what the JSON decoder reads.
func FuzzDecodeArgsMatches(f *testing.F) {
	for _, s := range []string{`{"id":"1"}`, `{"id":"a","limit":3}`, `{"id":"1","id":"2"}`, `{"i\u0064":"1"}`, `{"colour":"red"}`,
		` { "id" : "x" , "limit" : null } `, `[1]`, `null`, ``, `{"id":"\u00e9\ud83d"}`, `{"id":"é<>"}`, `{"id":true}`, `{"id":-1.5e3}`} {
		f.Add(s)
	}
	get := standIn(f).ByName("get_widget")
	f.Fuzz(func(t *testing.T, raw string) {
		got, gerr := get.decodeArgs([]byte(raw))
		want := map[string]json.RawMessage{}
		var werr error
		if s := strings.TrimSpace(raw); s != "" && s != "null" {
			if err := json.Unmarshal([]byte(raw), &want); err != nil {
				werr = &ArgError{Msg: "arguments must be a JSON object: " + err.Error()}
			} else if werr = get.unknownArg(want); werr == nil {
				// A repeated name (json.Unmarshal keeps the last) is refused.
				if err := jsonmembers.Check([]byte(raw), reflect.TypeOf(&want)); err != nil {
					werr = &ArgError{Msg: err.Error()}
				}
			}
		}
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("%q: error %v, json.Unmarshal's way %v", raw, gerr, werr)
		}
		gotMap := map[string]json.RawMessage{}
		for _, a := range got {
			if _, dup := gotMap[a.name]; dup {
				t.Fatalf("%q: argument %q read twice", raw, a.name)
			}
			gotMap[a.name] = a.val
		}
		if gerr == nil && fmt.Sprint(gotMap) != fmt.Sprint(want) {
			t.Fatalf("%q: %s, json.Unmarshal's way %s", raw, gotMap, want)
		}
		for _, v := range gotMap {
			s, err := scalar(v)
			var x any
			d := json.NewDecoder(bytes.NewReader(v))
			d.UseNumber()
			derr := d.Decode(&x)
			ws := fmt.Sprint(x)
			if str, ok := x.(string); ok {
				ws = str
			}
			if derr == nil && err == nil && s != ws {
				t.Fatalf("%s: %q, the decoder's %q", v, s, ws)
			}
			if (derr != nil) && err == nil {
				t.Fatalf("%s: read %q, the decoder failed: %v", v, s, derr)
			}
		}
	})
}

// TestBuiltOnceFailureCarriesTheRequestID: should /mcp's tools fail to build,
// every /mcp request is a 500 saying why with the request id the public
// listener set on the answer (X-Request-Id), as every other error carries,
// and the build is tried once.
func TestBuiltOnceFailureCarriesTheRequestID(t *testing.T) {
	builds := 0
	h := builtOnce(func() (http.Handler, error) { builds++; return nil, errors.New("no document") })
	for _, rid := range []string{"req-a", "req-b"} {
		w := httptest.NewRecorder()
		w.Header().Set("X-Request-Id", rid) // as the public listener's middleware does
		h.ServeHTTP(w, httptest.NewRequest("POST", "/mcp", nil))
		var e api.Error
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != 500 || e.Code != "internal_error" ||
			!strings.Contains(e.Message, "no document") || e.RequestID != rid {
			t.Fatalf("%d %s (%v): want a 500 internal_error saying why with request_id %s", w.Code, w.Body, err, rid)
		}
	}
	if builds != 1 {
		t.Errorf("built %d times, want once", builds)
	}
}
