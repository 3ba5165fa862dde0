package audit

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// p63SeedScopes is the seeds' endpoint list (seeds/000, sunucu.com's
// llms.txt, v1.6) as written there: each route and the one scope it names,
// the path in /openapi.json's form.
var p63SeedScopes = []struct{ method, path, scope string }{
	{"GET", "/account", "account:read"},
	{"GET", "/servers", "servers:read"},
	{"GET", "/servers/{id}", "servers:read"},
	{"GET", "/servers/{id}/stats", "servers:read"},
	{"GET", "/servers/{id}/snapshots", "servers:read"},
	{"POST", "/servers/{id}/power/{action}", "servers:write"},
	{"POST", "/servers/{id}/snapshots", "servers:write"},
	{"DELETE", "/servers/{id}/snapshots/{snapshotId}", "servers:write"},
	{"POST", "/servers/{id}/reinstall", "servers:destroy"},
	{"POST", "/servers/{id}/snapshots/{snapshotId}/revert", "servers:destroy"},
	{"DELETE", "/servers/{id}", "servers:destroy"},
	{"GET", "/hosting", "hosting:read"},
	{"GET", "/hosting/{id}", "hosting:read"},
	{"PUT", "/hosting/{id}/custom-domain", "hosting:write"},
	{"POST", "/hosting/{id}/custom-domain/verify", "hosting:write"},
	{"DELETE", "/hosting/{id}/custom-domain", "hosting:write"},
	{"GET", "/domains", "domains:read"},
	{"GET", "/domains/{id}", "domains:read"},
	{"PATCH", "/domains/{id}", "domains:write"},
	{"GET", "/billing/invoices", "billing:read"},
	{"GET", "/billing/invoices/{id}", "billing:read"},
	{"GET", "/billing/wallet", "billing:read"},
	{"GET", "/billing/wallet/transactions", "billing:read"},
	{"GET", "/tickets", "tickets:read"},
	{"GET", "/tickets/{id}", "tickets:read"},
	{"POST", "/tickets", "tickets:write"},
	{"POST", "/tickets/{id}/reply", "tickets:write"},
	{"POST", "/tickets/{id}/close", "tickets:write"},
	{"GET", "/webhooks", "webhooks:read"},
	{"POST", "/webhooks", "webhooks:write"},
	{"GET", "/webhooks/{id}", "webhooks:read"},
	{"PATCH", "/webhooks/{id}", "webhooks:write"},
	{"DELETE", "/webhooks/{id}", "webhooks:write"},
	{"POST", "/webhooks/{id}/rotate-secret", "webhooks:write"},
	{"GET", "/webhooks/{id}/deliveries", "webhooks:read"},
	{"POST", "/webhooks/{id}/deliveries/{deliveryId}/redeliver", "webhooks:write"},
}

