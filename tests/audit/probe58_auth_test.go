package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
)

// p58Reply is one answer to p58Do: the status, headers and body.
type p58Reply struct {
	status int
	header http.Header
	body   []byte
	what   string // method and path, for messages
}

func (p p58Reply) String() string { return fmt.Sprintf("%s: %d %.300s", p.what, p.status, p.body) }

// p58Envelope is SPEC.md's error body.
type p58Envelope struct {
	StatusCode int    `json:"statusCode"`
	Error      string `json:"error"`
	Message    string `json:"message"`
	Code       string `json:"code"`
}

func (p p58Reply) envelope() (p58Envelope, error) {
	var e p58Envelope
	err := json.Unmarshal(p.body, &e)
	return e, err
}

func (p p58Reply) code() string {
	e, _ := p.envelope()
	return e.Code
}

// wantMemberRefusal fails t, naming where, unless p is a 400 in SPEC.md's
// error envelope whose message names member (and whose code is code, when
// code is not "").
func (p p58Reply) wantMemberRefusal(t *testing.T, where, member, code string) {
	t.Helper()
	e, _ := p.envelope()
	switch {
	case p.status != 400:
		t.Errorf("%s: %s; want 400 naming %s", where, p, member)
	case p.envelopeErr() != "":
		t.Errorf("%s: %s: %s", where, p.envelopeErr(), p)
	case !strings.Contains(e.Message, member):
		t.Errorf("%s: the 400 does not name %s: %s", where, member, p)
	case code != "" && e.Code != code:
		t.Errorf("%s: code %q, want %s: %s", where, e.Code, code, p)
	}
}

var p58Snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// envelopeErr says what in p, an error answer, is not SPEC.md's error body
// ({statusCode, error, message, code}, statusCode the status, error its
// reason phrase, code snake_case) or lacks the X-RateLimit-* headers SPEC.md
// puts on every response; "" when it is.
func (p p58Reply) envelopeErr() string {
	e, err := p.envelope()
	switch {
	case err != nil:
		return "not JSON: " + err.Error()
	case e.StatusCode != p.status, e.Error != http.StatusText(p.status), e.Message == "", !p58Snake.MatchString(e.Code):
		return fmt.Sprintf("not the error envelope: %+v", e)
	}
	for _, h := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if p.header.Get(h) == "" {
			return "no " + h + " header"
		}
	}
	return ""
}

// p58Do sends one request as a client written from SPEC.md would: its own
// net/http client, the key in X-API-Key ("" none; a key starting with
// "Bearer " goes in Authorization as written), a JSON body (nil: none). A
// 503 that says the cluster is electing a leader (no_leader,
// leader_unreachable, read_unconfirmed) is sent again after its Retry-After,
// for up to 20 s, when resend allows it (a read, a request that cannot
// change anything, or one with an Idempotency-Key).
func p58Do(t testing.TB, ctx context.Context, base, key, method, path string, body []byte, hdr map[string]string, resend bool) p58Reply {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		switch {
		case strings.HasPrefix(key, "Bearer "):
			req.Header.Set("Authorization", key)
		case key != "":
			req.Header.Set("X-API-Key", key)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		rep := p58Reply{status: resp.StatusCode, header: resp.Header, body: raw, what: method + " " + path}
		if resend && rep.status == 503 && slices.Contains([]string{"no_leader", "leader_unreachable", "read_unconfirmed"}, rep.code()) && time.Now().Before(deadline) {
			t.Logf("%s: sent again", rep)
			time.Sleep(time.Second)
			continue
		}
		return rep
	}
}

// p58Ops reads the operations of base's /openapi.json, fetched with this
// probe's own client, as a client generator does (parseOperations).
func p58Ops(t *testing.T, ctx context.Context, base string) []openAPIOp {
	t.Helper()
	rep := p58Do(t, ctx, base, "", "GET", "/openapi.json", nil, nil, true)
	if rep.status != 200 {
		t.Fatalf("%s", rep)
	}
	return parseOperations(t, rep.body)
}

// p58ScopeKeys makes, for each scope of scopes (once; "" skipped), two keys
// of A (named prefix and what they hold): one with every scope but it
// (without) and one with it alone (only).
func p58ScopeKeys(t *testing.T, r *rig, prefix string, scopes []string) (without, only map[string]string) {
	t.Helper()
	adm := r.c.AnyAlive(nil).Admin()
	without, only = map[string]string{}, map[string]string{}
	for _, sc := range scopes {
		if sc == "" || without[sc] != "" {
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(api.AllScopes), func(x string) bool { return x == sc })
		k, err := adm.CreateKey(r.ctx, r.accA.ID, api.KeyCreateRequest{Name: prefix + " without " + sc, Scopes: rest})
		if err != nil {
			t.Fatal(err)
		}
		without[sc] = k.Key
		k, err = adm.CreateKey(r.ctx, r.accA.ID, api.KeyCreateRequest{Name: prefix + " only " + sc, Scopes: []string{sc}})
		if err != nil {
			t.Fatal(err)
		}
		only[sc] = k.Key
	}
	return without, only
}

