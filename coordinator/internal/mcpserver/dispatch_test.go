package mcpserver

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

type ctxKey struct{}

// checkNewRequest: newRequest makes the request http.NewRequestWithContext
// makes of the same URL and body, as a handler reads it (method, URL, Host,
// protocol, header, context, body and its length), and fails where it fails.
func checkNewRequest(t *testing.T, method, host, target string, body []byte) {
	t.Helper()
	ctx := context.WithValue(context.Background(), ctxKey{}, 1)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body) // what Dispatch gave it before newRequest
	}
	want, werr := http.NewRequestWithContext(ctx, method, "http://"+host+target, rd)
	got, gerr := newRequest(ctx, method, host, target, body)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("%s %q %q: error %v, http.NewRequestWithContext's %v", method, host, target, gerr, werr)
	}
	if werr != nil {
		return
	}
	if got.Method != want.Method || !reflect.DeepEqual(got.URL, want.URL) || got.Host != want.Host ||
		got.Proto != want.Proto || got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
		!reflect.DeepEqual(got.Header, want.Header) || got.Context() != want.Context() || got.ContentLength != want.ContentLength {
		t.Fatalf("%s %q %q:\ngot  %+v %+v\nwant %+v %+v", method, host, target, got, got.URL, want, want.URL)
	}
	if (got.Body == nil) != (want.Body == nil) {
		t.Fatalf("%s %q %q: body %v, want %v", method, host, target, got.Body, want.Body)
	}
	if got.Body != nil {
		gb, _ := io.ReadAll(got.Body)
		wb, _ := io.ReadAll(want.Body)
		if string(gb) != string(wb) || got.Body.Close() != nil {
			t.Fatalf("%s %q %q: body %q, want %q", method, host, target, gb, wb)
		}
	}
	if got.URL.RequestURI() != want.URL.RequestURI() || got.URL.EscapedPath() != want.URL.EscapedPath() {
		t.Fatalf("%q %q: request URI %q, want %q", host, target, got.URL.RequestURI(), want.URL.RequestURI())
	}
}

func TestNewRequestMatches(t *testing.T) {
	for _, host := range []string{"localhost", "api.example.com:8443", "127.0.0.1:80", "Example.COM", "[::1]:8080", "h:", ":80", "a b", "u@h", "h:8x", "h:1:2", "%41", ""} {
		for _, target := range []string{"/v1/tickets/tkt_1", "/v1/tickets?page=2&limit=10", "/v1/a%2Fb", "/v1/x y", "/v1/x?", "/v1/x?a#b", "/v1/$&+,:;=@~-_.",
			"/v1/servers/srv_1/power", "v1/x", "", "/v1/\x7f", "/v1/é", "/v1/x?q=%zz", "/v1/x?q=\x01", "//v1", "/v1/x?a=b?c"} {
			checkNewRequest(t, "GET", host, target, nil)
			checkNewRequest(t, "POST", host, target, []byte(`{"a":1}`))
		}
	}
	checkNewRequest(t, "PUT", "localhost", "/v1/x", []byte{})
}

// FuzzNewRequestMatches: for any host, target and body, newRequest and
// http.NewRequestWithContext make the same request (checkNewRequest).
func FuzzNewRequestMatches(f *testing.F) {
	f.Add("localhost", "/v1/tickets/tkt_1", []byte(nil), false)
	f.Add("api.example.com:8443", "/v1/tickets?page=2&status=open", []byte(`{"subject":"x"}`), true)
	f.Add("h", "/v1/a%2Fb?x=%41", []byte(""), true)
	f.Fuzz(func(t *testing.T, host, target string, body []byte, withBody bool) {
		if !withBody {
			body = nil
		} else if body == nil {
			body = []byte{}
		}
		checkNewRequest(t, "POST", host, target, body)
	})
}