// TestProbe63SeedScopesOnEveryDocumentedRoute: the scope each route of the
// seeds' endpoint list names (seeds/000; SPEC.md: "every path, scope … there
// is served as written"), checked against what is served rather than
// against /openapi.json (TestProbe58EveryOperationAuth and
// TestProbe60MCPToolScopesAndAccounts take each operation's scope from the
// document, so a route served and documented under another scope than the
// seeds' — reinstall under servers:write, say — passes them):
//   - /openapi.json lists the route with the seeds' scope as its x-scope and
//     no alternative;
//   - through each of the three coordinators, a key of A holding every scope
//     but the seeds' one is a 403 in the error envelope naming it, and a key
//     holding only that scope is not refused for scope (no 401 or 403; the
//     ids name nothing);
//   - on MCP (at a follower), the route's tool called with the first key is
//     README's insufficient-scope refusal (HTTP 403, WWW-Authenticate
//     insufficient_scope naming the scope), and with the second it is
//     listed by tools/list and called (no HTTP 403, no tool result of 403).
func TestProbe63SeedScopesOnEveryDocumentedRoute(t *testing.T) {
	r := lightRig(t, "p63scope", "--rate-limit", "100000", "--ip-rate-limit", "1000000")
	ctx := r.ctx
	ops := map[string]openAPIOp{}
	for _, op := range p58Ops(t, ctx, r.c.URL(0)) {
		ops[op.method+" "+op.path] = op
	}
	var seeds []string
	for _, s := range p63SeedScopes {
		if !slices.Contains(api.AllScopes, s.scope) {
			t.Fatalf("the seeds' scope %s of %s %s is not a scope the API has (%v)", s.scope, s.method, s.path, api.AllScopes)
		}
		seeds = append(seeds, s.scope)
	}
	without, only := p58ScopeKeys(t, r, "p63", seeds)
	fill := strings.NewReplacer("{id}", "x1", "{snapshotId}", "x2", "{deliveryId}", "x3", "{action}", "reboot")
	checked := 0
	for _, s := range p63SeedScopes {
		op, ok := ops[s.method+" "+s.path]
		if !ok {
			t.Errorf("/openapi.json does not list the seeds' %s %s", s.method, s.path)
			continue
		}
		if op.Scope != s.scope || op.AltScope != "" {
			t.Errorf("/openapi.json: %s %s has x-scope %q, x-alt-scope %q; the seeds name %s alone", s.method, s.path, op.Scope, op.AltScope, s.scope)
		}
		var body []byte
		if op.isBody {
			body = []byte(`{}`)
		}
		path := "/v1" + fill.Replace(s.path)
		for i := range r.c.Len() {
			what := fmt.Sprintf("coordinator %d: %s %s", i, s.method, s.path)
			rep := p58Do(t, ctx, r.c.URL(i), without[s.scope], s.method, path, body, nil, true)
			if rep.status != 403 {
				t.Errorf("%s with every scope but %s: %s; want 403", what, s.scope, rep)
			} else if e := rep.envelopeErr(); e != "" {
				t.Errorf("%s with every scope but %s: %s: %s", what, s.scope, e, rep)
			} else if !strings.Contains(string(rep.body), s.scope) {
				t.Errorf("%s with every scope but %s: the 403 does not name it: %s", what, s.scope, rep)
			}
			if rep := p58Do(t, ctx, r.c.URL(i), only[s.scope], s.method, path, body, nil, true); rep.status == 401 || rep.status == 403 {
				t.Errorf("%s with only %s: %s; want no 401/403", what, s.scope, rep)
			}
			checked += 2
		}
	}

	// MCP, at a follower: one session per key.
	f := r.follower()
	sessions := map[string]*mcpSession{}
	session := func(key string) *mcpSession {
		if m := sessions[key]; m != nil {
			return m
		}
		m := &mcpSession{t: t, endpoint: r.c.URL(f) + "/mcp", token: key}
		m.initialize()
		sessions[key] = m
		return m
	}
	listed := map[string][]string{}
	tools := func(key string) []string {
		if l, ok := listed[key]; ok {
			return l
		}
		_, out := session(key).post("tools/list", map[string]any{}, false)
		res, _ := out["result"].(map[string]any)
		ts, _ := res["tools"].([]any)
		var names []string
		for _, x := range ts {
			if m, ok := x.(map[string]any); ok {
				name, _ := m["name"].(string)
				names = append(names, name)
			}
		}
		if len(names) == 0 {
			t.Fatalf("tools/list with a key holding only some scopes: %v", out)
		}
		listed[key] = names
		return names
	}
	for _, s := range p63SeedScopes {
		op, ok := ops[s.method+" "+s.path]
		if !ok || op.OperationID == "" {
			continue
		}
		name := p60Snake(op.OperationID)
		args := map[string]any{}
		for _, m := range p60PathParam.FindAllStringSubmatch(s.path, -1) {
			args[m[1]] = strings.Trim(fill.Replace("{"+m[1]+"}"), "{}")
		}
		if op.isBody {
			args["body"] = map[string]any{}
		}
		what := fmt.Sprintf("MCP tool %s (%s %s) at coordinator %d", name, s.method, s.path, f)
		a := p60Call(t, session(without[s.scope]), name, args)
		if a.http != http.StatusForbidden || !strings.Contains(a.header.Get("WWW-Authenticate"), "insufficient_scope") ||
			!strings.Contains(a.header.Get("WWW-Authenticate"), s.scope) || !strings.Contains(a.body, s.scope) {
			t.Errorf("%s with every scope but %s: %s (WWW-Authenticate %q); want README's 403 insufficient_scope naming it", what, s.scope, a, a.header.Get("WWW-Authenticate"))
		}
		if !slices.Contains(tools(only[s.scope]), name) {
			t.Errorf("%s: tools/list with a key holding only %s does not list it", what, s.scope)
		}
		if a := p60Call(t, session(only[s.scope]), name, args); a.http == 401 || a.http == 403 || a.status == 401 || a.status == 403 {
			t.Errorf("%s with only %s: %s; want no 401/403", what, s.scope, a)
		}
		checked += 3
	}
	t.Logf("%d refusals and admissions checked over the seeds' %d routes", checked, len(p63SeedScopes))
}
