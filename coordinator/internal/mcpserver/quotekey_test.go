package mcpserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hostplane/hostplane/pkg/api"
)

// TestMCPQuoteRefusesTheOrdersIdempotencyKey: each order tool that quotes
// first (order_server, order_hosting, register_domain, transfer_domain),
// called without a confirmation_token, a body its quote prices and an
// idempotency_key the order's route refuses (a space, not ASCII, 256
// characters): the tool error of the route's own 400 (the same code and
// message REST answers POSTing that key), no confirmation_token, nothing
// charged. The same body with a good key is quoted (the body is not what was
// refused), and so is an empty idempotency_key, which MCP takes as no key
// (the confirmation sends one derived from the token; review61 R1). Before,
// all four answered a quote and a token for a key the confirmation then
// refused.
func TestMCPQuoteRefusesTheOrdersIdempotencyKey(t *testing.T) {
	r := newOrderRig(t, "mcp61-quotekey@example.com", 5000, api.ScopeDomainsRead, api.ScopeOrdersWrite, api.ScopeServersRead, api.ScopeHostingRead, api.ScopeHostingWrite)
	c, key := r.c, r.key
	for _, p := range []struct {
		slug string
		p    api.ProductRequest
	}{
		{"vps-k", api.ProductRequest{Category: api.ProductVPS, NameEn: "k", RetailMonthlyUsdCents: 2400, Specs: api.ProductSpecs{VCPU: 1, RAMMB: 512, DiskGB: 10}}},
		{"web-k", api.ProductRequest{Category: api.ProductHosting, NameEn: "Web k", RetailMonthlyUsdCents: 500,
			Specs: api.ProductSpecs{Hosting: &api.HostingPlan{PHPWorkers: 3, PHPMemoryMiB: 96, MaxExecutionSeconds: 20, UploadMiB: 16, DiskMiB: 2048}}}},
	} {
		if _, err := c.Admin(0).CreateProduct(context.Background(), p.slug, p.p); err != nil {
			t.Fatal(err)
		}
	}
	balance := func() int64 { return r.balance(t) }
	contact := orderContact
	orders := []struct {
		tool, path string
		body       map[string]any
	}{
		{"order_server", "/v1/servers", map[string]any{"plan_slug": "vps-k", "hostname": "k1", "os_template": "debian-12"}},
		{"order_hosting", "/v1/hosting", map[string]any{"plan_slug": "web-k", "domain": "shop.example.test", "username": "shopk"}},
		{"register_domain", "/v1/domains", map[string]any{"name": "mcp61-k.test", "years": 1, "contact": contact}},
		{"transfer_domain", "/v1/domains/transfer", map[string]any{"name": "moved.test", "auth_code": "s3cret-Code-42", "contact": contact}},
	}
	type answer struct {
		StatusCode int    `json:"statusCode"`
		Code       string `json:"code"`
		Message    string `json:"message"`
		Token      string `json:"confirmation_token"`
	}
	// rest is the route's answer to the order POSTed with Idempotency-Key k.
	rest := func(path string, body map[string]any, k string) (int, answer) {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", c.URL(0)+path, strings.NewReader(string(raw)))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		req.Header["Idempotency-Key"] = []string{k}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var a answer
		_ = json.Unmarshal(b, &a)
		return resp.StatusCode, a
	}
	cs := mcpClient(t, c, key)
	bad := []string{"mcp61 key", "mcp61-é", strings.Repeat("k", 256)}
	for _, o := range orders {
		for _, k := range bad {
			status, want := rest(o.path, o.body, k)
			if status != http.StatusBadRequest || !strings.Contains(want.Message, "Idempotency-Key") {
				t.Fatalf("POST %s with Idempotency-Key %q: %d %+v; want the 400 naming the key", o.path, k, status, want)
			}
			res := callTool(t, cs, o.tool, map[string]any{"body": o.body, "idempotency_key": k})
			var a answer
			if err := json.Unmarshal([]byte(resultText(t, res)), &a); err != nil {
				t.Fatalf("%s: %v: %s", o.tool, err, resultText(t, res))
			}
			if !res.IsError || a.Token != "" || a.StatusCode != http.StatusBadRequest || a.Code != want.Code || a.Message != want.Message {
				t.Errorf("%s with idempotency_key %.20q (%d characters), no token: error %v %s; want REST's 400 %s %q and no confirmation_token",
					o.tool, k, len(k), res.IsError, resultText(t, res), want.Code, want.Message)
			}
		}
		for _, k := range []string{"mcp61-good-" + o.tool, ""} { // "" is no key (the confirmation derives one)
			res := callTool(t, cs, o.tool, map[string]any{"body": o.body, "idempotency_key": k})
			var a answer
			if err := json.Unmarshal([]byte(resultText(t, res)), &a); err != nil || res.IsError || a.Token == "" {
				t.Errorf("%s with idempotency_key %q: error %v %s; want a quote and a confirmation_token", o.tool, k, res.IsError, resultText(t, res))
			}
		}
	}
	if b := balance(); b != 5000 {
		t.Errorf("balance %d after the refusals and quotes, want 5000 (nothing charged)", b)
	}
}
