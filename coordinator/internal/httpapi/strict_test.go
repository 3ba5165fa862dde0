package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hostplane/hostplane/internal/tabletest"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestStrictHTTP: invalid UTF-8 is a 400 naming the field, a non-JSON body a
// 415, a known path with another method a 405 with Allow; every response
// carries X-Request-Id and nosniff, keyed ones their rate-limit headers, API
// responses no-store, a 401 WWW-Authenticate: Bearer; a required string of
// white space is refused; a member name given twice, or in another case, is
// refused. Nothing is created by a refused request.
func TestStrictHTTP(t *testing.T) {
	s := newSrvAPI(t)
	_, key := s.account(api.ScopeTicketsRead, api.ScopeTicketsWrite, api.ScopeWebhooksRead, api.ScopeWebhooksWrite)
	tickets := func() int {
		r := s.call(key, "GET", "/v1/tickets", "")
		d, _ := r.m["data"].([]any)
		return len(d)
	}
	before := tickets()
	bad := []struct {
		body, ct string
		status   int
		want     string
	}{
		{"{\"subject\":\"a\xffb\",\"message\":\"m\"}", "", 400, `field "subject" is not valid UTF-8`},
		{"{\"subject\":\"s\",\"message\":\"\xc3\x28\"}", "application/json; charset=utf-8", 400, `field "message" is not valid UTF-8`},
		{"{\"subject\":\"s\",\"message\":\"m\",\"x\xff\":1}", "", 400, "field \"x\ufffd\" is not valid UTF-8"},
		{`{"subject":"s","message":"m"}`, "application/x-www-form-urlencoded", 415, "Content-Type"},
		{`{"subject":"s","message":"m"}`, "text/plain", 415, "Content-Type"},
		{`{"subject":"s","message":"m"}`, "application/json; charset=latin1", 415, "Content-Type"},
		{`{"subject":"   ","message":"m"}`, "", 400, `field "subject" is required`},
		{`{"subject":"s","message":" \n\t "}`, "", 400, `field "message" is required`},
		// encoding/json keeps the last of two names and matches names
		// case-insensitively: both would make one body mean two things.
		{`{"subject":"s","message":"m","subject":"t"}`, "", 400, `field "subject" is given more than once`},
		{`{"SUBJECT":"s","message":"m"}`, "", 400, `unknown field "SUBJECT" (field names are case-sensitive: did you mean "subject"?)`},
		{`{"subject":"s","Message":"m"}`, "", 400, `unknown field "Message"`},
	}
	for _, tc := range bad {
		hdr := []string{"Content-Type", tc.ct}
		r := s.call(key, "POST", "/v1/tickets", tc.body, hdr...)
		if r.status != tc.status || !strings.Contains(r.msg(), tc.want) {
			t.Errorf("body %q (%s): %d %s, want %d containing %s", tc.body, tc.ct, r.status, r.body, tc.status, tc.want)
		}
	}
	// A body with a Content-Encoding other than identity is not decoded:
	// a 415 naming the header, with Accept-Encoding: identity (RFC 7694).
	for _, ce := range []string{"gzip", "br", "identity, gzip"} {
		r := s.call(key, "POST", "/v1/tickets", `{"subject":"s","message":"m"}`, "Content-Encoding", ce)
		if r.status != 415 || r.code() != "unsupported_media_type" || !strings.Contains(r.msg(), "Content-Encoding") || r.header.Get("Accept-Encoding") != "identity" {
			t.Errorf("Content-Encoding %q: %d Accept-Encoding %q %s, want 415 naming Content-Encoding", ce, r.status, r.header.Get("Accept-Encoding"), r.body)
		}
	}
	// Nested fields are named by their path.
	r := s.call(key, "POST", "/v1/webhooks", "{\"url\":\"https://hooks.example.com/a\",\"events\":[\"ticket.created\",\"x\xfe\"]}")
	if r.status != 400 || !strings.Contains(r.msg(), `field "events[1]" is not valid UTF-8`) {
		t.Errorf("nested invalid UTF-8: %d %s", r.status, r.body)
	}
	if n := tickets(); n != before {
		t.Fatalf("refused bodies created tickets: %d → %d", before, n)
	}
	// No Content-Type (curl --data-binary without -H) is JSON; application/json too.
	for _, ct := range []string{"", "application/json", "application/json; charset=UTF-8"} {
		if r := s.call(key, "POST", "/v1/tickets", `{"subject":"ok","message":"m"}`, "Content-Type", ct); r.status != 201 {
			t.Errorf("Content-Type %q: %d %s", ct, r.status, r.body)
		}
	}
	if r := s.call(key, "POST", "/v1/tickets", `{"subject":"ok","message":"m"}`, "Content-Encoding", "identity"); r.status != 201 {
		t.Errorf("Content-Encoding identity: %d %s", r.status, r.body)
	}

	// 405 with Allow on a known path, JSON and with the request id.
	for path, allow := range map[string]string{"/v1/tickets": "GET, HEAD, POST", "/v1/webhooks/wh_x": "GET, HEAD, PATCH, DELETE", "/healthz": "GET, HEAD"} {
		r := s.call(key, "PUT", path, "")
		if r.status != 405 || r.header.Get("Allow") != allow || r.code() != "method_not_allowed" || r.header.Get("X-Request-Id") == "" {
			t.Errorf("PUT %s: %d Allow %q %s", path, r.status, r.header.Get("Allow"), r.body)
		}
	}
	// Unrouted 404s carry the request id too, and the key's rate-limit headers.
	r = s.call(key, "GET", "/v1/nope", "")
	if r.status != 404 || r.code() != "route_not_found" || r.header.Get("X-Request-Id") == "" || r.header.Get("X-RateLimit-Remaining") == "" {
		t.Errorf("unrouted: %d %v %s", r.status, r.header, r.body)
	}
	if resp, err := http.Get(s.srv.URL + "/nope"); err != nil || resp.StatusCode != 404 || resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("unrouted outside /v1: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Every response: nosniff and a request id; /v1: no-store (secrets shown once).
	r = s.call(key, "POST", "/v1/webhooks", `{"url":"https://hooks.example.com/a","events":["ticket.created"]}`)
	if r.status != 201 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("webhook create (carries the secret): %d Cache-Control %q", r.status, r.header.Get("Cache-Control"))
	}
	id, _ := r.m["id"].(string)
	r = s.call(key, "POST", "/v1/webhooks/"+id+"/rotate-secret", "")
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("rotate secret: %d Cache-Control %q %s", r.status, r.header.Get("Cache-Control"), r.body)
	}
	for _, p := range []string{"/v1/tickets", "/healthz", "/openapi.json", "/readyz"} {
		resp, err := http.Get(s.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("GET %s: headers %v", p, resp.Header)
		}
	}
	// The Bearer scheme is case-insensitive (RFC 7235 §2.1); two different
	// keys in one request are a 400 (RFC 6750 §2: one way only), whichever
	// the coordinator would have taken.
	if r := s.call("", "GET", "/v1/tickets", "", "Authorization", "BEARER "+key); r.status != 200 {
		t.Errorf("BEARER scheme: %d %s", r.status, r.body)
	}
	_, other := s.account(api.ScopeTicketsRead)
	for _, hdr := range [][]string{{"Authorization", "Bearer " + key, "X-API-Key", other}, {"X-API-Key", key, "Authorization", "Bearer " + other}} {
		if r := s.call("", "GET", "/v1/tickets", "", hdr...); r.status != 400 || r.code() != "conflicting_credentials" {
			t.Errorf("%v: %d %s", hdr, r.status, r.body)
		}
	}
	if r := s.call("", "GET", "/v1/tickets", "", "Authorization", "Bearer "+key, "X-API-Key", key); r.status != 200 {
		t.Errorf("one key sent two ways: %d %s", r.status, r.body)
	}
	// A 401 says how to authenticate.
	for _, k := range []string{"", "snc_wrong"} {
		r := s.call(k, "GET", "/v1/tickets", "")
		if r.status != 401 || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("key %q: %d WWW-Authenticate %q", k, r.status, r.header.Get("WWW-Authenticate"))
		}
	}
	// Without a key, the message names both headers, and reads as written
	// in the raw body: encoding/json writes < and > as \u003c and \u003e,
	// which a user reading the body (curl) sees as such.
	nk := s.call("", "GET", "/v1/tickets", "")
	if msg, _ := nk.m["message"].(string); nk.code() != "missing_api_key" || !strings.Contains(msg, "Authorization: Bearer ") || !strings.Contains(msg, "X-API-Key: ") ||
		!strings.Contains(string(nk.body), msg) {
		t.Errorf("no key: %d %s, want missing_api_key naming Authorization: Bearer and X-API-Key, as written in the body", nk.status, nk.body)
	}
}

