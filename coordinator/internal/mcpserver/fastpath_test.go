package mcpserver_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/coordinator/internal/mcpserver"
	"github.com/hostplane/hostplane/coordinator/internal/testcluster"
	"github.com/hostplane/hostplane/pkg/api"
)

// requestIDs are per request in REST errors; confirmation tokens are random.
var unstable = regexp.MustCompile(`(request_id\\?":\\?")[^"\\]*|mcpc_[0-9a-f]+`)

// answer is what a client sees of one /mcp POST, request ids blanked.
func answer(w *httptest.ResponseRecorder) string {
	var b strings.Builder
	b.WriteString(http.StatusText(w.Code))
	for _, k := range []string{"Content-Type", "Cache-Control", "Connection", "Mcp-Session-Id", "Www-Authenticate"} {
		b.WriteString("\n" + k + ": " + strings.Join(w.Result().Header.Values(k), ", "))
	}
	b.WriteString("\n\n" + unstable.ReplaceAllString(w.Body.String(), "${1}X"))
	return b.String()
}

// TestFastPathMatchesSDK sends the same /mcp POSTs through the SDK's
// transport (fast path off) and with the fast path on, on one session of a
// real coordinator, and requires the same status, headers and bytes: tool
// results, tool errors (REST 404, bad arguments), and the cases the fast path
// leaves to the SDK (unknown tool, missing session, wrong or missing
// protocol version header, other JSON-RPC shapes).
func TestFastPathMatchesSDK(t *testing.T) {
	c := testcluster.New(t, 1)
	_, key := c.NewAccount("fastpath@example.com", api.AllScopes...)
	_, readKey := c.NewAccount("fastpath-read@example.com", "tickets:read")
	tk, err := c.Client(0, key).CreateTicket(context.Background(), api.TicketCreateRequest{Subject: `<b>&"é</b> fast`, Message: "m <&>"}, "")
	if err != nil {
		t.Fatal(err)
	}
	h := c.Nodes[0].Server.APIHandler()
	post := func(key, sess, body string, edit func(*http.Request)) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := mcpserver.RPCRequest("/mcp", key, sess, body)
		if edit != nil {
			edit(r)
		}
		h.ServeHTTP(w, r)
		return w
	}
	open := func(key string) string {
		w := post(key, "", mcpserver.InitializeBody, nil)
		sess := w.Header().Get("Mcp-Session-Id")
		if w.Code != 200 || sess == "" {
			t.Fatalf("initialize: %d %s", w.Code, w.Body)
		}
		if w := post(key, sess, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, nil); w.Code != http.StatusAccepted {
			t.Fatalf("initialized: %d %s", w.Code, w.Body)
		}
		return sess
	}
	sess, readSess := open(key), open(readKey)
	call := func(id, args string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"get_ticket","arguments":` + args + `}}`
	}
	version := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Mcp-Protocol-Version", v) }
	}
	for _, tc := range []struct {
		name, key, sess, body string
		edit                  func(*http.Request)
		fast                  bool // the fast path answers it
		want                  string
	}{
		{name: "result", body: call("2", `{"id":"`+tk.ID+`"}`), fast: true, want: `"structuredContent":{`},
		{name: "string id", body: call(`"a-1"`, `{"id":"`+tk.ID+`"}`), fast: true, want: `"id":"a-1"`},
		{name: "older version", body: call("3", `{"id":"`+tk.ID+`"}`), edit: version("2025-06-18"), fast: true, want: tk.ID},
		{name: "rest 404", body: call("4", `{"id":"tkt_nope"}`), fast: true, want: `"isError":true`},
		{name: "unknown argument", body: call("5", `{"id":"x","colour":"red"}`), fast: true, want: `unknown argument`},
		{name: "html in an error", body: call("20", `{"id":"x","<b>&é":1}`), fast: true, want: `u003cb`},
		{name: "arguments not an object", body: call("6", `[1,2]`), fast: true, want: `must be a JSON object`},
		{name: "missing argument", body: call("7", `{}`), fast: true, want: `required`},
		{name: "no arguments", body: `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"get_ticket"}}`, fast: true, want: `required`},
		{name: "scope refused", key: readKey, sess: readSess, body: `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"create_ticket","arguments":{"body":{"subject":"s","message":"m"}}}}`, want: `error="insufficient_scope", scope="tickets:read tickets:write"`},
		{name: "unknown tool", body: `{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}`, want: `unknown tool`},
		{name: "missing session", sess: "nosuchsession", body: call("11", `{"id":"`+tk.ID+`"}`), want: `session not found`},
		{name: "wrong protocol version", body: call("12", `{"id":"`+tk.ID+`"}`), edit: version("1999-01-01"), want: `Unsupported protocol version`},
		{name: "no protocol version", body: call("13", `{"id":"`+tk.ID+`"}`), edit: func(r *http.Request) { r.Header.Del("Mcp-Protocol-Version") }, want: tk.ID},
		{name: "meta", body: `{"jsonrpc":"2.0","id":14,"method":"tools/call","params":{"name":"get_ticket","arguments":{"id":"` + tk.ID + `"},"_meta":{"progressToken":1}}}`, want: tk.ID},
		{name: "float id", body: call("1.5", `{"id":"`+tk.ID+`"}`)},
		{name: "bad jsonrpc", body: `{"jsonrpc":"1.0","id":15,"method":"tools/call","params":{"name":"get_ticket","arguments":{}}}`},
		{name: "not json", body: `{"jsonrpc":"2.0","id":16,`},
		{name: "wrong accept", body: call("17", `{"id":"`+tk.ID+`"}`), edit: func(r *http.Request) { r.Header.Set("Accept", "application/json") }, want: `Accept must contain`},
		{name: "mcp-method header", body: call("18", `{"id":"`+tk.ID+`"}`), edit: func(r *http.Request) { r.Header.Set("Mcp-Method", "tools/list") }},
		{name: "ping", body: `{"jsonrpc":"2.0","id":19,"method":"ping"}`, want: `"result":{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, s := key, sess
			if tc.key != "" {
				k = tc.key
			}
			if tc.sess != "" {
				s = tc.sess
			}
			was := mcpserver.SetFastCalls(false)
			defer mcpserver.SetFastCalls(was)
			sdk := answer(post(k, s, tc.body, tc.edit))
			mcpserver.SetFastCalls(true)
			n := mcpserver.FastServed()
			fast := answer(post(k, s, tc.body, tc.edit))
			if served := mcpserver.FastServed() - n; served != map[bool]int64{true: 1}[tc.fast] {
				t.Errorf("fast path answered %d calls, want fast=%v", served, tc.fast)
			}
			if sdk != fast {
				t.Errorf("SDK path:\n%s\n\nfast path:\n%s", sdk, fast)
			}
			if !strings.Contains(fast, tc.want) {
				t.Errorf("answer lacks %q:\n%s", tc.want, fast)
			}
		})
	}

	// A session ended by DELETE is not served any more: the SDK answers 404,
	// from the first call sent after the DELETE's answer on (the fast path
	// forgets the session before that answer, not when the SDK's clean-up
	// of the session gets to it, held back here until the test ends).
	release := mcpserver.HoldSessionCleanup()
	defer release()
	del := post(key, sess, "", func(r *http.Request) { r.Method = http.MethodDelete })
	if del.Code != http.StatusNoContent {
		t.Fatalf("DELETE session: %d %s", del.Code, del.Body)
	}
	n := mcpserver.FastServed()
	if w := post(key, sess, call("30", `{"id":"`+tk.ID+`"}`), nil); w.Code != http.StatusNotFound || mcpserver.FastServed() != n {
		t.Fatalf("call right after the DELETE of its session: %d %s (fast path answered %d)", w.Code, w.Body, mcpserver.FastServed()-n)
	}
}

