package audit

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestProbe62MethodAndHeaderCorners: credentials, Idempotency-Keys and
// methods as a hostile client of account A sends them, at the leader and at
// a follower (which forwards, so a header given twice must reach the leader
// as the client sent it or be refused before), each checked against what
// SPEC.md and README promise:
//   - README: "a request presenting two different keys (both headers, or
//     one twice) is a 400 conflicting_credentials": A's and B's key in two
//     Authorization lines (either order), in Authorization and X-API-Key,
//     in two X-API-Key lines, A's beside a key never issued, and A's beside
//     a Basic credential are refused (a 400 conflicting_credentials; the
//     Basic pair at least no 2xx), showing neither account, on a read and on
//     a write; the same key twice, or in both headers, is A's;
//   - "Authorization: Bearer <key> (the scheme in any case)": bearer and
//     BEARER are A's; another scheme (Basic with A's key as user or
//     password, Token), two tokens in one line, or A's key in the query
//     string (api_key, access_token, key: no listed parameter) are no 2xx:
//     a 401 with WWW-Authenticate: Bearer, or the 400 invalid_query naming
//     the parameter when a valid key comes with it;
//   - two different Idempotency-Keys on a POST that honours them are a 400
//     conflicting_idempotency_keys and an empty one a 400; the same key
//     twice is one key (201, and the request sent again with it once is its
//     replay); a key on a GET is ignored (200) and records nothing: the
//     same key on a create afterwards makes a new ticket, no replay;
//   - OPTIONS on documented paths (also as a CORS preflight) is the 405
//     with Allow naming the path's methods, without CORS headers at the
//     leader too (TestProbe8OutsideIn checks a follower without Origin);
//     HEAD answers as GET would without a body: A's ticket 200, B's a 404,
//     a bad query a 400, two keys a 400;
//   - afterwards A and B have exactly the tickets and keys the accepted
//     requests made, read through each coordinator.
func TestProbe62MethodAndHeaderCorners(t *testing.T) {
	r := lightRig(t, "p62hdr")
	ld, f := r.leaderAndFollower()
	tA := r.ticket(0, r.keyA, "p62 hdr A")
	tB := r.ticket(0, r.keyB, "p62 hdr B secret")
	never := "snc_" + strings.Repeat("Q7", 22) // well formed, never issued
	basic := func(user, pw string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw)) }
	hdrs := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	bearer := func(k string) string { return "Bearer " + k }
	type cred struct {
		name string
		hdr  http.Header
		want string // "A": answered as A; a code: refused with it; "401": a 401; "no2xx": refused somehow
		path string // a query to add ("" none)
	}
	creds := []cred{
		{"A's key twice in Authorization", hdrs("Authorization", bearer(r.keyA), "Authorization", bearer(r.keyA)), "A", ""},
		{"A's key in Authorization and X-API-Key", hdrs("Authorization", bearer(r.keyA), "X-API-Key", r.keyA), "A", ""},
		{"lower-case bearer", hdrs("Authorization", "bearer "+r.keyA), "A", ""},
		{"upper-case BEARER", hdrs("Authorization", "BEARER "+r.keyA), "A", ""},
		{"A's and B's keys in two Authorization lines", hdrs("Authorization", bearer(r.keyA), "Authorization", bearer(r.keyB)), "conflicting_credentials", ""},
		{"B's and A's keys in two Authorization lines", hdrs("Authorization", bearer(r.keyB), "Authorization", bearer(r.keyA)), "conflicting_credentials", ""},
		{"A's in Authorization, B's in X-API-Key", hdrs("Authorization", bearer(r.keyA), "X-API-Key", r.keyB), "conflicting_credentials", ""},
		{"B's in X-API-Key, A's in lower-case bearer", hdrs("X-API-Key", r.keyB, "Authorization", "bearer "+r.keyA), "conflicting_credentials", ""},
		{"A's and B's keys in two X-API-Key lines", hdrs("X-API-Key", r.keyA, "X-API-Key", r.keyB), "conflicting_credentials", ""},
		{"A's key and one never issued", hdrs("Authorization", bearer(r.keyA), "Authorization", bearer(never)), "conflicting_credentials", ""},
		{"A's key and a never issued X-API-Key", hdrs("X-API-Key", never, "Authorization", bearer(r.keyA)), "conflicting_credentials", ""},
		{"A's Bearer and a Basic line", hdrs("Authorization", bearer(r.keyA), "Authorization", basic(r.keyB, "")), "conflicting_credentials", ""},
		{"a Basic line and A's Bearer", hdrs("Authorization", basic(r.keyB, ""), "Authorization", bearer(r.keyA)), "conflicting_credentials", ""},
		{"A's Bearer and a Token line", hdrs("Authorization", bearer(r.keyA), "Authorization", "Token "+r.keyB), "conflicting_credentials", ""},
		{"A's X-API-Key and a Basic Authorization", hdrs("X-API-Key", r.keyA, "Authorization", basic(r.keyB, "")), "conflicting_credentials", ""},
		{"A's key as Basic user", hdrs("Authorization", basic(r.keyA, "")), "401", ""},
		{"A's key as Basic password", hdrs("Authorization", basic("", r.keyA)), "401", ""},
		{"scheme Token", hdrs("Authorization", "Token "+r.keyA), "401", ""},
		{"the key without a scheme", hdrs("Authorization", r.keyA), "401", ""},
		{"two tokens in one line", hdrs("Authorization", bearer(r.keyA)+", "+bearer(r.keyB)), "no2xx", ""},
		{"two tokens after one Bearer", hdrs("Authorization", bearer(r.keyA+" "+r.keyB)), "no2xx", ""},
		{"api_key in the query", nil, "no2xx", "?api_key=" + r.keyA},
		{"access_token in the query", nil, "no2xx", "?access_token=" + r.keyA},
		{"key in the query", nil, "no2xx", "?key=" + r.keyA},
		{"A's header, B's api_key in the query", hdrs("Authorization", bearer(r.keyA)), "invalid_query:api_key", "?api_key=" + r.keyB},
		{"A's header, B's access_token in the query", hdrs("Authorization", bearer(r.keyA)), "invalid_query:access_token", "?access_token=" + r.keyB},
	}
	markers := []string{r.accA.ID, r.accA.Email, r.accB.ID, r.accB.Email, tA.Subject, tB.Subject}
	tickets := map[string]int{"A": 1, "B": 1}
	open := map[string]bool{} // p62HeaderOpen cases seen answered
	n := 0                    // numbers the creates' Idempotency-Keys
	for _, i := range []int{ld, f} {
		base := r.c.URL(i)
		for _, c := range creds {
			for _, op := range []struct{ method, path, body string }{
				{"GET", "/v1/account", ""}, {"GET", "/v1/tickets/" + tA.ID, ""}, {"POST", "/v1/tickets", `{"subject":"p62 cred","message":"m"}`},
			} {
				target := op.path + c.path
				h := c.hdr.Clone()
				if op.method == "POST" {
					// Each create its own key: sent again after a
					// leadership 503 (p62Do), it is made once.
					if h == nil {
						h = http.Header{}
					}
					h.Set("Idempotency-Key", fmt.Sprintf("p62-cred-%d-%d", i, n))
					n++
				}
				rep := p62Do(t, r.ctx, base, op.method, target, h, op.body)
				what := fmt.Sprintf("coordinator %d: %s %s with %s", i, op.method, op.path, c.name)
				code, param, _ := strings.Cut(c.want, ":")
				switch {
				case c.want == "A":
					if op.method == "POST" && rep.status == 201 {
						tickets["A"]++
						continue
					}
					mine := tA.ID
					if op.path == "/v1/account" {
						mine = r.accA.ID
					}
					if rep.status != 200 || !strings.Contains(string(rep.body), mine) {
						t.Errorf("%s: %s; want A's answer", what, rep)
					}
					continue
				case rep.status >= 200 && rep.status < 300:
					if p62HeaderOpen[c.name] {
						t.Logf("%s: %s (an open finding: p62HeaderOpen)", what, rep)
						open[c.name] = true
					} else {
						t.Errorf("%s: %s; want a refusal (%s)", what, rep, c.want)
					}
					if op.method == "POST" {
						// Made for the account whose key took it.
						var tk api.Ticket
						_ = json.Unmarshal(rep.body, &tk)
						who := "B"
						if p62Do(t, r.ctx, base, "GET", "/v1/tickets/"+tk.ID, p62Key(r.keyA), "").status == 200 {
							who = "A"
						}
						tickets[who]++
					}
					continue
				case c.want == "401":
					if rep.status != 401 || !strings.HasPrefix(rep.header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("%s: %s (WWW-Authenticate %q); want a 401 with WWW-Authenticate: Bearer", what, rep, rep.header.Get("WWW-Authenticate"))
					}
				case c.want == "no2xx":
					if rep.status != 400 && rep.status != 401 {
						t.Errorf("%s: %s; want a 400 or 401", what, rep)
					}
				default:
					e, _ := rep.envelope()
					if rep.status != 400 || e.Code != code || param != "" && !strings.Contains(e.Message, `"`+param+`"`) {
						t.Errorf("%s: %s; want a 400 %s %s", what, rep, code, param)
					}
				}
				p62Refused(t, what, rep, target, markers, rep.status)
			}
		}
	}

	for name := range p62HeaderOpen {
		if !open[name] {
			t.Errorf("%s: refused everywhere, no longer an open finding: remove it from p62HeaderOpen", name)
		}
	}

	// Idempotency-Keys, on POST /v1/tickets (which honours them) as A.
	create := func(i int, subject string, keys ...string) p58Reply {
		h := p62Key(r.keyA)
		for _, k := range keys {
			h.Add("Idempotency-Key", k)
		}
		return p62Do(t, r.ctx, r.c.URL(i), "POST", "/v1/tickets", h, `{"subject":"`+subject+`","message":"m"}`)
	}
	for _, i := range []int{ld, f} {
		for _, c := range []struct {
			name string
			keys []string
			code string
		}{
			{"two different keys", []string{fmt.Sprintf("p62-k1-%d", i), fmt.Sprintf("p62-k2-%d", i)}, "conflicting_idempotency_keys"},
			{"a key and an empty one", []string{fmt.Sprintf("p62-k3-%d", i), ""}, ""},
			{"an empty key", []string{""}, ""},
			{"a key of 256 characters", []string{strings.Repeat("k", 256)}, ""},
		} {
			rep := create(i, "p62 idem refused", c.keys...)
			what := fmt.Sprintf("coordinator %d: POST /v1/tickets with %s", i, c.name)
			if rep.status != 400 || c.code != "" && rep.code() != c.code {
				t.Errorf("%s: %s; want a 400 %s", what, rep, c.code)
				if rep.status == 201 {
					tickets["?"]++
				}
			} else if e := rep.envelopeErr(); e != "" {
				t.Errorf("%s: %s: %s", what, e, rep)
			}
			// The first key alone is fresh: the refusal recorded nothing.
			if c.keys[0] != "" && len(c.keys[0]) < 256 {
				if rep := create(i, "p62 idem after refusal", c.keys[0]); rep.status != 201 || rep.header.Get("Idempotent-Replayed") == "true" {
					t.Errorf("%s, then with its first key alone: %s (replayed %q); want a new ticket", what, rep, rep.header.Get("Idempotent-Replayed"))
				} else {
					tickets["A"]++
				}
			}
		}
		// The same key twice is one key.
		k := fmt.Sprintf("p62-same-%d", i)
		first := create(i, "p62 idem same", k, k)
		if first.status != 201 {
			t.Errorf("coordinator %d: POST /v1/tickets with one key twice: %s; want 201", i, first)
		} else {
			tickets["A"]++
			again := create(i, "p62 idem same", k)
			var a, b api.Ticket
			_ = json.Unmarshal(first.body, &a)
			_ = json.Unmarshal(again.body, &b)
			if again.status != 201 || a.ID == "" || b.ID != a.ID {
				t.Errorf("coordinator %d: the same request with the key once after it was sent twice: %s; want the replay of ticket %s", i, again, a.ID)
			}
		}
		// A key on a GET is ignored and records nothing.
		g := fmt.Sprintf("p62-get-%d", i)
		h := p62Key(r.keyA)
		h.Add("Idempotency-Key", g)
		if rep := p62Do(t, r.ctx, r.c.URL(i), "GET", "/v1/tickets?limit=1", h, ""); rep.status != 200 {
			t.Errorf("coordinator %d: GET /v1/tickets with an Idempotency-Key: %s; want 200", i, rep)
		}
		if rep := create(i, "p62 idem after get", g); rep.status != 201 || rep.header.Get("Idempotent-Replayed") == "true" || !strings.Contains(string(rep.body), "p62 idem after get") {
			t.Errorf("coordinator %d: POST /v1/tickets with the key a GET carried: %s; want a new ticket", i, rep)
		} else {
			tickets["A"]++
		}
	}

	// OPTIONS and HEAD.
	for _, i := range []int{ld, f} {
		base := r.c.URL(i)
		for _, p := range []struct {
			path  string
			allow []string
		}{
			{"/v1/account", []string{"GET", "HEAD"}}, {"/v1/tickets", []string{"GET", "HEAD", "POST"}},
			{"/v1/tickets/" + tA.ID, []string{"GET", "HEAD"}}, {"/v1/tickets/" + tB.ID, []string{"GET", "HEAD"}},
			{"/v1/tickets/" + tA.ID + "/close", []string{"POST"}},
		} {
			for _, pre := range []bool{false, true} {
				h := p62Key(r.keyA)
				if pre {
					h.Set("Origin", "https://evil.example")
					h.Set("Access-Control-Request-Method", "POST")
					h.Set("Access-Control-Request-Headers", "authorization, idempotency-key")
				}
				rep := p62Do(t, r.ctx, base, "OPTIONS", p.path, h, "")
				what := fmt.Sprintf("coordinator %d: OPTIONS %s (preflight %v)", i, p.path, pre)
				var allow []string
				for _, a := range strings.Split(rep.header.Get("Allow"), ",") {
					if a = strings.TrimSpace(a); a != "" {
						allow = append(allow, a)
					}
				}
				slices.Sort(allow)
				if rep.status != 405 || rep.code() != "method_not_allowed" || !slices.Equal(allow, p.allow) {
					t.Errorf("%s: %s Allow %q; want a 405 method_not_allowed with Allow %v", what, rep, rep.header.Get("Allow"), p.allow)
				}
				for k := range rep.header {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("%s: CORS header %s: %q on /v1", what, k, rep.header.Get(k))
					}
				}
				p62Refused(t, what, rep, p.path, markers, 405)
			}
		}
		for _, c := range []struct {
			name, path string
			hdr        http.Header
			status     int
		}{
			{"A's ticket", "/v1/tickets/" + tA.ID, p62Key(r.keyA), 200},
			{"B's ticket", "/v1/tickets/" + tB.ID, p62Key(r.keyA), 404},
			{"a bad query", "/v1/tickets?limit=0", p62Key(r.keyA), 400},
			{"two keys", "/v1/tickets", hdrs("Authorization", bearer(r.keyA), "X-API-Key", r.keyB), 400},
			{"no key", "/v1/tickets", nil, 401},
		} {
			rep := p62Do(t, r.ctx, base, "HEAD", c.path, c.hdr, "")
			get := p62Do(t, r.ctx, base, "GET", c.path, c.hdr, "")
			what := fmt.Sprintf("coordinator %d: HEAD %s (%s)", i, c.path, c.name)
			if rep.status != c.status || get.status != c.status || len(rep.body) != 0 {
				t.Errorf("%s: %d, %d bytes (GET: %d); want %d without a body", what, rep.status, len(rep.body), get.status, c.status)
			}
			if rep.header.Get("Content-Type") != get.header.Get("Content-Type") || rep.header.Get("X-RateLimit-Limit") == "" {
				t.Errorf("%s: Content-Type %q (GET %q), X-RateLimit-Limit %q", what, rep.header.Get("Content-Type"), get.header.Get("Content-Type"), rep.header.Get("X-RateLimit-Limit"))
			}
		}
	}

	// What was made: A's tickets the accepted creates made, none of B's.
	for i := range r.c.Len() {
		for who, key := range map[string]string{"A": r.keyA, "B": r.keyB} {
			var l struct {
				Total int `json:"total"`
			}
			rep := p62Do(t, r.ctx, r.c.URL(i), "GET", "/v1/tickets", p62Key(key), "")
			if rep.status != 200 || json.Unmarshal(rep.body, &l) != nil || l.Total != tickets[who] {
				t.Errorf("coordinator %d: %s's tickets: %s; want %d", i, who, rep, tickets[who])
			}
			var keys struct {
				Data []json.RawMessage `json:"data"`
			}
			rep = p62Do(t, r.ctx, r.c.URL(i), "GET", "/v1/account/api-keys", p62Key(key), "")
			if rep.status != 200 || json.Unmarshal(rep.body, &keys) != nil || len(keys.Data) != 1 {
				t.Errorf("coordinator %d: %s's keys: %s; want its one key", i, who, rep)
			}
		}
	}
}

// p62HeaderOpen are credential shapes found answered and not fixed yet:
// logged, not failed; one refused everywhere fails the test, so a fix
// empties it. The four this test found on main (probe62, 2026-12-07: a
// valid key beside an Authorization line of another scheme carrying another
// key was answered as the valid key) are refused since auth.Presented counts
// such a line as a credential: each is now a 400 conflicting_credentials.
var p62HeaderOpen = map[string]bool{}
