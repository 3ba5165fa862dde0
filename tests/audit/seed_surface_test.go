package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/tests/framework"
)

// seedSurface is testdata/seed-surface.json: what a client of the sunucu.com
// v1.6 API codes against, taken by hand from the seeds 000 and 001 (the
// file's comments name the lines).
type seedSurface struct {
	OpenAPI      string `json:"openapi"`
	Server       string `json:"server"`
	KeyPrefix    string `json:"key_prefix"`
	APIKeyHeader string `json:"api_key_header"`
	Scopes       []string
	NotDefault   []string `json:"not_default"`
	Endpoints    []seedEndpoint
	PowerActions []string `json:"power_actions"`
	Events       []struct {
		Name    string
		Payload []string
	}
	SignatureHdr   string            `json:"signature_header"`
	ErrorFields    []string          `json:"error_fields"`
	Errors         map[string]string `json:"errors"`
	RatePerMinute  int               `json:"rate_limit_per_minute"`
	RateHeaders    []string          `json:"rate_limit_headers"`
	RetryAfter     string            `json:"retry_after_header"`
	IdempotencyHdr string            `json:"idempotency_header"`
	AccountFields  []string          `json:"account_fields"`
	MCPPath        string            `json:"mcp_path"`
	OAuthMetadata  string            `json:"oauth_metadata_path"`
	OAuthPrefix    string            `json:"oauth_prefix"`
	OAuthDevice    string            `json:"oauth_device_page"`
	DeviceGrant    string            `json:"device_grant"`
}

type seedEndpoint struct {
	Method, Path, Scope string
	Body, Query         []string
	Idempotency         bool
}

func (e seedEndpoint) String() string { return e.Method + " " + e.Path }

var (
	seedParam = regexp.MustCompile(`:([A-Za-z]+)`)
	anyParam  = regexp.MustCompile(`\{[^}]+\}`)
)

// docPath is the endpoint's path as /openapi.json writes it (relative to the
// server URL, {param}).
func (e seedEndpoint) docPath(server string) string {
	return seedParam.ReplaceAllString(strings.TrimPrefix(e.Path, server), "{$1}")
}

func loadSeedSurface(t *testing.T) seedSurface {
	t.Helper()
	raw, err := os.ReadFile("testdata/seed-surface.json")
	if err != nil {
		t.Fatal(err)
	}
	var s seedSurface
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("testdata/seed-surface.json: %v", err)
	}
	if len(s.Endpoints) != 36 || len(s.Scopes) != 13 || len(s.Events) != 12 {
		t.Fatalf("testdata/seed-surface.json: %d endpoints, %d scopes, %d events; the seeds list 36, 13 and 12", len(s.Endpoints), len(s.Scopes), len(s.Events))
	}
	return s
}

// oaDoc is a decoded /openapi.json with its local $refs followed.
type oaDoc map[string]any

func (d oaDoc) deref(v any) map[string]any {
	m, _ := v.(map[string]any)
	for i := 0; m != nil && i < 10; i++ {
		ref, ok := m["$ref"].(string)
		if !ok {
			break
		}
		var cur any = map[string]any(d)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			c, _ := cur.(map[string]any)
			cur = c[part]
		}
		m, _ = cur.(map[string]any)
	}
	return m
}

// props lists a schema's property names, through allOf/oneOf/anyOf.
func (d oaDoc) props(v any) []string {
	s := d.deref(v)
	var out []string
	for k := range s["properties"].(map[string]any) {
		out = append(out, k)
	}
	for _, comb := range []string{"allOf", "oneOf", "anyOf"} {
		l, _ := s[comb].([]any)
		for _, x := range l {
			out = append(out, d.props(x)...)
		}
	}
	return out
}

func list(v any) []any { l, _ := v.([]any); return l }