// TestToolErrorNamesTheRequest: a tool call's REST error carries the /mcp
// request's id (its X-Request-Id answer header), on the fast path and on
// the SDK's, so an error a user reports names the request they sent.
func TestToolErrorNamesTheRequest(t *testing.T) {
	r := newMCPRig(t, "reqid@example.com", api.AllScopes)
	post, sess := r.post, r.sess
	for _, fast := range []bool{false, true} { // the SDK first: it records the session (initialized) as it goes
		was := mcpserver.SetFastCalls(fast)
		n := mcpserver.FastServed()
		w := post(sess, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get_ticket","arguments":{"id":"tkt_nope"}}}`)
		mcpserver.SetFastCalls(was)
		if served := mcpserver.FastServed() - n; served != map[bool]int64{true: 1}[fast] {
			t.Fatalf("fast=%v: the fast path answered %d calls", fast, served)
		}
		rid := w.Header().Get("X-Request-Id")
		if w.Code != 200 || rid == "" || !strings.Contains(w.Body.String(), `"isError":true`) {
			t.Fatalf("fast=%v: %d (request id %q) %s", fast, w.Code, rid, w.Body)
		}
		if want := `\"request_id\":\"` + rid + `\"`; !strings.Contains(w.Body.String(), want) {
			t.Errorf("fast=%v: the tool error does not name the /mcp request %s:\n%s", fast, rid, w.Body)
		}
	}
}

// TestToolCallsCarryRateLimitHeaders: a tool call on /mcp carries the
// X-RateLimit-* headers of its count, as every /v1 answer and every other
// /mcp request does, through the SDK's transport and on the fast path: a
// call dispatched to its /v1 route (a result, a REST 404) and one refused
// before dispatch (bad arguments, counted by /mcp itself), each one token
// less than the one before.
func TestToolCallsCarryRateLimitHeaders(t *testing.T) {
	r := newMCPRig(t, "ratehdr@example.com", api.AllScopes, testcluster.WithRateLimit(100))
	post, sess := r.post, r.sess
	tk, err := r.c.Client(0, r.key).CreateTicket(context.Background(), api.TicketCreateRequest{Subject: "s", Message: "m"}, "")
	if err != nil {
		t.Fatal(err)
	}
	call := func(args string) string {
		return `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_ticket","arguments":` + args + `}}`
	}
	prev, prevReset := -1, ""
	for _, fast := range []bool{false, true} { // the SDK first: the fast path serves a session the SDK saw initialized
		was := mcpserver.SetFastCalls(fast)
		for _, tc := range []struct{ name, body, want string }{
			{"result", call(`{"id":"` + tk.ID + `"}`), `"structuredContent":{`},
			{"rest 404", call(`{"id":"tkt_nope"}`), `"isError":true`},
			{"unknown argument", call(`{"id":"x","colour":"red"}`), `unknown argument`},
			{"result again", call(`{"id":"` + tk.ID + `"}`), `"structuredContent":{`},
		} {
			n := mcpserver.FastServed()
			w := post(sess, tc.body)
			if served := mcpserver.FastServed() - n; served != map[bool]int64{true: 1}[fast] || w.Code != 200 || !strings.Contains(w.Body.String(), tc.want) {
				t.Fatalf("fast=%v %s: the fast path answered %d; %d %s", fast, tc.name, served, w.Code, w.Body)
			}
			lim, rem, reset := w.Header().Get("X-RateLimit-Limit"), w.Header().Get("X-RateLimit-Remaining"), w.Header().Get("X-RateLimit-Reset")
			left, err := strconv.Atoi(rem)
			if lim != "100" || err != nil || reset == "" {
				t.Fatalf("fast=%v %s: X-RateLimit-Limit %q, -Remaining %q, -Reset %q; want the key's figures", fast, tc.name, lim, rem, reset)
			}
			// One window (a fixed minute from the key's first request) may
			// end between two calls on a slow machine.
			if prev >= 0 && reset == prevReset && left != prev-1 {
				t.Errorf("fast=%v %s: X-RateLimit-Remaining %d after %d: not this call's count", fast, tc.name, left, prev)
			}
			prev, prevReset = left, reset
		}
		mcpserver.SetFastCalls(was)
	}
}
