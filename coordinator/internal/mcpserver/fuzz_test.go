package mcpserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/pkg/api"
)

// allowAll authenticates every request as one caller with the stand-in
// scopes but widgets:write, so delete_widget is the insufficient_scope
// challenge.
type allowAll struct{}

func (allowAll) Authenticate(*http.Request) (httpapi.Caller, *api.Error) {
	return httpapi.Caller{KeyID: "key_1", AccountID: "acc_1", Scopes: []string{"widgets:read", "orders:write"}}, nil
}

func (allowAll) StreamRefusal(*http.Request, string) *api.Error { return nil }

// FuzzMCPBody posts arbitrary bodies to /mcp on an initialized session (the
// SDK's JSON-RPC decoding, then the tools' argument decoding and the order
// confirmation): never a panic, never a 5xx.
func FuzzMCPBody(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_widget","arguments":{"id":"1"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"order_widget","arguments":{"body":{"size":"s"},"confirmation_token":"mcpc_x"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_widget","arguments":[1,2]}}`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`,
		`[{"jsonrpc":"2.0","id":4,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"get_widget","arguments":{"id":{"$ref":"x"}}}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}`,
		`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"delete_widget","arguments":{"id":"1"}}}`,
		`{`, `null`, `""`,
	} {
		f.Add(s)
	}
	post, sess := standInSession(f)
	f.Fuzz(func(t *testing.T, body string) {
		if w := post(sess, body); w.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, w.Code, w.Body)
		}
	})
}

// FuzzFastPathMatchesSDK posts arbitrary bodies to /mcp on an initialized
// session of the stand-in tools twice, through the SDK's transport and with
// the fast path on: the same status, headers and bytes (confirmation tokens
// blanked), never a 5xx.
func FuzzFastPathMatchesSDK(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_widget","arguments":{"id":"1"}}}`,
		`{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"get_widget","arguments":{"id":"1","limit":3}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"order_widget","arguments":{"body":{"size":"s"}}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_widget","arguments":[1,2]}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_widget"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_widget","arguments":{"id":"1"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_widget","arguments":null}}`,
		`{"jsonrpc":"2.0","id":2,"Method":"tools/call","params":{"name":"get_widget","arguments":{"id":"1"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"Name":"get_widget","arguments":{"id":"1"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","method":"ping","params":{"name":"get_widget"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_widget","name":"nope","arguments":{"id":"1"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools\u002fcall","params":{"name":"get_widget","arguments":{"id":"1"}}}`,
		`{"jsonrpc":"2.0","id":-7,"method":"tools/call","params":{"name":"get_widget","arguments":{"id":"<&>"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_widget","arguments":{"id":"1"}}} `,
		`[{"jsonrpc":"2.0","id":4,"method":"ping"}]`, `{`, `null`,
	} {
		f.Add(s)
	}
	post, sess := standInSession(f)
	token := regexp.MustCompile(`mcpc_[0-9a-f]+`)
	seen := func(w *httptest.ResponseRecorder) string {
		return fmt.Sprintf("%d %q %q %q\n%s", w.Code, w.Header().Get("Content-Type"), w.Header().Get("Cache-Control"),
			w.Header().Get("Connection"), token.ReplaceAllString(w.Body.String(), "mcpc_X"))
	}
	f.Fuzz(func(t *testing.T, body string) {
		timed := func(off bool) *httptest.ResponseRecorder {
			done := make(chan *httptest.ResponseRecorder, 1)
			go func() { fastOff.Store(off); done <- post(sess, body) }()
			select {
			case w := <-done:
				return w
			case <-time.After(10 * time.Second):
				t.Fatalf("body %q (fast path off: %v): no answer in 10 s", body, off)
				return nil
			}
		}
		sdk := timed(true)
		fast := timed(false)
		if sdk.Code >= 500 || fast.Code >= 500 {
			t.Fatalf("body %q: %d / %d %s", body, sdk.Code, fast.Code, fast.Body)
		}
		if a, b := seen(sdk), seen(fast); a != b {
			t.Fatalf("body %q\nSDK path:\n%s\nfast path:\n%s", body, a, b)
		}
	})
}

// FuzzDecodeFast: the fast path's decoder never panics, and what it accepts
// is a tools/call with exactly those keys, an integer or simple string id,
// and the name it returns, as encoding/json's strict reading sees it.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get_widget","arguments":{"id":"1"}}}`,
		`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","_meta":{}}}`,
		`{"JSONRPC":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}`,
		`{"jsonrpc":"2.0","id":2.5,"method":"tools/call","params":{"name":"x"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":null}`, `[]`, `{`, "\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		id, p, ok := decodeFast([]byte(body))
		oid, op, ook := decodeFastMaps([]byte(body))
		if ok && (!ook || string(id) != string(oid) || p.Name != op.Name || string(p.Arguments) != string(op.Arguments) || (p.Arguments == nil) != (op.Arguments == nil)) {
			t.Fatalf("%q: decoded (%s, %q, %q, %v), the map decoding (%s, %q, %q, %v)", body, id, p.Name, p.Arguments, ok, oid, op.Name, op.Arguments, ook)
		}
		if ook && !ok && !strings.Contains(body, `\\`) && !duplicateKeys(body) {
			t.Fatalf("%q: refused; the map decoding took it", body)
		}
		if !ok {
			return
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &top); err != nil {
			t.Fatalf("accepted %q: %v", body, err)
		}
		for k := range top {
			if k != "jsonrpc" && k != "id" && k != "method" && k != "params" {
				t.Fatalf("accepted %q with key %q", body, k)
			}
		}
		var params map[string]json.RawMessage
		if err := json.Unmarshal(top["params"], &params); err != nil {
			t.Fatalf("accepted %q: params %v", body, err)
		}
		var name string
		if err := json.Unmarshal(params["name"], &name); err != nil || name != p.Name || name == "" {
			t.Fatalf("accepted %q: name %q vs %q (%v)", body, p.Name, name, err)
		}
		if string(top["method"]) != `"tools/call"` || string(top["jsonrpc"]) != `"2.0"` {
			t.Fatalf("accepted %q", body)
		}
		if !json.Valid(id) || (id[0] != '"' && bytes.ContainsAny(id, ".eE")) {
			t.Fatalf("accepted %q: id %s", body, id)
		}
	})
}

