package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/hostplane/hostplane/pkg/api"
)

// bidiControls are the Unicode bidi controls ("Trojan Source"): the
// marks, the embeddings and overrides with their pop, and the isolates.
var bidiControls = []rune{'\u061c', '\u200e', '\u200f', '\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069'}

// TestOneLineRefusesBidiControls: a one-line field (here an API key's name
// and a ticket's subject, through /v1) holding a bidi control is a 400
// invalid_field naming the field, and nothing is made: "evil\u202egnp.exe"
// would show as "evilexe.png" in "hostplanectl key list". A ticket's
// message, multi-line text, keeps them (right-to-left prose uses the marks)
// and is read back as sent. The list is Go's unicode.Bidi_Control, checked
// here so a change of the table shows.
func TestOneLineRefusesBidiControls(t *testing.T) {
	for _, r := range bidiControls {
		if !unicode.Is(unicode.Bidi_Control, r) {
			t.Fatalf("U+%04X is not in unicode.Bidi_Control", r)
		}
	}
	s := newSrvAPI(t)
	_, key := s.account(api.ScopeKeysWrite, api.ScopeAccountRead, api.ScopeTicketsWrite, api.ScopeTicketsRead)
	count := func(path string) int {
		t.Helper()
		r := s.call(key, "GET", path, "")
		var l struct {
			Data []json.RawMessage `json:"data"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &l) != nil {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		return len(l.Data)
	}
	keys, tickets := count("/v1/account/api-keys"), count("/v1/tickets")
	for _, c := range bidiControls {
		hostile := "evil" + string(c) + "gnp.exe"
		q, _ := json.Marshal(hostile)
		for _, tc := range []struct{ path, field, body string }{
			{"/v1/account/api-keys", "name", fmt.Sprintf(`{"name":%s,"scopes":["account:read"]}`, q)},
			{"/v1/tickets", "subject", fmt.Sprintf(`{"subject":%s,"message":"m"}`, q)},
		} {
			r := s.call(key, "POST", tc.path, tc.body)
			if r.status != 400 || r.code() != "invalid_field" || !strings.Contains(r.msg(), `"`+tc.field+`"`) || !strings.Contains(r.msg(), "bidirectional") {
				t.Errorf("POST %s with %s %q: %d %s; want 400 invalid_field naming %s", tc.path, tc.field, hostile, r.status, r.body, tc.field)
			}
		}
	}
	if k, tk := count("/v1/account/api-keys"), count("/v1/tickets"); k != keys || tk != tickets {
		t.Fatalf("refused requests made something: keys %d→%d, tickets %d→%d", keys, k, tickets, tk)
	}
	// Multi-line text keeps them; the one-line names around them still pass.
	msg := "\u05e9\u05dc\u05d5\u05dd \u200fv2.1\u200f\n\u0627\u0644\u0631\u0642\u0645\u061c 42 \u2067\u05e2\u05d1\u05e8\u05d9\u05ea\u2069"
	q, _ := json.Marshal(msg)
	r := s.call(key, "POST", "/v1/tickets", fmt.Sprintf(`{"subject":"RTL \u05e9\u05dc\u05d5\u05dd","message":%s}`, q))
	if r.status != 201 {
		t.Fatalf("a ticket whose message holds bidi marks: %d %s", r.status, r.body)
	}
	var tk api.Ticket
	if err := json.Unmarshal(r.body, &tk); err != nil || len(tk.Messages) != 1 || tk.Messages[0].Body != msg {
		t.Fatalf("the message read back: %+v (%v); sent %q", tk.Messages, err, msg)
	}
}

// FuzzOneLine: what oneLine takes is valid UTF-8 of 1 to 100 characters
// with no control character, line or paragraph separator or bidi control;
// what it refuses is a 400 invalid_field naming the field.
func FuzzOneLine(f *testing.F) {
	for _, s := range []string{"a b", "evil\u202egnp.exe", "a\nb", "a\u2028b", "\u200f", "\xff", "", " ", "\u0627\u0644\u0631\u0642\u0645", "a\u2066b\u2069"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := oneLine("label", s, 1, 100)
		if err != nil {
			he, ok := err.(*httpError)
			if !ok || he.status != 400 || he.code != "invalid_field" || !strings.HasPrefix(he.msg, `field "label" `) {
				t.Fatalf("oneLine(%q): %v; want a 400 invalid_field naming the field", s, err)
			}
			return
		}
		if !utf8.ValidString(s) {
			t.Fatalf("oneLine took invalid UTF-8 %q", s)
		}
		if n := utf8.RuneCountInString(s); n < 1 || n > 100 || strings.TrimSpace(s) == "" {
			t.Fatalf("oneLine took %q (%d characters)", s, n)
		}
		for _, r := range s {
			if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
				t.Fatalf("oneLine took %q holding U+%04X", s, r)
			}
		}
	})
}