func strs(v any) []string {
	var out []string
	for _, x := range list(v) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// checkSeedDoc reports (as errors naming the item) every item of the seeds'
// surface that the OpenAPI document doc does not carry as written.
func checkSeedDoc(s seedSurface, doc oaDoc) []string {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if v, _ := doc["openapi"].(string); v != s.OpenAPI {
		bad("openapi: %q, the seeds' document is %q", v, s.OpenAPI)
	}
	if sv := list(doc["servers"]); len(sv) == 0 || doc.deref(sv[0])["url"] != s.Server {
		bad("servers: %v, want the server URL %q", doc["servers"], s.Server)
	}
	comps := doc.deref(doc["components"])
	schemes := doc.deref(comps["securitySchemes"])
	if b := doc.deref(schemes["bearerAuth"]); b["type"] != "http" || b["scheme"] != "bearer" {
		bad("securitySchemes.bearerAuth: %v, want http bearer", schemes["bearerAuth"])
	}
	headerScheme := ""
	for name, v := range schemes {
		if m := doc.deref(v); m["type"] == "apiKey" && m["in"] == "header" && m["name"] == s.APIKeyHeader {
			headerScheme = name
		}
	}
	if headerScheme == "" {
		bad("securitySchemes: no apiKey scheme in the header %s", s.APIKeyHeader)
	}
	paths := doc.deref(doc["paths"])
	for _, e := range s.Endpoints {
		p := e.docPath(s.Server)
		item := doc.deref(paths[p])
		op := doc.deref(item[strings.ToLower(e.Method)])
		if op == nil {
			var near []string
			for q := range paths {
				if q != p && anyParam.ReplaceAllString(q, "{}") == anyParam.ReplaceAllString(p, "{}") {
					near = append(near, q)
				}
			}
			bad("%s: no operation %s %s in /openapi.json (paths with other parameter names: %v)", e, e.Method, p, near)
			continue
		}
		if sc, _ := op["x-scope"].(string); sc != e.Scope {
			bad("%s: x-scope %q, the seeds' scope is %q", e, sc, e.Scope)
		}
		var bearer, keyHdr bool
		for _, req := range list(op["security"]) {
			r := doc.deref(req)
			if slices.Equal(strs(r["bearerAuth"]), []string{e.Scope}) {
				bearer = true
			}
			if headerScheme != "" && slices.Equal(strs(r[headerScheme]), []string{e.Scope}) {
				keyHdr = true
			}
		}
		if !bearer || !keyHdr {
			bad("%s: security %v, want bearerAuth and %s each with [%s]", e, op["security"], s.APIKeyHeader, e.Scope)
		}
		params := map[string]map[string]any{} // "in name" → parameter
		for _, l := range [][]any{list(item["parameters"]), list(op["parameters"])} {
			for _, x := range l {
				pm := doc.deref(x)
				params[fmt.Sprint(pm["in"], " ", pm["name"])] = pm
			}
		}
		for _, m := range seedParam.FindAllStringSubmatch(e.Path, -1) {
			if params["path "+m[1]] == nil {
				bad("%s: no path parameter %q", e, m[1])
			}
		}
		for _, q := range e.Query {
			if params["query "+q] == nil {
				bad("%s: no query parameter %q", e, q)
			}
		}
		if e.Idempotency && params["header "+s.IdempotencyHdr] == nil {
			bad("%s: no %s header parameter", e, s.IdempotencyHdr)
		}
		if strings.HasSuffix(e.Path, "/power/:action") {
			enum := fmt.Sprint(doc.deref(params["path action"]["schema"])["enum"])
			if want := fmt.Sprint(s.PowerActions); enum != want {
				bad("%s: :action enum %s, the seeds' is %s", e, enum, want)
			}
		}
		if len(e.Body) > 0 {
			rb := doc.deref(op["requestBody"])
			schema := doc.deref(doc.deref(doc.deref(rb["content"])["application/json"])["schema"])
			var have []string
			if schema != nil {
				have = doc.props(schema)
			}
			for _, f := range e.Body {
				if !slices.Contains(have, f) {
					sort.Strings(have)
					bad("%s: no body field %q (the body has %v)", e, f, have)
				}
			}
		}
		responses := doc.deref(op["responses"])
		codes := []string{"401", "403", "429", "500"}
		if strings.Contains(e.Path, ":") {
			codes = append(codes, "404")
		}
		if len(e.Body)+len(e.Query) > 0 {
			codes = append(codes, "400")
		}
		for code, r := range responses {
			if code[0] != '2' {
				continue
			}
			codes = append(codes, code)
			hdrs := doc.deref(doc.deref(r)["headers"])
			for _, h := range s.RateHeaders {
				if hdrs[h] == nil {
					bad("%s: response %s documents no %s header", e, code, h)
				}
			}
		}
		for _, code := range codes {
			r := doc.deref(responses[code])
			if r == nil {
				bad("%s: no %s response", e, code)
				continue
			}
			if code[0] != '2' {
				schema := doc.deref(doc.deref(doc.deref(r["content"])["application/json"])["schema"])
				req := strs(schema["required"])
				for _, f := range s.ErrorFields {
					if !slices.Contains(req, f) {
						bad("%s: %s response: error body field %q not required (required: %v)", e, code, f, req)
					}
				}
			}
			if code == "429" && doc.deref(r["headers"])[s.RetryAfter] == nil {
				bad("%s: 429 response documents no %s header", e, s.RetryAfter)
			}
		}
	}
	events := map[string][]string{}
	for _, x := range list(doc["x-webhook-events"]) {
		ev := doc.deref(x)
		name, _ := ev["name"].(string)
		events[name] = strs(ev["payload"])
	}
	for _, want := range s.Events {
		have, ok := events[want.Name]
		if !ok {
			bad("x-webhook-events: no event %q", want.Name)
			continue
		}
		for _, f := range want.Payload {
			if !slices.Contains(have, f) {
				bad("x-webhook-events %s: no payload field %q (payload: %v)", want.Name, f, have)
			}
		}
	}
	return errs
}

// TestSeedSurfaceServedAsWritten checks SPEC.md's "every path, scope, body
// field and webhook event [of the seeds 000 and 001] is served as written"
// from outside, against testdata/seed-surface.json: the /openapi.json a
// coordinator serves carries each endpoint under the seeds' method, path,
// parameter names and scope, with the seeds' body fields, query parameters,
// Idempotency-Key header, rate-limit headers and error body, and each event
// with its payload fields; and the coordinator serves them: GET /v1/scopes
// lists the 13 scopes (servers:destroy not a default), a key lacking an
// endpoint's scope gets that endpoint's 403, the seeds' example bodies are
// taken as written (a webhook on all 12 events, paused and resumed with
// isActive; a ticket opened twice under one Idempotency-Key, replied to,
// closed), ticket.created and wallet.deposit.received arrive signed as
// X-Sunucu-Signature describes with their payload fields, the account
// answers through X-API-Key with its fields, and 400/401/403/404/429 come in
// the error body with their reason phrases, every answer with the rate-limit
// headers (a 401 without a key: the client address's budget) and a 429 with
// Retry-After; the changelog's /mcp takes the key as
// a Bearer token and its OAuth device flow is published under /oauth/. One
// coordinator, no VMs.
func TestSeedSurfaceServedAsWritten(t *testing.T) {
	s := loadSeedSurface(t)
	c := framework.NewProcessCluster(t, framework.ProcessOptions{N: 1, Bin: framework.Coordinator(t), Webhooks: true, RateLimit: s.RatePerMinute})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := framework.NewAPI(t, c.URL(0), nil)

	var doc oaDoc
	a.Call("", "GET", "/openapi.json", nil, nil).Decode(t, &doc)
	for _, e := range checkSeedDoc(s, doc) {
		t.Error("/openapi.json: " + e)
	}

	// The error envelope of a reply, with the seeds' reason phrase.
	errorBody := func(what string, r framework.Reply, status int) {
		t.Helper()
		if r.Status != status {
			t.Errorf("%s: %s, want %d", what, r, status)
			return
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Errorf("%s: error body is not JSON: %s", what, r)
			return
		}
		for _, f := range s.ErrorFields {
			if _, ok := body[f]; !ok {
				t.Errorf("%s: error body has no %q: %s", what, f, r.Body)
			}
		}
		if body["statusCode"] != float64(status) || body["error"] != s.Errors[fmt.Sprint(status)] {
			t.Errorf("%s: statusCode %v, error %v; want %d, %q", what, body["statusCode"], body["error"], status, s.Errors[fmt.Sprint(status)])
		}
	}
	rateHeaders := func(what string, r framework.Reply) {
		t.Helper()
		for _, h := range s.RateHeaders {
			if r.Header.Get(h) == "" {
				t.Errorf("%s: no %s header (%s)", what, h, r)
			}
		}
	}

	var scopes struct {
		Data []struct {
			Scope   string
			Default bool
		}
	}
	a.Call("", "GET", "/v1/scopes", nil, nil).Decode(t, &scopes)
	listed := map[string]bool{}
	for _, x := range scopes.Data {
		listed[x.Scope] = x.Default
	}
	for _, sc := range s.Scopes {
		def, ok := listed[sc]
		if !ok {
			t.Errorf("GET /v1/scopes: no scope %q", sc)
		} else if def == slices.Contains(s.NotDefault, sc) {
			t.Errorf("GET /v1/scopes: %s default %v, the seeds say %v", sc, def, !def)
		}
	}

	acc, key, err := c.NewAccount(ctx, "seedconf-a@example.com", s.Scopes...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, s.KeyPrefix) {
		t.Errorf("minted key %.6s…, want %s…", key, s.KeyPrefix)
	}
	adm := c.Admin(0)

	// Every endpoint, called with a key holding every seed scope but its own:
	// the route exists under the seeds' path and asks for the seeds' scope.
	without := map[string]string{}
	for _, sc := range s.Scopes {
		rest := slices.DeleteFunc(slices.Clone(s.Scopes), func(x string) bool { return x == sc })
		k, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "without " + sc, Scopes: rest})
		if err != nil {
			t.Fatal(err)
		}
		without[sc] = k.Key
	}
	for _, e := range s.Endpoints {
		path := strings.NewReplacer(":id", "x1", ":snapshotId", "x2", ":deliveryId", "x3", ":action", "reboot").Replace(e.Path)
		var body any
		if e.Method != "GET" && e.Method != "DELETE" {
			body = map[string]any{}
		}
		r := a.Call(without[e.Scope], e.Method, path, body, nil)
		errorBody(fmt.Sprintf("%s without %s", e, e.Scope), r, http.StatusForbidden)
		if !strings.Contains(string(r.Body), e.Scope) {
			t.Errorf("%s without %s: the 403 does not name the scope: %s", e, e.Scope, r.Body)
		}
		rateHeaders(e.String(), r)
	}

	// The seeds' example bodies, as written.
	recv := framework.NewWebhookReceiver(t)
	var names []string
	for _, ev := range s.Events {
		names = append(names, ev.Name)
	}
	r := a.Call(key, "POST", "/v1/webhooks", map[string]any{"url": recv.URL + "/hooks", "events": names, "description": "prod"}, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /v1/webhooks on the seeds' 12 events: %s", r)
	}
	var hook struct {
		ID, Secret string
		Events     []string
		IsActive   bool
	}
	r.Decode(t, &hook)
	if hook.Secret == "" || !hook.IsActive || len(hook.Events) != len(names) {
		t.Errorf("POST /v1/webhooks: %s", r)
	}
	var got map[string]any
	a.Call(key, "GET", "/v1/webhooks/"+hook.ID, nil, nil).Decode(t, &got)
	if got["secret"] == hook.Secret {
		t.Errorf("GET /v1/webhooks/:id shows the secret unmasked")
	}
	for _, active := range []bool{false, true} {
		r := a.Call(key, "PATCH", "/v1/webhooks/"+hook.ID, map[string]any{"isActive": active}, nil)
		var h map[string]any
		r.Decode(t, &h)
		if r.Status != http.StatusOK || h["isActive"] != active {
			t.Errorf("PATCH /v1/webhooks/:id {isActive: %v}: %s", active, r)
		}
	}
	// A seed body the server does not know a field of is a 400 naming it
	// (the field names above being taken is what the seeds promise).
	if r := a.Call(key, "PATCH", "/v1/webhooks/"+hook.ID, map[string]any{"isActiv": true}, nil); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "isActiv") {
		t.Errorf("PATCH /v1/webhooks/:id with a misspelt field: %s, want a 400 naming it", r)
	}

	ticketBody := map[string]any{"subject": "Need help", "message": "…", "department": "technical", "priority": "medium"}
	idem := map[string]string{s.IdempotencyHdr: "seedconf-ticket-1"}
	var t1, t2 struct{ ID string }
	r = a.Call(key, "POST", "/v1/tickets", ticketBody, idem)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /v1/tickets with the seed's body: %s", r)
	}
	r.Decode(t, &t1)
	rateHeaders("POST /v1/tickets", r)
	a.Call(key, "POST", "/v1/tickets", ticketBody, idem).Decode(t, &t2)
	if t1.ID == "" || t1.ID != t2.ID {
		t.Errorf("POST /v1/tickets twice under one %s: tickets %q and %q, want one", s.IdempotencyHdr, t1.ID, t2.ID)
	}
	if r := a.Call(key, "POST", "/v1/tickets/"+t1.ID+"/reply", map[string]any{"body": "Thanks, that worked."}, nil); r.Status/100 != 2 {
		t.Errorf("reply with the seed's body: %s", r)
	}
	if r := a.Call(key, "POST", "/v1/tickets/"+t1.ID+"/close", nil, nil); r.Status/100 != 2 {
		t.Errorf("close: %s", r)
	}
	c.Credit(ctx, acc.ID, 1234)

	payload := map[string][]string{}
	for _, ev := range s.Events {
		payload[ev.Name] = ev.Payload
	}
	for _, typ := range []string{"ticket.created", "wallet.deposit.received"} {
		d := recv.Wait(t, typ, 20*time.Second, func(map[string]any) bool { return true })
		if !framework.WebhookSignatureOK(hook.Secret, d.Header.Get(s.SignatureHdr), d.Body, time.Minute) {
			t.Errorf("%s: %s %q does not verify as t=<ts>,v1=HMAC-SHA256(secret, \"<ts>.\" + body)", typ, s.SignatureHdr, d.Header.Get(s.SignatureHdr))
		}
		for _, f := range payload[typ] {
			if _, ok := d.Data[f]; !ok {
				t.Errorf("%s: payload has no %q: %s", typ, f, d.Body)
			}
		}
	}
	if r := a.Call(key, "GET", "/v1/webhooks/"+hook.ID+"/deliveries?limit=5", nil, nil); r.Status != http.StatusOK {
		t.Errorf("deliveries?limit=5: %s", r)
	}
	for _, q := range []string{"/v1/billing/invoices?page=1&limit=5", "/v1/billing/wallet/transactions?limit=5"} {
		if r := a.Call(key, "GET", q, nil, nil); r.Status != http.StatusOK {
			t.Errorf("GET %s: %s", q, r)
		}
	}

	// The account through X-API-Key, with its fields.
	r = a.Call("", "GET", "/v1/account", nil, map[string]string{s.APIKeyHeader: key})
	if r.Status != http.StatusOK {
		t.Fatalf("GET /v1/account with %s: %s", s.APIKeyHeader, r)
	}
	var account map[string]any
	r.Decode(t, &account)
	for _, f := range s.AccountFields {
		if _, ok := account[f]; !ok {
			t.Errorf("GET /v1/account: no field %q: %s", f, r.Body)
		}
	}
	if r.Header.Get("X-RateLimit-Limit") != fmt.Sprint(s.RatePerMinute) {
		t.Errorf("X-RateLimit-Limit %q, want %d", r.Header.Get("X-RateLimit-Limit"), s.RatePerMinute)
	}

	// The changelog's MCP endpoint and OAuth device-code flow.
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		resp, err := (&http.Client{Timeout: 15 * time.Second}).Get(c.URL(0) + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, b := get(s.MCPPath); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Errorf("GET %s without a key: %d, WWW-Authenticate %q, want a 401 asking for a Bearer token: %.200s", s.MCPPath, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b)
	}
	if r := a.Call("", "GET", s.MCPPath, nil, map[string]string{"Authorization": "Bearer " + key}); r.Status == http.StatusUnauthorized || r.Status == http.StatusNotFound {
		t.Errorf("GET %s with the key as a Bearer token: %s", s.MCPPath, r)
	}
	resp, b := get(s.OAuthMetadata)
	var meta struct {
		DeviceEndpoint  string   `json:"device_authorization_endpoint"`
		TokenEndpoint   string   `json:"token_endpoint"`
		GrantTypes      []string `json:"grant_types_supported"`
		ScopesSupported []string `json:"scopes_supported"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &meta) != nil {
		t.Errorf("GET %s: %d %.200s", s.OAuthMetadata, resp.StatusCode, b)
	}
	for _, u := range []string{meta.DeviceEndpoint, meta.TokenEndpoint} {
		if !strings.HasPrefix(u, c.URL(0)+s.OAuthPrefix) {
			t.Errorf("%s: endpoint %q, want one under %s", s.OAuthMetadata, u, s.OAuthPrefix)
		}
	}
	if !slices.Contains(meta.GrantTypes, s.DeviceGrant) {
		t.Errorf("%s: grant types %v, no %s", s.OAuthMetadata, meta.GrantTypes, s.DeviceGrant)
	}
	for _, sc := range s.Scopes {
		if !slices.Contains(meta.ScopesSupported, sc) {
			t.Errorf("%s: scopes_supported lacks %s", s.OAuthMetadata, sc)
		}
	}
	if resp, b := get(s.OAuthDevice); resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET %s (where the browser approves): %d %s %.100s", s.OAuthDevice, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}

	// The error codes, in the error body.
	r = a.Call("", "GET", "/v1/account", nil, nil)
	errorBody("no key", r, http.StatusUnauthorized)
	rateHeaders("no key", r)
	errorBody("malformed body", a.Call(key, "POST", "/v1/tickets", "{", nil), http.StatusBadRequest)
	absent := t1.ID[:len(t1.ID)-1] + "0"
	if absent == t1.ID {
		absent = t1.ID[:len(t1.ID)-1] + "1"
	}
	errorBody("absent ticket", a.Call(key, "GET", "/v1/tickets/"+absent, nil, nil), http.StatusNotFound)
	limited, err := adm.CreateKey(ctx, acc.ID, api.KeyCreateRequest{Name: "limited", Scopes: s.Scopes, RateLimitPerMin: 2})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		a.Call(limited.Key, "GET", "/v1/account", nil, nil)
	}
	r = a.Call(limited.Key, "GET", "/v1/account", nil, nil)
	errorBody("past the key's budget", r, http.StatusTooManyRequests)
	rateHeaders("429", r)
	if r.Header.Get(s.RetryAfter) == "" {
		t.Errorf("429 without %s: %s", s.RetryAfter, r)
	}
}

// TestSeedSurfaceCheckNamesEachGap: checkSeedDoc passes the repository's
// openapi.json (what a coordinator of the default brand serves, byte for
// byte) and, on a scratch copy with one seed item dropped or renamed, fails
// naming that item. No coordinator.
func TestSeedSurfaceCheckNamesEachGap(t *testing.T) {
	s := loadSeedSurface(t)
	raw, err := os.ReadFile("../../coordinator/internal/httpapi/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	load := func() oaDoc {
		var d oaDoc
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if errs := checkSeedDoc(s, load()); len(errs) > 0 {
		t.Fatalf("the repository's openapi.json:\n%s", strings.Join(errs, "\n"))
	}
	op := func(d oaDoc, path, method string) map[string]any {
		return d.deref(d.deref(d.deref(d["paths"])[path])[method])
	}
	dropParam := func(d oaDoc, path, method, name string) {
		o := op(d, path, method)
		o["parameters"] = slices.DeleteFunc(list(o["parameters"]), func(x any) bool { return d.deref(x)["name"] == name })
	}
	for _, tc := range []struct {
		what, want string
		change     func(oaDoc)
	}{
		{"an operation dropped", "POST /v1/webhooks/:id/rotate-secret: no operation", func(d oaDoc) {
			delete(d.deref(d.deref(d["paths"])["/webhooks/{id}/rotate-secret"]), "post")
		}},
		{"a path parameter renamed", "DELETE /v1/servers/:id/snapshots/:snapshotId: no operation DELETE /servers/{id}/snapshots/{snapshotId} in /openapi.json (paths with other parameter names: [/servers/{id}/snapshots/{snapshot_id}])", func(d oaDoc) {
			paths := d.deref(d["paths"])
			paths["/servers/{id}/snapshots/{snapshot_id}"] = paths["/servers/{id}/snapshots/{snapshotId}"]
			delete(paths, "/servers/{id}/snapshots/{snapshotId}")
		}},
		{"a scope changed", `GET /v1/tickets: x-scope "tickets:write", the seeds' scope is "tickets:read"`, func(d oaDoc) {
			op(d, "/tickets", "get")["x-scope"] = "tickets:write"
		}},
		{"a body field dropped", `PATCH /v1/webhooks/:id: no body field "isActive"`, func(d oaDoc) {
			rb := d.deref(op(d, "/webhooks/{id}", "patch")["requestBody"])
			delete(d.deref(d.deref(d.deref(d.deref(rb["content"])["application/json"])["schema"]))["properties"].(map[string]any), "isActive")
		}},
		{"a query parameter dropped", `GET /v1/billing/invoices: no query parameter "page"`, func(d oaDoc) {
			dropParam(d, "/billing/invoices", "get", "page")
		}},
		{"Idempotency-Key dropped", "POST /v1/tickets: no Idempotency-Key header parameter", func(d oaDoc) {
			dropParam(d, "/tickets", "post", "Idempotency-Key")
		}},
		{"a power action added", "POST /v1/servers/:id/power/:action: :action enum [start stop reboot shutdown]", func(d oaDoc) {
			for _, x := range list(op(d, "/servers/{id}/power/{action}", "post")["parameters"]) {
				if p := d.deref(x); p["name"] == "action" {
					sc := d.deref(p["schema"])
					sc["enum"] = append(list(sc["enum"]), "shutdown")
				}
			}
		}},
		{"an event dropped", `x-webhook-events: no event "domain.registered"`, func(d oaDoc) {
			d["x-webhook-events"] = slices.DeleteFunc(list(d["x-webhook-events"]), func(x any) bool { return d.deref(x)["name"] == "domain.registered" })
		}},
		{"a payload field dropped", `x-webhook-events invoice.paid: no payload field "currency"`, func(d oaDoc) {
			for _, x := range list(d["x-webhook-events"]) {
				if ev := d.deref(x); ev["name"] == "invoice.paid" {
					ev["payload"] = slices.DeleteFunc(list(ev["payload"]), func(f any) bool { return f == "currency" })
				}
			}
		}},
		{"Retry-After dropped", "GET /v1/account: 429 response documents no Retry-After header", func(d oaDoc) {
			delete(d.deref(d.deref(d.deref(d.deref(d["components"])["responses"])["TooManyRequests"])["headers"]), "Retry-After")
		}},
		{"a rate-limit header dropped", "GET /v1/account: response 200 documents no X-RateLimit-Reset header", func(d oaDoc) {
			delete(d.deref(d.deref(d.deref(op(d, "/account", "get")["responses"])["200"])["headers"]), "X-RateLimit-Reset")
		}},
		{"the error body's statusCode dropped", `GET /v1/account: 403 response: error body field "statusCode" not required`, func(d oaDoc) {
			e := d.deref(d.deref(d.deref(d["components"])["schemas"])["Error"])
			e["required"] = slices.DeleteFunc(list(e["required"]), func(f any) bool { return f == "statusCode" })
		}},
		{"X-API-Key dropped", "securitySchemes: no apiKey scheme in the header X-API-Key", func(d oaDoc) {
			delete(d.deref(d.deref(d["components"])["securitySchemes"]), "apiKeyHeader")
		}},
	} {
		d := load()
		tc.change(d)
		errs := checkSeedDoc(s, d)
		t.Logf("%s: %d errors, first %s", tc.what, len(errs), errs[0])
		if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
			t.Errorf("%s: errors %q, want one naming %q", tc.what, errs, tc.want)
		}
	}
}
