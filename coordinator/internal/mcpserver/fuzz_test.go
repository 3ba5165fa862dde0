package mcpserver

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
	ts, err := Generate([]byte(standInDoc), standInOps)
	if err != nil {
		f.Fatal(err)
	}
	h := NewHTTPHandler(ts, allowAll{}, &fakeAPI{}, HTTPOptions{})
	post := func(sess, body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, RPCRequest("/mcp", "snc_x", sess, body))
		return w
	}
	w := post("", InitializeBody)
	sess := w.Header().Get("Mcp-Session-Id")
	if w.Code != 200 || sess == "" {
		f.Fatalf("initialize: %d %s", w.Code, w.Body)
	}
	post(sess, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	f.Fuzz(func(t *testing.T, body string) {
		if w := post(sess, body); w.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, w.Code, w.Body)
		}
	})
}