// TestProbe58EveryOperationAuth: SPEC.md's 401 ("missing/invalid/expired
// key") and 403 ("missing scope") on every operation the served
// /openapi.json lists, through each of the three coordinators (two of them
// followers, which forward writes), as a client written from SPEC.md and
// /openapi.json alone checks them; earlier tests check the 403 of the seeds'
// endpoints on one coordinator and of the hosting routes, and no test sends
// every operation without a key:
//   - without a key, with a well-formed key that was never issued, with an
//     empty Bearer token and with a malformed Authorization header, each
//     operation that declares security is a 401 in the error envelope (with
//     the X-RateLimit-* headers), and one without (GET /scopes) is no 401;
//   - with a key of the account holding every scope but the operation's
//     x-scope (and its x-alt-scope), a 403 in the envelope naming the scope;
//   - an operation with an x-alt-scope is not refused for scope with a key
//     holding only that alternative.
//
// Every request names nothing that exists and is refused before any body
// is read, so nothing is made: afterwards the account has no ticket,
// webhook, server, hosting account, domain, invoice or key beyond its own.
func TestProbe58EveryOperationAuth(t *testing.T) {
	r := lightRig(t, "p58auth", "--ip-rate-limit", "1000000", "--public-url", "https://api.audit.example")
	ctx := r.ctx
	ops := p58Ops(t, ctx, r.c.URL(0))
	if len(ops) < 60 {
		t.Fatalf("/openapi.json lists %d operations; want the whole API", len(ops))
	}
	adm := r.c.AnyAlive(nil).Admin()
	// A key of A with every scope but sc, for each scope an operation names.
	var named []string
	for _, op := range ops {
		named = append(named, op.Scope, op.AltScope)
	}
	without, only := p58ScopeKeys(t, r, "p58", named)
	// A key of A with every scope but an operation's two (x-scope and
	// x-alt-scope), for each operation that has an alternative.
	withoutBoth := map[string]string{}
	for _, op := range ops {
		if op.AltScope == "" || withoutBoth[op.Scope+" "+op.AltScope] != "" {
			continue
		}
		rest := slices.DeleteFunc(slices.Clone(api.AllScopes), func(x string) bool { return x == op.Scope || x == op.AltScope })
		k, err := adm.CreateKey(ctx, r.accA.ID, api.KeyCreateRequest{Name: "p58 without " + op.Scope + " " + op.AltScope, Scopes: rest})
		if err != nil {
			t.Fatal(err)
		}
		withoutBoth[op.Scope+" "+op.AltScope] = k.Key
	}
	never := "snc_" + strings.Repeat("Q7", 22) // well formed, never issued
	fill := strings.NewReplacer("{id}", "x1", "{ip}", "192.0.2.1", "{snapshotId}", "x2", "{deliveryId}", "x3", "{action}", "reboot")
	checked := 0
	for i := range r.c.Len() {
		base := r.c.URL(i)
		for _, op := range ops {
			path := "/v1" + fill.Replace(op.path)
			var body []byte
			if op.isBody {
				body = []byte(`{}`)
			}
			what := fmt.Sprintf("coordinator %d: %s %s", i, op.method, op.path)
			if op.open {
				if rep := p58Do(t, ctx, base, "", op.method, path, body, nil, true); rep.status == 401 {
					t.Errorf("%s declares no security: %s", what, rep)
				}
				continue
			}
			if op.Scope == "" {
				t.Errorf("%s declares security but no x-scope", what)
				continue
			}
			for _, cred := range []struct{ name, key string }{
				{"no key", ""}, {"a key never issued", never}, {"an empty Bearer token", "Bearer "},
				{"a Basic Authorization", "Basic YTpi"},
			} {
				key := cred.key
				var hdr map[string]string
				if strings.HasPrefix(key, "Basic ") {
					hdr, key = map[string]string{"Authorization": key}, ""
				}
				rep := p58Do(t, ctx, base, key, op.method, path, body, hdr, true)
				if rep.status != 401 {
					t.Errorf("%s with %s: %s; want 401", what, cred.name, rep)
				} else if e := rep.envelopeErr(); e != "" {
					t.Errorf("%s with %s: %s: %s", what, cred.name, e, rep)
				}
				checked++
			}
			k, lacks := without[op.Scope], op.Scope
			if op.AltScope != "" {
				k, lacks = withoutBoth[op.Scope+" "+op.AltScope], op.Scope+" and "+op.AltScope
			}
			rep := p58Do(t, ctx, base, k, op.method, path, body, nil, true)
			if rep.status != 403 {
				t.Errorf("%s without %s: %s; want 403", what, lacks, rep)
			} else if e := rep.envelopeErr(); e != "" {
				t.Errorf("%s without %s: %s: %s", what, lacks, e, rep)
			} else if !strings.Contains(string(rep.body), op.Scope) {
				t.Errorf("%s without %s: the 403 does not name %s: %s", what, lacks, op.Scope, rep)
			}
			checked++
			for _, sc := range []string{op.Scope, op.AltScope} {
				if sc == "" {
					continue
				}
				// The scope alone: not refused for scope (the ids name nothing).
				if rep := p58Do(t, ctx, base, only[sc], op.method, path, body, nil, true); rep.status == 401 || rep.status == 403 {
					t.Errorf("%s with a key holding only %s: %s; want no 401/403", what, sc, rep)
				}
				checked++
			}
		}
	}
	t.Logf("%d refusals and admissions checked over %d operations on %d coordinators", checked, len(ops), r.c.Len())
	for _, list := range []string{"/v1/tickets", "/v1/webhooks", "/v1/servers", "/v1/hosting", "/v1/domains", "/v1/billing/invoices", "/v1/account/connected-apps"} {
		rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", list, nil, nil, true)
		var l struct {
			Data []json.RawMessage `json:"data"`
		}
		if rep.status != 200 || json.Unmarshal(rep.body, &l) != nil || len(l.Data) != 0 {
			t.Errorf("after the refusals, A's %s", rep)
		}
	}
	var keys struct {
		Data []api.KeyInfo `json:"data"`
	}
	rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", "/v1/account/api-keys", nil, nil, true)
	if want := 1 + 2*len(without) + len(withoutBoth); rep.status != 200 || json.Unmarshal(rep.body, &keys) != nil || len(keys.Data) != want {
		t.Errorf("after the refusals, A's keys (want %d): %s", want, rep)
	}
}

