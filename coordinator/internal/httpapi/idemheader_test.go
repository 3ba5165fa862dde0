package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestIdempotencyKeyHeader: two different Idempotency-Keys in one request, or
// an empty one, are a 400 that creates nothing; the same key sent twice is
// that key. Before, the first of two keys was honoured (a proxy deduplicating
// on the last would let a retry run twice) and an empty key was no key: both
// were a 201 with a new ticket each time.
func TestIdempotencyKeyHeader(t *testing.T) {
	s := newSrvAPI(t)
	_, key := s.account(api.ScopeTicketsRead, api.ScopeTicketsWrite)
	count := func() int {
		r := s.call(key, "GET", "/v1/tickets?limit=200", "")
		d, _ := r.m["data"].([]any)
		return len(d)
	}
	body := `{"subject":"s","message":"m"}`
	// post sends the Idempotency-Key values given, each as a header line of
	// its own (the test client's headers are a map).
	post := func(keys ...string) reply {
		t.Helper()
		req, err := http.NewRequest("POST", s.srv.URL+"/v1/tickets", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		for _, k := range keys {
			req.Header.Add("Idempotency-Key", k)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := reply{status: resp.StatusCode, header: resp.Header}
		r.body, _ = io.ReadAll(resp.Body)
		_ = json.Unmarshal(r.body, &r.m)
		return r
	}
	// The whole text, as it was before the rule moved to
	// validate.IdempotencyKey (MCP's order quotes answer it too).
	const keyRule = "Idempotency-Key must be 1-255 printable ASCII characters"
	for _, tc := range []struct {
		keys      []string
		code, msg string
	}{
		{[]string{"k1", "k2"}, "conflicting_idempotency_keys", "more than one Idempotency-Key"},
		{[]string{""}, "invalid_request", keyRule},
		{[]string{strings.Repeat("a", 256)}, "invalid_request", keyRule},
		{[]string{"a b"}, "invalid_request", keyRule},
		{[]string{"é"}, "invalid_request", keyRule},
	} {
		for range 2 {
			if r := post(tc.keys...); r.status != 400 || r.code() != tc.code || !strings.Contains(r.msg(), tc.msg) || (tc.msg == keyRule && r.msg() != keyRule) {
				t.Errorf("%q: %d %s, want 400 %s", tc.keys, r.status, r.body, tc.code)
			}
		}
	}
	if n := count(); n != 0 {
		t.Fatalf("refused requests created %d tickets", n)
	}
	first := post("k3", "k3")
	again := post("k3")
	if first.status != 201 || again.status != 201 || first.m["id"] != again.m["id"] || count() != 1 {
		t.Fatalf("one key sent twice, then once: %d %s / %d %s, %d tickets; want one ticket, replayed", first.status, first.body, again.status, again.body, count())
	}
}

// TestIdempotencyKeyDocumented: the Idempotency-Key header's schema in
// /openapi.json takes exactly the keys the API takes (1-255 printable ASCII
// characters, no space): a client or an MCP tool built from the document
// does not send one it documents as valid and gets a 400 for it.
func TestIdempotencyKeyDocumented(t *testing.T) {
	doc := loadDoc(t, OpenAPI)
	p := doc.Components.Parameters["IdempotencyKey"]
	if p == nil || p.Value == nil || p.Value.Schema == nil || p.Value.Schema.Value == nil {
		t.Fatal("no IdempotencyKey parameter in components")
	}
	schema := p.Value.Schema.Value
	for _, k := range []string{"", "k", "order-2026-12-03:1", strings.Repeat("k", 255), strings.Repeat("k", 256), "a b", "tab\tkey", "ké", "~!", "\x7f"} {
		_, apiErr := idempotencyKey(http.Header{"Idempotency-Key": {k}})
		docErr := schema.VisitJSON(k)
		if (apiErr == nil) != (docErr == nil) {
			t.Errorf("Idempotency-Key %q: the API says %v, the document %v", k, apiErr, docErr)
		}
	}
}