func TestInvalidUTF8Path(t *testing.T) {
	tabletest.Equal(t, "invalidUTF8Path", func(body string) string { return invalidUTF8Path([]byte(body)) }, map[string]string{
		"\"\xff\"":                             "(body)",
		"{\"a\":\"\xff\"}":                     "a",
		"{\"a\":1,\"b\":{\"c\":[1,\"\xff\"]}}": "b.c[1]",
		"{\"a\":[{\"x\":1},{\"y\":\"\xff\"}]}": "a[1].y",
		"{\"\xff\":1}":                         "\ufffd",
		"{\"a\":\"ok\"}":                       "",
		"{\"a\":\"ok\" \xff}":                  "",
	})
}

// FuzzDecodeStrictUTF8: decodeStrict never accepts invalid UTF-8 (so nothing
// is stored with U+FFFD in its place), and its refusal is a 4xx; the path finder
// never panics and names nothing in valid input.
func FuzzDecodeStrictUTF8(f *testing.F) {
	for _, s := range append(decoderSeeds, "{\"subject\":\"a\xffb\",\"message\":\"m\"}", "{\"a\":[\"\xc3\x28\"]}", "{\"\xfe\":1}", "[\"x\",\xff]") {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		path := invalidUTF8Path(body)
		var v any
		err := decodeStrict(body, &v)
		if !utf8.Valid(body) {
			if err == nil {
				t.Fatalf("accepted invalid UTF-8: %q", body)
			}
			mustBeClientError(t, err)
			var he *httpError
			if errors.As(err, &he) && path != "" && !strings.Contains(he.msg, "not valid UTF-8") {
				t.Fatalf("%q: %v", body, err)
			}
		} else if path != "" {
			t.Fatalf("valid UTF-8 %q: path %q", body, path)
		}
	})
}