// TestProbe58ConnectedAppOfAnother: DELETE /v1/account/connected-apps/{id}
// (account:write), which no other test sends. B, holding every scope, gets
// for A's connected app what an id naming nothing gets (404, the same code
// and message but for the id), through each coordinator, and A's app keeps
// working; A revokes it through a follower (200), after which its access
// token is a 401 on every coordinator, and revoking it again answers the
// revoked app again (/openapi.json), at a coordinator it was not sent to.
func TestProbe58ConnectedAppOfAnother(t *testing.T) {
	r := lightRig(t, "p58apps", "--public-url", "https://api.audit.example")
	ctx := r.ctx
	_, _, _, connect := oauthAppOn(t, r)
	access, _ := connect(r.keyA)
	var apps api.ConnectedAppList
	rep := p58Do(t, ctx, r.c.URL(0), r.keyA, "GET", "/v1/account/connected-apps", nil, nil, true)
	if rep.status != 200 || json.Unmarshal(rep.body, &apps) != nil || len(apps.Data) != 1 {
		t.Fatalf("A's connected apps: %s", rep)
	}
	app := apps.Data[0].ID
	works := func(i int) p58Reply {
		return p58Do(t, ctx, r.c.URL(i), "Bearer "+access, "GET", "/v1/account", nil, nil, true)
	}
	for i := range r.c.Len() {
		mine := p58Do(t, ctx, r.c.URL(i), r.keyB, "DELETE", "/v1/account/connected-apps/"+app, nil, nil, true)
		none := p58Do(t, ctx, r.c.URL(i), r.keyB, "DELETE", "/v1/account/connected-apps/"+unknown(app), nil, nil, true)
		if mine.status != 404 || !sameError(string(mine.body), string(none.body), app) {
			t.Errorf("coordinator %d: B revoking A's app: %s; an app naming nothing: %s; want the same 404", i, mine, none)
		}
		if e := mine.envelopeErr(); mine.status == 404 && e != "" {
			t.Errorf("coordinator %d: B revoking A's app: %s: %s", i, e, mine)
		}
		if strings.Contains(string(mine.body), r.accA.ID) {
			t.Errorf("coordinator %d: B's 404 names A's account: %s", i, mine)
		}
		if w := works(i); w.status != 200 {
			t.Errorf("coordinator %d: A's app after B's attempt: %s; want 200", i, w)
		}
	}
	f := r.follower()
	if rep := p58Do(t, ctx, r.c.URL(f), r.keyA, "DELETE", "/v1/account/connected-apps/"+app, nil, nil, false); rep.status != 200 {
		t.Fatalf("A revoking its app through a follower: %s", rep)
	}
	for i := range r.c.Len() {
		var last p58Reply
		deadline := time.Now().Add(10 * time.Second)
		for last = works(i); last.status != 401 && time.Now().Before(deadline); last = works(i) {
			time.Sleep(100 * time.Millisecond)
		}
		if last.status != 401 {
			t.Errorf("coordinator %d: the revoked app's token: %s; want 401", i, last)
		}
	}
	again := p58Do(t, ctx, r.c.URL((f+1)%r.c.Len()), r.keyA, "DELETE", "/v1/account/connected-apps/"+app, nil, nil, false)
	var got api.ConnectedApp
	if again.status != 200 || json.Unmarshal(again.body, &got) != nil || got.ID != app || got.RevokedAt == nil {
		t.Errorf("A revoking its app again: %s; want 200 with the app, revoked", again)
	}
}