// standInSession is an initialized /mcp session of the stand-in tools and
// how to post to it in-process.
func standInSession(f *testing.F) (post func(sess, body string) *httptest.ResponseRecorder, sess string) {
	h := NewHTTPHandler(standIn(f), allowAll{}, &fakeAPI{}, HTTPOptions{})
	post = func(sess, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, RPCRequest("/mcp", "snc_x", sess, body))
		return w
	}
	w := post("", InitializeBody)
	sess = w.Header().Get("Mcp-Session-Id")
	if w.Code != 200 || sess == "" {
		f.Fatalf("initialize: %d %s", w.Code, w.Body)
	}
	post(sess, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return post, sess
}

// decodeFastMaps is the former decodeFast (through maps), which decodeFast
// must agree with: decodeFast only refuses besides the bodies with a key
// written with an escape or given twice.
func decodeFastMaps(body []byte) (id json.RawMessage, p fastParams, ok bool) {
	onlyKeys := func(m map[string]json.RawMessage, allowed []string) bool {
		for k := range m {
			if !slices.Contains(allowed, k) {
				return false
			}
		}
		return true
	}
	if !utf8.Valid(body) {
		return nil, p, false
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || !onlyKeys(top, fastTopKeys) {
		return nil, p, false
	}
	if string(top["jsonrpc"]) != `"2.0"` || string(top["method"]) != `"tools/call"` {
		return nil, p, false
	}
	id = top["id"]
	if !regexp.MustCompile(`^(0|-?[1-9][0-9]{0,14})$`).Match(id) && !regexp.MustCompile(`^"[A-Za-z0-9._:-]{0,64}"$`).Match(id) {
		return nil, p, false
	}
	var params map[string]json.RawMessage
	if err := json.Unmarshal(top["params"], &params); err != nil || params == nil || !onlyKeys(params, fastParamKeys) {
		return nil, p, false
	}
	n := params["name"]
	if len(n) < 3 || n[0] != '"' || n[len(n)-1] != '"' || bytes.IndexByte(n, '\\') >= 0 {
		return nil, p, false
	}
	p.Name = string(n[1 : len(n)-1])
	p.Arguments = params["arguments"]
	return id, p, true
}

// duplicateKeys: some object of the JSON text s has a key twice.
func duplicateKeys(s string) bool {
	d := json.NewDecoder(strings.NewReader(s))
	var stack []map[string]bool
	expectKey := func() bool { return len(stack) > 0 && stack[len(stack)-1] != nil }
	var inObj []bool
	key := true
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, map[string]bool{})
				inObj = append(inObj, true)
				key = true
				continue
			case '[':
				stack = append(stack, nil)
				inObj = append(inObj, false)
			case '}', ']':
				stack, inObj = stack[:len(stack)-1], inObj[:len(inObj)-1]
			}
		case string:
			if expectKey() && key {
				if stack[len(stack)-1][v] {
					return true
				}
				stack[len(stack)-1][v] = true
				key = false
				continue
			}
		}
		key = len(inObj) > 0 && inObj[len(inObj)-1]
	}
}

// FuzzJSONValidMatches: jsonValid (the fast path's validator of request
// bodies, arguments and structured content) answers what encoding/json's
// Valid answers, invalid UTF-8 in strings included.
func FuzzJSONValidMatches(f *testing.F) {
	for _, s := range []string{`{"id":"tkt_1","n":1,"messages":[{"at":"2026-01-01T00:00:00Z"}]}`, `{"a":[1,2.5e3,-0,true,false,null,"\u00e9\n"]}`,
		"\"\xff\"", `{"a":1,}`, `[1 2]`, `01`, `1.`, `-`, `"\ud800"`, `{"a" 1}`, ` {} `, "\"\x01\"", `1e+`, `[]]`, `nul`, `{"a":{"b":[{}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := jsonValid(b), json.Valid(b); got != want {
			t.Fatalf("jsonValid(%q) = %v, json.Valid %v", b, got, want)
		}
	})
}

// TestJSONValidNesting: jsonValid refuses what encoding/json refuses for
// depth (more than 10,000 nested arrays or objects), brackets in strings
// not counted; segmentio's validator alone accepted any depth.
func TestJSONValidNesting(t *testing.T) {
	nest := func(n int, open, close, inner string) []byte {
		return []byte(strings.Repeat(open, n) + inner + strings.Repeat(close, n))
	}
	for _, b := range [][]byte{
		nest(10000, "[", "]", ""), nest(10001, "[", "]", ""), nest(20000, "[", "]", ""),
		nest(10000, `{"a":`, "}", "1"), nest(10001, `{"a":`, "}", "1"),
		nest(9999, "[", "]", `"[[[[\"[[[{{{{"`), nest(10001, "[", "]", `"]]]]]]]]]]]]\\"`),
		[]byte(`{"a":"` + strings.Repeat("[", 30000) + `"}`),
	} {
		if got, want := jsonValid(b), json.Valid(b); got != want {
			t.Errorf("jsonValid of %d bytes (%.20q...) = %v, json.Valid %v", len(b), b, got, want)
		}
	}
}