// TestBearerShaped: bearerShaped answers what the strings.Fields test it
// replaced answers.
func TestBearerShaped(t *testing.T) {
	for _, v := range []string{"Bearer snc_1", "bearer snc_1", "BEARER  snc_1 ", "\tBearer\u00a0snc_1\n", "Bearer", "Bearer a b",
		"Basic x", "", "  ", "Bearer\u2003x", "Bearerx y", "x Bearer", "Bearer\x85x", "Bearer \xff"} {
		if got, want := bearerShaped(v), fieldsBearer(v); got != want {
			t.Errorf("bearerShaped(%q) = %v, want %v", v, got, want)
		}
	}
}

func FuzzBearerShaped(f *testing.F) {
	f.Add("Bearer snc_1")
	f.Add(" bEaReR\u00a0x\u3000")
	f.Fuzz(func(t *testing.T, v string) {
		if got, want := bearerShaped(v), fieldsBearer(v); got != want {
			t.Fatalf("bearerShaped(%q) = %v, want %v", v, got, want)
		}
	})
}

// fieldsBearer is the test NewHTTPHandler made before bearerShaped.
func fieldsBearer(v string) bool {
	f := strings.Fields(v)
	return len(f) == 2 && strings.EqualFold(f[0], "bearer")
}

// plainPatterns are the plain* checks' documented byte rules as regular
// expressions: each check answers true exactly when its pattern matches.
var plainPatterns = []struct {
	name  string
	check func(string) bool
	re    *regexp.Regexp
}{
	{"plainHost", plainHost, regexp.MustCompile(`^[A-Za-z0-9.-]+(:[0-9]+)?$`)},
	{"plainPath", plainPath, regexp.MustCompile(`^/[A-Za-z0-9\-_.~$&+,/:;=@]*$`)},
	{"plainQuery", plainQuery, regexp.MustCompile(`^[!-"$-~]+$`)},
	{"plainID", func(s string) bool { return plainID([]byte(s)) }, regexp.MustCompile(`^("[A-Za-z0-9._:-]{0,64}"|0|-?[1-9][0-9]{0,14})$`)},
	{"plainKey", plainKey, regexp.MustCompile(`^[A-Za-z0-9_/.:-]+$`)},
}

func checkPlainPatterns(t *testing.T, s string) {
	t.Helper()
	for _, p := range plainPatterns {
		if got, want := p.check(s), p.re.MatchString(s); got != want {
			t.Errorf("%s(%q) = %v, want %v (%s)", p.name, s, got, want, p.re)
		}
	}
}

// TestPlainChecksMatchTheirPatterns: plainHost, plainPath, plainQuery,
// plainID and plainKey let through what their comments say and nothing else.
func TestPlainChecksMatchTheirPatterns(t *testing.T) {
	for _, s := range []string{"", "a", "localhost", "api.example.com:8443", "h:", ":80", "h:8x", "h:1:2", "a b", "/", "/v1/$&+,:;=@~-_.",
		"/v1/a%2Fb", "v1/x", "/v1/\x7f", "/v1/é", "page=2&limit=10", "a#b", "a?b", "!\"$~", " ", "\x7f", "0", "-0", "00", "-1", "7",
		"123456789012345", "1234567890123456", "-123456789012345", `""`, `"a"`, `"srv_1:x.y-z"`, `"a b"`, `"`, `"` + strings.Repeat("x", 64) + `"`,
		`"` + strings.Repeat("x", 65) + `"`, "key_1/a.b:c-d", "key+1", "é"} {
		checkPlainPatterns(t, s)
	}
	for c := 0; c < 256; c++ {
		checkPlainPatterns(t, string([]byte{byte(c)}))
		checkPlainPatterns(t, "/a"+string([]byte{byte(c)}))
	}
}

func FuzzPlainChecksMatchTheirPatterns(f *testing.F) {
	f.Add("api.example.com:8443")
	f.Add(`"srv_1"`)
	f.Fuzz(func(t *testing.T, s string) { checkPlainPatterns(t, s) })
}
