package audit

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// requestID is the request id in an error body (another in each answer).
var requestID = regexp.MustCompile(`"request_id":"req_[0-9a-z]+"`)

// TestHostingAsAHostileCustomer probes the hosting routes as a customer's
// client written from SPEC.md would, one rig for all: A owns a hosting
// account with a custom domain, B owns one too.
//   - scopes: a key of A without hosting:read, hosting:write,
//     hosting:destroy or orders:write gets, on every hosting operation of
//     /openapi.json needing that scope, the 403 envelope naming the scope;
//   - ids in the path: malformed, encoded, over-long and look-alike ids of
//     A's account (dots, %2f, NUL, upper case, a suffix) are 404s or 400s
//     for A and for B on every hosting route, never an answer about A's
//     account, and never a redirect to another route;
//   - bodies: malformed, wrongly typed, unknown and doubled members on PUT
//     php and custom-domain, bodies on the routes that take none, are 400s
//     (naming the field where there is one); a verify the provider's DNS
//     cannot answer is a 503 to retry;
//   - names: SQL, shell and quote characters in a username, hostile and
//     over-long domains through the quote and the order, are 400s naming the
//     field, and so is a custom domain longer than a server can keep as a
//     file name; B's order on A's domain, custom domain or username, and
//     its quote, are a 409 naming it, showing none of A's ids;
//   - Idempotency-Key: a custom domain, a PHP version and a suspend replayed
//     with another body or on another route are 422s.
//
// After each part A's and B's accounts read as before and nobody was
// charged.
func TestHostingAsAHostileCustomer(t *testing.T) {
	r := sharedRig(t, "audit")
	r.c.Credit(r.ctx, r.accA.ID, hostingPrice)
	r.c.Credit(r.ctx, r.accB.ID, hostingPrice)
	f := r.follower()
	order := func(key, user string) string {
		t.Helper()
		var o api.HostingOrder
		rep := r.write(f, key, "POST", "/v1/hosting", hostingBody(user))
		if rep.Status != 201 {
			t.Fatalf("hosting order %s: %s", user, rep)
		}
		rep.Decode(t, &o)
		framework.WaitFor(t, user+" active", 30*time.Second, 100*time.Millisecond, func() bool {
			h, err := r.apis[0].Client(key).HostingAccount(r.ctx, o.Hosting.ID)
			return err == nil && h.Status == api.HostingActive
		})
		return o.Hosting.ID
	}
	hA, hB := order(r.keyA, "hostilea"), order(r.keyB, "hostileb")
	if rep := r.write(f, r.keyA, "PUT", "/v1/hosting/"+hA+"/custom-domain", map[string]any{"domain": "www.hostilea-shop.example"}); rep.Status != 200 {
		t.Fatalf("A's custom domain: %s", rep)
	}

	// views are what A and B read of their hosting; unchanged compares them
	// and the charges with what they were at the start.
	views := []struct{ key, path string }{
		{r.keyA, "/v1/hosting/" + hA}, {r.keyA, "/v1/hosting/" + hA + "/custom-domain"}, {r.keyA, "/v1/hosting"},
		{r.keyB, "/v1/hosting/" + hB}, {r.keyB, "/v1/hosting/" + hB + "/custom-domain"}, {r.keyB, "/v1/hosting"},
	}
	read := func() []string {
		var out []string
		for _, v := range views {
			rep := r.call(0, v.key, "GET", v.path, nil, nil)
			out = append(out, requestID.ReplaceAllString(rep.String(), ""))
		}
		return out
	}
	seen := read()
	chargedA, chargedB := r.charged(r.keyA), r.charged(r.keyB)
	unchanged := func(t *testing.T, what string) {
		t.Helper()
		for i, now := range read() {
			if now != seen[i] {
				t.Errorf("after %s, %s reads\n %s\nwas\n %s", what, views[i].path, now, seen[i])
			}
		}
		if a, b := r.charged(r.keyA), r.charged(r.keyB); a != chargedA || b != chargedB {
			t.Errorf("after %s: A %+v (was %+v), B %+v (was %+v)", what, a, chargedA, b, chargedB)
		}
	}
	// hostingOps are the hosting operations of /openapi.json, with a body
	// each accepts.
	bodies := map[string]any{
		"PUT /hosting/{id}/php":           map[string]any{"php_version": "8.3"},
		"PUT /hosting/{id}/custom-domain": map[string]any{"domain": "www.scoped.example"},
		"POST /hosting":                   hostingBody("scoped"),
		"POST /hosting/quote":             hostingBody("scoped"),
	}
	var hostingOps []openAPIOp
	for _, op := range r.operations() {
		if op.path == "/hosting" || strings.HasPrefix(op.path, "/hosting/") {
			hostingOps = append(hostingOps, op)
		}
	}
	if len(hostingOps) < 14 {
		t.Fatalf("/openapi.json lists %d hosting operations", len(hostingOps))
	}

	t.Run("a key without the scope", func(t *testing.T) {
		for _, missing := range []string{api.ScopeHostingRead, api.ScopeHostingWrite, api.ScopeHostingDestroy, api.ScopeOrdersWrite} {
			var scopes []string
			for _, s := range api.AllScopes {
				if s != missing {
					scopes = append(scopes, s)
				}
			}
			key := r.keyOfA(t, api.KeyCreateRequest{Name: "no-" + missing, Scopes: scopes})
			probed := 0
			for _, op := range hostingOps {
				if op.Scope != missing {
					continue
				}
				probed++
				path := "/v1" + strings.ReplaceAll(op.path, "{id}", hA)
				for _, i := range []int{0, f} {
					rep := r.call(i, key, op.method, path, bodies[op.method+" "+op.path], nil)
					if rep.Status != 403 {
						t.Errorf("without %s: %s, want the 403 envelope naming the scope", missing, rep)
					} else if e := rep.DecodeError(t); e.Err != "Forbidden" || e.Code != "missing_scope" || !strings.Contains(e.Message, `"`+missing+`"`) {
						t.Errorf("without %s: %s, want the 403 envelope naming the scope", missing, rep)
					}
				}
			}
			if probed == 0 {
				t.Errorf("no hosting operation of /openapi.json needs %s", missing)
			}
		}
		unchanged(t, "calls without the scope")
	})

	t.Run("ids in the path", func(t *testing.T) {
		hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		bad := []string{"..", "%2e%2e", "." + hA, hA + "%2f..%2f" + hB, "..%2f" + hB, hA + "%00", hA + "%20", hA + "%0a", strings.ToUpper(hA),
			hA + "x", hA[:len(hA)-1], strings.Repeat("a", 4000), "hst_%E2%80%AE" + hA[4:], "%2Fv1%2Fhosting", "*", hA + ";" + hB, hA + "%3B" + hB}
		for _, op := range hostingOps {
			if !strings.Contains(op.path, "{id}") {
				continue
			}
			for _, id := range bad {
				for _, key := range []string{r.keyA, r.keyB} {
					var body io.Reader
					if b, ok := bodies[op.method+" "+op.path]; ok {
						j, _ := json.Marshal(b)
						body = strings.NewReader(string(j))
					}
					u := r.c.URL(f) + "/v1" + strings.ReplaceAll(op.path, "{id}", id)
					req, err := http.NewRequest(op.method, u, body)
					if err != nil {
						t.Fatalf("%s %s: %v", op.method, u, err)
					}
					req.Header.Set("Authorization", "Bearer "+key)
					req.Header.Set("Content-Type", "application/json")
					res, b := framework.Fetch(t, hc, req)
					text := string(b)
					// A "." or ".." segment is the mux's redirect to the
					// path it stands for (RFC 3986 dot segments, as
					// TestHostileInputOutsideIn takes too).
					redirect := (res.StatusCode == 301 || res.StatusCode == 307 || res.StatusCode == 308) && strings.Contains("/"+id+"/", "/../")
					if !redirect && ((res.StatusCode != 404 && res.StatusCode != 400) || !json.Valid(b)) {
						t.Errorf("%s %.200s: %d %.300s, want a 404 or 400", op.method, u, res.StatusCode, text)
					}
					if key == r.keyB && (strings.Contains(text, r.accA.ID) || strings.Contains(text, "hostilea")) {
						t.Errorf("B's %s %.200s shows A's account: %.300s", op.method, u, text)
					}
				}
			}
		}
		unchanged(t, "malformed ids")
	})

	t.Run("bodies", func(t *testing.T) {
		ct := map[string]string{"Content-Type": "application/json"}
		for _, tc := range []struct {
			path, field, good string
		}{
			{"/v1/hosting/" + hA + "/php", "php_version", `"8.3"`},
			{"/v1/hosting/" + hA + "/custom-domain", "domain", `"www.other-shop.example"`},
		} {
			for _, p := range []struct{ body, want string }{
				{``, ""}, {`{`, ""}, {`[]`, ""}, {`null`, ""}, {`"x"`, ""}, {`{}`, tc.field},
				{`{"` + tc.field + `":8.2}`, tc.field}, {`{"` + tc.field + `":null}`, tc.field}, {`{"` + tc.field + `":[` + tc.good + `]}`, tc.field},
				{`{"` + tc.field + `":{"a":1}}`, tc.field}, {`{"` + tc.field + `":true}`, tc.field}, {`{"` + tc.field + `":""}`, tc.field},
				{`{"` + tc.field + `":` + tc.good + `,"x":1}`, `"x"`}, {`{"` + tc.field + `":` + tc.good + `}{}`, ""},
				{`{"` + tc.field + `":` + tc.good + `,"` + tc.field + `":` + tc.good + `}`, tc.field},
				{`{"` + strings.ToUpper(tc.field) + `":` + tc.good + `}`, strings.ToUpper(tc.field)},
				{"{\"" + tc.field + "\":" + tc.good + "}\x00", ""}, {"\xef\xbb\xbf{\"" + tc.field + "\":" + tc.good + "}", ""},
				{`{"` + tc.field + `":"\ud800"}`, tc.field},
			} {
				for _, i := range []int{0, f} {
					rep := r.call(i, r.keyA, "PUT", tc.path, p.body, ct)
					if rep.Status != 400 {
						t.Errorf("PUT %s %q: %s, want a 400 naming %q", tc.path, p.body, rep, p.want)
					} else if e := rep.DecodeError(t); e.Message == "" || (p.want != "" && !strings.Contains(e.Message, p.want)) {
						t.Errorf("PUT %s %q: %s, want a 400 naming %q", tc.path, p.body, rep, p.want)
					}
				}
			}
		}
		// The routes that take no body refuse one (nothing is suspended,
		// reset or verified by a body meant for something else).
		for _, path := range []string{"suspend", "unsuspend", "custom-domain/verify", "ssl/retry"} {
			for _, body := range []string{`{"force":true}`, `[]`, `{`, `"x"`, `null`} {
				rep := r.call(f, r.keyA, "POST", "/v1/hosting/"+hA+"/"+path, body, ct)
				if rep.Status != 400 || rep.DecodeError(t).Message == "" {
					t.Errorf("POST %s with %s: %s, want 400", path, body, rep)
				}
			}
		}
		// Without a body, the verify is the provider's answer about the
		// DNS: the rig's coordinators have no resolver, a 503 the customer
		// may retry (it was a 500 internal_error), and nothing changes.
		if rep := r.call(f, r.keyA, "POST", "/v1/hosting/"+hA+"/custom-domain/verify", nil, nil); rep.Status != 503 || rep.Code() != "dns_unavailable" || rep.Header.Get("Retry-After") == "" {
			t.Errorf("verify with no resolver: %s, want 503 dns_unavailable with Retry-After", rep)
		}
		for _, body := range []string{`{"which":"root"}`, `{"x":1}`, `[]`, `{`} {
			rep := r.call(f, r.keyA, "POST", "/v1/hosting/"+hA+"/password-reset", body, ct)
			if rep.Status != 400 || rep.DecodeError(t).Message == "" {
				t.Errorf("POST password-reset with %s: %s, want 400", body, rep)
			}
		}
		unchanged(t, "malformed bodies")
	})

	t.Run("names", func(t *testing.T) {
		with := func(field string, v any) map[string]any {
			b := hostingBody("namez")
			b[field] = v
			return b
		}
		long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 43) + ".com" // 239 bytes, a valid DNS name
		refusals := []struct {
			field string
			v     any
		}{
			{"domain", long}, {"domain", "shop.example.com/../../etc"}, {"domain", "shop.example.com%00"}, {"domain", "shop.example.com\nserver_name evil"},
			{"domain", "shop.example.com;include /etc/passwd"}, {"domain", "SHOPA.example.com.."}, {"domain", "hostilea.example.com.."}, {"domain", 42},
			{"domain", "shop.example.com' OR '1'='1"},
			{"username", "a'or'1"}, {"username", `sh"op`}, {"username", "shop`id`"}, {"username", "shop--"}, {"username", "shop%"}, {"username", "sh*p"},
			{"username", `sh\op`}, {"username", "shop)"}, {"username", "HOSTILEA"}, {"username", "mysql"}, {"username", "drop table"}, {"username", 7},
			{"username", []string{"shop"}}, {"username", "information_schema"}, {"username", "hostilea\x00"}, {"username", "ａbc"},
			{"php_version", 8.2}, {"plan_slug", "../web-a"}, {"plan_slug", "web-a;"}, {"plan_slug", ""}, {"location", "../fra"},
		}
		for _, rf := range refusals {
			for _, path := range []string{"/v1/hosting", "/v1/hosting/quote"} {
				for _, key := range []string{r.keyA, r.keyB} {
					rep := r.call(f, key, "POST", path, with(rf.field, rf.v), nil)
					if rep.Status != 400 || !strings.Contains(rep.DecodeError(t).Message, `"`+rf.field+`"`) {
						t.Errorf("POST %s %s=%q: %s, want a 400 naming %s", path, rf.field, rf.v, rep, rf.field)
					}
				}
			}
		}
		// A custom domain longer than a server can keep as a file name
		// (more than 235 bytes: validate.MaxHostingDomain).
		for _, d := range []string{long, strings.Repeat(strings.Repeat("c", 63)+".", 3) + strings.Repeat("d", 40) + ".com"} {
			rep := r.call(f, r.keyA, "PUT", "/v1/hosting/"+hA+"/custom-domain", map[string]any{"domain": d}, nil)
			if rep.Status != 400 || !strings.Contains(rep.DecodeError(t).Message, `"domain"`) {
				t.Errorf("A's custom domain of %d bytes: %s, want a 400 naming domain", len(d), rep)
			}
		}
		// A's names, taken by B: a 409 naming the field, with none of A's
		// ids.
		for _, tc := range []struct {
			method, path, field string
			body                map[string]any
		}{
			{"POST", "/v1/hosting", "username", hostingBody("hostilea")},
			{"POST", "/v1/hosting", "domain", with("domain", "hostilea.example.com")},
			{"POST", "/v1/hosting", "domain", with("domain", "www.hostilea-shop.example")},
		} {
			// The quote of that order says what the order would: the same
			// 409 (it priced the order before).
			for _, path := range []string{tc.path, tc.path + "/quote"} {
				rep := r.call(f, r.keyB, tc.method, path, tc.body, nil)
				if rep.Status != 409 || !strings.Contains(rep.DecodeError(t).Message, `"`+tc.field+`"`) {
					t.Errorf("B's %s %s %v: %s, want a 409 naming %s", tc.method, path, tc.body, rep, tc.field)
				}
				for _, id := range []string{hA, r.accA.ID} {
					if strings.Contains(string(rep.Body), id) {
						t.Errorf("B's %s %s shows A's %s: %s", tc.method, path, id, rep)
					}
				}
			}
		}
		unchanged(t, "hostile names")
	})

	t.Run("Idempotency-Key replayed with another request", func(t *testing.T) {
		// B's own custom domain, first with the key, then another with it.
		hdr := map[string]string{"Idempotency-Key": "probe4-custom"}
		if rep := r.call(f, r.keyB, "PUT", "/v1/hosting/"+hB+"/custom-domain", map[string]any{"domain": "www.hostileb-shop.example"}, hdr); rep.Status != 200 {
			t.Fatalf("B's custom domain: %s", rep)
		}
		seen = read()
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{"PUT", "/v1/hosting/" + hB + "/custom-domain", map[string]any{"domain": "www.other-b.example"}},
			{"PUT", "/v1/hosting/" + hB + "/custom-domain", map[string]any{"domain": "www.hostileb-shop.example", "x": 1}},
			{"DELETE", "/v1/hosting/" + hB + "/custom-domain", nil},
			{"PUT", "/v1/hosting/" + hB + "/php", map[string]any{"php_version": "8.3"}},
			{"POST", "/v1/hosting/" + hB + "/suspend", nil},
			{"POST", "/v1/hosting", hostingBody("hostilec")},
		} {
			for _, i := range []int{0, f} {
				rep := r.call(i, r.keyB, tc.method, tc.path, tc.body, hdr)
				if rep.Status != 422 || rep.Code() != "idempotency_key_reused" {
					t.Errorf("B's %s %s with the custom domain's key: %s, want 422 idempotency_key_reused", tc.method, tc.path, rep)
				}
			}
		}
		rep := r.call(f, r.keyB, "PUT", "/v1/hosting/"+hB+"/custom-domain", map[string]any{"domain": "www.hostileb-shop.example"}, hdr)
		if rep.Status != 200 || rep.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("the same custom domain with its key: %s (replayed %q), want the first answer", rep, rep.Header.Get("Idempotent-Replayed"))
		}
		// The same key sent by A is A's own request, never B's answer.
		rep = r.call(f, r.keyA, "PUT", "/v1/hosting/"+hB+"/custom-domain", map[string]any{"domain": "www.hostileb-shop.example"}, hdr)
		if rep.Status != 404 || rep.Header.Get("Idempotent-Replayed") != "" {
			t.Errorf("A's PUT on B's custom domain with B's key: %s, want A's own 404", rep)
		}
		unchanged(t, "replayed keys")
	})
}