// TestTicketAnswersAreEncodingJSON: a ticket answer (create, reply, close),
// written without reflection, is byte for byte what writeJSON's encoder
// writes for the same ticket, escapes included; so is a replayed one.
func TestTicketAnswersAreEncodingJSON(t *testing.T) {
	s := newSrvAPI(t)
	_, key := s.account(api.ScopeTicketsRead, api.ScopeTicketsWrite)
	same := func(r reply, status int) api.Ticket {
		t.Helper()
		var tk api.Ticket
		if err := json.Unmarshal(r.body, &tk); err != nil || r.status != status {
			t.Fatalf("status %d: %s (%v)", r.status, r.body, err)
		}
		var want bytes.Buffer
		_ = json.NewEncoder(&want).Encode(tk)
		if !bytes.Equal(r.body, want.Bytes()) {
			t.Fatalf("answer\n%q\nencoding/json\n%q", r.body, want.Bytes())
		}
		return tk
	}
	// U+2028, which encoding/json escapes, in the message: a subject is one
	// line and refuses it (gaps59).
	body := `{"subject":"<b>\"ü\" & </b>","message":"line\nbreak \\ tab\t \u2028"}`
	created := same(s.call(key, "POST", "/v1/tickets", body, "Idempotency-Key", "k1"), 201)
	if created.Subject != "<b>\"ü\" & </b>" || len(created.Messages) != 1 || !strings.Contains(created.Messages[0].Body, "\u2028") {
		t.Fatalf("created %+v", created)
	}
	replayed := s.call(key, "POST", "/v1/tickets", body, "Idempotency-Key", "k1")
	if replayed.header.Get("Idempotent-Replayed") != "true" || same(replayed, 201).ID != created.ID {
		t.Fatalf("replay: %d %s", replayed.status, replayed.body)
	}
	same(s.call(key, "POST", "/v1/tickets/"+created.ID+"/reply", `{"body":"more <text>"}`), 201)
	if closed := same(s.call(key, "POST", "/v1/tickets/"+created.ID+"/close", `{}`), 200); closed.Status != api.TicketClosed {
		t.Fatalf("closed %+v", closed)
	}
}
