package mcpserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/httpapi"
	"github.com/hostplane/hostplane/pkg/api"
)

// allowAll authenticates every request as one caller with the stand-in scopes.
type allowAll struct{}

func (allowAll) Authenticate(*http.Request) (httpapi.Caller, *api.Error) {
	return httpapi.Caller{KeyID: "key_1", AccountID: "acc_1", Scopes: []string{"widgets:read", "widgets:write", "orders:write"}}, nil
}

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
	ts, err := Generate([]byte(standInDoc), standInOps)
	if err != nil {
		f.Fatal(err)
	}
	h := NewHTTPHandler(ts, allowAll{}, &fakeAPI{}, HTTPOptions{})
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
